"""A socket lives no longer than its session: signing out, a password change and the
session's expiry close it, with the code that tells the page (accounts/socket_sessions.py)."""

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.contrib.sessions.models import Session
from django.db import DatabaseError
from django.test import Client, TestCase
from django.urls import reverse

from accounts import deactivation, signals, socket_sessions
from conversations import consumers, frames
from tests.conftest import PASSWORD
from tests.generation_helpers import communicator_for, signed_in_session

NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CLOSED = {"type": "websocket.close", "code": socket_sessions.SESSION_ENDED}

transactional = pytest.mark.django_db(transaction=True)


def _signed_in(username: str = "owner") -> Client:
    client = Client()
    assert client.login(username=username, password=PASSWORD)
    return client


async def _open(conversation, owner, client: Client | None = None):
    """The conversation's socket, opened with the client's session (a new one if none)."""
    communicator = communicator_for(
        conversation.pk, owner, session=client.session if client else None
    )
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def _still_open(communicator, conversation) -> bool:
    """Whether the socket still relays frames: one published now comes after every event
    sent to it before, each handled in turn."""
    await frames.publish(conversation.pk, "<p>still here</p>")
    return await communicator.receive_from(timeout=5) == "<p>still here</p>"


# --- Signing out ----------------------------------------------------------------------


@transactional
async def test_signing_out_closes_the_sockets_of_that_session_only(conversation, owner):
    leaving, staying = await sync_to_async(_signed_in)(), await sync_to_async(_signed_in)()
    leaving_socket = await _open(conversation, owner, leaving)
    other_tab = await _open(conversation, owner, leaving)
    staying_socket = await _open(conversation, owner, staying)

    response = await sync_to_async(leaving.post)(reverse("logout"))

    assert response.status_code == 302
    assert await leaving_socket.receive_output(timeout=5) == CLOSED
    assert await other_tab.receive_output(timeout=5) == CLOSED
    assert await _still_open(staying_socket, conversation)
    for communicator in (leaving_socket, other_tab, staying_socket):
        await communicator.disconnect()


# --- Password changes -----------------------------------------------------------------


def _change_password(client: Client) -> None:
    response = client.post(
        reverse("password_change"),
        {
            "old_password": PASSWORD,
            "new_password1": "a brand new passphrase",
            "new_password2": "a brand new passphrase",
        },
    )
    assert response.status_code == 302, response.content


@transactional
async def test_a_password_change_closes_the_sockets_of_every_session(conversation, owner):
    """Other sessions are signed out. The changing one is kept valid under a new key, which
    the browser's cookie now holds: its tabs close too, reload, and come back signed in."""
    changing, elsewhere = await sync_to_async(_signed_in)(), await sync_to_async(_signed_in)()
    changing_socket = await _open(conversation, owner, changing)
    elsewhere_socket = await _open(conversation, owner, elsewhere)

    await sync_to_async(_change_password)(changing)

    assert await changing_socket.receive_output(timeout=5) == CLOSED
    assert await elsewhere_socket.receive_output(timeout=5) == CLOSED
    assert (await sync_to_async(changing.get)("/")).status_code == 200
    assert (await sync_to_async(elsewhere.get)("/")).status_code == 302
    reopened = await _open(conversation, owner, changing)
    await reopened.disconnect()
    for communicator in (changing_socket, elsewhere_socket):
        await communicator.disconnect()


@transactional
async def test_an_admin_setting_the_password_closes_the_users_sockets(conversation, owner):
    socket = await _open(conversation, owner)
    admin = Client()
    await sync_to_async(admin.force_login)(
        await sync_to_async(owner.__class__.objects.create_superuser)("boss", password=PASSWORD)
    )
    response = await sync_to_async(admin.post)(
        reverse("admin:auth_user_password_change", args=[owner.pk]),
        {"password1": "set by the admin 1", "password2": "set by the admin 1"},
    )
    assert response.status_code == 302, response.content
    assert await socket.receive_output(timeout=5) == CLOSED
    await socket.disconnect()


@transactional
async def test_saving_the_user_with_the_same_password_keeps_the_sockets(
    conversation, owner, monkeypatch
):
    checks: list[bool] = []
    auth_hash_matches = consumers._auth_hash_matches

    async def recorded(*args):
        checks.append(matches := await auth_hash_matches(*args))
        return matches

    monkeypatch.setattr(consumers, "_auth_hash_matches", recorded)
    socket = await _open(conversation, owner)

    owner.first_name = "Renamed"
    await sync_to_async(owner.save)()

    assert await _still_open(socket, conversation)
    assert checks == [True]
    await socket.disconnect()


def test_only_a_save_that_may_change_the_password_makes_the_sockets_check(owner, monkeypatch):
    checked: list[int] = []
    monkeypatch.setattr(signals, "user_sockets_check", lambda *, user_id: checked.append(user_id))
    with TestCase.captureOnCommitCallbacks(execute=True):
        _signed_in()  # saves last_login only
        owner.save(update_fields=["first_name"])
    assert checked == []
    with TestCase.captureOnCommitCallbacks(execute=True):
        owner.save()
        owner.save(update_fields=["password"])
    assert checked == [owner.pk, owner.pk]


# --- Expiry -----------------------------------------------------------------------------


