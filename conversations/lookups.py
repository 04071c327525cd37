"""The signed-in user's own conversations, as the views find them."""

from dataclasses import dataclass, field
from datetime import date, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.http import Http404, HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy

from conversations.models import Conversation

SIDEBAR_LIMIT = 100
# The sidebar's sections, in order; the first two are always there, for entries to move to.
SIDEBAR_SECTIONS = (
    ("pinned", gettext_lazy("Pinned")),
    ("today", gettext_lazy("Today")),
    ("yesterday", gettext_lazy("Yesterday")),
    ("week", gettext_lazy("Previous 7 days")),
    ("older", gettext_lazy("Older")),
)
ALWAYS_SHOWN = {"pinned", "today"}
# Set while the user hides conversations held through the API from the sidebar.
API_HIDDEN_COOKIE = "hide_api_conversations"


@dataclass
class SidebarSection:
    key: str
    label: str
    conversations: list[Conversation] = field(default_factory=list)


def api_conversations_hidden(request: HttpRequest) -> bool:
    return request.COOKIES.get(API_HIDDEN_COOKIE) == "1"


def sidebar_conversations(
    user: AbstractBaseUser, *, hide_api: bool = False
) -> QuerySet[Conversation]:
    """The sidebar's list: the user's most recent conversations, pinned ones first, without
    those held through the API if ``hide_api``."""
    recent = Conversation.objects.filter(owner=user).only(
        "pk", "title", "updated_at", "pinned", "source"
    )
    if hide_api:
        recent = recent.exclude(source=Conversation.Source.API)
    return recent[:SIDEBAR_LIMIT]


def sidebar_sections(conversations: list[Conversation]) -> list[SidebarSection]:
    """The sidebar's conversations in sections: pinned, then by the day of their latest
    activity in the active time zone (the browser's, see accounts/time_zone.py)."""
    sections = {key: SidebarSection(key, label) for key, label in SIDEBAR_SECTIONS}
    today = timezone.localdate()
    for conversation in conversations:
        key = "pinned" if conversation.pinned else _day_section(conversation, today)
        sections[key].conversations.append(conversation)
    return [
        section
        for section in sections.values()
        if section.conversations or section.key in ALWAYS_SHOWN
    ]


def _day_section(conversation: Conversation, today: date) -> str:
    day = timezone.localdate(conversation.updated_at)
    if day >= today:
        return "today"
    if day == today - timedelta(days=1):
        return "yesterday"
    return "week" if day > today - timedelta(days=8) else "older"


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
