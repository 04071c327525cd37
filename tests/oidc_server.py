"""A real, independent OpenID provider for the single sign-on tests: panva's oidc-provider
(tests/oidc_provider/, installed by `make test` with `npm ci`), in a Node process on
127.0.0.1."""

import json
import selectors
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.live_server import process_stop

PROVIDER_DIR = Path(__file__).resolve().parent / "oidc_provider"


class OIDCProvider:
    """The provider, its clients (one per Webchat server) and its users, whose claims a test
    may change between two sign-ins: the provider reads them again at every look-up."""

    def __init__(self, workdir: Path) -> None:
        self.config_path = workdir / "oidc-provider.json"
        self.log = workdir / "oidc-provider.log"
        self.clients: list[dict] = []
        self.users: dict[str, dict] = {}
        self.issuer = ""
        self.process: subprocess.Popen | None = None

    def client_add(self, *, client_id: str, secret: str, webchat_url: str) -> None:
        self.clients.append(
            {
                "client_id": client_id,
                "client_secret": secret,
                "redirect_uris": [f"{webchat_url}/accounts/oidc/sso/login/callback/"],
                "post_logout_redirect_uris": [f"{webchat_url}/accounts/login/"],
            }
        )

    def user_set(self, sub: str, **claims) -> None:
        self.users[sub] = claims
        self._write()

    def _write(self) -> None:
        text = json.dumps({"clients": self.clients, "users": self.users})
        # Replaced whole, so that the provider never reads half a file.
        partial = self.config_path.with_suffix(".partial")
        partial.write_text(text)
        partial.replace(self.config_path)

    def start(self, timeout: float = 60) -> None:
        node = shutil.which("node")
        if node is None or not (PROVIDER_DIR / "node_modules").is_dir():
            pytest.skip("Node.js or tests/oidc_provider/node_modules (npm ci) is missing")
        self._write()
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [node, str(PROVIDER_DIR / "server.mjs"), str(self.config_path)],
                stdout=subprocess.PIPE,
                stderr=log,
            )
        line = self._first_line(timeout)
        self.issuer = json.loads(line)["issuer"]
        discovery = httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=10)
        discovery.raise_for_status()
        assert discovery.json()["issuer"] == self.issuer

    def _first_line(self, timeout: float) -> bytes:
        """The line the provider prints once it listens, read as it comes."""
        assert self.process is not None
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while not selector.select(max(0.0, deadline - time.monotonic())):
                if time.monotonic() >= deadline:
                    self.stop()
                    raise RuntimeError(f"the provider did not start:\n{self.log.read_text()}")
        line = self.process.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError(f"the provider exited:\n{self.log.read_text()}")
        return line

    def stop(self) -> None:
        process_stop(self.process)
