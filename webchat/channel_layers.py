"""Channels' in-memory layer, with its expiry sweep run once a second instead of per call.

The stock layer looks at every channel's queue and every group membership on each
``group_send`` and each ``receive``: with N open sockets, relaying one frame costs O(N),
and a process streaming to hundreds of sockets spends most of its time sweeping. Messages
expire after a minute and memberships after a day, so sweeping once a second keeps the
same behaviour to within that second.
"""

import time

from channels.layers import InMemoryChannelLayer

SWEEP_INTERVAL = 1.0


class SweepingInMemoryChannelLayer(InMemoryChannelLayer):
    _swept_at = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._swept_at >= SWEEP_INTERVAL:
            self._swept_at = now
            super()._clean_expired()
