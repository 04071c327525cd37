"""Loaded as a pytest plugin (see pyproject.toml) before Django reads its settings."""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production")
# Tests serve static files through the finders; an empty root keeps WhiteNoise quiet.
os.environ.setdefault("STATIC_ROOT", tempfile.mkdtemp(prefix="webchat-static-"))
# A title request after each first reply would be one more request to the fake upstream
# in every test that counts them; the tests of titles turn it on (live servers inherit this).
os.environ.setdefault("WEBCHAT_MODEL_TITLES", "false")
# Workers share one Redis when REDIS_URL is set: keep their channel groups and cache keys
# apart. Always set, since xdist workers inherit the controller's environment.
os.environ["WEBCHAT_CHANNEL_PREFIX"] = (
    f"webchat-test-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-{os.getpid()}"
)
