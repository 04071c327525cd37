"""Every finish reason, and every empty reply, in words."""

import pytest

from conversations.upstream import finish_reasons


@pytest.mark.parametrize("reason", ["", "stop", "end_turn"])
def test_an_ordinary_stop_needs_no_words(reason):
    assert finish_reasons.finish_note(reason) == ""


@pytest.mark.parametrize(
    ("reason", "says"),
    [
        ("length", "token limit"),
        ("content_filter", "content filter"),
        ("blocked", "content filter"),
        ("prohibited_content", "content filter"),
        ("safety", "safety"),
        ("recitation", "protected material"),
        ("tool_calls", "tool"),
        ("function_call", "tool"),
        ("error", "reported an error"),
        ("malformed_function_call", "does not know: “malformed_function_call”"),
    ],
)
def test_every_other_reason_is_a_sentence(reason, says):
    assert says in finish_reasons.finish_note(reason)


@pytest.mark.parametrize(
    ("reason", "thought", "says"),
    [
        ("length", True, "while thinking"),
        ("length", False, "token limit before it answered"),
        ("content_filter", False, "content filter blocked"),
        ("safety", False, "safety"),
        ("recitation", False, "protected material"),
        ("tool_calls", False, "tool"),
        ("stop", True, "thought, but then gave no answer"),
        ("stop", False, "empty reply"),
        ("", False, "empty reply"),
        ("made_up", False, "“made_up”"),
    ],
)
def test_an_empty_reply_says_why_and_may_be_retried(reason, thought, says):
    failure = finish_reasons.empty_reply_failure(reason, thought=thought)
    assert failure.code == finish_reasons.EMPTY
    assert says in failure.message
    assert failure.retry_in is None
