"""Settings, all from environment variables (the README's table lists them).

With no environment at all the service runs in its embedded mode: SQLite, no Redis, the
sandbox engine and Celery on kombu's filesystem transport. Production sets DATABASE_URL
(PostgreSQL) and REDIS_URL, which switch the cache, rate limits and broker to Redis.
"""

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_float, env_int, env_list, env_str, local_secret

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if env_bool("REQUIRE_SECRET_KEY", False):
        raise ImproperlyConfigured("SECRET_KEY must be set")
    # API keys are stored as HMACs keyed by this value, so it must stay the same: without
    # SECRET_KEY, one made on the first start and kept in DATA_DIR (one machine only: hosts
    # that share a database must share SECRET_KEY).
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    SECRET_KEY = local_secret(DATA_DIR / "secret-key")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])

INSTALLED_APPS = [
    "console.apps.ServiceAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accounts",
    "sessions_app",
    "messaging",
    "webhooks",
    "dashboard",
]

MIDDLEWARE = [
    "api.middleware.RequestIdMiddleware",
    "accounts.middleware.ApiErrorLogMiddleware",
    "api.middleware.ApiExceptionMiddleware",
    "api.middleware.RejectNulBytesMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Django's own, passed by under /v1 (api/middleware.py `BrowserOnly`).
    "api.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "api.middleware.CsrfViewMiddleware",
    "api.middleware.AuthenticationMiddleware",
    "api.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
        },
    },
]

# --- database -------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}")
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60, minimum=0)
    )
}
# PostgreSQL: the hot paths' statements prepared once per connection. Off behind a pooler that
# cannot keep prepared statements (PgBouncer in transaction mode before 1.21).
DATABASE_PREPARED_STATEMENTS = env_bool("DATABASE_PREPARED_STATEMENTS", True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Fail fast when PostgreSQL is unreachable: the API answers 503 instead of hanging.
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env_int(
        "DB_CONNECT_TIMEOUT", 3, minimum=1
    )
    if DATABASE_PREPARED_STATEMENTS:
        # Parameters bound by the server, so that the hot paths' own statements can be
        # prepared (infra.sql.statements_prepared; Django prepares none).
        DATABASES["default"]["OPTIONS"]["server_side_binding"] = True
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    # WAL lets the embedded web process and worker read while the other writes. Transactions
    # begin IMMEDIATE, taking the write lock at BEGIN, where the busy timeout waits for it: a
    # deferred one that read first and then writes after another connection's commit fails at
    # once with "database is locked" (its snapshot is stale; SQLite does not wait for that).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE",
         "init_command": "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- redis, cache -------------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
# Prefix of every Redis key the service owns (streams, limits, and by default the cache's), so
# deployments can share a Redis.
REDIS_NAMESPACE = env_str("REDIS_NAMESPACE", "wa")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            # Some cache keys are not per object (the event consumer's wake-up marker): two
            # deployments with one prefix would hold back each other's wake-ups.
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", REDIS_NAMESPACE),
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 2, "SOCKET_TIMEOUT": 2},
        }
    }
else:
    # A file cache, not process memory: the embedded web process and worker share it.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(DATA_DIR / "cache"),
        }
    }

# --- celery ---------------------------------------------------------------------------------
# Without Redis the broker is kombu's filesystem transport: a folder of message files that the
# web process and the embedded worker share, so the same task code runs with no server at all.
CELERY_QUEUE_DIR = DATA_DIR / "celery-queue"
CELERY_VISIBILITY_TIMEOUT = env_float("CELERY_VISIBILITY_TIMEOUT", 300.0, minimum=5.0)
TASK_COUNTDOWN_MAX_SECONDS = min(60.0, CELERY_VISIBILITY_TIMEOUT / 5)
if REDIS_URL:
    CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
    # A task a worker took stays in Redis, unacknowledged, while it waits for its countdown
    # and while it runs; a worker killed outright (kill -9, a lost machine) leaves its tasks
    # there until they are this old, then any worker puts them back in the queue (it looks
    # every tenth of it). So countdowns are capped (TASK_COUNTDOWN_MAX_SECONDS; the sweepers
    # own longer waits) and the task time limit stays under it.
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = {
        "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
        "unacked_restore_interval": max(1, round(CELERY_VISIBILITY_TIMEOUT / 10)),
        "unacked_restore_throttle": 1,
    }
