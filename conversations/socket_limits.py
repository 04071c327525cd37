"""How many sockets (open chat pages) each user has, and the cap on them
(WEBCHAT_MAX_SOCKETS_PER_USER).

Each process counts its own sockets per user (``Runner.sockets``). With several processes
(a shared channel layer), each also keeps its count for the user in the cache, under its
runner's channel, and a socket is admitted while the counts of the live runners add up to
no more than the cap. A runner is alive while it marks itself so (``reply_runners``: every
half second while it has sockets); the count a dead process left behind stops counting once
its runner lapses. Counting a socket first and checking after means that two sockets opened
at once in two processes may both be refused at the cap, never both admitted beyond it.
"""

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from conversations import reply_runners
from conversations.models import ReplyRunner
from webchat.outages import REDIS_UNREACHABLE, Outage

counts_outage = Outage(
    "The cache of socket counts (Redis)",
    "each process caps a user's sockets by its own count; the counts are written again "
    "as sockets open and close.",
)


async def socket_admit(runner: reply_runners.Runner, user_id: int) -> bool:
    """Count a new socket of the user in this process; False (and not counted) when they
    already have as many open as allowed."""
    runner.sockets[user_id] += 1
    total = runner.sockets[user_id]
    if reply_runners.shared_layer():
        total += await _other_processes_count(runner, user_id)
    if total <= settings.WEBCHAT_MAX_SOCKETS_PER_USER:
        return True
    await socket_release(runner, user_id)
    return False


async def socket_release(runner: reply_runners.Runner, user_id: int) -> None:
    """A socket of the user that ``socket_admit`` counted has closed."""
    runner.sockets[user_id] -= 1
    count = runner.sockets[user_id]
    if not count:
        del runner.sockets[user_id]
    if reply_runners.shared_layer():
        key = _key(user_id, runner.channel)
        try:
            await (cache.aset(key, count, timeout=None) if count else cache.adelete(key))
        except REDIS_UNREACHABLE as error:
            counts_outage.failed(error)


async def _other_processes_count(runner: reply_runners.Runner, user_id: int) -> int:
    """The user's sockets in the other live processes, read once this process's count (the
    new socket included) is written for them to see."""
    try:
        await cache.aset(_key(user_id, runner.channel), runner.sockets[user_id], timeout=None)
        cutoff = timezone.now() - reply_runners.LAPSE
        others = [
            _key(user_id, channel)
            async for channel in ReplyRunner.objects.filter(seen_at__gte=cutoff)
            .exclude(channel=runner.channel)
            .values_list("channel", flat=True)
        ]
        counts = await cache.aget_many(others)
    except REDIS_UNREACHABLE as error:
        counts_outage.failed(error)
        return 0
    counts_outage.recovered()
    return sum(counts.values())


def _key(user_id: int, runner_channel: str) -> str:
    return f"sockets:{user_id}:{runner_channel}"
