"""The shipped deployment files: nginx accepts the site; the systemd unit says what it must."""

import configparser
import re
import shutil
import subprocess

import pytest

from tests.live_server import ROOT

# Debian puts nginx in /usr/sbin, which is not on every user's PATH.
NGINX = shutil.which("nginx", path="/usr/sbin:/usr/bin:/sbin:/bin")
SITE = ROOT / "deploy" / "nginx" / "webchat.conf"
UNIT = ROOT / "deploy" / "systemd" / "webchat@.service"


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx-light)")
def test_nginx_accepts_the_site_configuration(tmp_path):
    # The certificate paths point at a throwaway self-signed pair; the rest is tested as is.
    certificate, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=chat.example.com", "-keyout", str(key), "-out", str(certificate),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    site = SITE.read_text()
    site = re.sub(r"ssl_certificate (\S+);", f"ssl_certificate {certificate};", site)
    site = re.sub(r"ssl_certificate_key (\S+);", f"ssl_certificate_key {key};", site)
    (tmp_path / "webchat.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path / 'nginx.pid'};\n"
        f"error_log {tmp_path / 'error.log'};\n"
        "events {}\n"
        "http {\n"
        f"    access_log {tmp_path / 'access.log'};\n"
        f"    client_body_temp_path {tmp_path / 'body'};\n"
        f"    proxy_temp_path {tmp_path / 'proxy'};\n"
        f"    include {tmp_path / 'webchat.conf'};\n"
        "}\n"
    )
    result = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_nginx_site_allows_eight_images_and_long_lived_sockets():
    site = SITE.read_text()
    assert "client_max_body_size 170m;" in site
    websocket_location = site[site.index("location /ws/") :]
    assert "proxy_set_header Upgrade $http_upgrade;" in websocket_location
    assert "proxy_read_timeout 1h;" in websocket_location
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in websocket_location


def test_the_systemd_unit_runs_one_daphne_per_port_as_its_own_user():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read_string(UNIT.read_text())
    service = unit["Service"]
    assert service["User"] == "webchat"
    assert service["Restart"] == "on-failure"
    assert service["EnvironmentFile"] == "/etc/webchat/env"
    # serve marks dead replies interrupted; migrating is done once, before any instance.
    assert service["ExecStart"].endswith(" manage.py serve --host 127.0.0.1 --port %i")
