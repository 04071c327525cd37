"""The upstream chat-completions API: the client (``client``), what its failures mean to a
person (``failures``), and the built-in demo model that answers without a key (``demo``)."""
