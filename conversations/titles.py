"""Naming a new conversation: once its first reply is complete, the model is asked for a
short title in a separate, non-streamed request.

Until then, and for good when that request fails or answers nothing usable, the title is
the first words of the first message (``services.conversation_start``), or "Image" for a
conversation that starts with images only, which is then named after its first reply. Only
such titles are replaced: one the user chose never is. A stored title is pushed to the
conversation's open tabs, into the page heading and the sidebar.
"""

import asyncio
import logging
import re
import unicodedata

from django.conf import settings

from conversations import frames
from conversations.models import Conversation, Message
from conversations.rendering import markdown_plain_text
from conversations.upstream.client import ChatRequest, UpstreamError, get_client

logger = logging.getLogger(__name__)

TITLE_MAX_CHARS = 60
TIMEOUT_SECONDS = 20.0
# The start of the first message is enough to name a conversation, and keeps the request small.
PROMPT_MAX_CHARS = 500
INSTRUCTION = (
    "Write a title for the conversation that begins with the next message: at most six "
    "words, in the language of the message. Answer with the title alone, without quotes "
    "and without a full stop."
)
# Wrapping a model may put around a title: quotes, Markdown emphasis and headings.
_WRAPPING = "\"'“”\u2018\u2019„«»「」『』`*_# \t"
_DOUBLE_QUOTES = str.maketrans("", "", '"“”„«»「」『』')
_LABEL = re.compile("^title\\s*[:\uff1a]", re.IGNORECASE)

# Strong references to the running title requests: asyncio keeps only weak ones.
_running: set[asyncio.Task] = set()


def title_generation_start(reply: Message) -> None:
    """After ``reply`` is complete: if it is its conversation's first complete reply,
    name the conversation in the background."""
    if not settings.WEBCHAT_MODEL_TITLES:
        return
    task = asyncio.get_running_loop().create_task(title_after_reply(reply))
    _running.add(task)
    task.add_done_callback(_running.discard)


async def title_after_reply(reply: Message) -> None:
    """Name the conversation if ``reply`` is its first complete reply."""
    earlier_replies = Message.objects.filter(
        conversation_id=reply.conversation_id,
        role=Message.Role.ASSISTANT,
        status=Message.Status.COMPLETE,
    ).exclude(pk=reply.pk)
    try:
        if not await earlier_replies.aexists():
            await title_generate(reply.conversation_id)
    except Exception:
        logger.exception("Naming conversation %s failed", reply.conversation_id)


async def title_generate(conversation_id: int) -> None:
    """Store a title written by the model, unless the conversation's title is no longer
    the first words of its first message. On any failure the title stays as it is."""
    first_message = await (
        Message.objects.filter(
            conversation_id=conversation_id,
            conversation__title_source=Conversation.TitleSource.FIRST_WORDS,
            role=Message.Role.USER,
        )
        .order_by("pk")
        .values_list("content", "conversation__model")
        .afirst()
    )
    if first_message is None:
        return
    content, model = first_message
    if not content.strip():
        # Images only: the first reply says what they are.
        first_reply = await (
            Message.objects.filter(
                conversation_id=conversation_id,
                role=Message.Role.ASSISTANT,
                status=Message.Status.COMPLETE,
            )
            .order_by("pk")
            .values_list("content", flat=True)
            .afirst()
        )
        content = markdown_plain_text(first_reply or "")
    text = " ".join(content.split())[:PROMPT_MAX_CHARS]
    if not text:
        return
    request = ChatRequest(
        model=model,
        messages=[{"role": "system", "content": INSTRUCTION}, {"role": "user", "content": text}],
    )
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS):
            completion = await get_client().complete_chat(request)
    except (UpstreamError, TimeoutError) as error:
        logger.warning("Conversation %s keeps its first words as title: %s", conversation_id, error)
        return
    title = title_clean(completion.content)
    if title is None:
        logger.warning("Conversation %s keeps its first words: no title came back", conversation_id)
        return
    # The user may have renamed it while the model was writing.
    stored = await Conversation.objects.filter(
        pk=conversation_id, title_source=Conversation.TitleSource.FIRST_WORDS
    ).aupdate(title=title, title_source=Conversation.TitleSource.MODEL)
    if stored:
        await title_publish(conversation_id, title)


def title_clean(text: str) -> str | None:
    """A model's answer made a title: its first line, without quotes, labels or Markdown,
    at most TITLE_MAX_CHARS long; None when nothing is left."""
    lines = [line for line in markdown_plain_text(text).splitlines() if line.strip()]
    if not lines:
        return None
    title = " ".join(lines[0].split())
    # Control and invisible formatting characters, once whitespace is a plain space.
    title = "".join(char for char in title if unicodedata.category(char)[0] != "C")
    title = _LABEL.sub("", title.strip(_WRAPPING)).strip(_WRAPPING)
    title = " ".join(title.translate(_DOUBLE_QUOTES).split()).rstrip(".。:;,")
    if len(title) > TITLE_MAX_CHARS:
        cut = title[: TITLE_MAX_CHARS - 1]
        title = (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip(".。:;, ") + "…"
    return title or None


async def title_publish(conversation_id: int, title: str) -> None:
    """Show ``title`` in every open tab of the conversation."""
    await frames.publish(conversation_id, frames.title_frame(conversation_id, title))
