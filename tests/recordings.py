"""The corpus of real provider traffic in tests/data/recordings (see its README): what each
recording holds, read independently of the product's code, and ways to replay it."""

import random
import tomllib
from dataclasses import dataclass
from pathlib import Path

from tests.fake_upstream import Recording

DIRECTORY = Path(__file__).parent / "data" / "recordings"
SSE = ((b"content-type", b"text/event-stream; charset=utf-8"),)


def _manifest(kind: str) -> list[dict]:
    with (DIRECTORY / f"{kind}s" / "index.toml").open("rb") as manifest:
        return tomllib.load(manifest)[kind]


# The stream manifest also holds a few whole (non-streamed) replies, marked kind = "completion".
STREAMS = [entry for entry in _manifest("stream") if "kind" not in entry]
COMPLETIONS = [entry for entry in _manifest("stream") if entry.get("kind") == "completion"]
ERRORS = _manifest("error")


def body_of(entry: dict, kind: str) -> bytes:
    return (DIRECTORY / f"{kind}s" / entry["file"]).read_bytes()


def random_splits(body: bytes, *, seed: str, count: int) -> tuple[int, ...]:
    """``count`` byte offsets inside ``body``, and as many again inside its multi-byte
    characters (all of them when fewer), the same for the same seed."""
    chooser = random.Random(seed)
    anywhere = chooser.sample(range(1, len(body)), min(count, len(body) - 1))
    # Before a continuation byte (10xxxxxx) is inside a character.
    inside = [offset for offset, byte in enumerate(body) if byte & 0xC0 == 0x80]
    inside = chooser.sample(inside, min(count, len(inside)))
    return tuple(sorted({*anywhere, *inside}))


def completion_recording(entry: dict) -> Recording:
    return Recording(body_of(entry, "stream"), headers=((b"content-type", b"application/json"),))


def stream_recording(entry: dict, *, seed: str, count: int = 40) -> Recording:
    body = body_of(entry, "stream")
    return Recording(body, headers=SSE, splits=random_splits(body, seed=seed, count=count))


def error_recording(entry: dict) -> Recording:
    content_type = entry["content_type"].encode()
    headers = [(b"content-type", content_type)]
    # The body is sent as recorded; the server frames it (some captures' lengths are off).
    recorded = {name: value for name, value in entry["headers"].items() if name != "content-length"}
    headers += [(name.encode(), str(value).encode()) for name, value in recorded.items()]
    body = body_of(entry, "error")
    splits = random_splits(body, seed=entry["file"], count=8)
    return Recording(body, status=entry["status"], headers=tuple(headers), splits=splits)


@dataclass(frozen=True)
class StoredUsage:
    """A recording's usage as Webchat stores it: reasoning the provider counted only in the
    total (total above prompt plus completion) is reasoning, and part of the completion."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    reasoning_tokens: int
    cached_tokens: int

    @classmethod
    def read(cls, usage) -> "StoredUsage":
        """The fields of a ``Usage`` the client read, or of a stored reply."""
        return cls(**{name: getattr(usage, name) for name in cls.__dataclass_fields__})

    @classmethod
    def of(cls, entry: dict) -> "StoredUsage | None":
        """What the manifest's reading of ``entry`` should be stored as."""
        if "prompt_tokens" not in entry:
            return None
        prompt, completion = entry["prompt_tokens"], entry["completion_tokens"]
        hidden = max(entry["total_tokens"] - prompt - completion, 0)
        if not hidden and entry["reasoning_tokens"] > completion:
            hidden = entry["reasoning_tokens"]  # reasoning counted apart from the completion
        return cls(
            prompt_tokens=prompt,
            completion_tokens=completion + hidden,
            total_tokens=prompt + completion + hidden,
            reasoning_tokens=max(entry["reasoning_tokens"], hidden),
            cached_tokens=entry["cached_tokens"],
        )
