"""Pinhole settings: one file, every value from the environment, embedded defaults for one machine.

With no variables set, Pinhole runs with no servers at all: SQLite in WAL mode, files and the
Celery broker under PINHOLE_DATA_DIR. DATABASE_URL, CELERY_BROKER_URL and PINHOLE_S3_BUCKET switch to
PostgreSQL, Redis and S3. Every variable is documented in docker/.env.example.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

# The registry is data: importing it pulls in no torch (a test keeps the web process torch-free).
from classifier.backbones import BACKBONES, DEFAULT_BACKBONE, downloads_allowed
from classifier.engines import choose as choose_engine
from classifier.errors import BackboneUnavailable
from webui.lib.env import (
    ConfigError,
    broker_url,
    database_config,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_path,
    env_str,
    keep_private,
    storages_config,
)
from webui.lib.rates import Rate, parse_rate

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = env_path("PINHOLE_DATA_DIR", BASE_DIR / "var")
DATA_DIR.mkdir(parents=True, exist_ok=True)
keep_private(DATA_DIR)  # the database, the secret key and every upload: this account's alone


def _secret_key() -> str:
    # A self-hosted install should not need a secret in its environment to start; generate one
    # on first run and keep it with the data so sessions survive restarts.
    key = env_str("DJANGO_SECRET_KEY")
    if key:
        return key
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "webui.ratelimit",
    "webui.projects",
    "webui.training",
    "webui.serving",
    "webui.api",
]

MIDDLEWARE = [
    "webui.lib.limits.RequestSizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "webui.lib.headers.ThirdPartyStylesMiddleware",
    "webui.lib.headers.PrivatePagesMiddleware",
    "webui.lib.decoding.BusyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "webui.urls"
WSGI_APPLICATION = "webui.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
            "builtins": ["webui.lib.templatetags"],
        },
    },
]

DATABASES = {"default": database_config(env_str("DATABASE_URL"), DATA_DIR)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "projects:list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("PINHOLE_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- files ----------------------------------------------------------------------------------------
STATIC_URL = "static/"
# Container images collect static files at build time into a path of their own (PINHOLE_STATIC_ROOT),
# so nothing of the image lives in the /data volume.
STATIC_ROOT = env_path("PINHOLE_STATIC_ROOT", DATA_DIR / "static")
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns on every request while it is missing
STATICFILES_DIRS = [BASE_DIR / "webui" / "static"]
# A page rendered before `collectstatic` (tests, a first runserver) falls back to unhashed names.
WHITENOISE_MANIFEST_STRICT = False
MEDIA_ROOT = DATA_DIR / "media"
# Uploaded files are never served by URL: images go through access-checked views that re-encode.
MEDIA_URL = "/media-not-served/"
STORAGES = storages_config(os.environ, MEDIA_ROOT)

# Upload limits: how many files and how many bytes one request may carry (Django caps neither).
PINHOLE_MAX_IMAGE_MB = env_float("PINHOLE_MAX_IMAGE_MB", 20.0, minimum=0.1)
PINHOLE_MAX_REQUEST_MB = env_float("PINHOLE_MAX_REQUEST_MB", 50.0, minimum=0.1)
PINHOLE_MAX_FILES_PER_REQUEST = env_int("PINHOLE_MAX_FILES_PER_REQUEST", 100, minimum=1)
DATA_UPLOAD_MAX_NUMBER_FILES = PINHOLE_MAX_FILES_PER_REQUEST
# Decoding pictures inside requests (webui/lib/decoding.py): the most pixels a prediction or an upload
# may decode to (refused from the header before any decoding), and how many decodes one web process
# runs at once (a request that waits longer than PINHOLE_DECODE_WAIT_S for one is answered 503).
PINHOLE_PREDICT_MAX_MEGAPIXELS = env_float("PINHOLE_PREDICT_MAX_MEGAPIXELS", 24.0, minimum=0.1)
PINHOLE_UPLOAD_MAX_MEGAPIXELS = env_float("PINHOLE_UPLOAD_MAX_MEGAPIXELS", 60.0, minimum=0.1)
PINHOLE_DECODE_SLOTS = env_int("PINHOLE_DECODE_SLOTS", 2, minimum=1)
PINHOLE_DECODE_WAIT_S = env_float("PINHOLE_DECODE_WAIT_S", 20.0, minimum=0.1)
# Zip imports (zip bombs, path tricks): checked from the central directory before anything is extracted.
# PINHOLE_MAX_ZIP_MB was this setting's name before the PINHOLE_ZIP_MAX_* names; still read.
PINHOLE_ZIP_MAX_MB = env_float(
    "PINHOLE_ZIP_MAX_MB" if "PINHOLE_ZIP_MAX_MB" in os.environ else "PINHOLE_MAX_ZIP_MB", 200.0, minimum=1
)
PINHOLE_ZIP_MAX_UNCOMPRESSED_MB = env_float("PINHOLE_ZIP_MAX_UNCOMPRESSED_MB", 200.0, minimum=1)
PINHOLE_ZIP_MAX_ENTRIES = env_int("PINHOLE_ZIP_MAX_ENTRIES", 2000, minimum=1)
PINHOLE_ZIP_MAX_RATIO = env_float("PINHOLE_ZIP_MAX_RATIO", 50.0, minimum=1)
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# The limiter runs first and passes chunks on; the stock handlers then keep small files in memory
# and spool large ones to disk.
FILE_UPLOAD_HANDLERS = [
    "webui.lib.limits.LimitedUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
FILE_UPLOAD_TEMP_DIR = None

# Rate limits per minute: public share-page predictions per IP, failed share token lookups per IP
# (guessing), and "Try it" predictions per signed-in user.
PINHOLE_SHARE_RATE_PER_MINUTE = env_int("PINHOLE_SHARE_RATE_PER_MINUTE", 20, minimum=1)
# "Not right? Pick the right one" from one visitor's address, per hour (each sends a photo to review).
PINHOLE_SHARE_FEEDBACK_PER_HOUR = env_int("PINHOLE_SHARE_FEEDBACK_PER_HOUR", 20, minimum=1)
# Models a share page hands to one address per hour for "run on this device" (each about 16 MB).
PINHOLE_SHARE_MODELS_PER_HOUR = env_int("PINHOLE_SHARE_MODELS_PER_HOUR", 10, minimum=1)
PINHOLE_SHARE_LOOKUP_FAILURES_PER_MINUTE = env_int("PINHOLE_SHARE_LOOKUP_FAILURES_PER_MINUTE", 30, minimum=1)
PINHOLE_TRY_RATE_PER_MINUTE = env_int("PINHOLE_TRY_RATE_PER_MINUTE", 120, minimum=1)

# Django's cache (derived images' ETags and the like): one process keeps it in memory; several web
# processes or hosts share Redis: PINHOLE_CACHE_URL=redis://host:6379/1.
_CACHE_URL = env_str("PINHOLE_CACHE_URL")
if _CACHE_URL and not _CACHE_URL.startswith(("redis://", "rediss://")):
    raise ConfigError(f"PINHOLE_CACHE_URL must be a redis:// URL, not {_CACHE_URL.split(':')[0]!r}")
# The rate limiter's counters (webui/ratelimit): in this Redis when set, else in the database.
PINHOLE_CACHE_URL = _CACHE_URL
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _CACHE_URL}
        if _CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# --- ML -------------------------------------------------------------------------------------------
PINHOLE_DEFAULT_BACKBONE = env_str("PINHOLE_DEFAULT_BACKBONE", DEFAULT_BACKBONE)
if PINHOLE_DEFAULT_BACKBONE not in BACKBONES:
    raise ConfigError(
        f"PINHOLE_DEFAULT_BACKBONE={PINHOLE_DEFAULT_BACKBONE!r} is not a known backbone; "
        f"use one of {', '.join(BACKBONES)}"
    )
# classifier.backbones reads this itself (the ML core has no settings); read here through the same
# parser so a typo stops the web process and the workers at start-up, not the first training.
try:
    PINHOLE_ALLOW_DOWNLOADS = downloads_allowed()
except BackboneUnavailable as exc:
    raise ConfigError(str(exc)) from None
PINHOLE_MODEL_CACHE = env_path("PINHOLE_MODEL_CACHE", DATA_DIR / "cache")
# Exported backbones (webui/lib/backbones.py); unset: $PINHOLE_MODEL_CACHE/onnx.
PINHOLE_BACKBONE_DIR = env_str("PINHOLE_BACKBONE_DIR", "") or None
# How this host runs the networks (classifier.engines reads it itself, as above): a typo stops start-up.
try:
    PINHOLE_ENGINE = choose_engine().precision.value
except ValueError as exc:
    raise ConfigError(str(exc)) from None
# A worker process loads the default backbone as soon as it starts, so the first training does not wait
# for it (webui/training/workers.py); off for workers that only take the light `default` queue.
PINHOLE_WORKER_WARM_UP = env_bool("PINHOLE_WORKER_WARM_UP", True)
# Inference threads per loaded model in a web process. One: the web server's processes and threads
# answer requests side by side on the other cores (one image is as fast on one thread as on two here:
# bench/README.md, predict_latency).
PINHOLE_PREDICTOR_THREADS = env_int("PINHOLE_PREDICTOR_THREADS", 1, minimum=1)
PINHOLE_PREDICTOR_CACHE_SIZE = env_int("PINHOLE_PREDICTOR_CACHE_SIZE", 4, minimum=1)


def _rate(name: str, default: str) -> Rate:
    try:
        return parse_rate(env_str(name, default))
    except ValueError as exc:
        raise ConfigError(f"{name}={exc}") from None


# Model-running API calls per user (per IP when anonymous): "20/s", "600/min".
PINHOLE_API_PREDICT_RATE = _rate("PINHOLE_API_PREDICT_RATE", "20/s")
# Failed sign-ins before that account, or that address, has to wait: "10/15min".
PINHOLE_SIGNIN_FAILURES_PER_ACCOUNT = _rate("PINHOLE_SIGNIN_FAILURES_PER_ACCOUNT", "10/15min")
PINHOLE_SIGNIN_FAILURES_PER_ADDRESS = _rate("PINHOLE_SIGNIN_FAILURES_PER_ADDRESS", "50/15min")

# --- Celery ---------------------------------------------------------------------------------------
CELERY_BROKER_URL = broker_url(env_str("CELERY_BROKER_URL"), DATA_DIR)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("PINHOLE_TASK_SOFT_TIME_LIMIT", 3 * 3600, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("PINHOLE_TASK_TIME_LIMIT", 3 * 3600 + 300, minimum=1)
if CELERY_TASK_SOFT_TIME_LIMIT >= CELERY_TASK_TIME_LIMIT:
    # The prefork pool arms the hard limit only after the soft one; the soft limit is what lets a task
    # record "time limit" and clean up before it is killed.
    raise ConfigError(
        f"PINHOLE_TASK_SOFT_TIME_LIMIT ({CELERY_TASK_SOFT_TIME_LIMIT}) must be below "
        f"PINHOLE_TASK_TIME_LIMIT ({CELERY_TASK_TIME_LIMIT})"
    )
# Redis re-delivers an unacknowledged task after the visibility timeout; it must outlast the hard
# time limit or a long training would start a second time while the first still runs.
PINHOLE_BROKER_VISIBILITY_TIMEOUT = env_int(
    "PINHOLE_BROKER_VISIBILITY_TIMEOUT", CELERY_TASK_TIME_LIMIT + 600, minimum=1
)
PINHOLE_TASK_MAX_DELIVERIES = env_int("PINHOLE_TASK_MAX_DELIVERIES", 3, minimum=1)
# A running training touches its row every quarter of this; a redelivered task takes over a run only
# after this long without a heartbeat (its worker died).
PINHOLE_HEARTBEAT_STALE_S = env_int("PINHOLE_HEARTBEAT_STALE_S", 60, minimum=2)
CELERY_TASK_ALWAYS_EAGER = env_bool("PINHOLE_TASKS_EAGER", False)

# --- security -------------------------------------------------------------------------------------
# What a page may load and run: only the site's own scripts (no inline ones), its own images plus the
# data: heatmaps and blob: previews, and never framed (share embeds relax frame-ancestors themselves).
# No inline styles either: bar widths and label colours travel as data-* attributes and app.js sets
# them through the CSSOM. Only the admin's and Swagger UI's pages may keep inline styles (lib/headers.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
PINHOLE_HTTPS = env_bool("PINHOLE_HTTPS", False)
SESSION_COOKIE_SECURE = PINHOLE_HTTPS
CSRF_COOKIE_SECURE = PINHOLE_HTTPS
SECURE_SSL_REDIRECT = PINHOLE_HTTPS and env_bool("PINHOLE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = env_int("PINHOLE_HSTS_SECONDS", 31536000 if PINHOLE_HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = env_bool("PINHOLE_HSTS_PRELOAD", False)
# Preloading HSTS commits a whole domain to HTTPS for browsers everywhere and is slow to undo; an
# operator opts in with PINHOLE_HSTS_PRELOAD, so its absence is not a deployment warning.
SILENCED_SYSTEM_CHECKS = ["security.W021"]
if env_bool("PINHOLE_BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# --- REST API -------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "webui.api.auth.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON bodies everywhere; the views that take files (uploads, predictions) accept multipart.
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Pinhole API",
    "DESCRIPTION": "Projects, images, labels, training runs, model versions and predictions.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from the app's own static files: self-hosted installs may be offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"client_errors_on_one_line": {"()": "webui.lib.logs.ClientErrorsOnOneLine"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("PINHOLE_LOG_LEVEL", "INFO").upper()},
    # Where Django logs the answers it gives: 4xx without their tracebacks.
    "loggers": {"django.request": {"filters": ["client_errors_on_one_line"]}},
}
