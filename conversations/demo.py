"""The built-in demo model, answering in-process when no API key is configured.

It speaks the same SSE as the fake upstream, so the real client code path runs.
"""

import asyncio
import json
from collections.abc import AsyncIterator

import httpx

from conversations.fake_upstream import (
    DONE,
    ChunkEncoder,
    completion_payload,
    count_prompt_tokens,
    split_into_tokens,
    usage_payload,
)

MODEL = "webchat-demo"
FIRST_TOKEN_DELAY = 0.3
TOKEN_INTERVAL = 0.03
TITLE = "Demo conversation"
TITLE_WORDS = 5
QUOTE_MAX_CHARS = 60

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
    """The canned reply, quoting the start of the last user message."""
    text = " ".join(_last_user_text(messages).split())
    if len(text) > QUOTE_MAX_CHARS:
        text = text[: QUOTE_MAX_CHARS - 1] + "…"
    return REPLY.format(quote=f"“{text}”" if text else "nothing")


def demo_title(messages: list) -> str:
    """The answer to a non-streamed request (a conversation's title): the message's first
    words."""
    return " ".join(_last_user_text(messages).split()[:TITLE_WORDS]) or TITLE


def _last_user_text(messages: list) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(
                    part["text"]
                    for part in content
                    if isinstance(part, dict) and isinstance(part.get("text"), str)
                )
            return content if isinstance(content, str) else ""
    return ""


class DemoTransport(httpx.AsyncBaseTransport):
    """An httpx transport that answers chat completions as the demo model."""

    def __init__(
        self,
        *,
        first_token_delay: float = FIRST_TOKEN_DELAY,
        token_interval: float = TOKEN_INTERVAL,
    ) -> None:
        self._first_token_delay = first_token_delay
        self._token_interval = token_interval

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST" or not request.url.path.endswith("/chat/completions"):
            return httpx.Response(404, json={"error": {"message": "The demo only chats."}})
        try:
            body = json.loads(await request.aread())
            messages = body.get("messages") or []
        except (ValueError, AttributeError):
            return httpx.Response(400, json={"error": {"message": "The body is not JSON."}})
        model = str(body.get("model") or MODEL)
        prompt_tokens = count_prompt_tokens(messages)
        if not body.get("stream"):
            title = demo_title(messages)
            usage = usage_payload(
                prompt_tokens=prompt_tokens,
                completion_tokens=len(split_into_tokens(title)),
                reasoning_tokens=0,
            )
            payload = completion_payload(
                model=model, content=title, reasoning="", finish_reason="stop", usage=usage
            )
            return httpx.Response(200, json=payload)
        tokens = split_into_tokens(demo_reply(messages))
        usage = usage_payload(
            prompt_tokens=prompt_tokens, completion_tokens=len(tokens), reasoning_tokens=0
        )
        encoder = ChunkEncoder(model)
        steps = [(0.0, encoder.role())]
        steps += [
            (self._first_token_delay if index == 0 else self._token_interval, encoder.content(text))
            for index, text in enumerate(tokens)
        ]
        steps += [(0.0, encoder.finish("stop")), (0.0, encoder.usage(usage)), (0.0, DONE)]
        return httpx.Response(
            200,
            headers={"content-type": "text/event-stream; charset=utf-8"},
            stream=_PacedStream(steps),
        )


class _PacedStream(httpx.AsyncByteStream):
    """A response body that yields each piece after its delay, like a network would."""

    def __init__(self, steps: list[tuple[float, bytes]]) -> None:
        self._steps = steps

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for delay, data in self._steps:
            if delay:
                await asyncio.sleep(delay)
            yield data
