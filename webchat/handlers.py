"""Django's ASGI handler, with the synchronous work of requests on threads kept between them.

Django's own handler gives each request a new thread for its synchronous calls (the ORM,
sessions, caches), started with the request's first such call and joined after its
response: a thread per request, and a database connection opened and closed in each. Here
a request borrows one of a fixed set of single-thread executors, the one with the fewest
requests at the moment. All of a request's synchronous calls still run on one thread, in
order, as Django expects; requests sharing a thread take turns call by call.
"""

import contextlib
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import django
from asgiref.sync import ThreadSensitiveContext
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler


class RequestThreads:
    def __init__(self, count: int) -> None:
        self.executors = [
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"request-{number}")
            for number in range(count)
        ]
        self.requests = [0] * count

    @contextlib.asynccontextmanager
    async def borrowed(self) -> AsyncIterator[None]:
        """Send the synchronous calls made in this block to the least busy thread."""
        index = min(range(len(self.requests)), key=self.requests.__getitem__)
        self.requests[index] += 1
        try:
            async with ThreadSensitiveContext(executor=self.executors[index]):
                yield
        finally:
            self.requests[index] -= 1


class PooledThreadsASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        super().__init__()
        self.threads = RequestThreads(settings.WEBCHAT_REQUEST_THREADS)

    async def __call__(self, scope, receive, send) -> None:
        # Django's own context, entered inside this one, leaves this one in charge.
        async with self.threads.borrowed():
            await super().__call__(scope, receive, send)


def get_asgi_application() -> PooledThreadsASGIHandler:
    """Like ``django.core.asgi.get_asgi_application``, with the handler above."""
    django.setup(set_prefix=False)
    return PooledThreadsASGIHandler()
