"""Settings for Webchat, read from the environment with working defaults.

Bad values fail loudly at start-up rather than being silently replaced.
"""

import ipaddress
import json
import os
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}.")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}.") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}.")
    return value


def env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}.") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}.")
    return value


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def env_networks(
    name: str, default: str = ""
) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Comma-separated IP addresses or networks in CIDR notation (10.0.0.0/8)."""
    networks = []
    for item in env_list(name, default):
        try:
            networks.append(ipaddress.ip_network(item))
        except ValueError:
            raise ImproperlyConfigured(
                f"{name} must list IP addresses or networks such as 10.0.0.0/8, not {item!r}."
            ) from None
    return networks


DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off (make run creates one in var/secret_key)."
        )
    SECRET_KEY = "webchat-insecure-development-key"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "daphne",
    # Before the admin, whose registration/ templates its own replace.
    "accounts",
    "webchat.admin_site.WebchatAdminConfig",  # Django's admin, under Webchat's name
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "servestatic.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "channels",
    "conversations",
    "review",
    "api",
    # Single sign-on (README, "Single sign-on"): allauth's accounts are required by its
    # social accounts; only the OpenID Connect provider's views are routed.
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
]

# Django's own middleware, under their own names, so that its deployment checks see them.
# ServeStatic (WhiteNoise's maintained, async-capable successor) serves static files without
# moving each request to a thread. Ours add what Django lacks: the Content-Security-Policy
# header and gzip for whole text responses (webchat/middleware.py), and the first-run setup;
# two more put the request's id and its user's in every line it logs (webchat/logs.py).
MIDDLEWARE = [
    # First, so that every line logged for a request, even a refused Host, carries its id.
    "webchat.middleware.request_log_context",
    "django.middleware.security.SecurityMiddleware",
    "servestatic.middleware.ServeStaticMiddleware",
    "webchat.middleware.content_security_policy",
    "webchat.middleware.compress_text",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "accounts.time_zone.browser_time_zone_middleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.first_run_setup_middleware",
    "allauth.account.middleware.AccountMiddleware",
    "webchat.middleware.user_log_context",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "webchat.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "webchat.context_processors.webchat",
                "accounts.theme.theme_context",
                "accounts.privacy_notice.privacy_notice_context",
            ],
        },
    },
]

ASGI_APPLICATION = "webchat.asgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}"),
        conn_max_age=0,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["OPTIONS"] = {
        "pool": {
            "min_size": 1,
            "max_size": env_int("WEBCHAT_DB_POOL_SIZE", 10, minimum=1),
            "timeout": env_float("WEBCHAT_DB_POOL_TIMEOUT", 10.0),
        }
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Kept open: the chat path's database work (generations, sockets) runs on asgiref's one
    # shared thread, where Channels closes connections older than this around every call.
    # A request's own thread, and its connection, end with the request.
    DATABASES["default"]["CONN_MAX_AGE"] = None
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets readers proceed while a reply is being saved; NORMAL is safe under WAL.
        # Each request's new connection reads the file through a memory map (up to 256 MB)
        # rather than with a system call per page: a 2,000-message page, 64 → 55 ms of CPU.
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA mmap_size=268435456;"
        ),
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    DATABASES["default"]["TEST"] = {"NAME": env_str("WEBCHAT_TEST_DB_NAME") or None}

REDIS_URL = env_str("REDIS_URL")
# A Redis that does not answer fails a call after this many seconds (a frame's publish, a
# session's read) rather than holding up the reply or the request that made it.
REDIS_SOCKET_TIMEOUT = 2.0
if REDIS_URL:
    # Redis's publish/subscribe: a frame is published once for its conversation, and Redis
    # pushes it to the processes with a socket in it. channels-redis's other layer queues
    # a copy per socket and takes each off Redis in round trips of its own, which a busy
    # process cannot keep up with (benchmarks/RESULTS.md).
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_connect_timeout": REDIS_SOCKET_TIMEOUT,
                        "socket_timeout": REDIS_SOCKET_TIMEOUT,
                    }
                ],
                "prefix": env_str("WEBCHAT_CHANNEL_PREFIX", "webchat"),
            },
        }
    }
else:
    # One process: a local layer whose cost per frame does not grow with the number of
    # sockets, as Channels' own in-memory layer's does (webchat/channel_layers.py).
    CHANNEL_LAYERS = {"default": {"BACKEND": "webchat.channel_layers.LocalChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "conversations:index"
LOGOUT_REDIRECT_URL = "login"

# The interface speaks the browser's language (Accept-Language) unless the user picks one,
# kept in the django_language cookie (README, "Languages").
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("ko", "한국어")]
LOCALE_PATHS = [BASE_DIR / "locale"]
LANGUAGE_COOKIE_AGE = 365 * 24 * 60 * 60
LANGUAGE_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SAMESITE = "Lax"
# Where days and months begin, for quotas and the usage report (an IANA name).
TIME_ZONE = env_str("WEBCHAT_TIME_ZONE", "UTC")
try:
    ZoneInfo(TIME_ZONE)
except (ZoneInfoNotFoundError, ValueError):
    raise ImproperlyConfigured(
        f"WEBCHAT_TIME_ZONE must be a time zone name such as Europe/Paris, not {TIME_ZONE!r}."
    ) from None
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT") or BASE_DIR / "var" / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "servestatic.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
SERVESTATIC_USE_FINDERS = DEBUG

MEDIA_ROOT = Path(env_str("MEDIA_ROOT") or BASE_DIR / "var" / "media")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

SESSION_COOKIE_HTTPONLY = True
# How long a sign-in lasts without being saved again (Django's default, two weeks), and
# whether the browser forgets it on closing. A page's socket closes when its session ends.
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 14 * 24 * 60 * 60, minimum=60)
SESSION_EXPIRE_AT_BROWSER_CLOSE = env_bool("SESSION_EXPIRE_AT_BROWSER_CLOSE", False)
# Every request reads its session: from the cache, with the database behind it.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Scripts only from our own static files (htmx runs with allowEval off); images may
# also be blob: URLs (attachment previews); sockets connect back to this origin.
WEBCHAT_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
CSRF_COOKIE_HTTPONLY = False

# Logs go to standard error, one line per event: readable text, or JSON objects for log
# collectors with WEBCHAT_LOG_FORMAT=json. Lines logged while serving a request or writing
# a reply carry their ids (webchat/logs.py); daphne's access lines come through "webchat.access".
WEBCHAT_LOG_FORMAT = env_str("WEBCHAT_LOG_FORMAT", "text").lower()
if WEBCHAT_LOG_FORMAT not in {"text", "json"}:
    raise ImproperlyConfigured(
        f"WEBCHAT_LOG_FORMAT must be text or json, not {WEBCHAT_LOG_FORMAT!r}."
    )
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "webchat.logs.LogContextFilter"},
        "expected_refusals": {"()": "webchat.logs.ExpectedRefusalFilter"},
    },
    "formatters": {
        "text": {
            "()": "webchat.logs.TextFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s: %(message)s",
        },
        "json": {
            "()": "webchat.logs.json_formatter",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": WEBCHAT_LOG_FORMAT,
            "filters": ["expected_refusals", "context"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}

# /metrics (webchat/metrics.py) answers these addresses, and a bearer of this token; others
# get 404.
WEBCHAT_METRICS_ALLOWED = env_networks("WEBCHAT_METRICS_ALLOWED", "127.0.0.0/8,::1")
WEBCHAT_METRICS_TOKEN = env_str("WEBCHAT_METRICS_TOKEN")

# The upstream chat-completions API. With no key, a built-in demo model answers.
WEBCHAT_API_BASE = env_str("WEBCHAT_API_BASE", "https://api.evolink.ai/v1").rstrip("/")
WEBCHAT_API_KEY = env_str("WEBCHAT_API_KEY")
WEBCHAT_MODELS = env_list("WEBCHAT_MODELS", "gemini-3-pro-preview")
if not WEBCHAT_MODELS:
    raise ImproperlyConfigured("WEBCHAT_MODELS must name at least one model.")
WEBCHAT_DEMO_MODE = not WEBCHAT_API_KEY
if WEBCHAT_DEMO_MODE:
    WEBCHAT_MODELS = ["webchat-demo"]

WEBCHAT_MAX_MESSAGE_CHARS = env_int("WEBCHAT_MAX_MESSAGE_CHARS", 32_000, minimum=1)
WEBCHAT_CONNECT_TIMEOUT = env_float("WEBCHAT_CONNECT_TIMEOUT", 10.0, minimum=0.1)
WEBCHAT_READ_TIMEOUT = env_float("WEBCHAT_READ_TIMEOUT", 120.0, minimum=0.1)
# How often a streaming reply's changes are pushed to the page, and its text saved.
WEBCHAT_FRAME_INTERVAL = env_float("WEBCHAT_FRAME_INTERVAL", 0.05, minimum=0.0)
WEBCHAT_FRAME_BUDGET = env_int("WEBCHAT_FRAME_BUDGET", 1000, minimum=1)
WEBCHAT_SAVE_INTERVAL = env_float("WEBCHAT_SAVE_INTERVAL", 1.0, minimum=0.0)

# Faults and limits (README, "Design"). A reply gives up when no new text arrives for
# WEBCHAT_STALL_TIMEOUT seconds mid-reply. Rate limits (429) and server errors (5xx, before
# the first token) are retried with exponential backoff from WEBCHAT_RETRY_BASE_DELAY,
# honouring Retry-After, but never waiting longer than WEBCHAT_RATE_LIMIT_MAX_WAIT at once.
WEBCHAT_STALL_TIMEOUT = env_float("WEBCHAT_STALL_TIMEOUT", 30.0, minimum=0.01)
WEBCHAT_RATE_LIMIT_MAX_RETRIES = env_int("WEBCHAT_RATE_LIMIT_MAX_RETRIES", 3)
WEBCHAT_RATE_LIMIT_MAX_WAIT = env_float("WEBCHAT_RATE_LIMIT_MAX_WAIT", 60.0)
WEBCHAT_SERVER_ERROR_RETRIES = env_int("WEBCHAT_SERVER_ERROR_RETRIES", 2)
WEBCHAT_RETRY_BASE_DELAY = env_float("WEBCHAT_RETRY_BASE_DELAY", 1.0)
# On SIGTERM, replies being written get this long to finish before they are saved as
# interrupted (keep it under the service manager's stop timeout).
WEBCHAT_SHUTDOWN_GRACE = env_float("WEBCHAT_SHUTDOWN_GRACE", 20.0, minimum=0.0)
WEBCHAT_MAX_ACTIVE_REPLIES_PER_USER = env_int("WEBCHAT_MAX_ACTIVE_REPLIES_PER_USER", 3, minimum=1)
# Upstream requests beyond this wait in a queue, shown as "waiting" in the reply.
WEBCHAT_MAX_UPSTREAM_PER_PROCESS = env_int("WEBCHAT_MAX_UPSTREAM_PER_PROCESS", 50, minimum=1)
# Ask the model for a short title of each new conversation after its first reply (one
# small extra request); off, or when it fails, the first words of the first message stay.
WEBCHAT_MODEL_TITLES = env_bool("WEBCHAT_MODEL_TITLES", True)

# Images attached to messages (conversations/images.py). Django applies no size limit to
# uploaded files (DATA_UPLOAD_MAX_MEMORY_SIZE counts only the other fields, and files over
# FILE_UPLOAD_MAX_MEMORY_SIZE are spooled to disk), so every file reaches the checks below.
WEBCHAT_MAX_IMAGES_PER_MESSAGE = env_int("WEBCHAT_MAX_IMAGES_PER_MESSAGE", 8, minimum=1)
WEBCHAT_MAX_IMAGE_BYTES = env_int("WEBCHAT_MAX_IMAGE_BYTES", 20 * 1024 * 1024, minimum=1)
WEBCHAT_MAX_IMAGE_PIXELS = env_int("WEBCHAT_MAX_IMAGE_PIXELS", 40_000_000, minimum=1)
WEBCHAT_IMAGE_MAX_SIDE = env_int("WEBCHAT_IMAGE_MAX_SIDE", 2048, minimum=16)
# Memory reading one image may take, judged from its header before it is decoded (a small
# file can hold a huge picture); each process decodes one image at a time.
WEBCHAT_MAX_IMAGE_MEMORY = env_int("WEBCHAT_MAX_IMAGE_MEMORY", 192 * 1024 * 1024, minimum=1)
# The largest request body sent upstream; the oldest images are left out to stay under it.
WEBCHAT_MAX_REQUEST_BYTES = env_int("WEBCHAT_MAX_REQUEST_BYTES", 20 * 1024 * 1024, minimum=1024)
# Stored images go through Django's storage API: a folder under MEDIA_ROOT unless another
# backend is named, e.g. storages.backends.s3.S3Storage (django-storages) with its options.
MEDIA_STORAGE_BACKEND = env_str("MEDIA_STORAGE_BACKEND")
if MEDIA_STORAGE_BACKEND:
    try:
        _media_storage_options = json.loads(env_str("MEDIA_STORAGE_OPTIONS") or "{}")
    except ValueError:
        raise ImproperlyConfigured("MEDIA_STORAGE_OPTIONS must be a JSON object.") from None
    if not isinstance(_media_storage_options, dict):
        raise ImproperlyConfigured("MEDIA_STORAGE_OPTIONS must be a JSON object.")
    STORAGES["default"] = {"BACKEND": MEDIA_STORAGE_BACKEND, "OPTIONS": _media_storage_options}

# What a client may send the server (webchat/request_limits.py, enforced before daphne
# reads it): a request's body, refused with 413 as soon as its Content-Length is over this
# (by default a message of the most and largest images, and its text); seconds to send a
# request's head, and the whole request, before it is answered 408 and closed.
WEBCHAT_MAX_BODY_BYTES = env_int(
    "WEBCHAT_MAX_BODY_BYTES",
    WEBCHAT_MAX_IMAGES_PER_MESSAGE * WEBCHAT_MAX_IMAGE_BYTES + 1024 * 1024,
    minimum=1024 * 1024,
)
WEBCHAT_REQUEST_HEADERS_TIMEOUT = env_float("WEBCHAT_REQUEST_HEADERS_TIMEOUT", 20.0, minimum=0.1)
WEBCHAT_REQUEST_TIMEOUT = env_float("WEBCHAT_REQUEST_TIMEOUT", 120.0, minimum=0.1)
# Open sockets (chat pages) one user may have at once, across processes.
WEBCHAT_MAX_SOCKETS_PER_USER = env_int("WEBCHAT_MAX_SOCKETS_PER_USER", 20, minimum=1)

# Production (docs/deployment.md). Behind a TLS-terminating proxy that sets
# X-Forwarded-Proto, requests count as HTTPS, cookies are sent only over HTTPS, plain HTTP
# is redirected and browsers are told to use HTTPS only (HSTS).
WEBCHAT_BEHIND_TLS_PROXY = env_bool("WEBCHAT_BEHIND_TLS_PROXY", False)
if WEBCHAT_BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    LANGUAGE_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("WEBCHAT_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("WEBCHAT_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("WEBCHAT_HSTS_PRELOAD", False)
    # The load balancer probes /healthz, and Prometheus scrapes /metrics, over plain HTTP
    # on the loopback.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
# The cache holds the login throttle's counters, so every process must share it, and
# sessions in front of the database (SESSION_ENGINE). While Redis is unreachable, sessions
# are read from and written to the database alone: django-redis ignores the sessions
# cache's connection errors, which Django's own backend raises from every call that
# cached_db makes outside load(). The throttle's cache raises them, so that the throttle
# knows, says so and counts in the "local" cache meanwhile (accounts/login_throttle.py).
_local_cache = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "local"}
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("WEBCHAT_CHANNEL_PREFIX", "webchat"),
            "OPTIONS": {
                "socket_connect_timeout": REDIS_SOCKET_TIMEOUT,
                "socket_timeout": REDIS_SOCKET_TIMEOUT,
            },
        },
        "sessions": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("WEBCHAT_CHANNEL_PREFIX", "webchat"),
            "OPTIONS": {
                "IGNORE_EXCEPTIONS": True,
                "SOCKET_CONNECT_TIMEOUT": REDIS_SOCKET_TIMEOUT,
                "SOCKET_TIMEOUT": REDIS_SOCKET_TIMEOUT,
            },
        },
        "local": _local_cache,
    }
    SESSION_CACHE_ALIAS = "sessions"
    # Each ignored error is logged, a line each (no traceback), under this logger.
    DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
    DJANGO_REDIS_LOGGER = "webchat.sessions_cache"
else:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "local": _local_cache,
    }

# Login throttling (accounts/login_throttle.py; README, "Users, roles and limits"). Within
# the window, this many failed password attempts for one username from one address, failures
# with this many usernames from one address, or this many failures for one username from
# any address lock them out for the window; so do this many sign-ups from one address.
WEBCHAT_LOGIN_MAX_FAILURES = env_int("WEBCHAT_LOGIN_MAX_FAILURES", 5, minimum=1)
WEBCHAT_LOGIN_MAX_USERNAMES_PER_ADDRESS = env_int(
    "WEBCHAT_LOGIN_MAX_USERNAMES_PER_ADDRESS", 20, minimum=1
)
WEBCHAT_LOGIN_MAX_FAILURES_PER_USERNAME = env_int(
    "WEBCHAT_LOGIN_MAX_FAILURES_PER_USERNAME", 50, minimum=1
)
WEBCHAT_SIGNUPS_PER_ADDRESS = env_int("WEBCHAT_SIGNUPS_PER_ADDRESS", 20, minimum=1)
WEBCHAT_LOGIN_LOCKOUT_SECONDS = env_int("WEBCHAT_LOGIN_LOCKOUT_SECONDS", 900, minimum=1)
# Behind a proxy every connection comes from the proxy. From these addresses or networks
# (nginx on the same machine: 127.0.0.1), the client is read from X-Forwarded-For, and the
# request's id for the logs from X-Request-ID (webchat/middleware.py).
WEBCHAT_TRUSTED_PROXIES = env_networks("WEBCHAT_TRUSTED_PROXIES")
for _removed, _instead in [
    ("WEBCHAT_CLIENT_IP_HEADER", "WEBCHAT_TRUSTED_PROXIES"),
    ("WEBCHAT_LOGIN_MAX_FAILURES_PER_ADDRESS", "WEBCHAT_LOGIN_MAX_USERNAMES_PER_ADDRESS"),
]:
    if env_str(_removed):
        raise ImproperlyConfigured(
            f"{_removed} is no longer read: set {_instead} instead (docs/deployment.md)."
        )

# Users, roles and limits (README, "Users, roles and limits"). Per-user defaults; an admin
# can override them for one user. 0 means unlimited.
WEBCHAT_MESSAGES_PER_MINUTE = env_int("WEBCHAT_MESSAGES_PER_MINUTE", 0)
WEBCHAT_DAILY_TOKEN_QUOTA = env_int("WEBCHAT_DAILY_TOKEN_QUOTA", 0)
WEBCHAT_MONTHLY_TOKEN_QUOTA = env_int("WEBCHAT_MONTHLY_TOKEN_QUOTA", 0)
# Tokens a reply being written holds against the quotas until its real count is stored,
# when its conversation sets no maximum length.
WEBCHAT_RESERVED_TOKENS_PER_REPLY = env_int("WEBCHAT_RESERVED_TOKENS_PER_REPLY", 2000, minimum=1)
# Whether anyone may sign up; new accounts wait, inactive, for an admin's approval.
WEBCHAT_SELF_SIGNUP = env_bool("WEBCHAT_SELF_SIGNUP", False)
WEBCHAT_INVITATION_DAYS = env_int("WEBCHAT_INVITATION_DAYS", 7, minimum=1)
# Reviewing conversations (README, "Reviewing conversations"). Off: the admin shows usage
# figures only, never another user's text or images. Every read by staff is audited.
WEBCHAT_STAFF_CAN_READ_CONVERSATIONS = env_bool("WEBCHAT_STAFF_CAN_READ_CONVERSATIONS", True)
# Conversations inactive for longer are deleted by `manage.py delete_old_conversations`.
WEBCHAT_RETENTION_DAYS = env_int("WEBCHAT_RETENTION_DAYS", 0)
# The OpenAI-compatible API (README, "API"): personal keys, the browser's rules.
# Off: API exchanges are not stored as conversations; their token counts still are.
WEBCHAT_API_STORE = env_bool("WEBCHAT_API_STORE", True)
# Wrong keys from one address within WEBCHAT_LOGIN_LOCKOUT_SECONDS before it is locked out.
WEBCHAT_API_KEY_MAX_FAILURES = env_int("WEBCHAT_API_KEY_MAX_FAILURES", 20, minimum=1)
# Password reset mails; the console backend prints them to the server's log.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "webchat@localhost")

# Single sign-on with OpenID Connect (README, "Single sign-on"; accounts/sso.py), through
# django-allauth. Without an issuer, only passwords sign in.
WEBCHAT_OIDC_ISSUER = env_str("WEBCHAT_OIDC_ISSUER").rstrip("/")
WEBCHAT_OIDC_NAME = env_str("WEBCHAT_OIDC_NAME", "single sign-on")
WEBCHAT_OIDC_LINK_BY_EMAIL = env_bool("WEBCHAT_OIDC_LINK_BY_EMAIL", False)
WEBCHAT_OIDC_ROLES_CLAIM = env_str("WEBCHAT_OIDC_ROLES_CLAIM")
# The identity provider's groups (values of the roles claim) that grant each role.
WEBCHAT_OIDC_ROLE_GROUPS = {
    "Member": env_list("WEBCHAT_OIDC_ROLE_MEMBER", ""),
    "Reviewer": env_list("WEBCHAT_OIDC_ROLE_REVIEWER", ""),
    "Admin": env_list("WEBCHAT_OIDC_ROLE_ADMIN", ""),
}
WEBCHAT_PASSWORD_LOGIN = env_bool("WEBCHAT_PASSWORD_LOGIN", True)
if WEBCHAT_OIDC_ROLES_CLAIM and not any(WEBCHAT_OIDC_ROLE_GROUPS.values()):
    raise ImproperlyConfigured(
        "WEBCHAT_OIDC_ROLES_CLAIM needs at least one of WEBCHAT_OIDC_ROLE_MEMBER, "
        "WEBCHAT_OIDC_ROLE_REVIEWER and WEBCHAT_OIDC_ROLE_ADMIN."
    )
if not WEBCHAT_PASSWORD_LOGIN and not WEBCHAT_OIDC_ISSUER:
    raise ImproperlyConfigured("WEBCHAT_PASSWORD_LOGIN=false needs WEBCHAT_OIDC_ISSUER.")
SOCIALACCOUNT_PROVIDERS = {
    "openid_connect": {
        # Adds the nonce, and a clear page when the provider cannot be reached.
        "provider_class": "accounts.sso.SingleSignOnProvider",
        "OAUTH_PKCE_ENABLED": True,
        "APPS": [
            {
                "provider_id": "sso",  # accounts.sso.PROVIDER_ID, in its URLs
                "name": WEBCHAT_OIDC_NAME,
                "client_id": env_str("WEBCHAT_OIDC_CLIENT_ID"),
                "secret": env_str("WEBCHAT_OIDC_CLIENT_SECRET"),
                "settings": {
                    "server_url": WEBCHAT_OIDC_ISSUER,
                    "scope": env_str("WEBCHAT_OIDC_SCOPES", "openid email profile").split(),
                },
            }
        ]
        if WEBCHAT_OIDC_ISSUER
        else [],
    }
}
if WEBCHAT_OIDC_ISSUER:
    if not SOCIALACCOUNT_PROVIDERS["openid_connect"]["APPS"][0]["client_id"]:
        raise ImproperlyConfigured("WEBCHAT_OIDC_ISSUER needs WEBCHAT_OIDC_CLIENT_ID.")
    _issuer = urlsplit(WEBCHAT_OIDC_ISSUER)
    if _issuer.scheme not in {"https", "http"} or not _issuer.netloc:
        raise ImproperlyConfigured(
            f"WEBCHAT_OIDC_ISSUER must be a URL such as https://sso.example.com, "
            f"not {WEBCHAT_OIDC_ISSUER!r}."
        )
    # Signing in and out are forms that the browser follows to the provider's pages, at
    # the issuer's origin: the policy's form-action must allow it.
    WEBCHAT_CONTENT_SECURITY_POLICY = WEBCHAT_CONTENT_SECURITY_POLICY.replace(
        "form-action 'self'", f"form-action 'self' {_issuer.scheme}://{_issuer.netloc}"
    )
SOCIALACCOUNT_ADAPTER = "accounts.sso.SingleSignOnAdapter"
SOCIALACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_EMAIL_VERIFICATION = "none"
