"""Settings come from the environment and fail loudly on bad values."""

import os
import subprocess
import sys

import pytest

from tests.live_server import ROOT


def _load_settings(show: str = "s.WEBCHAT_MODELS", **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG"}}
    environment.update(env, DJANGO_SETTINGS_MODULE="webchat.settings")
    return subprocess.run(
        [sys.executable, "-c", f"import webchat.settings as s; print({show})"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
    )


def test_it_refuses_to_start_without_a_secret_key_when_debug_is_off():
    result = _load_settings(DEBUG="false")
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_it_starts_without_a_secret_key_in_debug_mode():
    assert _load_settings(DEBUG="true").returncode == 0


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DEBUG", "maybe", "DEBUG must be true or false"),
        ("WEBCHAT_MAX_MESSAGE_CHARS", "lots", "WEBCHAT_MAX_MESSAGE_CHARS must be a whole number"),
        ("WEBCHAT_MAX_MESSAGE_CHARS", "0", "must be at least 1"),
        ("WEBCHAT_READ_TIMEOUT", "soon", "WEBCHAT_READ_TIMEOUT must be a number"),
        ("WEBCHAT_MODELS", " , ", "WEBCHAT_MODELS must name at least one model"),
        ("WEBCHAT_SHUTDOWN_GRACE", "-1", "WEBCHAT_SHUTDOWN_GRACE must be at least 0.0"),
        ("WEBCHAT_MAX_UPSTREAM_PER_PROCESS", "0", "must be at least 1"),
        ("WEBCHAT_LOG_FORMAT", "xml", "WEBCHAT_LOG_FORMAT must be text or json, not 'xml'"),
        ("WEBCHAT_METRICS_ALLOWED", "127.0.0.1,office", "must list IP addresses or networks"),
    ],
)
def test_bad_values_fail_loudly(name, value, message):
    result = _load_settings(SECRET_KEY="x", WEBCHAT_API_KEY="k", **{name: value})
    assert result.returncode != 0
    assert message in result.stderr


def test_logs_are_text_unless_json_is_asked_for():
    formatter = 's.LOGGING["handlers"]["console"]["formatter"]'
    assert _load_settings(formatter, SECRET_KEY="x").stdout.strip() == "text"
    assert _load_settings(formatter, SECRET_KEY="x", WEBCHAT_LOG_FORMAT="JSON").stdout.strip() == (
        "json"
    )


def test_metrics_answer_the_loopback_unless_told_otherwise():
    allowed = "[str(network) for network in s.WEBCHAT_METRICS_ALLOWED]"
    assert _load_settings(allowed, SECRET_KEY="x").stdout.strip() == "['127.0.0.0/8', '::1/128']"
    result = _load_settings(
        allowed, SECRET_KEY="x", WEBCHAT_METRICS_ALLOWED="10.0.0.0/8, 192.0.2.7"
    )
    assert result.stdout.strip() == "['10.0.0.0/8', '192.0.2.7/32']"


def test_postgresql_connections_come_from_a_pool_and_none_is_kept_per_thread():
    database = 's.DATABASES["default"]'
    result = _load_settings(
        f'{database}["CONN_MAX_AGE"], {database}["OPTIONS"]["pool"]["max_size"]',
        SECRET_KEY="x",
        DATABASE_URL="postgres://webchat@db.example.com/webchat",
        WEBCHAT_DB_POOL_SIZE="25",
    )
    assert result.stdout.strip() == "0 25"
    refused = _load_settings(
        SECRET_KEY="x", DATABASE_URL="postgres://db.example.com/webchat", WEBCHAT_DB_POOL_SIZE="0"
    )
    assert "WEBCHAT_DB_POOL_SIZE must be at least 1" in refused.stderr


