"""Reading chunks in every dialect: content parts, thoughts, reasoning fields, usage."""

import pytest

from conversations.upstream.chunks import (
    ChunkReader,
    ContentDelta,
    Finished,
    ReasoningDelta,
    Usage,
    UsageReport,
    message_texts,
)


def _chunk(delta: dict | None = None, finish_reason=None, **extra) -> dict:
    choices = [{"index": 0, "delta": delta or {}, "finish_reason": finish_reason}]
    return {"choices": choices, **extra}


def _read(chunks: list[dict]) -> tuple[str, str]:
    reader = ChunkReader()
    events = [event for chunk in chunks for event in reader.events(chunk)] + reader.rest()
    answer = "".join(event.text for event in events if isinstance(event, ContentDelta))
    thinking = "".join(event.text for event in events if isinstance(event, ReasoningDelta))
    return answer, thinking


def test_content_as_a_list_of_parts_keeps_the_text_and_the_thinking_apart():
    chunks = [
        _chunk({"content": [{"type": "thinking", "thinking": [{"type": "text", "text": "Hm, "}]}]}),
        _chunk({"content": [{"type": "thinking", "thinking": "300 plus 91."}]}),
        _chunk({"content": [{"type": "text", "text": "3"}]}),
        _chunk({"content": ["9", {"type": "text", "text": "1"}]}),
    ]
    assert _read(chunks) == ("391", "Hm, 300 plus 91.")


def test_a_delta_gemini_flags_as_a_thought_is_thinking():
    flagged = {"extra_content": {"google": {"thought": True}}}
    chunks = [
        _chunk({"content": "Let me add.", **flagged}),
        _chunk({"content": "4", "extra_content": {"google": {"thought": False}}}),
    ]
    assert _read(chunks) == ("4", "Let me add.")


def test_geminis_thought_deltas_flagged_and_tagged_are_thinking():
    # The shape of Gemini's OpenAI-compatible stream with thoughts on: the first thought
    # delta opens the tag, the next ones are flagged only, and the answer's first delta
    # closes the tag and carries no flag.
    flagged = {"extra_content": {"google": {"thought": True}}}
    chunks = [
        _chunk({"content": "<thought>**Defining the Greeting**\n\n", **flagged}),
        _chunk({"content": "I'll answer in kind.\n\n\n", **flagged}),
        _chunk({"content": "</thought>你好 有什么我可以帮助你的吗"}, finish_reason="stop"),
    ]
    assert _read(chunks) == (
        "你好 有什么我可以帮助你的吗",
        "**Defining the Greeting**\n\nI'll answer in kind.\n\n\n",
    )


@pytest.mark.parametrize("cut", range(1, 40))
def test_a_thought_in_tags_is_thinking_wherever_the_chunks_cut_it(cut):
    text = "<thought>Two and two.</thought>It is 4."
    chunks = [_chunk({"content": text[:cut]}), _chunk({"content": text[cut:]})]
    assert _read(chunks) == ("It is 4.", "Two and two.")


def test_thought_tags_later_in_an_answer_are_its_text():
    text = "Gemini wraps thoughts in <thought>…</thought> tags."
    assert _read([_chunk({"content": text})]) == (text, "")


def test_an_answer_that_starts_like_a_tag_is_kept_whole():
    assert _read([_chunk({"content": "<"}), _chunk({"content": "b>bold</b>"})]) == (
        "<b>bold</b>",
        "",
    )
    assert _read([_chunk({"content": " <tho"})]) == (" <tho", "")


def test_reasoning_sent_twice_in_two_fields_counts_once():
    delta = {
        "reasoning": "Thinking.",
        "reasoning_details": [{"type": "reasoning.text", "text": "Thinking."}],
    }
    assert _read([_chunk(delta)]) == ("", "Thinking.")


def test_reasoning_details_alone_are_read_and_encrypted_ones_skipped():
    delta = {
        "reasoning_details": [
            {"type": "reasoning.summary", "summary": "In short, "},
            {"type": "reasoning.text", "text": "add them."},
            {"type": "reasoning.encrypted", "data": "b64…"},
        ]
    }
    assert _read([_chunk(delta)]) == ("", "In short, add them.")


def test_finish_reasons_are_read_in_lower_case_and_bounded():
    reader = ChunkReader()
    assert reader.events(_chunk(finish_reason="SAFETY")) == [Finished("safety")]
    assert reader.events(_chunk(finish_reason="x" * 100)) == [Finished("x" * 32)]


def test_usage_on_any_chunk_is_reported():
    events = ChunkReader().events({"choices": [], "usage": {"prompt_tokens": 3}})
    assert events == [UsageReport(Usage(prompt_tokens=3, total_tokens=3))]


def test_reasoning_counted_only_in_the_total_is_reasoning_and_part_of_the_completion():
    usage = Usage.from_api({"prompt_tokens": 11, "completion_tokens": 24, "total_tokens": 561})
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (11, 550, 561)
    assert usage.reasoning_tokens == 526


def test_reasoning_openai_counts_in_the_completion_is_not_counted_twice():
    usage = Usage.from_api(
        {
            "prompt_tokens": 10,
            "completion_tokens": 100,
            "total_tokens": 110,
            "completion_tokens_details": {"reasoning_tokens": 64},
        }
    )
    assert (usage.completion_tokens, usage.total_tokens, usage.reasoning_tokens) == (100, 110, 64)


def test_a_whole_message_is_read_in_the_same_dialects():
    message = {
        "content": [{"type": "thinking", "thinking": "Short."}, {"type": "text", "text": "Hi"}]
    }
    assert message_texts(message) == ("Hi", "Short.")
    assert message_texts({"content": "<thought>Hm.</thought>Title"}) == ("Title", "Hm.")
    assert message_texts(None) == ("", "")
    # Gemini has flagged a whole message that is a plain answer.
    flagged = {"content": "Noon.", "extra_content": {"google": {"thought": True}}}
    assert message_texts(flagged) == ("Noon.", "")