class _Alarm:
    """Stands in for socket_sessions.sleep_until: each sleep is queued with the moment it
    waits for, and lasts until the test ends it."""

    def __init__(self) -> None:
        self.sleeps: asyncio.Queue[tuple[datetime, asyncio.Event]] = asyncio.Queue()

    async def sleep_until(self, moment: datetime) -> None:
        woken = asyncio.Event()
        self.sleeps.put_nowait((moment, woken))
        await woken.wait()

    async def next_sleep(self) -> tuple[datetime, asyncio.Event]:
        return await asyncio.wait_for(self.sleeps.get(), 5)


@pytest.fixture
def alarm(monkeypatch) -> _Alarm:
    alarm = _Alarm()
    monkeypatch.setattr(socket_sessions, "sleep_until", alarm.sleep_until)
    return alarm


@pytest.fixture
def clock():
    with time_machine.travel(NOON, tick=False) as traveller:
        yield traveller


async def _expire_date(session) -> datetime:
    return (await Session.objects.aget(session_key=session.session_key)).expire_date


@transactional
async def test_a_socket_closes_when_its_session_expires(
    conversation, owner, alarm, clock, settings
):
    settings.SESSION_COOKIE_AGE = 3600
    session = await sync_to_async(signed_in_session)(owner)
    socket = communicator_for(conversation.pk, owner, session=session)
    assert (await socket.connect())[0]

    moment, woken = await alarm.next_sleep()
    assert moment == await _expire_date(session) == NOON + timedelta(hours=1)
    clock.move_to(moment)
    woken.set()

    assert await socket.receive_output(timeout=5) == CLOSED
    await socket.disconnect()


@transactional
async def test_a_session_saved_meanwhile_keeps_its_socket_until_its_new_expiry(
    conversation, owner, alarm, clock, settings
):
    settings.SESSION_COOKIE_AGE = 3600
    session = await sync_to_async(signed_in_session)(owner)
    socket = communicator_for(conversation.pk, owner, session=session)
    assert (await socket.connect())[0]
    first, woken = await alarm.next_sleep()

    clock.move_to(NOON + timedelta(minutes=30))
    session["django_language"] = "ko"  # any change saves the session, which expires later
    await sync_to_async(session.save)()
    clock.move_to(first)
    woken.set()

    second, woken = await alarm.next_sleep()
    assert second == await _expire_date(session) == NOON + timedelta(minutes=90)
    assert await _still_open(socket, conversation)
    clock.move_to(second)
    woken.set()
    assert await socket.receive_output(timeout=5) == CLOSED
    await socket.disconnect()


@transactional
async def test_a_session_that_ends_at_browser_close_still_expires_on_the_server(
    conversation, owner, alarm, clock, settings
):
    settings.SESSION_EXPIRE_AT_BROWSER_CLOSE = True
    settings.SESSION_COOKIE_AGE = 600
    session = await sync_to_async(signed_in_session)(owner)
    socket = communicator_for(conversation.pk, owner, session=session)
    assert (await socket.connect())[0]
    moment, woken = await alarm.next_sleep()
    assert moment == NOON + timedelta(minutes=10)
    clock.move_to(moment)
    woken.set()
    assert await socket.receive_output(timeout=5) == CLOSED
    await socket.disconnect()


@transactional
async def test_a_session_expired_before_the_socket_connects_is_refused(
    conversation, owner, clock, settings
):
    settings.SESSION_COOKIE_AGE = 3600
    session = await sync_to_async(signed_in_session)(owner)
    clock.move_to(NOON + timedelta(hours=1))
    socket = communicator_for(conversation.pk, owner, session=session)
    connected, _ = await socket.connect()
    assert not connected


@transactional
async def test_a_socket_refused_for_its_session_ignores_its_users_events_until_gone(
    conversation, owner
):
    client = await sync_to_async(_signed_in)()
    session = client.session
    await sync_to_async(client.logout)()
    socket = communicator_for(conversation.pk, owner, session=session)
    assert not (await socket.connect())[0]

    # It joined the user's group before it read its session: the events reach it.
    group = deactivation.user_group_name(owner.pk)
    for event in ({"type": "user.password.saved"}, {"type": "session.ended", "session": "x"}):
        await get_channel_layer().group_send(group, event)
    await frames.publish_to_owner(owner.pk, "<p>after them</p>")  # handled in turn after them
    assert (await socket.receive_output(timeout=5))["text"] == "<p>after them</p>"
    await socket.disconnect()  # raises if handling an event failed


@transactional
async def test_a_signed_out_session_is_refused(conversation, owner):
    client = await sync_to_async(_signed_in)()
    session = client.session
    await sync_to_async(client.logout)()
    socket = communicator_for(conversation.pk, owner, session=session)
    connected, _ = await socket.connect()
    assert not connected


@transactional
async def test_a_socket_whose_session_cannot_be_checked_closes_and_the_page_reconnects(
    conversation, owner, alarm, monkeypatch, caplog
):
    socket = await _open(conversation, owner)
    _moment, woken = await alarm.next_sleep()

    def unreachable(session_key: str):
        raise DatabaseError("the database is gone")

    monkeypatch.setattr(socket_sessions, "session_expiry", unreachable)
    with caplog.at_level(logging.ERROR, logger="conversations.consumers"):
        woken.set()
        closed = await socket.receive_output(timeout=5)
    await socket.disconnect()

    assert closed == {"type": "websocket.close", "code": 1011}
    assert "Could not check whether a socket's session has expired." in caplog.text
