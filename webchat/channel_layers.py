"""A channel layer for one process, whose cost per message does not grow with its sockets.

Channels' own in-memory layer looks at every channel's queue and every group membership
on each ``group_send`` and each ``receive``: with N open sockets, relaying one frame costs
O(N), and a process streaming to hundreds of sockets spends most of its time sweeping.
This one is written against the channel layer interface Channels documents, with the same
rules: a message expires after ``expiry`` seconds and its channel is then taken for dead
(dropped from its groups); a membership ends after ``group_expiry`` seconds; a full channel
misses a group's message. Expired entries are swept once a second instead of on every call,
and a message that expired before its turn is never delivered.
"""

import asyncio
import secrets
import time
from collections import Counter
from contextlib import suppress
from copy import deepcopy

from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer

SWEEP_INTERVAL = 1.0


class LocalChannelLayer(BaseChannelLayer):
    extensions = ["groups", "flush"]

    def __init__(self, expiry=60, group_expiry=86400, capacity=100, channel_capacity=None):
        super().__init__(expiry=expiry, capacity=capacity, channel_capacity=channel_capacity)
        self.group_expiry = group_expiry
        # Each queue holds (expires at, message); each group maps channel to joined at.
        # A socket's queue stays between its receives; the sweep drops it once it is empty
        # and nothing waits on it.
        self.channels: dict[str, asyncio.Queue[tuple[float, dict]]] = {}
        self.receiving: Counter[str] = Counter()
        self.groups: dict[str, dict[str, float]] = {}
        self.swept_at = time.monotonic()

    def _queue(self, channel: str) -> asyncio.Queue[tuple[float, dict]]:
        if channel not in self.channels:
            self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
        return self.channels[channel]

    async def send(self, channel: str, message: dict) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        self.sweep_if_due()
        try:
            self._queue(channel).put_nowait((time.monotonic() + self.expiry, deepcopy(message)))
        except asyncio.QueueFull:
            raise ChannelFull(channel) from None

    async def receive(self, channel: str) -> dict:
        self.require_valid_channel_name(channel)
        self.sweep_if_due()
        queue = self._queue(channel)
        self.receiving[channel] += 1
        try:
            while True:
                expires_at, message = await queue.get()
                if expires_at >= time.monotonic():
                    return message
                self._remove_from_groups(channel)
        finally:
            self.receiving[channel] -= 1
            if not self.receiving[channel]:
                del self.receiving[channel]

    async def new_channel(self, prefix: str = "specific.") -> str:
        return f"{prefix}.local!{secrets.token_hex(8)}"

    async def flush(self) -> None:
        self.channels = {}
        self.groups = {}

    async def close(self) -> None:
        pass

    async def group_add(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        self.groups.setdefault(group, {})[channel] = time.monotonic()

    async def group_discard(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        members = self.groups.get(group)
        if members is not None:
            members.pop(channel, None)
            if not members:
                del self.groups[group]

    async def group_send(self, group: str, message: dict) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_group_name(group)
        for channel in list(self.groups.get(group, ())):
            # Putting a message on a local queue never waits; a full one misses it.
            with suppress(ChannelFull):
                await self.send(channel, message)

    def sweep_if_due(self) -> None:
        now = time.monotonic()
        if now - self.swept_at >= SWEEP_INTERVAL:
            self.swept_at = now
            self.sweep(now)

    def sweep(self, now: float) -> None:
        """Drop expired messages (their channels are dead), the queues no socket reads any
        more, and expired memberships."""
        for channel, queue in list(self.channels.items()):
            waiting = [queue.get_nowait() for _ in range(queue.qsize())]
            fresh = [entry for entry in waiting if entry[0] >= now]
            if len(fresh) < len(waiting):
                self._remove_from_groups(channel)
            for entry in fresh:
                queue.put_nowait(entry)
            if not fresh and channel not in self.receiving:
                del self.channels[channel]
        joined_before = now - self.group_expiry
        for group, members in list(self.groups.items()):
            for channel, joined_at in list(members.items()):
                if joined_at < joined_before:
                    del members[channel]
            if not members:
                del self.groups[group]

    def _remove_from_groups(self, channel: str) -> None:
        for members in self.groups.values():
            members.pop(channel, None)
