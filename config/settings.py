"""Settings for the live-shopping platform: one module, driven by environment variables.

With neither DATABASE_URL nor REDIS_URL set the project runs in its *embedded default*:
SQLite, the in-memory channel layer and Celery tasks executed in-process, so a newcomer
sees the whole product with one command. With them set it runs on PostgreSQL and Redis
(channel layer, Celery broker, room fan-out, counters).
"""

import logging
import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent
logger = logging.getLogger("config")


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


# --- Core --------------------------------------------------------------------------------

DEBUG = env_bool("DEBUG", False)
# The secrets' published defaults: fine for the embedded default, tests and DEBUG; in
# production each one is a system check error (config/checks.py, docs/operations.md).
DEV_SECRETS = {
    "SECRET_KEY": "insecure-dev-key-set-SECRET_KEY-in-production",
    "RETAILER_API_SECRET": "sandbox-retailer-secret",
    "PAYMENT_CALLBACK_SECRET": "sandbox-payment-secret",
}
SECRET_KEY = env("SECRET_KEY") or DEV_SECRETS["SECRET_KEY"]
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "http://127.0.0.1:8000,http://localhost:8000")

DATABASE_URL = env("DATABASE_URL")
REDIS_URL = env("REDIS_URL")
EMBEDDED = not DATABASE_URL and not REDIS_URL

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "axes",
    "accounts",
    "retailer",
    "catalog",
    "streams",
    "orders",
    "fulfilment",
    "config.apps.ConfigConfig",  # the production safety checks (config/checks.py)
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "config.headers.PermissionsPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "inbound.middleware.FormTextMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.site",
            ],
        },
    },
]

# --- Database ----------------------------------------------------------------------------

if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0), conn_health_checks=True
        )
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env("SQLITE_PATH") or BASE_DIR / "var" / "db.sqlite3",
            # SQLite serialises writers; wait rather than fail with "database is locked".
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Log-in and sign-up throttling, per account and per address (accounts/throttle.py). axes'
# backend comes first: a locked account or address is refused before any password hashing.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # each on its own: an account, an address
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # a lock-out lasts AXES_COOLOFF_TIME, no longer
AXES_CLIENT_IP_CALLABLE = "accounts.throttle.client_ip"
AXES_LOCKOUT_CALLABLE = "accounts.throttle.lockout_response"
AXES_DISABLE_ACCESS_LOG = True  # failures are recorded; successful log-ins need no row each
SIGNUP_LIMIT_PER_ADDRESS = env_int("SIGNUP_LIMIT_PER_ADDRESS", 5)
SIGNUP_LIMIT_PER_USERNAME = env_int("SIGNUP_LIMIT_PER_USERNAME", 5)
SIGNUP_WINDOW_SECONDS = env_int("SIGNUP_WINDOW_SECONDS", 3600)
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "streams:home"
LOGOUT_REDIRECT_URL = "streams:home"

# --- Redis: channel layer, cache, Celery -------------------------------------------------

# redis-py 8 caps a pool at 100 connections and adds a 5 s socket timeout that collides
# with channels_redis' 5 s blocking read (channels_redis issue 422): lift both.
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "socket_timeout": None, "max_connections": 10000}],
                "prefix": env("REDIS_PREFIX", "live") + ":asgi",
                "capacity": 1000,
                "expiry": 30,
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env("REDIS_PREFIX", "live"),
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Prefix for every Redis key and pub/sub channel this project owns (room fan-out,
# counters); lets several checkouts or test runs share one Redis server.
REDIS_PREFIX = env("REDIS_PREFIX", "live")

# The longest a task may wait between retries (fulfilment hand-off backs off up to this).
CELERY_MAX_RETRY_DELAY = env_int("CELERY_MAX_RETRY_DELAY", 600)

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 120
CELERY_TASK_SOFT_TIME_LIMIT = 100
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Must exceed the longest countdown a task is retried with, or Redis re-delivers a
    # message whose ETA has not come yet to a second worker.
    "visibility_timeout": CELERY_MAX_RETRY_DELAY * 3 + 3600,
    "global_keyprefix": REDIS_PREFIX + ":celery:",
}
CELERY_TIMEZONE = "UTC"
# The embedded default has no `celery beat`: the web process runs the schedule itself
# (config/embedded_beat.py).
EMBEDDED_BEAT = env_bool("EMBEDDED_BEAT", True)
CELERY_BEAT_SCHEDULE = {
    "catalog-sync": {"task": "catalog.tasks.sync_catalog", "schedule": env_int("CATALOG_SYNC_SECONDS", 300)},
    "orders-expire-reservations": {"task": "orders.tasks.expire_reservations", "schedule": 15},
    "fulfilment-sweep": {"task": "fulfilment.tasks.sweep", "schedule": float(env("FULFILMENT_SWEEP_SECONDS", "2"))},
    "fulfilment-settle-commissions": {"task": "fulfilment.tasks.settle_commissions", "schedule": 300},
    "retailer-sandbox-tick": {"task": "retailer.tasks.sandbox_tick", "schedule": 2},
}

