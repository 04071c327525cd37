"""The channel layers. The in-memory one: the stock one's behaviour, at a cost per frame
that does not grow with the number of open sockets. Redis: an idle socket keeps waiting."""

import asyncio

import pytest
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings

from webchat import channel_layers
from webchat.channel_layers import SweepingInMemoryChannelLayer


async def test_a_group_send_reaches_every_member():
    layer = SweepingInMemoryChannelLayer()
    members = [await layer.new_channel() for _ in range(3)]
    for channel in members:
        await layer.group_add("conversation_1", channel)

    await layer.group_send("conversation_1", {"type": "chat.frame", "html": "<p>hi</p>"})

    for channel in members:
        assert await layer.receive(channel) == {"type": "chat.frame", "html": "<p>hi</p>"}


async def test_a_full_member_does_not_keep_a_frame_from_the_others():
    layer = SweepingInMemoryChannelLayer(capacity=1)
    full, other = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("conversation_1", full)
    await layer.send(full, {"type": "chat.frame", "html": "waiting"})
    await layer.group_add("conversation_1", other)

    await layer.group_send("conversation_1", {"type": "chat.frame", "html": "new"})

    assert (await layer.receive(other))["html"] == "new"
    assert (await layer.receive(full))["html"] == "waiting"


async def test_it_sweeps_expired_entries_once_a_second_not_on_every_frame(monkeypatch):
    sweeps = []
    monkeypatch.setattr(InMemoryChannelLayer, "_clean_expired", lambda self: sweeps.append(1))
    now = [1000.0]
    monkeypatch.setattr(channel_layers.time, "monotonic", lambda: now[0])
    layer = SweepingInMemoryChannelLayer()
    await layer.group_add("conversation_1", await layer.new_channel())

    for _ in range(10):
        await layer.group_send("conversation_1", {"type": "chat.frame", "html": "x"})
    now[0] += channel_layers.SWEEP_INTERVAL

    await layer.group_send("conversation_1", {"type": "chat.frame", "html": "x"})

    assert len(sweeps) == 2


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
