"""`/healthz` for the load balancer: can this process reach the database and the channel layer?

It answers `ok` or `unavailable` and nothing more; the reason goes to the log only.
"""

import asyncio
import logging

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 3.0


def _query_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


async def database_is_reachable() -> None:
    await sync_to_async(_query_database)()


async def channel_layer_is_reachable() -> None:
    """A message sent to a fresh channel comes back: the layer (Redis) works end to end."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "health.ping"})
    message = await layer.receive(channel)
    if message.get("type") != "health.ping":
        raise RuntimeError("the channel layer returned a different message")


async def _healthy() -> bool:
    for check in (database_is_reachable, channel_layer_is_reachable):
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                await check()
        except Exception:
            logger.warning("Health check %s failed.", check.__name__, exc_info=True)
            return False
    return True


@login_not_required
@require_safe
@never_cache
async def healthz(request: HttpRequest) -> HttpResponse:
    if await _healthy():
        return HttpResponse("ok", content_type="text/plain")
    return HttpResponse("unavailable", status=503, content_type="text/plain")