# --- Internationalisation ----------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", "Asia/Shanghai")
USE_I18N = True
USE_TZ = True

# --- Static, media, HLS ------------------------------------------------------------------

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env("STATIC_ROOT") or BASE_DIR / "var" / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env("MEDIA_ROOT") or BASE_DIR / "var" / "media")
# Serve uploaded media from Django itself (embedded default); nginx serves it in production.
SERVE_MEDIA = env_bool("SERVE_MEDIA", True)

# Where nginx-rtmp writes HLS, and the public URL players load it from.
HLS_ROOT = Path(env("HLS_ROOT") or BASE_DIR / "var" / "hls")
HLS_URL = env("HLS_URL", "http://127.0.0.1:8080/hls/")
RTMP_URL = env("RTMP_URL", "rtmp://127.0.0.1:1935/live")
# Shared secret nginx sends with on_publish / on_publish_done; empty = loopback only.
MEDIA_HOOK_SECRET = env("MEDIA_HOOK_SECRET")

# --- Partner retailer and payment --------------------------------------------------------

RETAILER_BACKEND = env("RETAILER_BACKEND", "inprocess")  # "inprocess" or "http"
RETAILER_API_URL = env("RETAILER_API_URL", "http://127.0.0.1:8000/retailer-api/")
RETAILER_API_KEY = env("RETAILER_API_KEY", "live-partner")
RETAILER_API_SECRET = env("RETAILER_API_SECRET") or DEV_SECRETS["RETAILER_API_SECRET"]
RETAILER_TIMEOUT = float(env("RETAILER_TIMEOUT", "5"))
RETAILER_RETRIES = env_int("RETAILER_RETRIES", 2)
RETAILER_CODE = env("RETAILER_CODE", "jdm")

# Fulfilment (docs/fulfilment.md): the hand-off outbox and the retailer's signed callbacks.
FULFILMENT_MAX_ATTEMPTS = env_int("FULFILMENT_MAX_ATTEMPTS", 8)
FULFILMENT_BACKOFF_SECONDS = float(env("FULFILMENT_BACKOFF_SECONDS", "2"))  # first retry; doubles, with jitter
FULFILMENT_LEASE_SECONDS = float(env("FULFILMENT_LEASE_SECONDS", "60"))  # a silent sender loses its claim
FULFILMENT_REQUEUE_SECONDS = float(env("FULFILMENT_REQUEUE_SECONDS", "15"))  # queued, not started: queue again
FULFILMENT_RETURN_WINDOW_DAYS = env_int("FULFILMENT_RETURN_WINDOW_DAYS", 7)
# Where the retailer posts its callbacks; empty = the in-process sandbox calls our handler directly.
RETAILER_CALLBACK_URL = env("RETAILER_CALLBACK_URL")
RETAILER_CALLBACK_SECRET = env("RETAILER_CALLBACK_SECRET") or RETAILER_API_SECRET
# Sandbox retailer: seconds between packed, shipped and delivered (fast in the demo).
RETAILER_SANDBOX_STEP_SECONDS = float(env("RETAILER_SANDBOX_STEP_SECONDS", "5"))

