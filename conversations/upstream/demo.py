"""The built-in demo model, answering in-process when no API key is configured.

It is an httpx transport speaking the API's SSE, so the real client code path runs.
"""

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from conversations.services import CONTINUE_INSTRUCTION

MODEL = "webchat-demo"
FIRST_TOKEN_DELAY = 0.3
TOKEN_INTERVAL = 0.03
TITLE = "Demo conversation"
TITLE_WORDS = 5
QUOTE_MAX_CHARS = 60
# Continuing a reply that is not the start of the canned one: there is nothing to resume.
NOTHING_TO_ADD = "\n\nThat is all the demo model has to say."

REPLY = """## Hello from Webchat

You said {quote}. This is the built-in **demo model**, so this reply is canned. \
Set `WEBCHAT_API_KEY` (and optionally `WEBCHAT_API_BASE` and `WEBCHAT_MODELS`) \
to connect a real model.

What you can expect:

- Replies that stream in as they are written
- Markdown with tables and highlighted code
- Conversations kept on your own server

| Setting | What it does |
| --- | --- |
| `WEBCHAT_API_KEY` | The key for your chat-completions API |
| `WEBCHAT_API_BASE` | The API's base URL |
| `WEBCHAT_MODELS` | Comma-separated model names |

```python
def greet(name: str) -> str:
    return f"Hello, {{name}}!"
```
"""


def demo_reply(messages: list) -> str:
    """The canned reply; asked to continue the start of it, the rest of it."""
    if not _asks_to_continue(messages):
        return _canned_reply(messages)
    partial, whole = messages[-2]["content"], _canned_reply(messages[:-2])
    if len(partial) < len(whole) and whole.startswith(partial):
        return whole[len(partial) :]
    return NOTHING_TO_ADD


def _canned_reply(messages: list) -> str:
    """The canned reply, quoting the start of the last user message."""
    text = " ".join(_last_user_text(messages).split())
    if len(text) > QUOTE_MAX_CHARS:
        text = text[: QUOTE_MAX_CHARS - 1] + "…"
    return REPLY.format(quote=f"“{text}”" if text else "nothing")


def demo_title(messages: list) -> str:
    """The answer to a non-streamed request (a title): the message's first words."""
    return " ".join(_last_user_text(messages).split()[:TITLE_WORDS]) or TITLE


def _asks_to_continue(messages: list) -> bool:
    """Whether the messages end as services.history_for_reply ends a Continue: the partial
    reply, then the instruction to go on."""
    return (
        len(messages) >= 2
        and messages[-2]["role"] == "assistant"
        and messages[-1] == {"role": "user", "content": CONTINUE_INSTRUCTION}
    )


def _last_user_text(messages: list) -> str:
    users = [message for message in messages if message["role"] == "user"]
    return _text_of(users[-1]) if users else ""


def _text_of(message: dict) -> str:
    """A message's text; with images, its content is a list of parts."""
    content = message["content"]
    if isinstance(content, str):
        return content
    return " ".join(part["text"] for part in content if part.get("type") == "text")


def _pieces(text: str) -> list[str]:
    """Word-sized pieces to stream, each word with the whitespace after it."""
    return re.findall(r"\S+\s*|\s+", text)


def _usage(messages: list, completion_tokens: int) -> dict:
    """Usage with words standing in for tokens."""
    prompt_tokens = sum(len(_text_of(message).split()) for message in messages)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


@dataclass(kw_only=True)
class DemoTransport(httpx.AsyncBaseTransport):
    """An httpx transport that answers the app's chat completions as the demo model."""

    first_token_delay: float = FIRST_TOKEN_DELAY
    token_interval: float = TOKEN_INTERVAL

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(await request.aread())
        model, messages = body.get("model") or MODEL, body["messages"]
        if not body.get("stream"):
            title = demo_title(messages)
            message = {"role": "assistant", "content": title}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            usage = _usage(messages, len(_pieces(title)))
            return httpx.Response(200, json={"model": model, "choices": [choice], "usage": usage})
        return httpx.Response(
            200,
            headers={"content-type": "text/event-stream; charset=utf-8"},
            content=self._stream(model, messages),
        )

    async def _stream(self, model: str, messages: list) -> AsyncIterator[bytes]:
        """The reply's chunks as the API streams them, paced like a network would."""
        pieces = _pieces(demo_reply(messages))
        head = {
            "id": f"chatcmpl-demo-{time.time_ns()}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }

        def event(choices: list, **extra: object) -> bytes:
            return b"data: " + json.dumps({**head, "choices": choices, **extra}).encode() + b"\n\n"

        def chunk(delta: dict, finish_reason: str | None = None) -> bytes:
            return event([{"index": 0, "delta": delta, "finish_reason": finish_reason}])

        yield chunk({"role": "assistant", "content": ""})
        for index, piece in enumerate(pieces):
            await asyncio.sleep(self.first_token_delay if index == 0 else self.token_interval)
            yield chunk({"content": piece})
        yield chunk({}, "stop")
        yield event([], usage=_usage(messages, len(pieces)))
        yield b"data: [DONE]\n\n"
