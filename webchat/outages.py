"""Redis outages: which errors say Redis is unreachable, and logging each outage once.

Redis carries the live frames (the channel layer) and caches sessions and the login
throttle's counters; it holds no data. While it is unreachable, what uses it goes on
without it (README, "Outages"): callers catch ``REDIS_UNREACHABLE`` and tell their
``Outage``, which logs the first failure and the recovery, not every frame in between.
"""

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable
from weakref import WeakKeyDictionary

from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

try:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError:  # the embedded set-up runs without the Redis client
    REDIS_UNREACHABLE: tuple[type[Exception], ...] = (OSError,)
else:
    REDIS_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


class Outage:
    """Whether one of Redis's services is out in this process, for the log: the first
    failure is logged with what goes on without it, then the recovery, once each."""

    def __init__(self, service: str, meanwhile: str) -> None:
        self.service = service
        self.meanwhile = meanwhile
        self.since: float | None = None

    @property
    def ongoing(self) -> bool:
        return self.since is not None

    def failed(self, error: BaseException) -> None:
        if self.since is None:
            self.since = time.monotonic()
            logger.warning("%s is unreachable (%s); %s", self.service, error, self.meanwhile)

    def recovered(self) -> None:
        if self.since is not None:
            lasted = time.monotonic() - self.since
            self.since = None
            logger.warning("%s is reachable again, after %.0f s.", self.service, lasted)


channel_layer_outage = Outage(
    "The channel layer (Redis)",
    "live frames are lost until it is back; replies are still written and saved, and "
    "pages are sent the stored state when it returns.",
)
login_throttle_outage = Outage(
    "The login throttle's cache (Redis)",
    "failed sign-ins are counted in this process only until it is back.",
)


async def layer_call(call: Awaitable[object]) -> bool:
    """Await a channel layer call; False when Redis is unreachable (logged once per outage)."""
    try:
        await call
    except REDIS_UNREACHABLE as error:
        channel_layer_outage.failed(error)
        return False
    channel_layer_outage.recovered()
    return True


# One channel per event loop answers every round trip: each new one would stay subscribed.
_round_trip_channels: WeakKeyDictionary[asyncio.AbstractEventLoop, str] = WeakKeyDictionary()


async def channel_layer_round_trip() -> None:
    """Send a message to a channel of this process and wait for it: the layer (Redis)
    works end to end, and this process's subscriptions answer (Redis's client renews them
    all at once when it connects again)."""
    layer = get_channel_layer()
    loop = asyncio.get_running_loop()
    if (channel := _round_trip_channels.get(loop)) is None:
        channel = _round_trip_channels[loop] = await layer.new_channel("round-trip.")
    token = secrets.token_hex(8)
    try:
        await layer.send(channel, {"type": "layer.ping", "token": token})
        # A ping of an earlier round trip that timed out may come first.
        while (await layer.receive(channel)).get("token") != token:
            pass
    except BaseException:
        # A cancelled receive may have left the channel (Redis's layer unsubscribes it).
        del _round_trip_channels[loop]
        raise
