"""The channel layers. The local one: the stock in-memory layer's rules, at a cost per frame
that does not grow with the number of open sockets. Redis: an idle socket keeps waiting."""

import asyncio

import pytest
from channels.layers import get_channel_layer
from django.conf import settings

from webchat import channel_layers
from webchat.channel_layers import LocalChannelLayer


async def test_a_group_send_reaches_every_member():
    layer = LocalChannelLayer()
    members = [await layer.new_channel() for _ in range(3)]
    for channel in members:
        await layer.group_add("conversation_1", channel)

    await layer.group_send("conversation_1", {"type": "chat.frame", "html": "<p>hi</p>"})

    for channel in members:
        assert await layer.receive(channel) == {"type": "chat.frame", "html": "<p>hi</p>"}


async def test_a_full_member_does_not_keep_a_frame_from_the_others():
    layer = LocalChannelLayer(capacity=1)
    full, other = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("conversation_1", full)
    await layer.send(full, {"type": "chat.frame", "html": "waiting"})
    await layer.group_add("conversation_1", other)

    await layer.group_send("conversation_1", {"type": "chat.frame", "html": "new"})

    assert (await layer.receive(other))["html"] == "new"
    assert (await layer.receive(full))["html"] == "waiting"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(channel_layers.time, "monotonic", clock)
    return clock


async def test_it_sweeps_expired_entries_once_a_second_not_on_every_frame(clock, monkeypatch):
    layer = LocalChannelLayer()
    sweeps = []
    monkeypatch.setattr(layer, "sweep", sweeps.append)
    await layer.group_add("conversation_1", await layer.new_channel())

    for _ in range(10):
        await layer.group_send("conversation_1", {"type": "chat.frame", "html": "x"})
    clock.now += channel_layers.SWEEP_INTERVAL
    await layer.group_send("conversation_1", {"type": "chat.frame", "html": "x"})

    assert sweeps == [clock.now]


async def test_a_channel_whose_message_expired_is_dropped_from_its_groups(clock):
    layer = LocalChannelLayer(expiry=60)
    gone, listening = await layer.new_channel(), await layer.new_channel()
    for channel in (gone, listening):
        await layer.group_add("conversation_1", channel)
    await layer.group_send("conversation_1", {"type": "chat.frame", "html": "old"})
    assert (await layer.receive(listening))["html"] == "old"

    clock.now += 61
    await layer.group_send("conversation_1", {"type": "chat.frame", "html": "new"})

    assert layer.groups["conversation_1"].keys() == {listening}
    assert (await layer.receive(listening))["html"] == "new"


async def test_a_message_that_expired_before_its_turn_is_never_delivered(clock):
    layer = LocalChannelLayer(expiry=60)
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "chat.frame", "html": "stale"})
    clock.now += 30
    await layer.send(channel, {"type": "chat.frame", "html": "fresh"})
    clock.now += 31

    assert (await layer.receive(channel))["html"] == "fresh"


async def test_a_membership_ends_after_the_group_expiry(clock):
    layer = LocalChannelLayer(group_expiry=100)
    channel = await layer.new_channel()
    await layer.group_add("conversation_1", channel)

    clock.now += 101
    await layer.group_send("conversation_1", {"type": "chat.frame", "html": "x"})

    assert "conversation_1" not in layer.groups


async def test_a_socket_that_leaves_leaves_nothing_behind_after_the_next_sweep(clock):
    layer = LocalChannelLayer()
    channel, other = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("conversation_1", channel)
    waiting = asyncio.create_task(layer.receive(channel))
    other_waiting = asyncio.create_task(layer.receive(other))
    await asyncio.sleep(0)

    waiting.cancel()
    await layer.group_discard("conversation_1", channel)
    with pytest.raises(asyncio.CancelledError):
        await waiting
    clock.now += channel_layers.SWEEP_INTERVAL
    await layer.send(other, {"type": "chat.frame", "html": "still here"})

    assert layer.channels.keys() == {other}
    assert layer.groups == {}
    assert (await other_waiting)["html"] == "still here"


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (REDIS_URL)")
async def test_a_socket_with_no_frames_keeps_waiting_past_the_redis_clients_read_timeout():
    layer = get_channel_layer()
    channel = await layer.new_channel()

    # Nothing arrives: the wait ends by this timeout, not by an error of the Redis client,
    # which gives up on a read after 5 s.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(channel), 6)


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (REDIS_URL)")
async def test_a_group_frame_reaches_each_socket_of_the_group_once():
    layer = get_channel_layer()
    members = [await layer.new_channel() for _ in range(2)]
    outsider = await layer.new_channel()
    for channel in members:
        await layer.group_add("conversation_redis_1", channel)

    await layer.group_send("conversation_redis_1", {"type": "chat.frame", "html": "<p>1</p>"})
    await layer.group_send("conversation_redis_1", {"type": "chat.frame", "html": "<p>2</p>"})

    for channel in members:
        assert (await layer.receive(channel))["html"] == "<p>1</p>"
        assert (await layer.receive(channel))["html"] == "<p>2</p>"
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(outsider), 0.2)
