"""Settings for Webchat, read from the environment with working defaults.

Bad values fail loudly at start-up rather than being silently replaced.
"""

import json
import os
from pathlib import Path

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
    "django.contrib.admin",
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
]

# Django's own middleware, under their own names, so that its deployment checks see them.
# ServeStatic (WhiteNoise's maintained, async-capable successor) serves static files without
# moving each request to a thread. Ours add what Django lacks: the Content-Security-Policy
# header and gzip for whole text responses (webchat/middleware.py), and the first-run setup.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "servestatic.middleware.ServeStaticMiddleware",
    "webchat.middleware.content_security_policy",
    "webchat.middleware.compress_text",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.first_run_setup_middleware",
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
if REDIS_URL:
    # Redis's publish/subscribe: a frame is published once for its conversation, and Redis
    # pushes it to the processes with a socket in it. channels-redis's other layer queues
    # a copy per socket and takes each off Redis in round trips of its own, which a busy
    # process cannot keep up with (benchmarks/RESULTS.md).
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_URL],
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
TIME_ZONE = "UTC"
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

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}

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
# How often streamed text is pushed to the page, re-rendered as Markdown, and saved.
WEBCHAT_FRAME_INTERVAL = env_float("WEBCHAT_FRAME_INTERVAL", 0.05, minimum=0.0)
WEBCHAT_RENDER_INTERVAL = env_float("WEBCHAT_RENDER_INTERVAL", 0.75, minimum=0.0)
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
# A streaming reply's heartbeat is refreshed with every save; one older than this means its
# generation died (say, the server was killed), and it is marked interrupted.
WEBCHAT_STALE_REPLY_SECONDS = env_float("WEBCHAT_STALE_REPLY_SECONDS", 30.0, minimum=0.1)
if WEBCHAT_STALE_REPLY_SECONDS < 3 * WEBCHAT_SAVE_INTERVAL:
    raise ImproperlyConfigured(
        "WEBCHAT_STALE_REPLY_SECONDS must be at least three times WEBCHAT_SAVE_INTERVAL, "
        "or live replies would be taken for dead ones."
    )
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
    # The load balancer probes /healthz over plain HTTP on the loopback.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
# The cache holds the login throttle's counters, so every process must share it.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("WEBCHAT_CHANNEL_PREFIX", "webchat"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Login throttling (accounts/login_throttle.py): after this many failed sign-ins for
# one username or from one address within the window, further attempts are refused.
WEBCHAT_LOGIN_MAX_FAILURES = env_int("WEBCHAT_LOGIN_MAX_FAILURES", 5, minimum=1)
WEBCHAT_LOGIN_MAX_FAILURES_PER_ADDRESS = env_int(
    "WEBCHAT_LOGIN_MAX_FAILURES_PER_ADDRESS", 20, minimum=1
)
WEBCHAT_LOGIN_LOCKOUT_SECONDS = env_int("WEBCHAT_LOGIN_LOCKOUT_SECONDS", 900, minimum=1)
# Behind a proxy every request comes from the proxy's address; it names the client in this
# header instead (nginx: X-Real-IP). Set it only when a proxy always overwrites the header.
WEBCHAT_CLIENT_IP_HEADER = env_str("WEBCHAT_CLIENT_IP_HEADER")

# Users, roles and limits (README, "Users, roles and limits"). Per-user defaults; an admin
# can override them for one user. 0 means unlimited.
WEBCHAT_MESSAGES_PER_MINUTE = env_int("WEBCHAT_MESSAGES_PER_MINUTE", 0)
WEBCHAT_DAILY_TOKEN_QUOTA = env_int("WEBCHAT_DAILY_TOKEN_QUOTA", 0)
WEBCHAT_MONTHLY_TOKEN_QUOTA = env_int("WEBCHAT_MONTHLY_TOKEN_QUOTA", 0)
# Whether anyone may sign up; new accounts wait, inactive, for an admin's approval.
WEBCHAT_SELF_SIGNUP = env_bool("WEBCHAT_SELF_SIGNUP", False)
WEBCHAT_INVITATION_DAYS = env_int("WEBCHAT_INVITATION_DAYS", 7, minimum=1)
# Reviewing conversations (README, "Reviewing conversations"). Off: the admin shows usage
# figures only, never another user's text or images. Every read by staff is audited.
WEBCHAT_STAFF_CAN_READ_CONVERSATIONS = env_bool("WEBCHAT_STAFF_CAN_READ_CONVERSATIONS", True)
# Conversations inactive for longer are deleted by `manage.py delete_old_conversations`.
WEBCHAT_RETENTION_DAYS = env_int("WEBCHAT_RETENTION_DAYS", 0)
# Password reset mails; the console backend prints them to the server's log.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "webchat@localhost")
