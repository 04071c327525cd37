"""Sending a message through the views and watching its reply through a socket."""

import html
import re
from dataclasses import dataclass, field

from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.backends.base import SessionBase
from django.test import Client
from django.urls import reverse

from conversations.generation import running_reply
from conversations.models import Message
from conversations.routing import websocket_urlpatterns

HTMX = {"HX-Request": "true"}
FINAL_STATUSES = ("complete", "error", "interrupted", "stopped")
STREAMING_STATUSES = ("pending", "streaming")
# How Page.log names the progress frames it applied, however the text is split in blocks.
PROGRESS = ("blocks", "open block", "code lines")


class _SignedInCommunicator(WebsocketCommunicator):
    """A socket as Channels' AuthMiddlewareStack hands it to the consumer: its user, and
    the session it was opened with (a new one of the user's at connect, unless given)."""

    async def connect(self, *args, **kwargs):
        if self.scope["user"].is_authenticated and "session" not in self.scope:
            self.scope["session"] = await sync_to_async(signed_in_session)(self.scope["user"])
        return await super().connect(*args, **kwargs)


def signed_in_session(user) -> SessionBase:
    """A new session of the user, signed in as Django's login() does."""
    client = Client()
    client.force_login(user)
    return client.session


def communicator_for(
    conversation_id: int,
    user,
    *,
    session: SessionBase | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> WebsocketCommunicator:
    communicator = _SignedInCommunicator(
        URLRouter(websocket_urlpatterns), f"/ws/conversations/{conversation_id}/", headers
    )
    communicator.scope["user"] = user
    if session is not None:
        communicator.scope["session"] = session
    return communicator


async def send_message(client, conversation, text: str = "Hello"):
    url = reverse("conversations:message-create", args=[conversation.pk])
    return await client.post(url, {"text": text}, headers=HTMX)


async def latest_reply(conversation) -> Message:
    return await Message.objects.filter(conversation=conversation, role="assistant").alast()


async def reply_followed(client, conversation, owner, text: str = "Hello"):
    """Send ``text`` and follow its reply in a socket to its end: the reply as stored, and
    the frames the socket was sent."""
    communicator = communicator_for(conversation.pk, owner)
    assert (await communicator.connect())[0]
    await send_message(client, conversation, text)
    reply = await latest_reply(conversation)
    frames = await frames_until_final(communicator, reply)
    await communicator.disconnect()
    return await finished(reply), frames


async def finished(reply: Message) -> Message:
    """Wait for the reply's generation to end, then read it as stored."""
    run = running_reply(reply.pk)
    if run is not None:
        await run.task
    await reply.arefresh_from_db()
    return reply


def is_final_render(frame: str, reply: Message) -> bool:
    """Whether ``frame`` is the reply's final state, whole (a final state too long for one
    frame starts with the reply without its text, ``data-sync``, and its blocks follow)."""
    if not frame.startswith(f'<article id="{reply.dom_id}"'):
        return False
    opening = frame[: frame.index(">")]
    statuses = re.findall(r'data-status="(\w+)"', opening)
    return statuses[0] in FINAL_STATUSES and " data-sync" not in opening


async def frames_until_render(communicator: WebsocketCommunicator, reply: Message) -> list[str]:
    """Frames up to the next one that is the whole reply (the state sent on connect ends
    with one, after the exchange)."""
    frames = [await communicator.receive_from(timeout=10)]
    while not frames[-1].startswith(f'<article id="{reply.dom_id}"'):
        frames.append(await communicator.receive_from(timeout=10))
    return frames


async def frames_until_progress(communicator: WebsocketCommunicator, reply: Message) -> list[str]:
    """Frames up to the first that shows the reply being written (its open text or code);
    hold the fake upstream mid-reply (``hold_after``) so that such a frame comes."""
    progress = re.compile(rf'id="{reply.dom_id}-(?:tail|code)"')
    frames = [await communicator.receive_from(timeout=10)]
    while not progress.search(frames[-1]):
        frames.append(await communicator.receive_from(timeout=10))
    return frames


async def frames_until_final(communicator: WebsocketCommunicator, reply: Message) -> list[str]:
    frames = []
    while not frames or not is_final_render(frames[-1], reply):
        frames.append(await communicator.receive_from(timeout=10))
    return frames


# --- Reading frames ---------------------------------------------------------------------

_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)((?:\s[^>]*)?)>")
_ATTRIBUTE = re.compile(r'([\w:-]+)(?:="([^"]*)")?')
_VOID = {"area", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    inner: str
    outer: str


def _attributes(opening: str) -> dict[str, str]:
    return {name: html.unescape(value or "") for name, value in _ATTRIBUTE.findall(opening)}


def _element_at(markup: str, start: int) -> Element:
    """The element whose opening tag starts at ``start`` (text is escaped, so every ``<``
    in ``markup`` opens or closes a tag)."""
    opening = _TAG.match(markup, start)
    assert opening, markup[start : start + 80]
    assert not opening.group(1), markup[start : start + 80]
    tag = opening.group(2).lower()
    if tag in _VOID or opening.group(3).endswith("/"):
        return Element(tag, _attributes(opening.group(3)), "", opening.group(0))
    depth = 1
    for match in _TAG.finditer(markup, opening.end()):
        if match.group(2).lower() != tag:
            continue
        depth += -1 if match.group(1) else 1
        if depth == 0:
            return Element(
                tag,
                _attributes(opening.group(3)),
                markup[opening.end() : match.start()],
                markup[start : match.end()],
            )
    raise AssertionError(f"<{tag}> is never closed in {markup[start : start + 200]!r}")


def top_level_elements(frame: str) -> list[Element]:
    """The elements a frame is made of, in order, as htmx swaps them."""
    elements = []
    position = 0
    while (start := frame.find("<", position)) != -1:
        element = _element_at(frame, start)
        elements.append(element)
        position = start + len(element.outer)
    return elements


def element_by_id(markup: str, element_id: str) -> Element | None:
    start = _start_of(markup, element_id)
    return None if start is None else _element_at(markup, start)


def _start_of(markup: str, element_id: str) -> int | None:
    match = re.search(rf'<[a-zA-Z][a-zA-Z0-9]*(?:\s[^>]*?)?\sid="{re.escape(element_id)}"', markup)
    return match.start() if match else None


def _element_by_class(markup: str, name: str) -> Element | None:
    match = re.search(rf'<[a-zA-Z][a-zA-Z0-9]*(?:\s[^>]*?)?\sclass="{re.escape(name)}"', markup)
    return _element_at(markup, match.start()) if match else None


def visible_text(markup: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


@dataclass
class Page:
    """One reply as a browser tab shows it, applying frames as static/webchat/chat.js does.

    Finished Markdown blocks append only where the page's blocks end; the open block
    replaces the page's only after those blocks and if not older; lines for an open code
    block append only right after the text the page shows; thinking text appends
    only where the page's ends; the whole reply replaces the page's unless it is an older
    one still streaming, and always when it is the live state sent on request
    (``data-sync``). A frame that would leave a gap is dropped and the page asks for the
    live state (``sync_requested``). The page shows the reply once it is added (an
    exchange frame) or swapped in whole; before that, frames for it find nothing."""

    dom_id: str
    shown: bool = False
    status: str = ""
    end: int = 0
    blocks: int = 0
    reasoning_end: int = 0
    blocks_html: str = ""
    open_html: str = ""
    reasoning: str = ""
    label: str = ""
    article: str = ""
    sync_requested: int = 0
    log: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """What the reply shows: its finished blocks, then its open block."""
        return visible_text(self.blocks_html + self.open_html)

    @property
    def words(self) -> list[str]:
        return self.text.split()

    def load(self, page: str) -> None:
        """Show the reply as a rendered page (the conversation's view) has it."""
        article = element_by_id(page, self.dom_id)
        assert article is not None, f"the page has no {self.dom_id}"
        self._show(article)
        self.log.append(f"loaded at {self.end}")

    def apply(self, frame: str) -> None:
        for element in top_level_elements(frame):
            oob = element.attrs.get("hx-swap-oob", "")
            element_id = element.attrs.get("id", "")
            if oob == "beforeend:#messages":
                self._add(element)
            elif element_id == self.dom_id:
                self._replace(element)
            elif not self.shown:
                continue
            elif element_id == f"{self.dom_id}-blocks":
                self._append_blocks(element)
            elif element_id == f"{self.dom_id}-tail":
                self._replace_open_block(element)
            elif element_id == f"{self.dom_id}-code":
                self._append_code(element)
            elif element_id == f"{self.dom_id}-reasoning-tail":
                self._append_reasoning(element)
            elif element_id == f"{self.dom_id}-state":
                self.label = visible_text(element.inner).strip()

    def _add(self, exchange: Element) -> None:
        article = element_by_id(exchange.inner, self.dom_id)
        if article is None:
            return
        if self.shown:
            self.log.append("kept the reply it shows")
        else:
            self._show(article)
            self.log.append(f"added at {self.end}")

    def _replace(self, article: Element) -> None:
        incoming_end = int(article.attrs["data-end"])
        incoming_reasoning_end = int(article.attrs["data-reasoning-end"])
        older = incoming_end < self.end or incoming_reasoning_end < self.reasoning_end
        streaming = article.attrs["data-status"] in STREAMING_STATUSES
        if "data-sync" not in article.attrs and streaming and older and self.shown:
            self.log.append(f"skipped older render to {incoming_end}")
            return
        self._show(article)
        self.log.append(f"{'sync' if 'data-sync' in article.attrs else 'render'} to {self.end}")

    def _show(self, article: Element) -> None:
        self.shown = True
        self.article = article.outer
        self.status = article.attrs["data-status"]
        self.end = int(article.attrs["data-end"])
        self.reasoning_end = int(article.attrs["data-reasoning-end"])
        self.blocks = int(article.attrs.get("data-blocks", 0))
        blocks = element_by_id(article.inner, f"{self.dom_id}-blocks")
        open_block = element_by_id(article.inner, f"{self.dom_id}-tail")
        self.blocks_html = blocks.inner if blocks else ""
        self.open_html = open_block.inner if open_block else ""
        thinking = _element_by_class(article.inner, "thinking-body")
        self.reasoning = visible_text(thinking.inner) if thinking else ""
        label = element_by_id(article.inner, f"{self.dom_id}-state")
        self.label = visible_text(label.inner).strip() if label else ""

    def _append_blocks(self, blocks: Element) -> None:
        start, end = int(blocks.attrs["data-start"]), int(blocks.attrs["data-end"])
        if start != self.blocks:
            self.log.append(f"skipped blocks {start}-{end}")
            if start > self.blocks:
                self.sync_requested += 1
            return
        self.blocks_html += blocks.inner
        self.blocks = end
        self.log.append(f"blocks {start}-{end}")

    def _replace_open_block(self, open_block: Element) -> None:
        blocks, end = int(open_block.attrs["data-blocks"]), int(open_block.attrs["data-end"])
        if blocks != self.blocks or end < self.end:
            self.log.append(f"skipped open block to {end}")
            return
        self.open_html = open_block.inner
        self.end = end
        self.log.append(f"open block to {end}")

    def _append_code(self, lines: Element) -> None:
        """Lines for the open block's code element, only right after the text it shows."""
        blocks = int(lines.attrs["data-blocks"])
        start, end = int(lines.attrs["data-start"]), int(lines.attrs["data-end"])
        code_start = _start_of(self.open_html, f"{self.dom_id}-code")
        if blocks != self.blocks or start != self.end or code_start is None:
            self.log.append(f"skipped code lines {start}-{end}")
            if start > self.end:
                self.sync_requested += 1
            return
        code_end = code_start + len(_element_at(self.open_html, code_start).outer)
        closing = code_end - len("</code>")
        self.open_html = self.open_html[:closing] + lines.inner + self.open_html[closing:]
        self.end = end
        self.log.append(f"code lines {start}-{end}")

    def _append_reasoning(self, reasoning: Element) -> None:
        start, end = int(reasoning.attrs["data-start"]), int(reasoning.attrs["data-end"])
        if start != self.reasoning_end:
            self.log.append(f"skipped thinking {start}-{end}")
            if start > self.reasoning_end:
                self.sync_requested += 1
            return
        self.reasoning += visible_text(reasoning.inner)
        self.reasoning_end = end
        self.log.append(f"thinking {start}-{end}")


async def first_text(communicator: WebsocketCommunicator, reply: Message) -> Page:
    """The page of a tab following ``reply``, once it shows some of its text."""
    page = Page(reply.dom_id)
    while not page.words:
        page.apply(await communicator.receive_from(timeout=10))
    return page


async def streaming_reply(client, conversation, owner, fake_upstream):
    """A socket following a long reply that has begun to stream, and the reply."""
    fake_upstream.reset(token_count=400, token_interval=0.02)
    communicator = communicator_for(conversation.pk, owner)
    await communicator.connect()
    await send_message(client, conversation)
    reply = await latest_reply(conversation)
    await first_text(communicator, reply)
    return communicator, reply
