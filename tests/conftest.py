import pytest
from asgiref.sync import SyncToAsync
from django.db import connections
from django.test import AsyncClient, Client

from tests.factories import ConversationFactory, UserFactory

pytest_plugins = ["tests.upstream_fixtures", "tests.browser_fixtures"]

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True, scope="session")
def _close_connections_of_async_tests(django_db_setup, django_db_blocker):
    """Async tests reach the database from asgiref's shared worker thread; close its
    connections at the end so PostgreSQL can drop the test database."""
    yield
    with django_db_blocker.unblock():
        SyncToAsync.single_thread_executor.submit(connections.close_all).result()


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
