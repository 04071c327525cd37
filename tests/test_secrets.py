"""The API key never reaches a page, a socket frame, a stored error, a log line or an error
page: a recognisable key is set and every one of those outputs is searched for it."""

import logging
import re

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.conf import settings as django_settings
from django.test import Client
from django.urls import include, path, reverse

from conversations.models import Message
from conversations.upstream import client as upstream
from tests.fake_upstream import FAILURES
from tests.generation_helpers import communicator_for, finished
from tests.live_server import LiveServer

CANARY = "sk-webchat-canary-7f3e91c4d2b8a6f0"
PASSWORD = "correct horse battery"


def _server_error(request):
    key = django_settings.WEBCHAT_API_KEY  # a local a debug page would show
    raise RuntimeError(f"Something broke while holding a key of {len(key)} characters.")


urlpatterns = [path("boom/", _server_error), path("", include("webchat.urls"))]


@pytest.fixture
def canary_key(fake_upstream, settings):
    settings.WEBCHAT_API_KEY = CANARY
    settings.WEBCHAT_STALL_TIMEOUT = 0.3
    settings.WEBCHAT_RATE_LIMIT_MAX_RETRIES = 1
    settings.WEBCHAT_SERVER_ERROR_RETRIES = 1
    upstream.reset_clients()
    return CANARY


@pytest.fixture
def every_log_record(caplog):
    """Every logger at DEBUG, httpx and httpcore included (the settings quiet them)."""
    for name in ("", "httpx", "httpcore", "django", "daphne", "conversations"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def test_pages_do_not_show_the_key(canary_key, owner_client, conversation):
    for url in ("/", conversation.get_absolute_url(), reverse("usage"), "/no-such-page/"):
        assert CANARY not in owner_client.get(url).content.decode()
    assert CANARY not in Client().get(reverse("login")).content.decode()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("failure", [None, *FAILURES])
async def test_no_reply_outcome_shows_or_logs_the_key(
    failure, canary_key, fake_upstream, every_log_record, async_owner_client, conversation, owner
):
    fake_upstream.reset(failure=failure, echo_authorization=True, token_count=20)
    communicator = communicator_for(conversation.pk, owner)
    assert (await communicator.connect())[0]

    url = reverse("conversations:message-create", args=[conversation.pk])
    response = await async_owner_client.post(url, {"text": "hi"}, headers={"HX-Request": "true"})
    reply = await Message.objects.filter(role=Message.Role.ASSISTANT).alast()
    await finished(reply)
    frames = []
    while not await communicator.receive_nothing(timeout=0.2):
        frames.append(await communicator.receive_from())
    await communicator.disconnect()
    await reply.arefresh_from_db()
    page = await async_owner_client.get(conversation.get_absolute_url())

    assert fake_upstream.requests[0].headers["authorization"] == f"Bearer {CANARY}"
    assert reply.status != Message.Status.PENDING
    assert frames
    if failure == "http_400":  # the upstream's own message is shown, its quote scrubbed
        assert "Authorization: Bearer [redacted]" in reply.error_detail
    outputs = [response.content.decode(), page.content.decode(), reply.content, reply.error]
    outputs += [reply.error_detail]
    outputs += [*frames, every_log_record.text]
    outputs += [str(record.__dict__) for record in every_log_record.records]
    assert not [output for output in outputs if CANARY in output]


def test_a_gateway_quoting_the_key_in_its_error_is_scrubbed(canary_key, fake_upstream):
    fake_upstream.reset(failure="http_400", echo_authorization=True)

    async def failed_stream() -> upstream.UpstreamError:
        async with upstream.UpstreamClient(
            base_url=fake_upstream.base_url, api_key=CANARY, connect_timeout=5, read_timeout=5
        ) as client:
            request = upstream.ChatRequest(model="fake-model", messages=[])
            with pytest.raises(upstream.UpstreamError) as raised:
                async for _ in client.stream_chat(request):
                    pass
            return raised.value

    error = async_to_sync(failed_stream)()
    assert "Authorization: Bearer [redacted]" in str(error)
    assert CANARY not in str(error)


@pytest.mark.urls(__name__)
def test_production_error_pages_show_no_key_traceback_or_settings(
    canary_key, owner, every_log_record, settings
):
    settings.DEBUG = False
    client = Client(raise_request_exception=False)
    client.force_login(owner)
    not_found = client.get("/no-such-page/")
    server_error = client.get("/boom/")

    assert not_found.status_code == 404
    assert server_error.status_code == 500
    for page in (not_found.content.decode(), server_error.content.decode()):
        assert CANARY not in page
        assert not re.search(r"Traceback|RuntimeError|SECRET_KEY|WEBCHAT_|settings", page)
    assert "Something went wrong" in server_error.content.decode()
    assert CANARY not in every_log_record.text


def test_a_live_servers_log_never_shows_the_key(tmp_path, fake_upstream_server):
    fake_upstream_server.reset(failure="http_401", echo_authorization=True)
    server = LiveServer(
        tmp_path,
        env={
            "WEBCHAT_API_BASE": fake_upstream_server.base_url,
            "WEBCHAT_API_KEY": CANARY,
            "WEBCHAT_MODELS": "fake-model",
            "LOG_LEVEL": "DEBUG",
        },
    )
    server.start()
    try:
        server.create_user("alice", PASSWORD)
        with httpx.Client(base_url=server.url, follow_redirects=True, timeout=10) as browser:
            browser.get("/accounts/login/")
            csrf = {"X-CSRFToken": browser.cookies["csrftoken"]}
            signed_in = browser.post(
                "/accounts/login/",
                data={"username": "alice", "password": PASSWORD},
                headers=csrf,
            )
            assert signed_in.url.path == "/"
            csrf = {"X-CSRFToken": browser.cookies["csrftoken"]}  # a new one after signing in
            created = browser.post("/c/new/", data={"text": "hi"}, headers=csrf)
            conversation_url = created.url.path
            for _ in range(200):
                page = browser.get(conversation_url).text
                if 'data-status="error"' in page:
                    break
            assert 'data-status="error"' in page
            assert CANARY not in page
        assert fake_upstream_server.requests[-1].headers["authorization"] == f"Bearer {CANARY}"
    finally:
        server.stop()
    log = server.log.read_text()
    assert "refused reply" in log
    assert CANARY not in log