def test_with_redis_frames_go_through_its_publish_subscribe_layer():
    config = 's.CHANNEL_LAYERS["default"]'
    result = _load_settings(
        f'{config}["BACKEND"], {config}["CONFIG"]',
        SECRET_KEY="x",
        REDIS_URL="redis://cache.example.com:6379/0",
        WEBCHAT_CHANNEL_PREFIX="chat-7",
    )
    assert result.stdout.strip() == (
        "channels_redis.pubsub.RedisPubSubChannelLayer "
        "{'hosts': [{'address': 'redis://cache.example.com:6379/0', "
        "'socket_connect_timeout': 2.0, 'socket_timeout': 2.0}], 'prefix': 'chat-7'}"
    )


def test_models_come_from_a_comma_list_and_the_demo_model_stands_in_without_a_key():
    with_key = _load_settings(SECRET_KEY="x", WEBCHAT_API_KEY="k", WEBCHAT_MODELS="a, b")
    assert with_key.stdout.strip() == "['a', 'b']"
    without_key = _load_settings(SECRET_KEY="x", WEBCHAT_API_KEY="", WEBCHAT_MODELS="a")
    assert without_key.stdout.strip() == "['webchat-demo']"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("WEBCHAT_MAX_IMAGES_PER_MESSAGE", "0", "must be at least 1"),
        ("WEBCHAT_MAX_IMAGE_BYTES", "20MB", "WEBCHAT_MAX_IMAGE_BYTES must be a whole number"),
        ("MEDIA_STORAGE_OPTIONS", "{bucket: x}", "MEDIA_STORAGE_OPTIONS must be a JSON object"),
        ("MEDIA_STORAGE_OPTIONS", "[1]", "MEDIA_STORAGE_OPTIONS must be a JSON object"),
    ],
)
def test_bad_image_settings_fail_loudly(name, value, message):
    environment = {"SECRET_KEY": "x", "MEDIA_STORAGE_BACKEND": "storages.backends.s3.S3Storage"}
    result = _load_settings(**environment, **{name: value})
    assert result.returncode != 0
    assert message in result.stderr


# The production environment documented in docs/deployment.md.
PRODUCTION_ENVIRONMENT = {
    "DEBUG": "false",
    "SECRET_KEY": "a-long-random-production-secret-key-of-fifty-characters-or-more-xyz",
    "ALLOWED_HOSTS": "chat.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://chat.example.com",
    "WEBCHAT_BEHIND_TLS_PROXY": "true",
    "WEBCHAT_LOG_FORMAT": "json",
    "WEBCHAT_TRUSTED_PROXIES": "127.0.0.1",
}


def _deploy_check(**env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG"}}
    environment.update(env, DJANGO_SETTINGS_MODULE="webchat.settings")
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
    )


def test_the_deployment_checks_leave_only_the_preload_choice_for_the_documented_environment():
    result = _deploy_check(**PRODUCTION_ENVIRONMENT)
    # Joining the browsers' HSTS preload list is the operator's decision, off by default.
    assert "(security.W021)" in result.stderr, result.stderr
    assert "System check identified 1 issue" in result.stderr


def test_the_deployment_checks_warn_when_tls_is_left_unconfigured():
    environment = {**PRODUCTION_ENVIRONMENT, "WEBCHAT_BEHIND_TLS_PROXY": "false"}
    result = _deploy_check(**environment)
    assert result.returncode != 0
    for warning in ("W004", "W008", "W012", "W016"):  # HSTS, SSL redirect, secure cookies
        assert f"(security.{warning})" in result.stderr, result.stderr


def test_no_security_check_is_silenced():
    result = _load_settings("s.__dict__.get('SILENCED_SYSTEM_CHECKS', [])", SECRET_KEY="x")
    assert result.stdout.strip() == "[]"


