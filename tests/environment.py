"""Loaded as a pytest plugin (see pyproject.toml) before Django reads its settings."""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production")
# Tests serve static files through the finders; an empty root keeps WhiteNoise quiet.
os.environ.setdefault("STATIC_ROOT", tempfile.mkdtemp(prefix="webchat-static-"))
