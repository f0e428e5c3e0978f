"""Site settings. Every deployment value comes from the environment (django-environ); the
defaults are an embedded, single-machine setup (SQLite and a filesystem broker) for the quickstart.
Nothing here touches the disk: the quickstart and the Celery app make the folders they need."""

import os
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
VAR_DIR = Path(env.str("PORTAL_VAR_DIR", default=str(BASE_DIR / "var")))

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG and not env.bool("PORTAL_ALLOW_INSECURE_KEY", default=False):
        raise RuntimeError("Set SECRET_KEY (or DEBUG=1 for local development).")
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "whitenoise.runserver_nostatic",  # runserver serves static files as production does
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc files served from here: the docs pages work offline
    "django_htmx",
    "axes",
    "csp",
    "core",
    "registry",
    "portal.booking",
    "portal.integrations",
    "portal.fhir",
    "triage",
    "demo",  # seed_demo and its synthetic history; nothing else depends on it
    "modelops",
]

MIDDLEWARE = [
    # First: every log line of a request carries its id, and probes are answered before host
    # validation or an SSL redirect could refuse a load balancer's plain-HTTP check.
    "core.request_id.RequestIdMiddleware",
    "portal.health.HealthCheckMiddleware",
    # A control character (a NUL) in the path or query string is a 400 before anything reads or stores it.
    "portal.request_guard.RejectControlCharactersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",  # the patient's language: switcher cookie, else the browser's
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

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
                "django.template.context_processors.i18n",
                "portal.booking.context_processors.languages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'portal.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True  # a connection dropped by a database restart is replaced
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # SQLite ignores select_for_update: a transaction that reads, then writes, fails with "database is
    # locked" when another wrote meanwhile. BEGIN IMMEDIATE takes the write lock first, so concurrent
    # writes (two cancels at once) queue up for `timeout` seconds instead, as row locks do on PostgreSQL.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"transaction_mode": "IMMEDIATE", "timeout": 20})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Sign-in lockout (django-axes; staff can unlock in admin): a user name from one address after
# AXES_FAILURE_LIMIT failures, and an address after AXES_ADDRESS_FAILURE_LIMIT failures whatever user
# names it tries (higher, as a clinic's patients may share one address). See portal/lockout.py.
AXES_HANDLER = "portal.lockout.AccountAndAddressLockout"
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_ADDRESS_FAILURE_LIMIT = env.int("AXES_ADDRESS_FAILURE_LIMIT", default=20)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=0.5)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]  # the order portal.lockout relies on
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_CLIENT_IP_CALLABLE = "core.http.client_address"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-gb"
LANGUAGES = [("en-gb", "English"), ("es", "Español")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="Europe/London")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "staticfiles")))

# Patient photos are private: they live outside any served directory and are only
# ever streamed by views that check permission and write an audit event.
PRIVATE_MEDIA_ROOT = Path(env.str("PRIVATE_MEDIA_ROOT", default=str(VAR_DIR / "private-media")))
STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": PRIVATE_MEDIA_ROOT, "base_url": None},
    },
    # Compressed files with content-hashed names, served by whitenoise (after `collectstatic`).
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Nothing is published under MEDIA_URL: this folder stays empty and photos never live in it.
MEDIA_ROOT = VAR_DIR / "public-media"
MEDIA_URL = "/media/"

# Upload limits (bytes and pixels). Django refuses request bodies above the first;
# the photo service enforces the rest with a message a patient understands.
PHOTO_MAX_BYTES = env.int("PHOTO_MAX_BYTES", default=15 * 1024 * 1024)
PHOTO_MAX_PIXELS = env.int("PHOTO_MAX_PIXELS", default=40_000_000)
PHOTO_MIN_SIDE = env.int("PHOTO_MIN_SIDE", default=64)
DATA_UPLOAD_MAX_MEMORY_SIZE = PHOTO_MAX_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
# Photos per upload and per appointment (the photo service refuses more, with a message).
PHOTO_MAX_FILES_PER_UPLOAD = env.int("PHOTO_MAX_FILES_PER_UPLOAD", default=10)
PHOTO_MAX_PER_APPOINTMENT = env.int("PHOTO_MAX_PER_APPOINTMENT", default=30)
FILE_UPLOAD_PERMISSIONS = 0o600

