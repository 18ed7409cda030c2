"""Settings, read from the environment (django-environ).

Every variable is documented in README.md ("Configuration"). A git-ignored ``.env`` file in the project
root is read too, so ``make run`` can switch on debug mode for local use without touching the shell.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from config.secrets import require_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent
LOCAL_STATE_DIR = BASE_DIR / "var"

env = environ.Env()
# The test settings switch this off so that a developer's .env never changes what the suite sees.
if env.bool("DJANGO_READ_DOT_ENV", default=True):
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG: bool = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY: str = require_secret_key(
    env.str("DJANGO_SECRET_KEY", default=""), debug=DEBUG, local_path=LOCAL_STATE_DIR / "secret_key"
)
# Keys listed here still verify signatures (portal links, sessions) during a key rotation.
SECRET_KEY_FALLBACKS: list[str] = env.list("DJANGO_SECRET_KEY_FALLBACKS", default=[])

ALLOWED_HOSTS: list[str] = env.list(
    "DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS: list[str] = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # django.contrib.admin with our site: the MFA gate (config/staff_auth/) and the admin home
    "config.apps.BackOfficeAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_q",
    "import_export",
    "anymail",
    # Our apps, lowest layer first. Imports only go down this list.
    "customers",
    "notifications",
    "dunning",
    "reporting",
    "config",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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

# --- Database -------------------------------------------------------------------------------------------
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{LOCAL_STATE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    LOCAL_STATE_DIR.mkdir(parents=True, exist_ok=True)
    # WAL lets the web server and the task cluster read while one of them writes; IMMEDIATE takes the
    # write lock at BEGIN so two writers queue on the busy timeout instead of failing mid-transaction.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
        }
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache ----------------------------------------------------------------------------------------------
REDIS_URL: str = env.str("REDIS_URL", default="")
# Names this installation in a shared Redis: django-q2's queue and the prefix of every cache key (rate limits
# included), so two installations on one Redis share neither work nor counters.
Q_CLUSTER_NAME: str = env.str("Q_CLUSTER_NAME", default="dunning")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": Q_CLUSTER_NAME,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Task queue (django-q2) -----------------------------------------------------------------------------
# Business retries live in our own tables (next action times), so the queue never redelivers on its own
# schedule: ``retry`` is longer than ``timeout`` and missed schedules are not caught up.
Q_CLUSTER: dict[str, object] = {
    "name": Q_CLUSTER_NAME,
    "workers": env.int("Q_WORKERS", default=2),
    "timeout": 300,
    "retry": 360,
    "max_attempts": 1,
    "catch_up": False,
    "save_limit": 1000,
    "ack_failures": True,
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["poll"] = 0.5

# --- Auth -----------------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"

# --- Internationalisation -------------------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English")]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
LOCALE_PATHS = [BASE_DIR / "locale"]

# --- Static files ---------------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
MEDIA_ROOT = env.path("DJANGO_MEDIA_ROOT", default=LOCAL_STATE_DIR / "media")
MEDIA_URL = "/media/"

# --- Email ----------------------------------------------------------------------------------------------
# Locally (debug mode without EMAIL_URL, or EMAIL_URL=mailbox://) emails are saved to a mailbox folder and
# read in the admin ("Sent mail (local)"), one log line per batch, instead of printed in full to the console.
LOCAL_MAILBOX_DIR = env.path("LOCAL_MAILBOX_DIR", default=LOCAL_STATE_DIR / "mail")
EMAIL_URL: str = env.str("EMAIL_URL", default="")
if EMAIL_URL == "mailbox://" or (DEBUG and not EMAIL_URL):
    EMAIL_BACKEND = "notifications.local_mailbox.LocalMailboxBackend"
else:
    vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL: str = env.str("DEFAULT_FROM_EMAIL", default="Billing <billing@example.com>")
SERVER_EMAIL: str = env.str("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)
ANYMAIL: dict[str, object] = {
    "WEBHOOK_SECRET": env.str("ANYMAIL_WEBHOOK_SECRET", default=""),
}
# The provider whose tracking webhook is served at /anymail/<provider>/tracking/ (e.g. postmark); empty
# serves none. Other providers' addresses answer 404.
ANYMAIL_PROVIDER: str = env.str("ANYMAIL_PROVIDER", default="")

# --- Security (production) ------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)

# --- Logging --------------------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    # Portal paths carry a bearer token: every handler replaces it by "[redacted]". Django's own loggers
    # are routed through these handlers (its default debug-only console would print tokens as they are).
    "filters": {
        "redact_portal_tokens": {"()": "dunning.portal.log_redaction.RedactPortalTokens"},
        "require_debug_false": {"()": "django.utils.log.RequireDebugFalse"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_portal_tokens"],
        },
        "mail_admins": {
            "level": "ERROR",
            "class": "django.utils.log.AdminEmailHandler",
            "filters": ["require_debug_false", "redact_portal_tokens"],
        },
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django": {"handlers": ["mail_admins"], "level": "INFO"},
        "django.db.backends": {"level": "WARNING"},
        # runserver's "Watching for file changes": one line less between make run's login and the prompt.
        "django.utils.autoreload": {"level": "WARNING"},
        # django-q logs every enqueued task at INFO; the cluster's own start and stop are enough.
        "django-q": {"level": env.str("Q_LOG_LEVEL", default="WARNING")},
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}

# --- Operations (README, "Operations") -----------------------------------------------------------------
# Bearer token of the Prometheus scraper on /metrics (staff who may view the reports can read it too).
METRICS_TOKEN: str = env.str("METRICS_TOKEN", default="")
# /healthz fails when no tick finished, or a schedule is overdue, for longer than this.
HEALTHZ_TICK_MAX_AGE_MINUTES: int = env.int(
    "HEALTHZ_TICK_MAX_AGE_MINUTES", default=3 * env.int("DUNNING_TICK_MINUTES", default=5)
)
# LOG_FORMAT=json writes one JSON object per log line (for log shippers); plain is the default.
if env.str("LOG_FORMAT", default="plain").lower() == "json":
    LOGGING["formatters"]["plain"] = {"()": "config.json_logs.JsonFormatter"}  # type: ignore[index]

# --- Product settings -----------------------------------------------------------------------------------
# Shown on customer-facing pages and emails.
COMPANY_NAME: str = env.str("COMPANY_NAME", default="Example SaaS")
COMPANY_LOGO_URL: str = env.str("COMPANY_LOGO_URL", default="")
PORTAL_BASE_URL: str = env.str("PORTAL_BASE_URL", default="http://127.0.0.1:8000")
# Tables above this many rows get an estimated, not exact, count on admin changelists.
ADMIN_EXACT_COUNT_LIMIT: int = env.int("ADMIN_EXACT_COUNT_LIMIT", default=10_000)

# --- Notifications (emails, banners, outgoing webhooks) -------------------------------------------------
# Every one is documented in README.md ("Notifications" and "Configuration").
# Customer messages per customer per rolling 7 days; the final notice and the recovered confirmation
# are never blocked by it.
NOTIFICATIONS_CAP_PER_7_DAYS: int = env.int("NOTIFICATIONS_CAP_PER_7_DAYS", default=3)
# Local hours (customer's time zone) during which no email leaves: start inclusive, end exclusive.
NOTIFICATIONS_QUIET_HOURS_START: int = env.int("NOTIFICATIONS_QUIET_HOURS_START", default=21)
NOTIFICATIONS_QUIET_HOURS_END: int = env.int("NOTIFICATIONS_QUIET_HOURS_END", default=8)
# From this day of a case, messages go to every contact, not only the billing ones.
NOTIFICATIONS_ESCALATION_DAY: int = env.int("NOTIFICATIONS_ESCALATION_DAY", default=7)
# Templates fall back to this locale when the customer's has no version.
NOTIFICATIONS_DEFAULT_LOCALE: str = env.str("NOTIFICATIONS_DEFAULT_LOCALE", default="en")
# Transient provider errors are retried this many times, with backoff, before the row is failed.
NOTIFICATIONS_MAX_SEND_ATTEMPTS: int = env.int("NOTIFICATIONS_MAX_SEND_ATTEMPTS", default=6)
# The Django auth group whose members receive escalations and operational alerts by email.
NOTIFICATIONS_STAFF_GROUP: str = env.str("NOTIFICATIONS_STAFF_GROUP", default="Dunning staff")
# Banner API: browser/proxy cache lifetime of an answer, in seconds.
BANNER_API_MAX_AGE: int = env.int("BANNER_API_MAX_AGE", default=30)
# Banner embed tokens: default lifetime, and the product origins allowed to read them (CORS).
BANNER_TOKEN_TTL_SECONDS: int = env.int("BANNER_TOKEN_TTL_SECONDS", default=900)
BANNER_EMBED_ALLOWED_ORIGINS: list[str] = env.list("BANNER_EMBED_ALLOWED_ORIGINS", default=[])
# Outgoing webhooks: plain-http hosts allowed (development only), whether private/loopback addresses
# may be called (development and tests only), the request timeout, and how long an endpoint may fail
# continuously before it is disabled.
WEBHOOKS_ALLOW_HTTP_HOSTS: list[str] = env.list("WEBHOOKS_ALLOW_HTTP_HOSTS", default=[])
WEBHOOKS_ALLOW_PRIVATE_ADDRESSES: bool = env.bool("WEBHOOKS_ALLOW_PRIVATE_ADDRESSES", default=False)
WEBHOOKS_TIMEOUT_SECONDS: float = env.float("WEBHOOKS_TIMEOUT_SECONDS", default=10.0)
WEBHOOKS_DISABLE_AFTER_HOURS: int = env.int("WEBHOOKS_DISABLE_AFTER_HOURS", default=72)
# Privacy: days the bodies of sent messages, and the payloads of webhooks (Stripe's events, our outgoing
# deliveries), are kept; a daily task empties older ones (the rows stay). 0 keeps them forever.
NOTIFICATIONS_MESSAGE_BODY_RETENTION_DAYS: int = env.int(
    "NOTIFICATIONS_MESSAGE_BODY_RETENTION_DAYS", default=180
)
WEBHOOK_PAYLOAD_RETENTION_DAYS: int = env.int("WEBHOOK_PAYLOAD_RETENTION_DAYS", default=90)

# --- Dunning engine -------------------------------------------------------------------------------------
# simulated (default), stripe, or a dotted path to a dunning.gateways.PaymentGateway subclass.
PAYMENT_GATEWAY: str = env.str("PAYMENT_GATEWAY", default="simulated")
SIMULATED_GATEWAY: dict[str, object] = {
    # "database" keeps the simulated processor's ledger in a table every process shares.
    "ledger": env.str("SIMULATED_GATEWAY_LEDGER", default="database"),
    "latency_ms": env.int("SIMULATED_GATEWAY_LATENCY_MS", default=0),
    # Production-like faults for chaos runs: a share of charges fails (timeout, 5xx, timeout after the
    # money moved) and a share of truth queries fails. Off by default.
    "chaos": env.float("SIMULATED_GATEWAY_CHAOS", default=0.0),
    "truth_failures": env.float("SIMULATED_GATEWAY_TRUTH_FAILURES", default=0.0),
    "seed": env.int("SIMULATED_GATEWAY_SEED", default=None),
}
# Prefix of idempotency keys sent to the gateway. Give each installation sharing one gateway account its own.
DUNNING_IDEMPOTENCY_PREFIX: str = env.str("DUNNING_IDEMPOTENCY_PREFIX", default="dunning")
# Concurrent gateway calls per tick, and an optional cap on requests per second (Stripe allows 100/s live).
DUNNING_GATEWAY_CONCURRENCY: int = env.int("DUNNING_GATEWAY_CONCURRENCY", default=8)
DUNNING_GATEWAY_RATE_LIMIT: float = env.float("DUNNING_GATEWAY_RATE_LIMIT", default=0)
# Cases claimed per batch, and how long a claim lasts before another tick may take the case over.
DUNNING_BATCH_SIZE: int = env.int("DUNNING_BATCH_SIZE", default=2000)
DUNNING_CLAIM_LEASE_SECONDS: int = env.int("DUNNING_CLAIM_LEASE_SECONDS", default=600)
# Batches one tick process works on at once, each on its own connection (PostgreSQL; always 1 on SQLite).
DUNNING_TICK_WORKERS: int = env.int("DUNNING_TICK_WORKERS", default=2)
# learn_retry_timing: connections counting parts of the attempts table at once (PostgreSQL).
DUNNING_LEARN_WORKERS: int = env.int("DUNNING_LEARN_WORKERS", default=2)
# A "processing" decline (the processor's own error) is retried this soon, within the retry cap.
DUNNING_PROCESSING_RETRY_MINUTES: int = env.int("DUNNING_PROCESSING_RETRY_MINUTES", default=60)
# How often the scheduled tick runs (sync_schedules installs it).
DUNNING_TICK_MINUTES: int = env.int("DUNNING_TICK_MINUTES", default=5)
# The gateway circuit breaker: at least this many failed charges (timeouts, 5xx, rate limits) that are
# also this share of the calls within the window pause scheduled charging for the cool-down; then a probe
# batch of a few retries decides.
DUNNING_CIRCUIT_MIN_FAILURES: int = env.int("DUNNING_CIRCUIT_MIN_FAILURES", default=20)
DUNNING_CIRCUIT_FAILURE_RATIO: float = env.float("DUNNING_CIRCUIT_FAILURE_RATIO", default=0.5)
DUNNING_CIRCUIT_WINDOW_SECONDS: int = env.int("DUNNING_CIRCUIT_WINDOW_SECONDS", default=300)
DUNNING_CIRCUIT_COOLDOWN_SECONDS: int = env.int("DUNNING_CIRCUIT_COOLDOWN_SECONDS", default=300)
DUNNING_CIRCUIT_PROBE_SIZE: int = env.int("DUNNING_CIRCUIT_PROBE_SIZE", default=10)
# Unsettled attempts reconciled per tick (each is one truth query, and perhaps the same charge sent again).
DUNNING_RECONCILE_LIMIT: int = env.int("DUNNING_RECONCILE_LIMIT", default=1000)

# --- Stripe (PAYMENT_GATEWAY=stripe) --------------------------------------------------------------------
# Every one is documented in README.md ("Connecting a Stripe account").
STRIPE_SECRET_KEY: str = env.str("STRIPE_SECRET_KEY", default="")
# Signing secrets of the webhook endpoint; several (comma-separated) while a secret is being rolled.
STRIPE_WEBHOOK_SECRET: list[str] = env.list("STRIPE_WEBHOOK_SECRET", default=[])
# A Stripe-compatible server or proxy (tests run against localstripe); empty means api.stripe.com.
STRIPE_API_BASE: str = env.str("STRIPE_API_BASE", default="")
# Pinned: the payloads the code reads are this version's. Bump it with the SDK, after reading the changelog.
STRIPE_API_VERSION: str = env.str("STRIPE_API_VERSION", default="2026-10-28.endive")
# Who retries failed invoices that Stripe issued: "dunning" (this application; turn Smart Retries off in
# Stripe) or "stripe" (Smart Retries; this application only communicates and follows Stripe's outcome).
STRIPE_RETRY_OWNER: str = env.str("STRIPE_RETRY_OWNER", default="dunning")
# Webhooks signed longer ago than this are refused (replay protection), in seconds.
STRIPE_WEBHOOK_TOLERANCE_SECONDS: int = env.int("STRIPE_WEBHOOK_TOLERANCE_SECONDS", default=300)
# One Stripe request's timeout, and how often the SDK retries network errors (always with the same
# idempotency key, so a retried charge cannot charge twice).
STRIPE_TIMEOUT_SECONDS: float = env.float("STRIPE_TIMEOUT_SECONDS", default=30.0)
STRIPE_MAX_NETWORK_RETRIES: int = env.int("STRIPE_MAX_NETWORK_RETRIES", default=2)
# How often the scheduled reconciliation re-reads Stripe's events, and how far back it looks (Stripe keeps
# undelivered events for 30 days).
STRIPE_RECONCILE_MINUTES: int = env.int("STRIPE_RECONCILE_MINUTES", default=60)
STRIPE_RECONCILE_LOOKBACK_HOURS: int = env.int("STRIPE_RECONCILE_LOOKBACK_HOURS", default=72)

# Largest CSV the admin accepts for import; bigger files go through `manage.py import_accounts`.
ACCOUNT_IMPORT_MAX_UPLOAD_MB: int = env.int("ACCOUNT_IMPORT_MAX_UPLOAD_MB", default=50)
# django-import-export: importing and exporting need their own permissions (e.g. customers.import_customer),
# for every model admin that offers them, not only the add/change permissions.
IMPORT_EXPORT_IMPORT_PERMISSION_CODE = "import"
IMPORT_EXPORT_EXPORT_PERMISSION_CODE = "export"

# --- Payment portal (/portal/<token>/) ------------------------------------------------------------------
# Documented in README.md ("Payment portal"). Links expire this many days after they were made; banner
# links live longer because a banner stays up, with the same link, until its case's next banner step.
PORTAL_LINK_MAX_AGE_DAYS: int = env.int("PORTAL_LINK_MAX_AGE_DAYS", default=14)
PORTAL_BANNER_LINK_MAX_AGE_DAYS: int = env.int("PORTAL_BANNER_LINK_MAX_AGE_DAYS", default=30)
# Rate limits on the portal's POSTs (per link and per client address) and on the "send me a fresh link"
# form (per client address and per email address), each per window. Counters live in the cache: set
# REDIS_URL so that every web process shares them.
PORTAL_RATE_LIMIT_WINDOW_SECONDS: int = env.int("PORTAL_RATE_LIMIT_WINDOW_SECONDS", default=900)
PORTAL_POSTS_PER_LINK: int = env.int("PORTAL_POSTS_PER_LINK", default=10)
PORTAL_POSTS_PER_IP: int = env.int("PORTAL_POSTS_PER_IP", default=30)
PORTAL_FRESH_LINKS_PER_IP: int = env.int("PORTAL_FRESH_LINKS_PER_IP", default=5)
PORTAL_FRESH_LINKS_PER_ADDRESS: int = env.int("PORTAL_FRESH_LINKS_PER_ADDRESS", default=3)
# Behind N reverse proxies that each append to X-Forwarded-For, the client address is the N-th entry from
# the right; 0 uses the connection's address (REMOTE_ADDR).
PORTAL_TRUSTED_PROXIES: int = env.int("PORTAL_TRUSTED_PROXIES", default=0)

# --- Reporting ------------------------------------------------------------------------------------------
# Every one is documented in README.md ("Reporting").
# The weekly digest of the headline numbers (Monday 07:00, sync_schedules installs it): off by default.
REPORTING_WEEKLY_DIGEST: bool = env.bool("REPORTING_WEEKLY_DIGEST", default=False)
# The report tables catch up after every tick; switch off to refresh them only with refresh_reports (cron).
REPORTING_REFRESH_AFTER_TICK: bool = env.bool("REPORTING_REFRESH_AFTER_TICK", default=True)
# Its recipients; empty means the active members of the NOTIFICATIONS_STAFF_GROUP group.
REPORTING_DIGEST_RECIPIENTS: list[str] = env.list("REPORTING_DIGEST_RECIPIENTS", default=[])
# Totals across currencies are shown only with a conversion: the currency to show them in, and fixed
# rates into it, e.g. REPORTING_CURRENCY=USD REPORTING_EXCHANGE_RATES=EUR=1.08,GBP=1.27,JPY=0.0066
REPORTING_CURRENCY: str = env.str("REPORTING_CURRENCY", default="")
REPORTING_EXCHANGE_RATES: dict[str, str] = env.dict("REPORTING_EXCHANGE_RATES", default={})

# --- Staff sign-in: MFA, login lockout, sessions, roles -------------------------------------------------
# Documented in README.md ("Staff accounts and roles"). The admin is our own site (config/staff_auth/site.py);
# django-otp verifies a second factor per session, django-axes counts failed logins.
INSTALLED_APPS += ["django_otp", "django_otp.plugins.otp_totp", "django_otp.plugins.otp_static", "axes"]
_after_auth = MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1
MIDDLEWARE[_after_auth:_after_auth] = [
    "django_otp.middleware.OTPMiddleware",  # is this session verified?
    "config.staff_auth.middleware.StaffSecurityMiddleware",  # the MFA gate and the CSP of /admin/
]
MIDDLEWARE.append("axes.middleware.AxesMiddleware")  # last, as django-axes asks
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
# Admin sessions last this long from sign-in (the password and the second factor are asked again after).
SESSION_COOKIE_AGE = int(env.float("ADMIN_SESSION_HOURS", default=12) * 3600)
OTP_TOTP_ISSUER: str = env.str("ADMIN_MFA_ISSUER", default=f"{COMPANY_NAME} dunning")
# A user name, and a client address, are locked after this many failed logins in a row, for this long (0: until
# an admin unlocks them). A successful login clears the count of its user name and address.
AXES_FAILURE_LIMIT: int = env.int("ADMIN_LOGIN_FAILURE_LIMIT", default=5)
_lockout_minutes = env.int("ADMIN_LOGIN_LOCKOUT_MINUTES", default=30)
AXES_COOLOFF_TIME = timedelta(minutes=_lockout_minutes) if _lockout_minutes else None
for _name, _bad, _rule in (
    ("ADMIN_SESSION_HOURS", SESSION_COOKIE_AGE <= 0, "more than 0"),
    ("ADMIN_LOGIN_FAILURE_LIMIT", AXES_FAILURE_LIMIT < 1, "1 or more"),
    ("ADMIN_LOGIN_LOCKOUT_MINUTES", _lockout_minutes < 0, "0 or more"),
):
    if _bad:
        raise ImproperlyConfigured(f"{_name} must be {_rule} (see README.md, Configuration).")
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "config.staff_auth.views.locked_out"
AXES_CLIENT_IP_CALLABLE = "config.staff_auth.views.login_client_ip"  # honours PORTAL_TRUSTED_PROXIES
AXES_ENABLE_ADMIN = False  # config/staff_auth/admin.py registers its own pages, with an audited unlock
AXES_VERBOSE = False
