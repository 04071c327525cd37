"""The shipped deployment files: nginx accepts the site, which suits rolling restarts;
systemd accepts the units, which say what they must; webchat-manage runs manage.py as the
service's user with the service's environment."""

import configparser
import os
import re
import shutil
import subprocess
import sys

import pytest

from benchmarks.nginx import NGINX, SITE, NginxSite
from tests.live_server import ROOT

SYSTEMD = ROOT / "deploy" / "systemd"
UNIT = SYSTEMD / "webchat@.service"
RETENTION_SERVICE = SYSTEMD / "webchat-retention.service"
RETENTION_TIMER = SYSTEMD / "webchat-retention.timer"
MANAGE = ROOT / "deploy" / "webchat-manage"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
INSTALLED_PYTHON = "/opt/webchat/.venv/bin/python"


def _unit(path) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read_string(path.read_text())
    return unit


def _location(site: str, name: str) -> str:
    start = site.index(f"location {name} ")
    return site[start : site.index("}", start)]


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx-light)")
def test_nginx_accepts_the_site_configuration():
    # Only the certificate (a throwaway self-signed pair) and the ports are this machine's.
    site = NginxSite(upstream_ports=[8001, 8002])
    try:
        site.write()
        result = site.check()
    finally:
        site.remove()
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_nginx_site_allows_eight_images_and_long_lived_sockets():
    site = SITE.read_text()
    assert "client_max_body_size 170m;" in site
    websocket_location = _location(site, "/ws/")
    assert "proxy_set_header Upgrade $http_upgrade;" in websocket_location
    assert "proxy_read_timeout 1h;" in websocket_location
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in websocket_location


def test_nginx_passes_a_refused_request_on_to_the_next_process_and_never_a_sent_post():
    site = SITE.read_text()
    upstream = site[site.index("upstream webchat {") : site.index("}")]
    servers = re.findall(r"^\s*server (\S+)(.*);$", upstream, re.MULTILINE)
    assert [address for address, _ in servers] == [
        f"127.0.0.1:{port}"
        for port in (8001, 8002)  # the instances the guide starts
    ]
    # Never shunned for a refusal: a process back from its restart is used at once.
    assert all(parameters.split() == ["max_fails=0"] for _, parameters in servers)
    # No connection kept alive to a process, which would carry requests to it as it drains.
    assert not re.search(r"^\s*keepalive\b", upstream, re.MULTILINE)
    assert 'proxy_set_header Connection "";' not in site
    assert re.findall(r"^\s*proxy_next_upstream\b.*$", site, re.MULTILINE) == [
        "    proxy_next_upstream error timeout;"
    ]


def test_the_systemd_unit_runs_one_daphne_per_port_as_its_own_user(settings):
    service = _unit(UNIT)["Service"]
    assert service["User"] == "webchat"
    assert service["Restart"] == "on-failure"
    assert service["EnvironmentFile"] == "/etc/webchat/env"
    assert service["WorkingDirectory"] == "/opt/webchat"
    assert service["ReadWritePaths"] == "/var/lib/webchat"
    # serve marks dead replies interrupted; migrating is done once, before any instance.
    assert service["ExecStart"] == f"{INSTALLED_PYTHON} manage.py serve --host 127.0.0.1 --port %i"
    # systemd kills what is still running then: the drain must be over by that time.
    assert int(service["TimeoutStopSec"]) > settings.WEBCHAT_SHUTDOWN_GRACE


def test_the_retention_service_runs_delete_old_conversations_as_the_web_processes_run():
    web, retention = _unit(UNIT)["Service"], _unit(RETENTION_SERVICE)["Service"]
    assert retention["Type"] == "oneshot"
    assert retention["ExecStart"] == f"{INSTALLED_PYTHON} manage.py delete_old_conversations"
    # The same user, settings and sandbox, so that it may delete the images too.
    for key in ("User", "Group", "WorkingDirectory", "EnvironmentFile", "ReadWritePaths"):
        assert retention[key] == web[key], key
    for key in ("NoNewPrivileges", "PrivateTmp", "ProtectSystem", "ProtectHome"):
        assert retention[key] == web[key], key


def test_the_retention_timer_starts_the_service_nightly_and_catches_up():
    timer = _unit(RETENTION_TIMER)
    assert RETENTION_TIMER.stem == RETENTION_SERVICE.stem  # the service it starts
    assert timer["Timer"]["OnCalendar"] == "*-*-* 03:30:00"
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Install"]["WantedBy"] == "timers.target"


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_units_and_the_timers_calendar(tmp_path):
    # As installed, but for the paths, which are this checkout's (systemd checks they exist).
    for unit in (UNIT, RETENTION_SERVICE, RETENTION_TIMER):
        text = unit.read_text().replace(INSTALLED_PYTHON, sys.executable)
        (tmp_path / unit.name).write_text(text.replace("/opt/webchat", str(ROOT)))
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", *(str(path) for path in sorted(tmp_path.iterdir()))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")

    calendar = _unit(RETENTION_TIMER)["Timer"]["OnCalendar"]
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "calendar", calendar], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "Normalized form: *-*-* 03:30:00" in result.stdout


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("runuser") is None,
    reason="webchat-manage switches user with runuser, which only root may do",
)
def test_webchat_manage_runs_manage_py_with_the_environment_file(tmp_path):
    # An installation's layout: the code with its virtualenv, and the environment file.
    home = tmp_path / "home"
    home.mkdir()
    (home / "manage.py").symlink_to(ROOT / "manage.py")
    (home / ".venv").symlink_to(os.path.dirname(os.path.dirname(sys.executable)))
    (tmp_path / "env").write_text(
        "SECRET_KEY='not secret, but with spaces and a $'\n"
        f"DATABASE_URL=sqlite:///{tmp_path / 'db.sqlite3'}\n"
        "WEBCHAT_RETENTION_DAYS=0\n"
    )
    env = {
        "PATH": os.environ["PATH"],
        "WEBCHAT_HOME": str(home),
        "WEBCHAT_ENV": str(tmp_path / "env"),
        "WEBCHAT_USER": "root",
    }

    result = subprocess.run(
        [
            MANAGE,
            "shell",
            "-c",
            "import os; from django.conf import settings;"
            "print(os.getcwd(), settings.SECRET_KEY, settings.WEBCHAT_RETENTION_DAYS, sep='|')",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"{home}|not secret, but with spaces and a $|0"
