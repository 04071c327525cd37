"""/healthz tells the load balancer whether this process can serve, and nothing more."""

import asyncio
from unittest import mock

import pytest
from django.db import OperationalError
from django.test import AsyncClient

pytestmark = pytest.mark.django_db(transaction=True)


async def test_healthz_answers_ok_without_signing_in_even_before_the_first_user_exists():
    response = await AsyncClient().get("/healthz")
    assert response.status_code == 200
    assert response.content == b"ok"
    assert response["Content-Type"].startswith("text/plain")
    assert "no-store" in response["Cache-Control"]


async def test_healthz_is_unavailable_without_details_when_the_database_is_down(caplog):
    with mock.patch(
        "webchat.health._query_database",
        side_effect=OperationalError("connection to server at 10.0.0.7 refused"),
    ):
        response = await AsyncClient().get("/healthz")
    assert response.status_code == 503
    assert response.content == b"unavailable"
    assert "no-store" in response["Cache-Control"]
    assert "database_is_reachable" in caplog.text  # the reason is logged, not shown


async def test_healthz_is_unavailable_when_the_channel_layer_is_down():
    layer = mock.Mock()
    layer.new_channel = mock.AsyncMock(return_value="health!abc")
    layer.send = mock.AsyncMock(side_effect=ConnectionError("Error 111 connecting to redis"))
    with mock.patch("webchat.health.get_channel_layer", return_value=layer):
        response = await AsyncClient().get("/healthz")
    assert response.status_code == 503
    assert response.content == b"unavailable"


async def _never_answer(channel: str) -> None:
    await asyncio.Event().wait()


async def test_healthz_is_unavailable_when_the_channel_layer_hangs(settings):
    layer = mock.Mock()
    layer.new_channel = mock.AsyncMock(return_value="health!abc")
    layer.send = mock.AsyncMock()
    layer.receive = mock.AsyncMock(side_effect=_never_answer)
    with (
        mock.patch("webchat.health.get_channel_layer", return_value=layer),
        mock.patch("webchat.health.CHECK_TIMEOUT_SECONDS", 0.05),
    ):
        response = await AsyncClient().get("/healthz")
    assert response.status_code == 503
