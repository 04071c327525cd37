"""The first-run setup: whoever holds the setup token creates the first admin, exactly once;
once an admin exists or existed, setup stays closed."""

import os
import re
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.urls import reverse

from accounts import setup
from accounts.models import SetupRecord
from tests.factories import UserFactory
from tests.live_server import ROOT, LiveServer, postgres_database

SETUP_URL = reverse("setup")
PASSWORD = "a-long-pass-phrase"


def _first_admin(token: str, username: str = "boss") -> dict:
    return {
        "setup_token": token,
        "username": username,
        "email": "",
        "password1": PASSWORD,
        "password2": PASSWORD,
    }


def _users() -> list[str]:
    return list(get_user_model().objects.values_list("username", flat=True))


def test_a_fresh_install_sends_every_visitor_to_the_setup_form(client, db):
    for url in ["/", "/accounts/login/", "/c/1/", "/admin/"]:
        response = client.get(url)
        assert response.status_code == 302
        assert response.url == SETUP_URL
    page = client.get(SETUP_URL)
    assert page.status_code == 200
    assert 'name="setup_token"' in page.text
    assert "python manage.py setup_token" in page.text


def test_the_setup_form_with_the_token_creates_the_first_admin_and_signs_them_in(client, db):
    response = client.post(SETUP_URL, _first_admin(setup.setup_token()))
    assert response.status_code == 302
    admin = get_user_model().objects.get()
    assert (admin.username, admin.is_staff, admin.is_superuser) == ("boss", True, True)
    assert SetupRecord.objects.get().first_admin == "boss"
    assert client.get("/").status_code == 200


def test_the_token_may_be_pasted_with_spaces_around_it(client, db):
    response = client.post(SETUP_URL, _first_admin(f"  {setup.setup_token()}\n"))
    assert response.status_code == 302
    assert _users() == ["boss"]


def test_a_missing_setup_token_is_refused_with_a_clear_error_and_nothing_is_created(client, db):
    response = client.post(SETUP_URL, _first_admin(""))
    assert response.status_code == 200
    assert "Enter the setup token: the server printed it in its log at start-up." in response.text
    assert _users() == []
    assert not SetupRecord.objects.exists()


def test_a_wrong_setup_token_is_refused_with_a_clear_error_and_nothing_is_created(client, db):
    wrong = "0" * setup.TOKEN_LENGTH
    assert wrong != setup.setup_token()
    response = client.post(SETUP_URL, _first_admin(wrong))
    assert response.status_code == 200
    assert "This is not the setup token." in response.text
    assert "python manage.py setup_token" in response.text
    assert _users() == []
    assert not SetupRecord.objects.exists()


def test_the_token_is_derived_from_the_secret_key(settings):
    token = setup.setup_token()
    assert re.fullmatch(r"[0-9a-f]{32}", token)
    settings.SECRET_KEY = "another-secret-key-for-another-install"
    assert setup.setup_token() != token


def test_the_setup_token_command_prints_the_token_while_setup_is_open(db, capsys):
    call_command("setup_token")
    assert capsys.readouterr().out.strip() == setup.setup_token()


def test_the_setup_token_command_refuses_once_setup_is_closed(owner):
    with pytest.raises(CommandError, match=re.escape("python manage.py createsuperuser")):
        call_command("setup_token")


def test_the_setup_page_is_closed_once_a_user_exists_and_says_what_to_do(client, owner):
    for response in (
        client.get(SETUP_URL),
        client.post(SETUP_URL, _first_admin(setup.setup_token(), "intruder")),
    ):
        assert response.status_code == 410
        assert "Webchat is already set up" in response.text
        assert "python manage.py createsuperuser" in response.text
    assert _users() == ["owner"]