# The clinic's mpox prevalence among its cases with photos (0-1, e.g. 0.02), so the case probability
# staff see means what it says here (ml.case_rule.prior_shift); empty: the model's training case mix.
# It moves the shown probability only: the same cases are flagged.
MPOX_PREVALENCE = env.float("MPOX_PREVALENCE", default=None)
if MPOX_PREVALENCE is not None and not 0 < MPOX_PREVALENCE < 1:
    raise RuntimeError("MPOX_PREVALENCE must lie strictly between 0 and 1, e.g. 0.02.")
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700

# Models: checkpoints found here are registered as model versions.
MODEL_DIR = Path(env.str("MODEL_DIR", default=str(BASE_DIR / "ml" / "checkpoints")))
# What runs the model in the inference worker: "onnx" (ONNX Runtime on each checkpoint's export, made
# when it is registered; the worker never imports torch) or "torch" (PyTorch on the checkpoint).
ML_RUNTIME = env.str("ML_RUNTIME", default="onnx")
if ML_RUNTIME not in ("onnx", "torch"):
    raise RuntimeError(f"ML_RUNTIME must be onnx or torch, not {ML_RUNTIME!r}")

# Celery. JSON only, explicit time limits; every task is acknowledged late and rejected when its
# worker is lost, so a killed worker's task is delivered again (set here only, never per task).
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# The hard limit is also the analysis lease: a photo still "analysing" this long after its run began
# has lost its worker (no run outlives the limit), and the next sweep queues it again.
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=90)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=75)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A pool process loads the model before it reports for work; allow for a busy machine.
CELERY_WORKER_PROC_ALIVE_TIMEOUT = env.float("CELERY_WORKER_PROC_ALIVE_TIMEOUT", default=60)
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"  # folders made by portal.celery when Celery configures itself
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "polling_interval": 0.1,  # the default 1 s would add up to a second to every result
        "store_processed": False,
    }
else:
    # Redis redelivers an unacknowledged task after visibility_timeout: keep it well
    # above the longest task so a slow analysis is not run twice.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT * 4}
