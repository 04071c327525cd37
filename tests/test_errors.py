"""A request that fails because the database cannot be reached answers a clear 503 page,
and a send that fails halfway stores nothing."""

from unittest import mock

import pytest
from django.db import OperationalError
from django.test import AsyncClient, Client
from django.urls import reverse

from conversations.models import Message

pytestmark = pytest.mark.django_db(transaction=True)


def _unreachable(*args, **kwargs):
    raise OperationalError("connection to server at 127.0.0.1, port 5432 failed")


def test_a_page_whose_database_is_unreachable_answers_a_503_page(owner):
    client = Client(raise_request_exception=False)
    client.force_login(owner)
    with mock.patch("conversations.lookups.sidebar_conversations", side_effect=_unreachable):
        response = client.get("/")
    assert response.status_code == 503
    assert response["Retry-After"] == "10"
    assert "Webchat is briefly unavailable" in response.text


def test_any_other_failure_still_answers_the_500_page(owner):
    client = Client(raise_request_exception=False)
    client.force_login(owner)
    with mock.patch("conversations.lookups.sidebar_conversations", side_effect=ValueError):
        response = client.get("/")
    assert response.status_code == 500
    assert "Something went wrong" in response.text


async def test_a_send_whose_reply_cannot_be_stored_stores_nothing_and_answers_503(
    owner, conversation
):
    client = AsyncClient(raise_request_exception=False)
    await client.aforce_login(owner)
    url = reverse("conversations:message-create", args=[conversation.pk])
    with mock.patch("conversations.services._pending_reply_create", side_effect=_unreachable):
        response = await client.post(url, {"text": "Half written?"})
    assert response.status_code == 503
    assert not await Message.objects.filter(conversation=conversation).aexists()
