"""Reading streamed chat-completion chunks in every dialect real providers speak.

The answer comes as a string ``delta.content`` or as a list of typed parts (Mistral's
``{"type": "text"}`` and ``{"type": "thinking"}``). Thinking comes as
``reasoning_content`` (DeepSeek), ``reasoning`` or ``reasoning_details`` (OpenRouter,
Groq, vLLM), thinking parts, deltas flagged ``extra_content.google.thought`` or text
wrapped in ``<thought>…</thought>`` (Gemini's OpenAI-compatible endpoint). Usage may come
on any chunk, and reasoning the provider hides may only show as a total that exceeds
prompt plus completion tokens.
"""

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, fields

logger = logging.getLogger(__name__)

# No reply counts more tokens than this; a larger or negative count is a gateway's error.
MAX_TOKEN_COUNT = 10**9
# Finish reasons are stored in a field this long.
MAX_FINISH_REASON_CHARS = 32
THOUGHT_OPEN, THOUGHT_CLOSE = "<thought>", "</thought>"


@dataclass(frozen=True)
class Usage:
    """Token counts of a reply. ``completion_tokens`` include reasoning, as OpenAI counts
    them, so that prompt plus completion is everything the provider bills."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    text_tokens: int = 0
    image_tokens: int = 0
    reasoning_tokens: int = 0

    @classmethod
    def from_api(cls, data: object) -> "Usage | None":
        """Read an API ``usage`` object, treating missing or null fields as zero.

        Gemini and xAI leave hidden reasoning out of ``completion_tokens`` and count it
        only in ``total_tokens``: that excess is reasoning, and is added to the completion,
        as is reasoning larger than the completion. A report with a count no provider could
        mean (below 0, above 10^9) is dropped with a warning (None): the reply's usage is
        then estimated as if none had come.
        """
        if not isinstance(data, dict):
            return cls()
        try:
            return cls._from_counts(data)
        except _AbsurdCountError as error:
            logger.warning(
                "The upstream reported a token count of %s; its usage is dropped.", error
            )
            return None

    @classmethod
    def _from_counts(cls, data: dict) -> "Usage":
        prompt = _details(data, "prompt_tokens_details")
        completion = _details(data, "completion_tokens_details")
        prompt_tokens = _count(data.get("prompt_tokens"))
        completion_tokens = _count(data.get("completion_tokens"))
        reasoning_tokens = _count(completion.get("reasoning_tokens"))
        total_tokens = _count(data.get("total_tokens"))
        hidden = total_tokens - prompt_tokens - completion_tokens
        if hidden > 0:
            completion_tokens += hidden
            reasoning_tokens = max(reasoning_tokens, hidden)
        elif reasoning_tokens > completion_tokens:
            # A completion that cannot hold its reasoning is counted without it (Vercel's
            # gateway for Gemini: the total is prompt plus completion, yet bills both).
            completion_tokens += reasoning_tokens
        return cls(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
            cached_tokens=_count(prompt.get("cached_tokens")),
            text_tokens=_count(prompt.get("text_tokens")),
            image_tokens=_count(prompt.get("image_tokens")),
            reasoning_tokens=reasoning_tokens,
        )

    def __add__(self, other: "Usage") -> "Usage":
        names = [field.name for field in fields(self)]
        return Usage(**{name: getattr(self, name) + getattr(other, name) for name in names})


def _details(data: dict, key: str) -> dict:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _count(value: object) -> int:
    try:
        count = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return 0
    if not 0 <= count <= MAX_TOKEN_COUNT:
        raise _AbsurdCountError(count)
    return count


class _AbsurdCountError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ContentDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True, slots=True)
class Finished:
    reason: str


@dataclass(frozen=True, slots=True)
class UsageReport:
    usage: Usage


StreamEvent = ContentDelta | ReasoningDelta | Finished | UsageReport

_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_text(text: str) -> str:
    """``text`` with its surrogate pairs joined, and any lone surrogate or NUL made U+FFFD.

    JSON writes a character beyond the Basic Multilingual Plane (most emoji) as two
    ``\\uXXXX`` halves; text holding a half cannot be encoded, so it could not be stored.
    Nor can PostgreSQL store a NUL (``\\u0000``) in text.
    """
    text = text.replace("\x00", "\ufffd")
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class _StreamedText:
    """One stream's text, delta by delta: a character whose halves a gateway split across
    two deltas is held back until its second half comes."""

    def __init__(self) -> None:
        self.held = ""

    def take(self, text: str) -> str:
        text, self.held = self.held + text, ""
        if text and "\ud800" <= text[-1] <= "\udbff":
            text, self.held = text[:-1], text[-1]
        return valid_text(text)

    def rest(self) -> str:
        held, self.held = self.held, ""
        return valid_text(held)


class _ThoughtTags:
    """Splits answer text that opens with ``<thought>…</thought>`` into thinking and answer.

    Only a tag before any answer text opens a thought, so an answer that writes about
    ``<thought>`` tags is left alone. Text that may still become a tag is held back.
    """

    def __init__(self) -> None:
        self.inside = False
        self.answering = False
        self.held = ""

    def split(self, text: str) -> Iterator[tuple[bool, str]]:
        """(is thinking, text) pieces of ``text``."""
        text, self.held = self.held + text, ""
        while text:
            if self.inside:
                end = text.find(THOUGHT_CLOSE)
                if end < 0:
                    keep = _tag_start_length(text, THOUGHT_CLOSE)
                    self.held = text[len(text) - keep :]
                    yield True, text[: len(text) - keep]
                    return
                yield True, text[:end]
                text = text[end + len(THOUGHT_CLOSE) :]
                self.inside = False
            elif self.answering:
                yield False, text
                return
            else:
                body = text.lstrip()
                if body.startswith(THOUGHT_OPEN):
                    yield False, text[: len(text) - len(body)]
                    text = body[len(THOUGHT_OPEN) :]
                    self.inside = True
                elif THOUGHT_OPEN.startswith(body):
                    self.held = text
                    return
                else:
                    self.answering = True

    def rest(self) -> tuple[bool, str]:
        held, self.held = self.held, ""
        return self.inside, held


def _tag_start_length(text: str, tag: str) -> int:
    """The length of the longest end of ``text`` that begins ``tag``."""
    for length in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-length:]):
            return length
    return 0


def _is_thought(delta: dict) -> bool:
    """Gemini flags a thought delta with ``extra_content.google.thought``."""
    extra = delta.get("extra_content")
    google = extra.get("google") if isinstance(extra, dict) else None
    return isinstance(google, dict) and google.get("thought") is True


def _nested_text(value: object) -> str:
    """Text of a thinking part's body: a string, a part, or a list of either."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return _nested_text(value.get("text"))
    if isinstance(value, list):
        return "".join(_nested_text(item) for item in value)
    return ""


