import gc
import logging
import shutil

import pytest
from asgiref.sync import SyncToAsync
from django.db import connections
from django.test import AsyncClient, Client

from tests.factories import ConversationFactory, UserFactory
from tests.redis_server import RedisServer

pytest_plugins = ["tests.upstream_fixtures", "tests.browser_fixtures"]

PASSWORD = "correct horse battery"


class _UnretrievedTaskExceptions(logging.Handler):
    """Collects asyncio's reports of a task that failed with nobody to hear it."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.reports: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "exception was never retrieved" in record.getMessage():
            self.reports.append(self.format(record))


_unretrieved = _UnretrievedTaskExceptions()
logging.getLogger("asyncio").addHandler(_unretrieved)


@pytest.fixture(autouse=True)
def _no_unretrieved_task_exception():
    """A test fails when a task it started failed and nothing retrieved the exception."""
    seen = len(_unretrieved.reports)
    yield
    if len(_unretrieved.reports) > seen:
        pytest.fail("\n".join(_unretrieved.reports[seen:]), pytrace=False)


def pytest_sessionfinish(session: pytest.Session) -> None:
    # A task dropped in a reference cycle is reported only when the cycle is collected.
    seen = len(_unretrieved.reports)
    gc.collect()
    if len(_unretrieved.reports) > seen:
        print("\n".join(["Tasks failed with nobody to hear it:", *_unretrieved.reports[seen:]]))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True, scope="session")
def _close_connections_of_async_tests(django_db_setup, django_db_blocker):
    """Async tests reach the database from asgiref's shared worker thread; close its
    connections at the end so PostgreSQL can drop the test database."""
    yield
    with django_db_blocker.unblock():
        SyncToAsync.single_thread_executor.submit(connections.close_all).result()
        connection = connections["default"]
        if connection.vendor == "postgresql":
            # The reply runner's threads keep a connection of their own while the process
            # lives; this worker's test database is its own, so end them before it is dropped.
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            connection.close()


@pytest.fixture(autouse=True)
def _static_files_without_manifest(settings):
    """Pages render without collectstatic; the live-server tests use the real storage."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _media_in_a_temporary_folder(settings, tmp_path):
    """Stored files (attached images) go to the test's own folder, never into the repo."""
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def owner(db):
    return UserFactory(username="owner")


@pytest.fixture
def outsider(db):
    return UserFactory(username="outsider")


@pytest.fixture
def conversation(owner):
    return ConversationFactory(owner=owner, title="Owner's chat")


@pytest.fixture
def owner_client(owner) -> Client:
    client = Client()
    client.force_login(owner)
    return client


@pytest.fixture
def outsider_client(outsider) -> Client:
    client = Client()
    client.force_login(outsider)
    return client


@pytest.fixture
def async_owner_client(owner) -> AsyncClient:
    client = AsyncClient()
    client.force_login(owner)
    return client


@pytest.fixture
def redis_server(tmp_path):
    """A Redis of the test's own, started; the test may stop it and start it again."""
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server (apt-get install redis-server)")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()