def test_behind_a_tls_proxy_cookies_are_secure_and_https_is_enforced():
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import webchat.settings as s; print(s.SECURE_PROXY_SSL_HEADER, s.SECURE_SSL_REDIRECT,"
            " s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS)",
        ],
        cwd=ROOT,
        env={**os.environ, **PRODUCTION_ENVIRONMENT, "WEBCHAT_HSTS_SECONDS": "3600"},
        capture_output=True,
        text=True,
    )
    assert result.stdout.strip() == "('HTTP_X_FORWARDED_PROTO', 'https') True True True 3600"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("WEBCHAT_BEHIND_TLS_PROXY", "sometimes", "WEBCHAT_BEHIND_TLS_PROXY must be true or false"),
        ("WEBCHAT_HSTS_SECONDS", "a year", "WEBCHAT_HSTS_SECONDS must be a whole number"),
        ("WEBCHAT_LOGIN_MAX_FAILURES", "0", "must be at least 1"),
        ("WEBCHAT_LOGIN_LOCKOUT_SECONDS", "15m", "WEBCHAT_LOGIN_LOCKOUT_SECONDS must be a whole"),
        ("WEBCHAT_TIME_ZONE", "Mars/Olympus", "WEBCHAT_TIME_ZONE must be a time zone name"),
        ("WEBCHAT_LOGIN_MAX_USERNAMES_PER_ADDRESS", "0", "must be at least 1"),
        ("WEBCHAT_TRUSTED_PROXIES", "127.0.0.1,nginx", "not 'nginx'"),
        ("WEBCHAT_TRUSTED_PROXIES", "10.0.0.1/8", "networks such as 10.0.0.0/8, not '10.0.0.1/8'"),
        (
            "WEBCHAT_CLIENT_IP_HEADER",
            "X-Real-IP",
            "WEBCHAT_CLIENT_IP_HEADER is no longer read: set WEBCHAT_TRUSTED_PROXIES instead",
        ),
        (
            "WEBCHAT_LOGIN_MAX_FAILURES_PER_ADDRESS",
            "20",
            "set WEBCHAT_LOGIN_MAX_USERNAMES_PER_ADDRESS instead",
        ),
    ],
)
def test_bad_production_settings_fail_loudly(name, value, message):
    result = _load_settings(**{"SECRET_KEY": "x", "WEBCHAT_BEHIND_TLS_PROXY": "true", name: value})
    assert result.returncode != 0
    assert message in result.stderr


def test_trusted_proxies_are_addresses_or_networks():
    result = _load_settings(
        "[str(network) for network in s.WEBCHAT_TRUSTED_PROXIES]",
        SECRET_KEY="x",
        WEBCHAT_TRUSTED_PROXIES=" 127.0.0.1, 10.0.0.0/8 ,::1",
    )
    assert result.stdout.strip() == "['127.0.0.1/32', '10.0.0.0/8', '::1/128']"


def test_how_long_a_sign_in_lasts_comes_from_the_environment():
    show = "s.SESSION_COOKIE_AGE, s.SESSION_EXPIRE_AT_BROWSER_CLOSE"
    assert _load_settings(show, SECRET_KEY="x").stdout.strip() == "1209600 False"
    chosen = _load_settings(
        show, SECRET_KEY="x", SESSION_COOKIE_AGE="28800", SESSION_EXPIRE_AT_BROWSER_CLOSE="true"
    )
    assert chosen.stdout.strip() == "28800 True"
    too_short = _load_settings(SECRET_KEY="x", SESSION_COOKIE_AGE="30")
    assert "SESSION_COOKIE_AGE must be at least 60" in too_short.stderr
    unclear = _load_settings(SECRET_KEY="x", SESSION_EXPIRE_AT_BROWSER_CLOSE="sometimes")
    assert "SESSION_EXPIRE_AT_BROWSER_CLOSE must be true or false" in unclear.stderr


def test_behind_a_tls_proxy_health_probes_and_metrics_scrapes_stay_on_plain_http():
    result = _load_settings("s.SECURE_REDIRECT_EXEMPT", **PRODUCTION_ENVIRONMENT)
    assert result.stdout.strip() == "['^healthz$', '^metrics$']"
