"""Ending everything a deactivated user still has open: sessions and sockets."""

from importlib import import_module

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.models import Session
from django.utils import timezone

from webchat.outages import layer_call


def user_group_name(user_id: int) -> str:
    """The Channels group every open socket of the user belongs to."""
    return f"user_{user_id}"


def user_sessions_end(user_id: int) -> int:
    """Delete the user's sessions; returns how many. Sessions are not indexed by user, so
    each live one is decoded: fine for a team's few hundred."""
    session_store = import_module(settings.SESSION_ENGINE).SessionStore
    ended = 0
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        if session.get_decoded().get(SESSION_KEY) == str(user_id):
            # Through the session engine, which forgets its cached copy too.
            session_store().delete(session.session_key)
            ended += 1
    return ended


def user_sockets_close(user_id: int) -> None:
    """Close the user's open sockets (not while Redis is down: without a session, they
    cannot connect again once closed by anything else)."""
    event = {"type": "user.deactivated"}
    async_to_sync(layer_call)(get_channel_layer().group_send(user_group_name(user_id), event))


def user_disconnect(user_id: int) -> None:
    user_sessions_end(user_id)
    user_sockets_close(user_id)