PAYMENT_BACKEND = env("PAYMENT_BACKEND", "sandbox")
PAYMENT_CALLBACK_SECRET = env("PAYMENT_CALLBACK_SECRET") or DEV_SECRETS["PAYMENT_CALLBACK_SECRET"]
# Sandbox gateway: seconds before it confirms a "needs confirmation" card (0 = never; tests).
PAYMENT_SANDBOX_CONFIRM_SECONDS = float(env("PAYMENT_SANDBOX_CONFIRM_SECONDS", "3"))
# Unpaid reservations return their stock after this many minutes (flash sales set their own).
ORDERS_RESERVATION_MINUTES = env_int("ORDERS_RESERVATION_MINUTES", 10)
# A room hears an item's stock move at most once per this many seconds (orders.live).
ORDERS_STOCK_COALESCE_SECONDS = float(env("ORDERS_STOCK_COALESCE_SECONDS", "0.3"))
# Room-socket buys run on this many async PostgreSQL connections per web process (orders.fastpath).
ORDERS_FASTPATH_POOL_SIZE = env_int("ORDERS_FASTPATH_POOL_SIZE", 4)
# A flash sale's Redis admission gate in front of PostgreSQL's (orders.gate); off: PostgreSQL alone.
ORDERS_REDIS_GATE = env_bool("ORDERS_REDIS_GATE", True)

# --- Security ----------------------------------------------------------------------------

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG and not EMBEDDED)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# Behind our nginx: it sets X-Forwarded-Proto and X-Forwarded-For (the client's address
# for throttling is its last hop).
BEHIND_PROXY = env_bool("BEHIND_PROXY")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_PROXY else None
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# Security headers on every page (docs/operations.md, "Security headers"). No inline script
# or style anywhere: our pages load only this site's files; the admin's few inline blocks
# carry the request's nonce. hls.js plays through blob: URLs and may start a blob: worker;
# playlists and segments come from HLS_URL's origin. Websockets are same-origin ('self').
_hls = urlsplit(HLS_URL)
_HLS_ORIGIN = [f"{_hls.scheme}://{_hls.netloc}"] if _hls.netloc else []  # empty: HLS is served by this site
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF, "data:", "blob:"],
    "media-src": [CSP.SELF, "blob:", *_HLS_ORIGIN],
    "connect-src": [CSP.SELF, *_HLS_ORIGIN],
    "worker-src": [CSP.SELF, "blob:"],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Seconds between GIL switches in web processes (config/asgi.py); see docs/performance.md.
WEB_GIL_SWITCH_INTERVAL = float(env("WEB_GIL_SWITCH_INTERVAL", "0.001"))
# Websocket frames larger than this are refused (inbound; docs/protocol.md, "Limits").
WS_MAX_FRAME_BYTES = env_int("WS_MAX_FRAME_BYTES", 4096)

# --- Production safety (config/checks.py, docs/operations.md) ------------------------------

# Production is any run with DEBUG off that is neither the embedded default nor the test
# settings. There a missing or published secret, a sandbox without its opt-in, or "*" in
# ALLOWED_HOSTS is a system check error, and the web process refuses to start.
PRODUCTION = not DEBUG and not EMBEDDED
# The sandbox gateway moves no money and the sandbox retailer ships nothing: a stack that
# runs them with DEBUG off (`make up`, a staging site) says so explicitly.
ALLOW_SANDBOX_PAYMENTS = env_bool("ALLOW_SANDBOX_PAYMENTS")
ALLOW_SANDBOX_RETAILER = env_bool("ALLOW_SANDBOX_RETAILER")
# The sandbox retailer's own HTTP API (/retailer-api/) answers only outside production or
# where the sandbox retailer is allowed.
SANDBOX_RETAILER_API = not PRODUCTION or ALLOW_SANDBOX_RETAILER
# Deploy checks an operator has decided to live with, each with its reason in
# docs/operations.md (e.g. "security.W005,security.W021").
SILENCED_SYSTEM_CHECKS = env_list("SILENCED_SYSTEM_CHECKS")

# --- Logging -----------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}
if EMBEDDED:  # tasks run in the web process: the beat's jobs would log a "succeeded" line a second
    LOGGING["loggers"]["celery.app.trace"] = {"level": "WARNING"}

if EMBEDDED and not env_bool("QUIET_EMBEDDED"):
    logger.warning(
        "EMBEDDED DEFAULT: no DATABASE_URL/REDIS_URL set -> SQLite at %s, in-memory channel "
        "layer, Celery tasks run in-process. Set DATABASE_URL and REDIS_URL for the full stack.",
        DATABASES["default"]["NAME"],
    )
