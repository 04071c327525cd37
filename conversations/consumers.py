import asyncio
import json
import logging

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.db import DatabaseError
from django.utils import translation

from accounts import socket_sessions
from accounts.deactivation import user_group_name
from accounts.languages import language_of_scope
from conversations import frames, reply_runners, services, socket_limits
from conversations.models import Conversation, Message
from webchat import metrics
from webchat.outages import layer_call

logger = logging.getLogger(__name__)

# A page asks for the whole live state at most this often (it missed a frame).
SYNC_REQUEST_INTERVAL = 1.0
# The close code of a socket refused because its user has as many open as allowed
# (WEBCHAT_MAX_SOCKETS_PER_USER); the page does not reconnect after it.
TOO_MANY_SOCKETS = 4429


@database_sync_to_async
def _owned_conversation(user, conversation_id: int) -> Conversation | None:
    return Conversation.objects.filter(pk=conversation_id, owner=user).first()


@database_sync_to_async
def _stored_state(conversation: Conversation) -> tuple[list[str], Message | None]:
    return frames.page_state_frames(conversation.pk)


_socket_session = database_sync_to_async(socket_sessions.socket_session)
_auth_hash_matches = database_sync_to_async(socket_sessions.auth_hash_matches)


@database_sync_to_async
def _active_reply(conversation: Conversation) -> Message | None:
    return services.active_reply(conversation)


class ConversationConsumer(AsyncWebsocketConsumer):
    """Relays a conversation's live frames to its owner's browser.

    Authentication and ownership are checked once, at connect; relaying a frame touches
    neither the database nor a worker thread. At connect the page is sent the stored state,
    then, if a reply is being written, the process running it sends the live state.
    """

    group_name = ""
    user_group_name = ""
    conversation: Conversation | None = None
    runner: reply_runners.Runner | None = None
    # Counted against the user's sockets (socket_limits.py).
    admitted = False
    session: socket_sessions.SocketSession | None = None
    session_watch: asyncio.Task | None = None
    synced_at = float("-inf")

    async def connect(self) -> None:
        user = self.scope["user"]
        conversation_id = self.scope["url_route"]["kwargs"]["conversation_id"]
        conversation = None
        if user.is_authenticated:
            conversation = await _owned_conversation(user, conversation_id)
        if conversation is None:
            await self.close()
            return
        # The socket closes when its session ends (accounts/socket_sessions.py): signing
        # out, a password change and deactivation tell it through the user's group, joined
        # before the session is read so that none of them can fall between the two.
        # While Redis is down the socket is refused; the page connects again by itself.
        self.user_group_name = user_group_name(user.pk)
        if not await layer_call(
            self.channel_layer.group_add(self.user_group_name, self.channel_name)
        ):
            await self.close()
            return
        self.session = await _socket_session(self.scope["session"])
        if self.session is None:
            await self.close()
            return
        self.conversation = conversation
        # Frames rendered here speak the page's language.
        translation.activate(language_of_scope(self.scope))
        if not await layer_call(self._join(conversation)):
            await self.close()
            return
        # While the page is open, this process's sweep keeps it true if a reply's process dies.
        if not await socket_limits.socket_admit(self.runner, user.pk):
            # Accepted only to be closed with a code that says why.
            await self.accept()
            await self.close(code=TOO_MANY_SOCKETS, reason="Too many open pages")
            return
        self.admitted = True
        metrics.socket_opened()
        state, active = await _stored_state(conversation)
        await self.accept()
        self.session_watch = asyncio.create_task(self._close_when_session_expires())
        for html in state:
            await self.send(text_data=html)
        metrics.frames_sent(len(state))
        if active is not None:
            await reply_runners.reply_sync(active, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """A page that missed a frame asks for the live state again."""
        try:
            request = json.loads(text_data or "")
        except ValueError:
            return
        if not isinstance(request, dict) or request.get("sync") is not True:
            return
        now = asyncio.get_running_loop().time()
        if now - self.synced_at < SYNC_REQUEST_INTERVAL:
            return
        self.synced_at = now
        assert self.conversation is not None
        if (active := await _active_reply(self.conversation)) is not None:
            await reply_runners.reply_sync(active, self.channel_name)

    async def dispatch(self, message: dict) -> None:
        # Channels closes stale database connections before every handler, in a worker
        # thread: a thread hop for every relayed frame. The database is used here only
        # through database_sync_to_async, which does that cleanup itself.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def _join(self, conversation: Conversation) -> None:
        """Join the conversation's group before the state is read, so no frame can fall
        between the two; and this process's runner, which listens on the layer from its
        first use on."""
        self.group_name = conversation.group_name
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        self.runner = await reply_runners.this_runner()

    async def disconnect(self, code: int) -> None:
        if self.session_watch is not None:
            self.session_watch.cancel()
        if self.admitted:
            await socket_limits.socket_release(self.runner, self.scope["user"].pk)
            metrics.socket_closed()
        # Leaving while Redis is down: its subscriptions end with the connection anyway.
        if self.group_name:
            await layer_call(self.channel_layer.group_discard(self.group_name, self.channel_name))
        if self.user_group_name:
            await layer_call(
                self.channel_layer.group_discard(self.user_group_name, self.channel_name)
            )

    async def _close_when_session_expires(self) -> None:
        assert self.session is not None
        try:
            await socket_sessions.session_end(self.session)
        except DatabaseError:
            # Unable to tell, it does not stay open: the page reconnects (1011), and
            # connecting checks the session.
            logger.exception("Could not check whether a socket's session has expired.")
            await self.close(code=1011)
            return
        await self.close(code=socket_sessions.SESSION_ENDED)

    # A socket refused at connect (no session) is in the user's group until it is gone.

    async def session_ended(self, event: dict) -> None:
        if self.session is not None and event["session"] == self.session.digest:
            await self.close(code=socket_sessions.SESSION_ENDED)

    async def user_password_saved(self, event: dict) -> None:
        if self.session is None:
            return
        if not await _auth_hash_matches(self.scope["user"].pk, self.session.auth_hash):
            await self.close(code=socket_sessions.SESSION_ENDED)

    async def user_deactivated(self, event: dict) -> None:
        await self.close(code=socket_sessions.SESSION_ENDED)

    async def chat_frame(self, event: dict) -> None:
        await self.send(text_data=event["html"])
        metrics.frames_sent()
