"""`/healthz` for the load balancer: can this process serve, and is everything it uses up?

It answers, as plain text and never cached:

- `200 ok`: the database and Redis (the channel layer and the cache) answer;
- `200 degraded`: the database answers but Redis does not. Pages, signing in and sending
  work, replies are written and saved, but live frames wait for Redis (README, "Outages").
  Every process shares the one Redis, so taking this one out of the rotation would help
  nobody: it stays in.
- `503 unavailable`: the database does not answer; nothing can be served.

The reason goes to the log only.
"""

import asyncio
import logging

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_not_required
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from webchat.outages import channel_layer_round_trip

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 3.0


def _query_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


async def database_is_reachable() -> None:
    await sync_to_async(_query_database)()


async def cache_is_reachable() -> None:
    await sync_to_async(cache.get)("webchat-health")


async def _passes(check) -> bool:
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
    if not await _passes(database_is_reachable):
        return HttpResponse("unavailable", status=503, content_type="text/plain")
    redis_checks = (channel_layer_round_trip, cache_is_reachable)
    if not all([await _passes(check) for check in redis_checks]):
        return HttpResponse("degraded", content_type="text/plain")
    return HttpResponse("ok", content_type="text/plain")