def _content_pieces(content: object) -> Iterator[tuple[bool, str]]:
    """(is thinking, text) pieces of a ``content``: a string or a list of parts."""
    if isinstance(content, str):
        yield False, content
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, str):
                yield False, part
            elif isinstance(part, dict):
                kind = part.get("type")
                if kind in ("thinking", "reasoning"):
                    yield True, _nested_text(part.get(kind) or part.get("text"))
                elif kind in (None, "text", "output_text"):
                    text = part.get("text")
                    if isinstance(text, str):
                        yield part.get("thought") is True, text


def _reasoning_of(delta: dict) -> str:
    """The thinking a delta carries in a field of its own (not in its content)."""
    for key in ("reasoning_content", "reasoning"):
        value = delta.get(key)
        if isinstance(value, str) and value:
            return value
    details = delta.get("reasoning_details")
    if not isinstance(details, list):
        return ""
    texts = []
    for detail in details:
        if isinstance(detail, dict):
            text = detail.get("text") or detail.get("summary")
            if isinstance(text, str):
                texts.append(text)
    return "".join(texts)


class ChunkReader:
    """Turns one stream's parsed chunks into events, keeping what spans chunks: halves of
    a character and ``<thought>`` tags.

    ``thought_flags`` says whether Gemini's thought flag makes a delta thinking. In a stream
    it does; on a whole message it does not (Gemini has flagged a plain answer).
    """

    def __init__(self, *, thought_flags: bool = True) -> None:
        self.thought_flags = thought_flags
        self.content = _StreamedText()
        self.reasoning = _StreamedText()
        self.tags = _ThoughtTags()

    def events(self, chunk: dict) -> list[StreamEvent]:
        """The events in one chunk (a dict without an error object)."""
        events: list[StreamEvent] = []
        choices = chunk.get("choices")
        if choices:
            choice = choices[0]
            delta = choice.get("delta")
            if delta:
                self._read_delta(delta, events)
            finish_reason = choice.get("finish_reason")
            if finish_reason and isinstance(finish_reason, str):
                events.append(Finished(finish_reason.lower()[:MAX_FINISH_REASON_CHARS]))
        usage = chunk.get("usage")
        if usage and (report := Usage.from_api(usage)) is not None:
            events.append(UsageReport(report))
        return events

    def rest(self) -> list[StreamEvent]:
        """What the stream's end leaves held back (a lone half comes out as U+FFFD)."""
        events: list[StreamEvent] = []
        thinking, held = self.tags.rest()
        self._add(thinking, held, events)
        if text := self.reasoning.rest():
            events.append(ReasoningDelta(text))
        if text := self.content.rest():
            events.append(ContentDelta(text))
        return events

    def _read_delta(self, delta: dict, events: list[StreamEvent]) -> None:
        if reasoning := _reasoning_of(delta):
            self._add(True, reasoning, events)
        flagged = self.thought_flags and _is_thought(delta)
        for thinking, text in _content_pieces(delta.get("content")):
            if thinking:
                self._add(True, text, events)
            else:
                # Gemini opens its first thought delta with the tag and closes the thought
                # at the start of the answer's first delta, which has no flag.
                for in_tags, piece in self.tags.split(text):
                    self._add(in_tags or flagged, piece, events)

    def _add(self, thinking: bool, text: str, events: list[StreamEvent]) -> None:
        if not text:
            return
        if thinking and (text := self.reasoning.take(text)):
            events.append(ReasoningDelta(text))
        elif not thinking and (text := self.content.take(text)):
            events.append(ContentDelta(text))


def message_texts(message: object) -> tuple[str, str]:
    """(answer, reasoning) of a whole, non-streamed ``message`` in any of these dialects."""
    if not isinstance(message, dict):
        return "", ""
    reader = ChunkReader(thought_flags=False)
    events = reader.events({"choices": [{"delta": message}]}) + reader.rest()
    answer = "".join(event.text for event in events if isinstance(event, ContentDelta))
    reasoning = "".join(event.text for event in events if isinstance(event, ReasoningDelta))
    return answer, reasoning