# Queues: the model runs only on workers that consume INFERENCE_QUEUE (many cores, much memory);
# everything else (re-queueing, retention, e-mail, webhooks) goes to the light default queue.
INFERENCE_QUEUE = "inference"
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"triage.tasks.analyse_photos_task": {"queue": INFERENCE_QUEUE}}
# Both queues declared: a worker started without --queues (the quickstart, a one-machine install)
# consumes both; `--queues inference` or `--queues default` picks one.
CELERY_TASK_QUEUES = [Queue(INFERENCE_QUEUE), Queue(CELERY_TASK_DEFAULT_QUEUE)]
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5}
# Recovery (triage.tasks.requeue_stalled_photos, run by beat every ANALYSIS_REQUEUE_INTERVAL_SECONDS and
# by each worker at start-up): photos whose message never reached the broker are queued at the next
# sweep; photos whose worker died, at start-up of that worker or once their lease
# (CELERY_TASK_TIME_LIMIT) ends; photos queued ANALYSIS_REQUEUE_AFTER_SECONDS ago and still waiting
# (a broker that lost its data) again. docs/recovery.md states what this guarantees.
ANALYSIS_REQUEUE_INTERVAL_SECONDS = env.float("ANALYSIS_REQUEUE_INTERVAL_SECONDS", default=15)
ANALYSIS_REQUEUE_AFTER_SECONDS = env.float("ANALYSIS_REQUEUE_AFTER_SECONDS", default=300)
# A retried API request with the same Idempotency-Key gets the first answer for this long.
IDEMPOTENCY_KEY_TTL_HOURS = env.int("IDEMPOTENCY_KEY_TTL_HOURS", default=24)
ESCALATION_CHECK_SECONDS = env.float("ESCALATION_CHECK_SECONDS", default=300)
CELERY_BEAT_SCHEDULE = {
    "requeue-stalled-photos": {
        "task": "triage.tasks.requeue_stalled_photos",
        "schedule": ANALYSIS_REQUEUE_INTERVAL_SECONDS,
        "options": {"expires": ANALYSIS_REQUEUE_INTERVAL_SECONDS},  # a backlog of sweeps is pointless
    },
    "requeue-unsent-webhook-deliveries": {
        "task": "portal.integrations.tasks.requeue_unsent_deliveries",
        "schedule": 300,
    },
    "purge-idempotency-records": {
        "task": "portal.integrations.tasks.purge_idempotency_records",
        "schedule": 3600,
    },
    "send-appointment-reminders": {
        "task": "portal.booking.tasks.send_reminders_task",
        "schedule": env.float("BOOKING_REMINDER_INTERVAL_SECONDS", default=3600),
    },
    "generate-slots": {"task": "portal.booking.tasks.generate_slots_task", "schedule": 6 * 3600},
    "delete-spent-sign-in-links": {"task": "portal.booking.tasks.delete_spent_sign_in_links_task", "schedule": 3600},
    "escalate-flagged-cases": {
        "task": "triage.tasks.escalate_flagged_cases",
        "schedule": ESCALATION_CHECK_SECONDS,
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# One retry policy for analysis tasks (see triage.tasks): this many retries, backoff base × 2^n.
ANALYSIS_MAX_RETRIES = env.int("ANALYSIS_MAX_RETRIES", default=3)
ANALYSIS_RETRY_BACKOFF_SECONDS = env.float("ANALYSIS_RETRY_BACKOFF_SECONDS", default=5)
# Torch threads per worker process: cores divided by the pool size, so processes never oversubscribe.
CELERY_WORKER_CONCURRENCY = env.int("CELERY_WORKER_CONCURRENCY", default=1)
WORKER_TORCH_THREADS = env.int(
    "WORKER_TORCH_THREADS", default=max(1, (os.cpu_count() or 1) // CELERY_WORKER_CONCURRENCY)
)

# HTTPS. Secure by default when DEBUG=0 (`manage.py check --deploy` is clean); every switch can be
# turned off from the environment, e.g. behind a proxy that already redirects, or for a plain-HTTP test.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 3600)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# The TLS-terminating proxy in front of gunicorn sets this header (and must strip it from clients).
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("SECURE_PROXY_SSL", default=not DEBUG) else None
)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Content-Security-Policy (django-csp): scripts, styles, fonts and requests from this site only; no
# inline script or style anywhere (pages place boxes through the CSSOM, htmx's indicator style is off);
# images also as data: URIs (the performance charts) and blob: URLs (the upload preview). Only the
# Redoc page relaxes it (see portal/api_urls.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:", "blob:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# Email (password resets carry sign-in links): EMAIL_URL, e.g. smtp+tls://user:pass@host:587.
# Production refuses to start without it; the console backend (mail printed to the log) is used
# only with DEBUG=1 or when asked for explicitly with EMAIL_URL=consolemail://.
if "EMAIL_URL" in os.environ:
    vars().update(env.email_url("EMAIL_URL"))
elif DEBUG:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
else:
    raise RuntimeError("Set EMAIL_URL (e.g. smtp+tls://user:password@mail.example.org:587) when DEBUG=0.")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="clinic@localhost")
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)  # a hung mail server must not hang a booking
# Links in emails point here (the booking, sign-in links, the information page).
PORTAL_BASE_URL = env.str("PORTAL_BASE_URL", default="http://127.0.0.1:8000")
EMAIL_MAX_RETRIES = env.int("EMAIL_MAX_RETRIES", default=5)

# Staff dashboard: a clinician's claim on a case runs out after this long without activity; the
# staff badge refreshes this often; flagged cases still undecided this long before the appointment
# are escalated (checked every ESCALATION_CHECK_SECONDS by beat).
CASE_CLAIM_MINUTES = env.int("CASE_CLAIM_MINUTES", default=15)
STAFF_BADGE_POLL_SECONDS = env.int("STAFF_BADGE_POLL_SECONDS", default=30)
ESCALATE_HOURS_BEFORE = env.float("ESCALATE_HOURS_BEFORE", default=2)
QUEUE_PAGE_SIZE = env.int("QUEUE_PAGE_SIZE", default=25)

