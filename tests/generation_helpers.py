"""Sending a message through the views and watching its reply through a socket."""

import re
from dataclasses import dataclass, field

from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.urls import reverse

from conversations.generation import running_generation
from conversations.models import Message
from conversations.routing import websocket_urlpatterns

HTMX = {"HX-Request": "true"}
FINAL_STATUSES = ("complete", "error", "interrupted", "stopped")


def communicator_for(conversation_id: int, user) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(
        URLRouter(websocket_urlpatterns), f"/ws/conversations/{conversation_id}/"
    )
    communicator.scope["user"] = user
    return communicator


async def send_message(client, conversation, text: str = "Hello"):
    url = reverse("conversations:message-create", args=[conversation.pk])
    return await client.post(url, {"text": text}, headers=HTMX)


async def latest_reply(conversation) -> Message:
    return await Message.objects.filter(conversation=conversation, role="assistant").alast()


async def finished(reply: Message) -> Message:
    """Wait for the reply's generation to end, then read it as stored."""
    task = running_generation(reply.pk)
    if task is not None:
        await task
    await reply.arefresh_from_db()
    return reply


def is_final_render(frame: str, reply: Message) -> bool:
    if not frame.startswith(f'<article id="{reply.dom_id}"'):
        return False
    return any(f'data-status="{status}"' in frame for status in FINAL_STATUSES)


async def frames_until_final(communicator: WebsocketCommunicator, reply: Message) -> list[str]:
    frames = []
    while not frames or not is_final_render(frames[-1], reply):
        frames.append(await communicator.receive_from(timeout=10))
    return frames


@dataclass
class Page:
    """One reply as a browser tab shows it, applying frames as static/webchat/chat.js does:
    a delta only where the page's text ends, a render unless it is an older streaming one."""

    dom_id: str
    end: int = 0
    status: str = ""
    rendered: str = ""
    tail: str = ""
    log: list[str] = field(default_factory=list)

    @property
    def words(self) -> list[str]:
        return (self.rendered + self.tail).split()

    def apply(self, frame: str) -> None:
        render = re.search(
            rf'<article id="{self.dom_id}"[^>]*data-status="(\w+)" data-end="(\d+)"'
            r'[^>]*hx-swap-oob="outerHTML">.*?<div class="markdown">(.*?)<span id="',
            frame,
            re.S,
        )
        if render:
            status, end, html = render.groups()
            if status in ("pending", "streaming") and int(end) < self.end:
                self.log.append(f"skipped older render to {end}")
            else:
                self.status, self.end, self.tail = status, int(end), ""
                self.rendered = re.sub(r"<[^>]+>", " ", html)
                self.log.append(f"render to {end}")
        for start, end, text in re.findall(
            rf'<span id="{self.dom_id}-tail" hx-swap-oob="beforeend" '
            r'data-start="(\d+)" data-end="(\d+)">(.*?)</span>',
            frame,
            re.S,
        ):
            if int(start) == self.end:
                self.tail += text
                self.end = int(end)
                self.log.append(f"delta {start}-{end}")
            else:
                self.log.append(f"skipped delta {start}-{end}")
