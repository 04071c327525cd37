import asyncio
import math
from datetime import timedelta

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db.models.functions import Coalesce
from django.utils import timezone, translation

from accounts.deactivation import user_group_name
from accounts.languages import language_of_scope
from conversations import frames, services, titles
from conversations.generation import SYNC_REQUEST, control_group_name
from conversations.models import Conversation, Message

# Looked at again this long after a reply's heartbeat would have gone stale.
STALE_CHECK_MARGIN = 0.1
# A socket looks the active reply up after this long without a frame from its generation.
LOOK_AFTER_QUIET_SECONDS = 5.0


@database_sync_to_async
def _owned_conversation(user, conversation_id: int) -> Conversation | None:
    return Conversation.objects.filter(pk=conversation_id, owner=user).first()


@database_sync_to_async
def _state_frame(conversation: Conversation) -> tuple[str, int]:
    """Mark a dead generation's reply interrupted, then render the latest exchange, with
    the conversation's title: the model may have named it since the page was rendered.

    Returns the frame and how many replies were marked.
    """
    interrupted = services.stale_replies_interrupt(conversation=conversation)
    exchange = services.latest_exchange(conversation_id=conversation.pk)
    state = frames.state_frame(exchange)
    if state:
        title = Conversation.objects.values_list("title", flat=True).get(pk=conversation.pk)
        if title:
            state = titles.title_frame(conversation.pk, title) + state
    return state, interrupted


@database_sync_to_async
def _seconds_until_stale(conversation_id: int) -> float | None:
    """How long until the active reply's heartbeat is stale; None without an active reply."""
    last_sign_of_life = (
        Message.objects.filter(conversation_id=conversation_id, status__in=Message.ACTIVE_STATUSES)
        .values_list(Coalesce("heartbeat_at", "created_at"), flat=True)
        .first()
    )
    if last_sign_of_life is None:
        return None
    stale_at = last_sign_of_life + timedelta(seconds=settings.WEBCHAT_STALE_REPLY_SECONDS)
    return max((stale_at - timezone.now()).total_seconds(), 0.0) + STALE_CHECK_MARGIN


class ConversationConsumer(AsyncWebsocketConsumer):
    """Relays a conversation's live frames to its owner's browser.

    Authentication and ownership are checked once, at connect; relaying a frame
    touches neither the database nor a worker thread. Beside it, while a reply is
    active, a watch looks for signs that its generation died.
    """

    group_name = ""
    user_group_name = ""
    conversation: Conversation | None = None
    stale_watch: asyncio.Task | None = None
    # When the last frame of a running generation arrived (event-loop time).
    generation_seen_at = -math.inf

    async def connect(self) -> None:
        user = self.scope["user"]
        conversation_id = self.scope["url_route"]["kwargs"]["conversation_id"]
        conversation = None
        if user.is_authenticated:
            conversation = await _owned_conversation(user, conversation_id)
        if conversation is None:
            await self.close()
            return
        self.conversation = conversation
        # Frames rendered here (the state, a dead reply) speak the page's language.
        translation.activate(language_of_scope(self.scope))
        # Deactivating the user closes this socket through their group.
        self.user_group_name = user_group_name(user.pk)
        await self.channel_layer.group_add(self.user_group_name, self.channel_name)
        # Join before reading the state, so no frame can fall between the two.
        self.group_name = conversation.group_name
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        state_frame, interrupted = await _state_frame(conversation)
        await self.accept()
        if interrupted:
            # Other tabs still show it streaming.
            await frames.publish(conversation.pk, state_frame)
        elif state_frame:
            await self.send(text_data=state_frame)
        # A running generation answers with a full render, newer than the database.
        await self.channel_layer.group_send(
            control_group_name(conversation_id), {"type": SYNC_REQUEST}
        )
        self._watch_for_a_dead_generation()

    async def dispatch(self, message: dict) -> None:
        # Channels closes stale database connections before every handler, in a worker
        # thread: a thread hop for every relayed frame. The database is used here only
        # through database_sync_to_async, which does that cleanup itself.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def disconnect(self, code: int) -> None:
        if self.stale_watch is not None:
            self.stale_watch.cancel()
        if self.group_name:
            await self.channel_layer.group_discard(self.group_name, self.channel_name)
        if self.user_group_name:
            await self.channel_layer.group_discard(self.user_group_name, self.channel_name)

    async def user_deactivated(self, event: dict) -> None:
        await self.close()

    async def chat_frame(self, event: dict) -> None:
        await self.send(text_data=event["html"])
        generation = event.get("generation")
        if generation == frames.GENERATION_RUNNING:
            self.generation_seen_at = asyncio.get_running_loop().time()
            self._watch_for_a_dead_generation()
        elif generation == frames.GENERATION_ENDED and self.stale_watch is not None:
            self.stale_watch.cancel()

    def _watch_for_a_dead_generation(self) -> None:
        """Make sure a watch runs while a reply is active (it ends when none is)."""
        if self.stale_watch is None or self.stale_watch.done():
            self.stale_watch = asyncio.create_task(self._mark_a_dead_generation())

    async def _mark_a_dead_generation(self) -> None:
        """If the active reply's generation dies (its process was killed), say so; if it
        ended but its last frame was lost on the way, show the reply as stored.

        Without this, a page that reconnected to a restarted server would show the
        reply as streaming until reloaded. Frames from the generation show it is alive:
        the reply is looked up only after LOOK_AFTER_QUIET_SECONDS without one, so a reply
        that streams to its end costs no query here.
        """
        assert self.conversation is not None
        loop = asyncio.get_running_loop()
        look_after = min(LOOK_AFTER_QUIET_SECONDS, settings.WEBCHAT_STALE_REPLY_SECONDS)
        while True:
            quiet = loop.time() - self.generation_seen_at
            if quiet < look_after:
                await asyncio.sleep(look_after - quiet)
                continue
            wait = await _seconds_until_stale(self.conversation.pk)
            if wait is None:
                if self.generation_seen_at > -math.inf:
                    state_frame, _interrupted = await _state_frame(self.conversation)
                    await self.send(text_data=state_frame)
                return
            await asyncio.sleep(min(wait, look_after))
            if wait <= look_after:
                state_frame, interrupted = await _state_frame(self.conversation)
                if interrupted:
                    await frames.publish(self.conversation.pk, state_frame)
                    return