# Booking: how far ahead patients can book, and until when they can move or cancel online.
BOOKING_DAYS_AHEAD = env.int("BOOKING_DAYS_AHEAD", default=21)
BOOKING_CHANGE_CUTOFF_HOURS = env.int("BOOKING_CHANGE_CUTOFF_HOURS", default=2)
SIGN_IN_LINK_HOURS = env.int("SIGN_IN_LINK_HOURS", default=72)
PASSWORD_RESET_TIMEOUT = env.int("PASSWORD_RESET_TIMEOUT", default=24 * 3600)  # also email verification links
# Rate limits (django-ratelimit) on sign-up, password reset and sign-in links, per address and per
# email, and on sign-in per address. They count in CACHES (below), shared through Redis in production.
ACCOUNT_RATE_LIMIT = env.str("ACCOUNT_RATE_LIMIT", default="5/15m")
SIGN_IN_RATE_LIMIT = env.str("SIGN_IN_RATE_LIMIT", default="30/15m")

# Throttle counters, failed-API-key counts and account rate limits live in this cache: use Redis (redis://host:6379/1)
# when several web processes run, so they share one count.
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}
# How many reverse proxies that we run stand in front of the portal (the compose stack's Caddy: 1).
# 0 (the default) trusts no X-Forwarded-For: the client is the peer (REMOTE_ADDR). With N, the client
# is the N-th X-Forwarded-For entry from the right. One function reads it (core.http.client_address)
# for the audit log, API-key failures, sign-in lock-outs (axes), rate limits and DRF throttles.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
if TRUSTED_PROXY_COUNT < 0:
    raise RuntimeError("TRUSTED_PROXY_COUNT is the number of proxies in front of the portal: 0 or more.")
RATELIMIT_IP_META_KEY = "core.http.client_address"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON bodies within DATA_UPLOAD_MAX_MEMORY_SIZE, 32 levels deep and free of control characters.
    "DEFAULT_PARSER_CLASSES": [
        "portal.parsers.LimitedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": env.int("API_PAGE_SIZE", default=50),
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {"uploads": env.str("API_UPLOAD_RATE", default="60/min")},
    "EXCEPTION_HANDLER": "portal.errors.api_exception_handler",  # every 403 audited
}
# Failed API keys allowed in the window per client address, and per key prefix, before that address
# (or that key) is refused with 429: one broken integration cannot lock out the others.
API_KEY_FAILURE_LIMIT = env.int("API_KEY_FAILURE_LIMIT", default=20)
API_KEY_FAILURE_WINDOW_SECONDS = env.int("API_KEY_FAILURE_WINDOW_SECONDS", default=600)
SPECTACULAR_SETTINGS = {
    "TITLE": "Mpox photo triage API",
    "DESCRIPTION": (
        "Integrations (a clinic's booking system) use `Authorization: Api-Key <key>`; patients and staff "
        "use their browser session. Decision support, not a diagnosis."
    ),
    "VERSION": "1.0.0",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "DEFAULT_GENERATOR_CLASS": "portal.schema.PortableSchemaGenerator",
    "PREPROCESSING_HOOKS": ["portal.schema.only_public_api"],
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "portal.schema.document_errors"],
    "ENUM_NAME_OVERRIDES": {
        "CaseOutcomeEnum": "triage.models.Outcome",
        "DecisionOutcomeEnum": "triage.models.DECISION_OUTCOMES",
        "PhotoStatusEnum": "triage.models.Photo.Status",
        "PhotoReasonEnum": "triage.models.PhotoReason",
        "LabResultEnum": "triage.models.LabResult.Result",
        "FinalDiagnosisEnum": "triage.models.FinalDiagnosis.Diagnosis",
        "AppointmentStatusEnum": "portal.booking.models.Appointment.Status",
    },
}

# Webhooks (portal.integrations.tasks): each delivery is tried up to WEBHOOK_MAX_ATTEMPTS times,
# waiting WEBHOOK_RETRY_BACKOFF_SECONDS × 2^n between attempts.
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=6)
WEBHOOK_RETRY_BACKOFF_SECONDS = env.float("WEBHOOK_RETRY_BACKOFF_SECONDS", default=30)
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=10)
WEBHOOK_REQUEUE_AFTER_SECONDS = env.float("WEBHOOK_REQUEUE_AFTER_SECONDS", default=600)