else:
    CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_QUEUE_DIR),
        "data_folder_out": str(CELERY_QUEUE_DIR),
        "processed_folder": str(CELERY_QUEUE_DIR / "processed"),
        "control_folder": str(CELERY_QUEUE_DIR / "control"),
        "store_processed": False,
    }
# A worker that loses the broker keeps trying to reach it, as it starts and after, for as long
# as it takes (its process supervisor starts it again if it exits all the same).
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE", "celery")
# Webhook deliveries wait on customers' servers (5 s for one that does not answer). On a queue
# of their own, a worker with a pool of threads takes them, and slow endpoints never hold the
# processes that send messages and apply receipts. Unset: the default queue.
CELERY_WEBHOOK_QUEUE = env_str("CELERY_WEBHOOK_QUEUE")
if CELERY_WEBHOOK_QUEUE:
    CELERY_TASK_ROUTES = {"webhooks.deliver": {"queue": CELERY_WEBHOOK_QUEUE}}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
# Under the visibility timeout, with the longest countdown: a task still running is never put
# back in the queue. The longest runs (a sender's, a delivery run's) end within 30 s by design.
CELERY_TASK_TIME_LIMIT = 150
CELERY_TASK_SOFT_TIME_LIMIT = 120
CELERY_TIMEZONE = "UTC"
# Celery's Django fix-up closes every database connection before and after each task unless
# this is set: a new PostgreSQL connection per task. Set out of reach, it leaves connections
# to config/celery.py, which treats a task as Django treats a request (DB_CONN_MAX_AGE).
CELERY_DB_REUSE_MAX = 2**31

# --- auth, i18n, static -------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
# Only for `collectstatic`; WhiteNoise serves the apps' static files through the finders anyway.
STATIC_ROOT = env_str("STATIC_ROOT") or None
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True  # admin and docs assets without a collectstatic step
# The guides (docs/), built by `mkdocs build` into site/docs (./scripts/serve and ./scripts/test
# build them), served at /docs/ when they were built before the process started.
DOCS_SITE_DIR = BASE_DIR / "site"
if (DOCS_SITE_DIR / "docs" / "index.html").is_file():
    WHITENOISE_ROOT = str(DOCS_SITE_DIR)
    WHITENOISE_INDEX_FILE = True
APPEND_SLASH = True  # only redirects when the slashed URL exists: the API paths have none

SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)  # set it when served over HTTPS
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
CSRF_FAILURE_VIEW = "dashboard.errors.csrf_failure"
SESSION_COOKIE_SAMESITE = "Lax"

# --- the customer dashboard ---------------------------------------------------------------------
LOGIN_URL = "dashboard:login"
LOGIN_REDIRECT_URL = "dashboard:overview"
LOGOUT_REDIRECT_URL = "dashboard:login"
# Sign-in attempts (POSTs) per client address and, separately, per email address.
DASHBOARD_LOGIN_RATE = env_str("DASHBOARD_LOGIN_RATE", "10/m")
# Behind a reverse proxy: take the client's address from the last X-Forwarded-For entry.
CLIENT_IP_FROM_FORWARDED_FOR = env_bool("CLIENT_IP_FROM_FORWARDED_FOR", False)
RATELIMIT_IP_META_KEY = "accounts.sign_in.client_address"
INVITATION_TTL_SECONDS = env_int("INVITATION_TTL_SECONDS", 7 * 86_400, minimum=60)
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_TIMEOUT", 3 * 3600, minimum=60)
# Email (invitations, password resets) goes to EMAIL_HOST. Without one it is printed on the
# console only when asked (EMAIL_TO_CONSOLE, as ./scripts/serve does on a developer's
# machine): its links carry sign-in tokens, which must not reach a production log.
EMAIL_HOST = env_str("EMAIL_HOST")
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend" if env_bool("EMAIL_TO_CONSOLE", False)
    else "django.core.mail.backends.dummy.EmailBackend"
)
EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "whatsapp-api@localhost")

