"""/healthz tells the load balancer whether this process can serve (ok, degraded without
Redis, unavailable without the database), and nothing more."""

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


async def test_healthz_is_degraded_when_the_channel_layer_is_down():
    layer = mock.Mock()
    layer.new_channel = mock.AsyncMock(return_value="round-trip.abc")
    layer.send = mock.AsyncMock(side_effect=ConnectionError("Error 111 connecting to redis"))
    with mock.patch("webchat.outages.get_channel_layer", return_value=layer):
        response = await AsyncClient().get("/healthz")
    assert response.status_code == 200
    assert response.content == b"degraded"


async def _never_answer(channel: str) -> None:
    await asyncio.Event().wait()


async def test_healthz_is_degraded_when_the_channel_layer_hangs(settings):
    layer = mock.Mock()
    layer.new_channel = mock.AsyncMock(return_value="round-trip.abc")
    layer.send = mock.AsyncMock()
    layer.receive = mock.AsyncMock(side_effect=_never_answer)
    with (
        mock.patch("webchat.outages.get_channel_layer", return_value=layer),
        mock.patch("webchat.health.CHECK_TIMEOUT_SECONDS", 0.05),
    ):
        response = await AsyncClient().get("/healthz")
    assert response.status_code == 200
    assert response.content == b"degraded"


async def test_healthz_is_unavailable_when_the_database_and_redis_are_both_down():
    layer = mock.Mock()
    layer.new_channel = mock.AsyncMock(side_effect=ConnectionError("Error 111"))
    with (
        mock.patch("webchat.outages.get_channel_layer", return_value=layer),
        mock.patch("webchat.health._query_database", side_effect=OperationalError("refused")),
    ):
        response = await AsyncClient().get("/healthz")
    assert response.status_code == 503
    assert response.content == b"unavailable"


def use_redis(settings, url: str) -> None:
    """Point the channel layer and the caches at the Redis at ``url``, as REDIS_URL does."""
    settings.CHANNEL_LAYERS = {
        "default": {
            **settings.CHANNEL_LAYERS["default"],
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [url], "prefix": "webchat-health-test"},
        }
    }
    cache = {"LOCATION": url, "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1}}
    settings.CACHES = {
        **settings.CACHES,
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", **cache},
    }


async def _health() -> bytes:
    return (await AsyncClient().get("/healthz")).content


async def test_healthz_says_degraded_while_its_redis_is_stopped_and_ok_once_it_is_back(
    settings, redis_server
):
    use_redis(settings, redis_server.url)
    assert await _health() == b"ok"

    redis_server.stop()
    response = await AsyncClient().get("/healthz")
    assert (response.status_code, response.content) == (200, b"degraded")

    redis_server.start()
    # Redis's client renews this process's subscriptions in the background, within a
    # second or two; until then the round trip fails.
    deadline = asyncio.get_running_loop().time() + 20
    while (health := await _health()) != b"ok":
        assert health == b"degraded"
        assert asyncio.get_running_loop().time() < deadline, "still degraded"
