"""Settings for 党员积分 (Party Points).

Everything that differs between a laptop and production comes from the environment.
With nothing set, the app runs on an embedded default: a SQLite file under ``var/``,
Celery tasks executed eagerly in-process, a per-install secret key in ``var/``.
With ``DATABASE_URL=postgres://…`` and ``CELERY_BROKER_URL=redis://…`` it is the
production stack (see docker-compose.yml). ``ENVIRONMENT_VARIABLES`` below lists every
variable read here; a test keeps docker-compose.yml in step with it.
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()

# Every environment variable this module reads, with what it is for.
ENVIRONMENT_VARIABLES = {
    "DJANGO_DEBUG": "debug pages and reloading; never in production",
    "DJANGO_SECRET_KEY": "signing key; required in production",
    "DJANGO_ALLOWED_HOSTS": "comma-separated host names the app answers to",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "comma-separated origins for CSRF behind a proxy",
    "DJANGO_HTTPS": "served over HTTPS: secure cookies, HSTS, redirect to HTTPS",
    "DJANGO_BEHIND_PROXY": "trust X-Forwarded-Proto and X-Forwarded-For from the reverse proxy",
    "STALE_TOTALS_GRACE_SECONDS": "age of a stale-totals mark the scheduled sweep recomputes (120)",
    "RECOMPUTE_WORK_MEM": "PostgreSQL work_mem of the year-end recompute's sums and ranks (256MB)",
    "AXES_FAILURE_LIMIT": "failed sign-ins before a username is locked from that address (5)",
    "AXES_COOLOFF_MINUTES": "how long such a lock lasts, in minutes (15)",
    "DATABASE_URL": "database; SQLite file in var/ when unset",
    "DATABASE_CONN_MAX_AGE": "seconds a database connection is kept open (PostgreSQL)",
    "DATABASE_REPLICA_URL": "PostgreSQL read replica for the Excel export jobs; none when unset",
    "CELERY_BROKER_URL": "Celery broker; tasks run eagerly in-process when unset",
    "REDIS_URL": "cache; in-process memory cache when unset",
    "EMAIL_URL": "mail backend for reminders; in-app notifications only when unset",
    "DEFAULT_FROM_EMAIL": "sender address of reminder mails",
    "MEDIA_ROOT": "where uploaded evidence files are kept",
    "STATIC_ROOT": "where collectstatic puts static files",
}

DEBUG = env.bool("DJANGO_DEBUG", default=False)


def _secret_key() -> str:
    """The key from the environment, else one generated once per install under var/."""
    configured = env.str("DJANGO_SECRET_KEY", default="")
    if configured:
        return configured
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        VAR_DIR.mkdir(exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "axes",
    "bootstrap",
    "treebeard",
    "django_fsm",
    "simple_history",
    "members",
    "scoring",
    "reviews",
    "publicity",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Records the signed-in user on every history row a request writes (members/audit.py).
    "simple_history.middleware.HistoryRequestMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into its lockout response.
    "axes.middleware.AxesMiddleware",
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
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "members.context_processors.navigation",
                "reviews.context_processors.notifications",
            ],
        },
    },
]

DATABASES = {
    # An empty DATABASE_URL counts as unset.
    "default": environ.Env.db_url_config(
        env.str("DATABASE_URL", default="") or f"sqlite:///{VAR_DIR / 'party_points.sqlite3'}"
    ),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(exist_ok=True)
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets the eager Celery path and a page read at the same time.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=5000;",
        "transaction_mode": "IMMEDIATE",
    }
else:
    # Reconnect after a database restart instead of serving errors until our own restart.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# An optional streaming read replica of the PostgreSQL primary: only the Excel export jobs read
# from it (config/routers.py, inside reading_from_replica()); every write and every other read
# goes to the primary. In tests it is the default database (MIRROR). The URL is not kept as a
# setting of its own: it holds a password, which debug pages would show.
if replica_url := env.str("DATABASE_REPLICA_URL", default=""):
    DATABASES["replica"] = environ.Env.db_url_config(replica_url)
    if DATABASES["replica"]["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured("DATABASE_REPLICA_URL must be a postgres:// URL.")
    DATABASES["replica"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["replica"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
DATABASE_ROUTERS = ["config.routers.ReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "members.passwords.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    # django-axes counts failed sign-ins before the password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Login throttling: after AXES_FAILURE_LIMIT failures a username is locked from that address
# for AXES_COOLOFF_TIME. The lock is per (username, address) pair, so a whole office behind
# one NAT is not locked out by one person's typos, and guessing one username from another
# address starts counting afresh there.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "members.lockout.locked_out"
AXES_VERBOSE = False
# Behind a reverse proxy the client's address is the last hop the proxy appended.
AXES_IPWARE_PROXY_COUNT = 1 if env.bool("DJANGO_BEHIND_PROXY", default=False) else None
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"]
    if env.bool("DJANGO_BEHIND_PROXY", default=False)
    else ["REMOTE_ADDR"]
)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
SESSION_COOKIE_AGE = 60 * 60 * 8  # a working day
SESSION_EXPIRE_AT_BROWSER_CLOSE = True

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("简体中文")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns about a missing one
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve straight from the apps' static folders when collectstatic has not run (laptop, tests).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "media/"  # never served directly: files go through views that check access

# Uploads (roster workbooks, evidence) are read into memory only up to this size.
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
ROSTER_IMPORT_MAX_BYTES = 2 * 1024 * 1024
ROSTER_IMPORT_MAX_ROWS = 5000
LEDGER_IMPORT_MAX_BYTES = 2 * 1024 * 1024
LEDGER_IMPORT_MAX_ROWS = 5000
EVIDENCE_MAX_BYTES = 5 * 1024 * 1024
EVIDENCE_MAX_FILES = 5

# HTTPS and the headers that go with it; on in production (DJANGO_HTTPS=1).
HTTPS = env.bool("DJANGO_HTTPS", default=False)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = 60 * 60 * 24 * 365 if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
if env.bool("DJANGO_BEHIND_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp): every script, style, font and image comes from this
# site; no inline script or style attribute anywhere (htmx's indicator styles are off, see
# base.html), no plugins, no framing, forms post only here.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

if env.str("EMAIL_URL", default=""):
    vars().update(env.email_url("EMAIL_URL"))
    EMAIL_ENABLED = True
else:
    EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    EMAIL_ENABLED = False
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="party-points@localhost")

# Celery: a real broker in production, eager in-process execution without one.
CELERY_TASK_ALWAYS_EAGER = not env.str("CELERY_BROKER_URL", default="")
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="memory://")
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True  # a task whose worker dies is delivered again
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = 300
CELERY_TASK_TIME_LIMIT = 360
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE = {
    "recompute-after-quarter": {
        "task": "scoring.tasks.recompute_after_quarter_task",
        # 01:30 on the first day of January, April, July and October.
        "schedule": crontab(minute=30, hour=1, day_of_month=1, month_of_year="1,4,7,10"),
    },
    "close-publicity-windows": {
        "task": "reviews.tasks.close_publicity_windows_task",
        "schedule": crontab(minute=5),  # hourly: a window ends at midnight
    },
    "remind-self-assessments": {
        "task": "reviews.tasks.remind_self_assessments_task",
        "schedule": crontab(minute=0, hour=8),
    },
    "remind-publicity": {
        "task": "reviews.tasks.remind_publicity_task",
        "schedule": crontab(minute=0, hour=9),
    },
    "purge-idempotency-keys": {
        "task": "members.tasks.purge_idempotency_keys_task",
        "schedule": crontab(minute=40, hour=3),
    },
    "sweep-stale-totals": {
        "task": "scoring.tasks.sweep_stale_totals_task",
        "schedule": crontab(minute="*/5"),
    },
    "sweep-stale-ranks": {
        "task": "scoring.tasks.sweep_stale_ranks_task",
        "schedule": crontab(minute="*/10"),
    },
}
# How long the API remembers an Idempotency-Key and its answer.
IDEMPOTENCY_KEY_DAYS = 7
# A branch's "totals wait for a recompute" mark older than this is the sweep's to clear.
STALE_TOTALS_GRACE_SECONDS = env.int("STALE_TOTALS_GRACE_SECONDS", default=120)
# PostgreSQL's work_mem for the year-end recompute's own statements (its sums and ranking; set
# for them alone, in its transaction): at city scale they hash and sort in memory, not on disk
# (docs/deployment.md counts what a recompute takes).
RECOMPUTE_WORK_MEM = env.str("RECOMPUTE_WORK_MEM", default="256MB")
if not re.fullmatch(r"[1-9][0-9]*(kB|MB|GB)", RECOMPUTE_WORK_MEM):
    raise ImproperlyConfigured(
        f"RECOMPUTE_WORK_MEM must be a PostgreSQL memory size such as 256MB, not "
        f"{RECOMPUTE_WORK_MEM!r}."
    )
# The committee overview's branch aggregates are cached, keyed by the totals' version (a
# recompute that changes a total shows at once); this bounds how long a renamed or newly
# added branch can take to appear (scoring/summaries.py branch_table).
OVERVIEW_CACHE_SECONDS = 120
# Committee-wide ranks follow an approved change after this delay (changes coalesce).
COMMITTEE_RANK_DELAY_SECONDS = 30
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}

# The REST API (/api/v1/, see config/api_urls.py): the same permission module and services as
# the pages. Token (phone app, other systems) or session (the browser) authentication; one
# error shape (members.api.errors); throttled per client with the cache above.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: an unauthenticated request is answered 401 with WWW-Authenticate.
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON everywhere; the declaration endpoint also takes multipart (evidence files).
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "members.api.pagination.PagePagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_CLASSES": [
        "members.api.throttling.AnonymousThrottle",
        "members.api.throttling.SignedInThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {"anon": "60/minute", "user": "3000/hour"},
    "EXCEPTION_HANDLER": "members.api.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "members.api.schema.ApiAutoSchema",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "党员积分 API",
    "DESCRIPTION": (
        "党员积分（Party Points）REST API v1：与网页使用同一套权限和业务规则。"
        "认证：`Authorization: Token <token>`（POST /api/v1/auth/token/ 获取）或浏览器会话。"
        "超出权限范围的对象一律返回 404；可见但无权操作返回 403；业务规则拒绝返回 422。"
        "所有错误的响应体均为 {code, message, errors}。"
        "创建类 POST 请求可带 Idempotency-Key 请求头，重试时返回首次的响应。"
    ),
    "VERSION": "1.0.0",
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "OrganizationKindEnum": "members.models.Organization.Kind",
        "MemberCategoryEnum": "members.models.Member.Category",
        "RuleKindEnum": "scoring.models.Rule.Kind",
        "AppraisalRatingEnum": "reviews.models.Appraisal.Rating",
        "ReviewCycleStateEnum": "reviews.models.ReviewCycle.State",
        "ObjectionStateEnum": "publicity.models.Objection.State",
        "MemberStatusEnum": "members.models.Member.Status",
        "DeclarationStatusEnum": "scoring.models.Declaration.Status",
        "ExportJobKindEnum": "scoring.models.ExportJob.Kind",
        "ExportJobStatusEnum": "scoring.models.ExportJob.Status",
    },
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {"party_points": {"level": "INFO"}},
}
