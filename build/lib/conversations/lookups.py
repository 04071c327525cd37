"""The signed-in user's own conversations, as the views find them."""

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.http import Http404

from conversations.models import Conversation

SIDEBAR_LIMIT = 100


def sidebar_conversations(user: AbstractBaseUser) -> QuerySet[Conversation]:
    """The sidebar's list: the user's most recent conversations, pinned ones first."""
    recent = Conversation.objects.filter(owner=user).only("pk", "title", "updated_at", "pinned")
    return recent[:SIDEBAR_LIMIT]


def conversation_for_user(user: AbstractBaseUser, conversation_id: int) -> Conversation:
    """The user's own conversation; anyone else's answers 404, revealing nothing."""
    try:
        conversation = Conversation.objects.get(pk=conversation_id, owner=user)
    except Conversation.DoesNotExist:
        raise Http404("No such conversation.") from None
    conversation.owner = user  # known already: reading it again would cost a query
    return conversation


async def aconversation_for_user(user: AbstractBaseUser, conversation_id: int) -> Conversation:
    """conversation_for_user for the async views of the chat path."""
    try:
        conversation = await Conversation.objects.aget(pk=conversation_id, owner=user)
    except Conversation.DoesNotExist:
        raise Http404("No such conversation.") from None
    conversation.owner = user
    return conversation
