"""The shipped nginx site (``deploy/nginx/webchat.conf``), run as an ordinary process.

The site is used as shipped but for what names the machine: its certificate (a throwaway
self-signed one, for ``127.0.0.1`` and ``chat.example.com``), its ports (free ones on the
loopback instead of 80 and 443, no IPv6) and its upstream's servers (the daphne processes'
ports). nginx runs with a prefix of its own in a temporary folder, which holds its pid,
logs and temporary files: no root is needed, and none of the machine's nginx is touched.
Started as root, nginx runs its workers as its default unprivileged user; the folder is
made readable for them.
"""

import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Debian puts nginx in /usr/sbin, which is not on every user's PATH.
NGINX = shutil.which("nginx", path="/usr/sbin:/usr/bin:/sbin:/bin")
SITE = ROOT / "deploy" / "nginx" / "webchat.conf"
UPSTREAM_SERVERS = re.compile(r"(?:[ \t]*server 127\.0\.0\.1:\d+(?P<parameters>[^;\n]*);\n)+")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def site_for_this_machine(
    site: str,
    *,
    https_port: int,
    http_port: int,
    upstream_ports: list[int],
    certificate: Path,
    key: Path,
) -> str:
    """The site with this machine's ports and certificate; everything else as shipped (the
    upstream's servers keep the shipped parameters)."""

    def servers(shipped: re.Match) -> str:
        return "".join(
            f"    server 127.0.0.1:{port}{shipped['parameters']};\n" for port in upstream_ports
        )

    replacements = [
        (re.compile(r"ssl_certificate \S+;"), f"ssl_certificate {certificate};"),
        (re.compile(r"ssl_certificate_key \S+;"), f"ssl_certificate_key {key};"),
        (re.compile(r"listen 443 ssl http2;"), f"listen 127.0.0.1:{https_port} ssl http2;"),
        (re.compile(r"listen 80;"), f"listen 127.0.0.1:{http_port};"),
        (re.compile(r"\n[ \t]*listen \[::\]:\d+[^;\n]*;"), ""),
    ]
    site, count = UPSTREAM_SERVERS.subn(servers, site)
    if count == 0:
        raise ValueError("The shipped site has no upstream servers on 127.0.0.1 any more.")
    for pattern, replacement in replacements:
        site, count = pattern.subn(lambda _match, text=replacement: text, site)
        if count == 0:
            raise ValueError(f"The shipped site has no {pattern.pattern!r} any more.")
    return site


class NginxSite:
    """nginx serving the shipped site on the loopback, in a folder of its own."""

    def __init__(self, *, upstream_ports: list[int]) -> None:
        self.upstream_ports = upstream_ports
        self.https_port, self.http_port = free_port(), free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="webchat-nginx-"))
        self.workdir.chmod(0o755)
        self.certificate = self.workdir / "cert.pem"
        self.key = self.workdir / "key.pem"
        self.config = self.workdir / "nginx.conf"
        self.error_log = self.workdir / "error.log"
        self.access_log = self.workdir / "access.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def ssl_context(self) -> ssl.SSLContext:
        """What clients trust: the site's own certificate."""
        return ssl.create_default_context(cafile=self.certificate)

    def write(self) -> None:
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                "-subj", "/CN=chat.example.com",
                "-addext", "subjectAltName=DNS:chat.example.com,IP:127.0.0.1",
                "-keyout", str(self.key), "-out", str(self.certificate),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        site = site_for_this_machine(
            SITE.read_text(),
            https_port=self.https_port,
            http_port=self.http_port,
            upstream_ports=self.upstream_ports,
            certificate=self.certificate,
            key=self.key,
        )
        (self.workdir / "webchat.conf").write_text(site)
        temporary_paths = "".join(
            f"    {kind}_temp_path {self.workdir / kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        self.config.write_text(
            f"pid {self.workdir / 'nginx.pid'};\n"
            "events {}\n"
            "http {\n"
            f"    access_log {self.access_log};\n"
            f"{temporary_paths}"
            f"    include {self.workdir / 'webchat.conf'};\n"
            "}\n"
        )

    def _command(self, *options: str) -> list[str]:
        if NGINX is None:
            raise RuntimeError("nginx is not installed (apt-get install nginx-light).")
        return [
            NGINX,
            *("-p", str(self.workdir), "-c", str(self.config), "-e", str(self.error_log)),
            *options,
        ]

    def check(self) -> subprocess.CompletedProcess:
        """``nginx -t`` on the written configuration."""
        return subprocess.run(self._command("-t"), capture_output=True, text=True, check=False)

    def start(self, timeout: float = 30.0) -> None:
        self.write()
        self.process = subprocess.Popen(
            self._command("-g", "daemon off;"), stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.process.stderr.read()}")
            try:
                socket.create_connection(("127.0.0.1", self.https_port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nginx did not listen within {timeout} s.")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None:
            self.process.stderr.close()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