# ---------------------------------------------------------------------------------------------
# Object storage. With AWS_STORAGE_BUCKET_NAME set, photos and heatmaps live in that S3-compatible
# bucket (django-storages); otherwise in PRIVATE_MEDIA_ROOT. The bucket must be private: the
# server reads objects with its own keys (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, read by
# django-storages from the environment) and the permission-checked views stream them. Any URL the
# storage generates is signed and expires after AWS_QUERYSTRING_EXPIRE seconds.
AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="")
if AWS_STORAGE_BUCKET_NAME:
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("AWS_S3_REGION_NAME", default="") or None,
            "addressing_style": env.str("AWS_S3_ADDRESSING_STYLE", default="") or None,
            "location": env.str("AWS_LOCATION", default=""),
            "default_acl": None,  # objects inherit the bucket's (private) policy
            "querystring_auth": True,
            "signature_version": "s3v4",
            "querystring_expire": env.int("AWS_QUERYSTRING_EXPIRE", default=60),
            "file_overwrite": False,
        },
    }

# ---------------------------------------------------------------------------------------------
# Worker operations: each worker's main process records a heartbeat row this often; admins see
# workers silent for 3 periods as stale. Heartbeats live in core.heartbeats, the retention sweep in triage.housekeeping.
WORKER_HEARTBEAT_SECONDS = env.float("WORKER_HEARTBEAT_SECONDS", default=30)
CELERY_IMPORTS = ["core.heartbeats", "triage.housekeeping"]
# The worker's log lines go through LOGGING below (JSON when asked), not Celery's own format.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# ---------------------------------------------------------------------------------------------
# Data retention: photo and heatmap files older than this are deleted by a beat task (0 keeps
# them). Decisions, predictions' scores, lab results and the audit trail stay.
PHOTO_RETENTION_DAYS = env.int("PHOTO_RETENTION_DAYS", default=90)
RETENTION_SWEEP_INTERVAL_SECONDS = env.float("RETENTION_SWEEP_INTERVAL_SECONDS", default=3600)
if PHOTO_RETENTION_DAYS:
    CELERY_BEAT_SCHEDULE["delete-expired-photo-files"] = {
        "task": "triage.housekeeping.delete_expired_photo_files",
        "schedule": RETENTION_SWEEP_INTERVAL_SECONDS,
    }

# ---------------------------------------------------------------------------------------------
# Logs: LOG_FORMAT=json writes one JSON object per line (for a log collector); every line of a
# request, and of the Celery task it queued, carries the same request_id.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "core.request_id.RequestIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(process)d %(request_id)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"},
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# Live model performance (modelops.performance): figures are drawn from this many lab-confirmed cases;
# a challenger is promoted only with this many shared confirmed cases and no loss of sensitivity;
# the history + image model is fitted from this many.
PERFORMANCE_MIN_CONFIRMED_CASES = env.int("PERFORMANCE_MIN_CONFIRMED_CASES", default=20)
PROMOTION_MIN_CONFIRMED_CASES = env.int("PROMOTION_MIN_CONFIRMED_CASES", default=30)
HISTORY_MODEL_MIN_CONFIRMED_CASES = env.int("HISTORY_MODEL_MIN_CONFIRMED_CASES", default=40)
PERFORMANCE_BOOTSTRAP_SAMPLES = env.int("PERFORMANCE_BOOTSTRAP_SAMPLES", default=2000)

# Error reporting: set SENTRY_DSN (Sentry or a compatible service such as GlitchTip) to send
# unhandled errors and error logs from web and workers. No personal data, request bodies or
# local variables are sent: they could hold patient details.
SENTRY_DSN = env.str("SENTRY_DSN", default="")
if SENTRY_DSN:
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=SENTRY_DSN,
        environment=env.str("SENTRY_ENVIRONMENT", default="production"),
        integrations=[DjangoIntegration(), CeleryIntegration()],
        send_default_pii=False,
        include_local_variables=False,
        max_request_body_size="never",
        traces_sample_rate=env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0),
    )
