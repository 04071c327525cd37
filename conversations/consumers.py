from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from conversations import frames
from conversations.generation import control_group_name
from conversations.models import Conversation, Message


@database_sync_to_async
def _is_owner(user, conversation_id: int) -> bool:
    return Conversation.objects.filter(pk=conversation_id, owner=user).exists()


@database_sync_to_async
def _latest_reply_frame(conversation_id: int) -> str:
    latest = (
        Message.objects.filter(conversation_id=conversation_id, role=Message.Role.ASSISTANT)
        .order_by("-pk")
        .first()
    )
    return frames.message_frame(latest) if latest else ""


class ConversationConsumer(AsyncWebsocketConsumer):
    """Relays a conversation's live frames to its owner's browser.

    Authentication and ownership are checked once, at connect; relaying a frame
    touches neither the database nor a worker thread.
    """

    group_name = ""

    async def connect(self) -> None:
        user = self.scope["user"]
        conversation_id = self.scope["url_route"]["kwargs"]["conversation_id"]
        if not user.is_authenticated or not await _is_owner(user, conversation_id):
            await self.close()
            return
        # Join before reading the state, so no frame can fall between the two.
        self.group_name = f"conversation_{conversation_id}"
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        state_frame = await _latest_reply_frame(conversation_id)
        await self.accept()
        if state_frame:
            await self.send(text_data=state_frame)
        # A running generation answers with a full render, newer than the database.
        await self.channel_layer.group_send(
            control_group_name(conversation_id), {"type": "generation.sync"}
        )

    async def disconnect(self, code: int) -> None:
        if self.group_name:
            await self.channel_layer.group_discard(self.group_name, self.channel_name)

    async def chat_frame(self, event: dict) -> None:
        await self.send(text_data=event["html"])
