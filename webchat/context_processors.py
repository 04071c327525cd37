from django.conf import settings
from django.http import HttpRequest

from conversations.lookups import api_conversations_hidden


def webchat(request: HttpRequest) -> dict:
    return {
        "demo_mode": settings.WEBCHAT_DEMO_MODE,
        "self_signup": settings.WEBCHAT_SELF_SIGNUP,
        "staff_can_read_conversations": settings.WEBCHAT_STAFF_CAN_READ_CONVERSATIONS,
        "api_conversations_hidden": api_conversations_hidden(request),
    }