# --- REST framework -----------------------------------------------------------------------------
REST_FRAMEWORK = {
    # API keys are checked by the base view's admission (API_ADMISSION below).
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.HasRequiredScope"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["api.parsers.StrictJsonParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "api.negotiation.JsonOnlyNegotiation",
    "EXCEPTION_HANDLER": "api.exception_handler.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "api.schema.ApiAutoSchema",
    "UNAUTHENTICATED_USER": None,
    "DATETIME_FORMAT": "%Y-%m-%dT%H:%M:%SZ",
}
# The API's base view (api/views.py) admits every request with this: its API key checked and a
# slot of the key's rate and concurrency limits taken, given back when the request ends.
API_ADMISSION = "accounts.admission.admit"
# ... and keeps the answers of POSTs with an `Idempotency-Key` with this, to replay them.
API_IDEMPOTENCY = "accounts.idempotency.IdempotencyKeys"
SPECTACULAR_SETTINGS = {
    "TITLE": "WhatsApp API service",
    "DESCRIPTION": (
        "Connect WhatsApp numbers, send messages and receive signed webhooks. Every error uses "
        "one envelope: `{success: false, error: {code, message, details?}}`; each operation "
        "lists the codes it can return. Guides (keys, limits, webhooks and their signatures, "
        "the sandbox, operations): [/docs/](/docs/)."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": r"/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "APPEND_COMPONENTS": {
        "securitySchemes": {"ApiKey": {"type": "http", "scheme": "bearer"}},
    },
}

# --- the service ----------------------------------------------------------------------------
SERVICE_NAME = "whatsapp-api-service"
WHATSAPP_ENGINE = env_str("WHATSAPP_ENGINE", "sandbox")
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(DATA_DIR / "media")))
MEDIA_RETENTION_DAYS = env_int("MEDIA_RETENTION_DAYS", 30, minimum=1)
ERROR_LOG_RETENTION_DAYS = env_int("ERROR_LOG_RETENTION_DAYS", 30, minimum=1)
ERROR_LOG_ANONYMOUS_PER_MINUTE = env_int("ERROR_LOG_ANONYMOUS_PER_MINUTE", 60, minimum=1)
WHATSAPP_PROXY_URL = env_str("WHATSAPP_PROXY_URL")  # the real engine connects through it
# How many sessions one `run_engine` host runs at most (0: no limit).
ENGINE_MAX_SESSIONS = env_int("ENGINE_MAX_SESSIONS", 0, minimum=0)
QR_TTL_SECONDS = env_int("QR_TTL_SECONDS", 60, minimum=1)
SANDBOX_STATUS_DELAY_SECONDS = env_float("SANDBOX_STATUS_DELAY_SECONDS", 1.0, minimum=0)
# How long a simulated network drop lasts before the sandbox session reconnects by itself.
SANDBOX_RECONNECT_SECONDS = env_float("SANDBOX_RECONNECT_SECONDS", 2.0, minimum=0)
ALLOW_PRIVATE_URLS = env_bool("ALLOW_PRIVATE_URLS", False)
WEBHOOK_REQUIRE_HTTPS = env_bool("WEBHOOK_REQUIRE_HTTPS", True)
# Test and air-gapped environments: outbound HTTP (media, webhooks) resolves no names and
# reaches loopback addresses only.
OUTBOUND_LOOPBACK_ONLY = env_bool("OUTBOUND_LOOPBACK_ONLY", False)
# Messages: minimum pause between two sends of one session (WhatsApp bans numbers that burst),
# how long a message may wait in the queue before it fails, retries of transient engine errors.
SEND_MIN_INTERVAL_SECONDS = env_float(
    "SEND_MIN_INTERVAL_SECONDS", 0.0 if WHATSAPP_ENGINE == "sandbox" else 1.0, minimum=0
)
MESSAGE_QUEUE_MAX_AGE_SECONDS = env_int("MESSAGE_QUEUE_MAX_AGE_SECONDS", 86_400, minimum=60)
SEND_MAX_ATTEMPTS = env_int("SEND_MAX_ATTEMPTS", 8, minimum=1)
RECIPIENT_CHECK_CACHE_SECONDS = env_int("RECIPIENT_CHECK_CACHE_SECONDS", 600, minimum=0)
# A message claimed for sending this long ago whose sender never finished (killed) is requeued.
MESSAGE_SENDING_TIMEOUT_SECONDS = env_int("MESSAGE_SENDING_TIMEOUT_SECONDS", 120, minimum=1)
# One sender per session holds a lease this long (renewed per message); a dead one's expires.
SENDER_LEASE_SECONDS = env_int("SENDER_LEASE_SECONDS", 60, minimum=1)
# An engine event read by a consumer that never acknowledged it (killed) is handed out again
# after this long.
ENGINE_EVENT_CLAIM_TIMEOUT_SECONDS = env_int("ENGINE_EVENT_CLAIM_TIMEOUT_SECONDS", 30, minimum=1)
# Webhooks: how long a rotated-out secret keeps signing; how long an endpoint may fail every
# delivery before it is disabled.
WEBHOOK_SECRET_GRACE_SECONDS = env_int("WEBHOOK_SECRET_GRACE_SECONDS", 86_400, minimum=0)
# The account's owners are emailed once when an endpoint has failed every delivery this long
# (0: never).
WEBHOOK_FAILURE_EMAIL_AFTER_SECONDS = env_int("WEBHOOK_FAILURE_EMAIL_AFTER_SECONDS", 3600,
                                              minimum=0)