def test_setup_stays_closed_after_the_first_admin_and_then_every_user_are_deleted(client, db):
    # A restore into an emptied database: the users are gone, the record is not.
    client.post(SETUP_URL, _first_admin(setup.setup_token()))
    get_user_model().objects.all().delete()
    response = client.post(SETUP_URL, _first_admin(setup.setup_token(), "intruder"))
    assert response.status_code == 410
    assert "python manage.py createsuperuser" in response.text
    assert _users() == []


def test_an_admin_made_with_createsuperuser_closes_setup_for_good(client, db, monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", PASSWORD)
    call_command("createsuperuser", interactive=False, username="root", email="", verbosity=0)
    get_user_model().objects.all().delete()
    # Every anonymous page still leads to the setup page, which now says what to do.
    assert client.get("/").url == SETUP_URL
    response = client.post(SETUP_URL, _first_admin(setup.setup_token(), "intruder"))
    assert response.status_code == 410
    assert "python manage.py createsuperuser" in response.text
    assert _users() == []


def test_a_user_made_staff_later_closes_setup_for_good(db):
    user = UserFactory(username="promoted")
    assert not SetupRecord.objects.exists()
    user.is_staff = True
    user.save()
    user.delete()
    assert not setup.setup_is_open()
    assert SetupRecord.objects.get().first_admin == "promoted"


def test_an_upgraded_install_with_users_keeps_setup_closed_when_they_are_deleted(tmp_path):
    # A database made before the setup record existed (tests/data/README.md), with users.
    database = tmp_path / "upgrade.sqlite3"
    shutil.copy(ROOT / "tests" / "data" / "upgrade-from-92108ce.sqlite3", database)
    environment = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{database}",
        "DJANGO_SETTINGS_MODULE": "tests.settings",
    }

    def manage(*arguments: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "manage.py", *arguments]
        return subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True)

    assert manage("migrate", "--noinput").returncode == 0
    emptied = manage(
        "shell", "-c", "from django.contrib.auth.models import User; User.objects.all().delete()"
    )
    assert emptied.returncode == 0, emptied.stderr
    refused = manage("setup_token")
    assert refused.returncode != 0
    assert "Setup is closed" in refused.stderr
    assert "python manage.py createsuperuser" in refused.stderr


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_server(request, tmp_path):
    """A real server (``manage.py serve``) on a new database of either kind."""
    if request.param == "postgresql":
        database = postgres_database("webchat_setup")
    else:
        database = nullcontext(f"sqlite:///{tmp_path / 'setup.sqlite3'}")
    with database as url:
        server = LiveServer(tmp_path, env={"DATABASE_URL": url})
        server.start()
        try:
            yield server
        finally:
            server.stop()


def test_concurrent_setups_on_a_real_server_create_exactly_one_admin(fresh_server):
    # The token the server printed at start-up is the one another process computes.
    printed = re.search(r"^ {4}([0-9a-f]{32})$", fresh_server.log.read_text(), re.MULTILINE)
    assert printed, fresh_server.log.read_text()
    token = printed.group(1)
    assert fresh_server.manage("setup_token").strip() == token

    attempts = 6
    clients = [httpx.Client(base_url=fresh_server.url, timeout=30) for _ in range(attempts)]
    for client in clients:
        assert client.get(SETUP_URL).status_code == 200  # the form and its CSRF cookie
    start = threading.Barrier(attempts)

    def set_up(number: int) -> int:
        client = clients[number]
        body = {
            **_first_admin(token, f"admin{number}"),
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
        }
        start.wait()
        return client.post(SETUP_URL, data=body).status_code

    with ThreadPoolExecutor(attempts) as pool:
        statuses = sorted(pool.map(set_up, range(attempts)))
    for client in clients:
        client.close()

    assert statuses == [302] + [410] * (attempts - 1)
    admins = fresh_server.manage(
        "shell",
        "--verbosity=0",
        "-c",
        "from django.contrib.auth.models import User;"
        "print(User.objects.count(), User.objects.filter(is_superuser=True).count())",
    )
    assert admins.split() == ["1", "1"]
