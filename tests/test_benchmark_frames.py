"""The benchmark finds a reply's first text and its end in today's frames and in the
reply protocol's next ones: only ids and data attributes are relied on."""

import pytest

from benchmarks.clients import MESSAGE_ID, Reply, _ReplyWatch

TODAY = [
    '<span id="message-7-tail" hx-swap-oob="beforeend" data-end="0"></span>',
    '<span id="message-7-tail" hx-swap-oob="beforeend" data-end="5">Hello</span>',
    '<article id="message-7" class="message" data-status="complete" data-end="9">',
]
NEXT = [
    '<div data-end="0" id="message-7-blocks"></div>',
    '<div hx-swap-oob="true" data-end="3" id="message-7-blocks"><p>Hi</p></div>',
    '<p data-status="stopped" id="message-7-status"></p>',
]


@pytest.mark.parametrize("frames", [TODAY, NEXT], ids=["today", "next"])
async def test_it_finds_the_first_text_and_the_final_state(frames):
    reply = Reply("prompt", started_at=0.0)
    watch = _ReplyWatch(7, reply)

    for arrived_at, frame in enumerate(frames):
        watch.see(float(arrived_at), frame)

    assert reply.first_text_at == 1.0
    assert reply.done_at == 2.0
    assert reply.status in ("complete", "stopped")
    assert watch.done.is_set()


async def test_other_messages_and_unfinished_states_do_not_count():
    reply = Reply("prompt", started_at=0.0)
    watch = _ReplyWatch(7, reply)

    watch.see(0.0, '<article id="message-70" data-status="complete" data-end="4">')
    watch.see(1.0, '<article data-status="streaming" id="message-7" data-end="0">')

    assert reply.first_text_at is None
    assert not watch.done.is_set()


def test_the_reply_is_the_highest_message_id_in_the_answer():
    answer = (
        '<article id="message-3"></article>'
        '<article class="a" id="message-4"><span id="message-4-tail">'
    )

    assert max(int(found) for found in MESSAGE_ID.findall(answer)) == 4
