"""Token counts estimated when the upstream reported none, because the reply was stopped or
cut off before its usage arrived, or the provider sends no usage at all: the upstream did
the work, so quotas, usage and cost count it. About four bytes of UTF-8 make a token in
the models' tokenizers (four letters of English; a Korean or Chinese character takes three
bytes), and an image counts as much as OpenAI counts a 1024 by 1024 image in detail.
Estimated counts are marked as such (``Message.usage_estimated``).
"""

import math

BYTES_PER_TOKEN = 4
TOKENS_PER_IMAGE = 765
# Each message's role and separators.
TOKENS_PER_MESSAGE = 4


def text_tokens(text: str) -> int:
    return math.ceil(len(text.encode("utf-8", "replace")) / BYTES_PER_TOKEN)


def prompt_tokens(messages: list[dict]) -> int:
    """The estimated prompt of a request's ``messages`` (text, or lists of parts)."""
    total = 0
    for message in messages:
        total += TOKENS_PER_MESSAGE
        content = message.get("content")
        if isinstance(content, str):
            total += text_tokens(content)
            continue
        for part in content or []:
            if part.get("type") == "image_url":
                total += TOKENS_PER_IMAGE
            else:
                total += text_tokens(part.get("text") or "")
    return total
