"""A socket lives no longer than the session that opened it.

It closes when that session signs out, when the user's password changes (the session's auth
hash then no longer matches the user's, which Django checks on every request), when the
session expires, and when the user is deactivated (accounts/deactivation.py). Every socket
joins its user's Channels group, so these reach it from any server process.
"""

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import datetime

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.contrib.auth import HASH_SESSION_KEY, get_user_model
from django.contrib.sessions.backends.base import SessionBase
from django.contrib.sessions.models import Session
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from accounts.deactivation import user_group_name

# The close code that tells the page its session has ended: static/webchat/chat.js reloads
# it, which shows the sign-in page, or the page again where the browser's session is good.
SESSION_ENDED = 4401


def session_digest(session_key: str) -> str:
    """Names a session in events without sending its key, a credential, through Redis."""
    return hashlib.sha256(session_key.encode()).hexdigest()


@dataclass(frozen=True)
class SocketSession:
    key: str
    # The user's session auth hash when the session signed in (Django's HASH_SESSION_KEY).
    auth_hash: str
    expires_at: datetime

    @property
    def digest(self) -> str:
        return session_digest(self.key)


def socket_session(session: SessionBase) -> SocketSession | None:
    """The session a socket opens with, or None if it has already ended."""
    if session.session_key is None:
        return None
    expires_at = session_expiry(session.session_key)
    if expires_at is None:
        return None
    return SocketSession(session.session_key, session.get(HASH_SESSION_KEY, ""), expires_at)


def session_expiry(session_key: str) -> datetime | None:
    """When the session ends, or None once it has ended or was deleted. The database row
    holds the expiry (SESSION_ENGINE is cached_db); the cached copy of the data does not."""
    return (
        Session.objects.filter(session_key=session_key, expire_date__gt=timezone.now())
        .values_list("expire_date", flat=True)
        .first()
    )


async def sleep_until(moment: datetime) -> None:
    await asyncio.sleep(max(0.0, (moment - timezone.now()).total_seconds()))


async def session_end(session: SocketSession) -> None:
    """Returns once the session has ended. It is looked at again when it was to expire:
    a session saved meanwhile (a sign-in, a changed preference) expires later."""
    expires_at: datetime | None = session.expires_at
    while expires_at is not None:
        await sleep_until(expires_at)
        expires_at = await database_sync_to_async(session_expiry)(session.key)


def auth_hash_matches(user_id: int, auth_hash: str) -> bool:
    """Whether a session signed in with this auth hash is still valid for the user, as
    Django's and Channels' own checks decide: false once the password has changed."""
    user = get_user_model().objects.filter(pk=user_id).first()
    return user is not None and constant_time_compare(auth_hash, user.get_session_auth_hash())


def session_sockets_close(*, user_id: int, session_key: str) -> None:
    """Close the sockets the session opened, in every process (on signing out)."""
    event = {"type": "session.ended", "session": session_digest(session_key)}
    async_to_sync(get_channel_layer().group_send)(user_group_name(user_id), event)


def user_sockets_check(*, user_id: int) -> None:
    """Make each of the user's sockets close if its session's auth hash no longer matches
    (after a save that may have changed the password)."""
    event = {"type": "user.password.saved"}
    async_to_sync(get_channel_layer().group_send)(user_group_name(user_id), event)
