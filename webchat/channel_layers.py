"""Channels' in-memory layer, made cheap per message for processes with many sockets.

The stock layer looks at every channel's queue and every group membership on each
``group_send`` and each ``receive``: with N open sockets, relaying one frame costs O(N),
and a process streaming to hundreds of sockets spends most of its time sweeping. Messages
expire after a minute and memberships after a day, so sweeping once a second keeps the
same behaviour to within that second. A group send also starts one task per member,
although putting a message on an in-memory queue never waits; here it puts them in turn.
"""

import contextlib
import time

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer

SWEEP_INTERVAL = 1.0


class SweepingInMemoryChannelLayer(InMemoryChannelLayer):
    _swept_at = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._swept_at >= SWEEP_INTERVAL:
            self._swept_at = now
            super()._clean_expired()

    async def group_send(self, group: str, message: dict) -> None:
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        for channel in list(self.groups.get(group, ())):
            with contextlib.suppress(ChannelFull):  # as the stock layer: a full one misses it
                await self.send(channel, message)