WEBHOOK_DISABLE_AFTER_FAILING_SECONDS = env_int(
    "WEBHOOK_DISABLE_AFTER_FAILING_SECONDS", 5 * 86_400, minimum=60
)
# Posts one endpoint has in flight at once, each on its own kept-alive connection: with one,
# an endpoint answering in 20 ms could take 50 events a second, whatever our speed.
WEBHOOK_MAX_IN_FLIGHT = env_int("WEBHOOK_MAX_IN_FLIGHT", 10, minimum=1, maximum=100)
# How long the account's events stay readable at GET /v1/events (the contract: at least 7).
EVENT_RETENTION_DAYS = env_int("EVENT_RETENTION_DAYS", 30, minimum=7)
SWEEP_INTERVAL_SECONDS = env_float("SWEEP_INTERVAL_SECONDS", 15.0, minimum=0.5)
# How long an API key lookup may be served from the cache. Revocation clears it at once.
API_KEY_CACHE_SECONDS = env_int("API_KEY_CACHE_SECONDS", 60, minimum=0)
# A concurrency slot whose request never released it (a killed process) frees itself after this.
CONCURRENCY_SLOT_TTL_SECONDS = env_int("CONCURRENCY_SLOT_TTL_SECONDS", 120, minimum=1)
SERVICE_UNAVAILABLE_RETRY_AFTER = env_int("SERVICE_UNAVAILABLE_RETRY_AFTER", 5, minimum=1)

LOG_FORMAT = env_str("LOG_FORMAT", "plain")  # or "json": one JSON object per line
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}")
METRICS_TOKEN = env_str("METRICS_TOKEN")  # when set, /metrics needs "Authorization: Bearer <it>"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "infra.logging.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # Our handler logs 500s itself, with the request id; Django's copy would repeat it.
        "django.request": {"level": "CRITICAL"},
        # httpx logs every request at INFO: a line per media fetch, which the message already
        # records. (Webhook posts go through http.client and are recorded in the database.)
        "httpx": {"level": "WARNING"},
    },
}

CELERY_BEAT_SCHEDULE = {
    # Safety nets: the work is normally triggered at once; these catch what a lost wake-up or
    # a dead worker left behind.
    "drain-engine-events": {"task": "sessions.drain_engine_events", "schedule": 5.0},
    "expire-overdue-qr-codes": {"task": "sessions.expire_overdue_qr_codes", "schedule": 10.0},
    "sweep-messages": {"task": "messaging.sweep_messages", "schedule": SWEEP_INTERVAL_SECONDS},
    "sweep-deliveries": {"task": "webhooks.sweep_deliveries",
                         "schedule": SWEEP_INTERVAL_SECONDS},
    "purge-inbound-media": {"task": "messaging.purge_inbound_media", "schedule": 3600.0},
    "purge-error-logs": {"task": "accounts.purge_error_logs", "schedule": 3600.0},
    "notify-failing-webhooks": {"task": "webhooks.notify_failing_endpoints",
                                "schedule": SWEEP_INTERVAL_SECONDS},
    "purge-events": {"task": "webhooks.purge_events", "schedule": 3600.0},
    "purge-idempotency-records": {"task": "messaging.purge_idempotency_records",
                                  "schedule": 3600.0},
}
