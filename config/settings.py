"""Settings, all read from the environment (12-factor); see the README's settings table."""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
DEV_ENV_FILE = BASE_DIR / ".devdb" / "dev.env"

env = environ.Env()
# Precedence: the process environment, then `.env`, then the embedded database's generated
# file — the last only when no DATABASE_URL was given, so a configured server always wins.
if (BASE_DIR / ".env").exists():
    env.read_env(BASE_DIR / ".env")
if (
    not env.str("DATABASE_URL", default="")
    and not env.str("CONSOLE_DATABASE_URL", default="")
    and DEV_ENV_FILE.exists()
):
    env.read_env(DEV_ENV_FILE)

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY") if not DEBUG else env.str("SECRET_KEY", default="insecure-development-key")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "clients",
    "audit",
    "vault",
    "invitations",
    "api",
    "guardian",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "staff",
    "metrics",
    "reports",  # the dashboard on the admin index and the monthly analytics (docs/console.md)
    # Serves django-ninja's bundled Swagger UI files, so /api/v1/docs loads nothing from elsewhere.
    "ninja",
]

MIDDLEWARE = [
    # Outermost: times every request by door, whatever the layers inside it answer (docs/monitoring.md).
    "metrics.middleware.RequestMetricsMiddleware",
    "config.middleware.RequestContextMiddleware",
    "api.middleware.ApiProblemMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user.is_verified(): whether this session passed its second factor
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Outside DEBUG, a staff session without a verified second factor reaches only the sign-in pages.
    "staff.middleware.SecondFactorMiddleware",
    "config.middleware.RejectUnstorableInputMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes requires: it turns a locked-out sign-in into its lockout response.
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
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Databases -----------------------------------------------------------------------------
# Three aliases, three PostgreSQL roles (DESIGN §4). `default` is the owner and is used only by
# `migrate` and role set-up; `console` is the staff side; `tenant` is the restricted role that
# every query inside `clients.tenancy.tenant_context()` runs as, under Row Level Security.
DB_ENGINE = "config.postgres"
CONSOLE_DB_ALIAS = "console"
TENANT_DB_ALIAS = "tenant"
CONSOLE_ROLE = env.str("FLOWS_CONSOLE_ROLE", default="flows_console")
APP_ROLE = env.str("FLOWS_APP_ROLE", default="flows_app")
# The read-only role full dumps run as (BYPASSRLS, SELECT only; docs/operations.md). No alias uses it:
# `migrate` creates it with the password of DATABASE_BACKUP_URL, else FLOWS_BACKUP_PASSWORD.
BACKUP_ROLE = env.str("FLOWS_BACKUP_ROLE", default="flows_backup")
DATABASE_BACKUP_URL = env.str("DATABASE_BACKUP_URL", default="")
FLOWS_BACKUP_PASSWORD = env.str("FLOWS_BACKUP_PASSWORD", default="")

_pool_size = env.int("DB_POOL_MAX_SIZE", default=0)
# `pgbouncer`: the runtime aliases reach PostgreSQL through pgbouncer in transaction mode
# (docs/scaling.md): no server-side cursors, no prepared statements, nothing session-level.
DATABASE_POOLER = env.str("DATABASE_POOLER", default="")
if DATABASE_POOLER not in ("", "pgbouncer"):
    raise environ.ImproperlyConfigured(f"DATABASE_POOLER must be empty or 'pgbouncer', not {DATABASE_POOLER!r}.")
_runtime_options = {"pool": {"min_size": 1, "max_size": _pool_size}} if _pool_size else {}
_conn_max_age = 0 if _pool_size else env.int("DB_CONN_MAX_AGE", default=0)


def _database(url: str) -> dict:
    config = environ.Env.db_url_config(url)
    config["ENGINE"] = DB_ENGINE
    return config


def _runtime_database(alias_url: str, role: str, password_var: str, owner: dict | None) -> dict:
    """A runtime alias: its own URL, or the owner's server and database with the role's name and password."""
    if url := env.str(alias_url, default=""):
        config = _database(url)
    elif owner is not None:
        config = {**owner, "USER": role, "PASSWORD": env.str(password_var, default="")}
    else:
        raise environ.ImproperlyConfigured(f"Set DATABASE_URL or {alias_url}.")
    config.update(OPTIONS=dict(_runtime_options), CONN_MAX_AGE=_conn_max_age, CONN_HEALTH_CHECKS=_conn_max_age > 0)
    if DATABASE_POOLER == "pgbouncer":
        config["DISABLE_SERVER_SIDE_CURSORS"] = True
        config["OPTIONS"]["prepare_threshold"] = None
    return config


_owner = _database(env.str("DATABASE_URL")) if env.str("DATABASE_URL", default="") else None
# Optional, for `migrate` only: a superuser, with which the role set-up also revokes the built-ins
# PUBLIC may use that our roles do not need (clients/dbroles.py `harden`, docs/tenancy.md).
DATABASE_SUPERUSER_URL = env.str("DATABASE_SUPERUSER_URL", default="")
# API-only workers (FLOWS_TENANT_ONLY=true) hold the tenant role's credentials alone: the console
# and default aliases refuse to connect, so code that lost its tenant context fails loud instead
# of reaching a role that sees every client.
FLOWS_TENANT_ONLY = env.bool("FLOWS_TENANT_ONLY", default=False)
DATABASES = {
    CONSOLE_DB_ALIAS: (
        {"ENGINE": DB_ENGINE, "NAME": "", "FLOWS_UNAVAILABLE": "this worker runs with FLOWS_TENANT_ONLY"}
        if FLOWS_TENANT_ONLY
        else _runtime_database("CONSOLE_DATABASE_URL", CONSOLE_ROLE, "FLOWS_CONSOLE_PASSWORD", _owner)
    ),
    TENANT_DB_ALIAS: _runtime_database("TENANT_DATABASE_URL", APP_ROLE, "FLOWS_APP_PASSWORD", _owner),
}
# Without owner credentials (a production web process) `default` is the console role: anything
# that escapes the router still lands on a restricted role, never on the owner.
DATABASES["default"] = (_owner if not FLOWS_TENANT_ONLY else None) or {**DATABASES[CONSOLE_DB_ALIAS], "OPTIONS": {}}
DATABASES = {
    "default": DATABASES["default"],
    CONSOLE_DB_ALIAS: DATABASES[CONSOLE_DB_ALIAS],
    TENANT_DB_ALIAS: DATABASES[TENANT_DB_ALIAS],
}
# Optional: the console role on a streaming replica, for audit browsing, exports, dashboards and
# analytics (`config.routers.read_alias()`; docs/scaling.md). Never migrated, never written.
REPLICA_DB_ALIAS = "replica"
if (_replica_url := env.str("REPLICA_DATABASE_URL", default="")) and not FLOWS_TENANT_ONLY:
    DATABASES[REPLICA_DB_ALIAS] = _runtime_database("REPLICA_DATABASE_URL", CONSOLE_ROLE, "", None)
    # In tests it reads the test database on the replica's server, which streams it from the primary.
    DATABASES[REPLICA_DB_ALIAS]["TEST"] = {"MIRROR": CONSOLE_DB_ALIAS}
DATABASE_ROUTERS = ["config.routers.TenancyRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    # First: refuses a sign-in while the user or the IP is locked out, before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    # Object permissions on a client (staff/models.py): `user.has_perm("clients.view_client", client)`.
    "guardian.backends.ObjectPermissionBackend",
]
# Guardian's anonymous user would be a row in auth_user nobody signs in as: staff pages need a login.
ANONYMOUS_USER_NAME = None

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Vault -----------------------------------------------------------------------------------
# Master keys (key-encryption keys): `<id>:<base64 32 bytes>`, comma-separated, the first primary;
# or a file of such lines. Never stored in the database. See docs/vault.md.
FLOWS_MASTER_KEYS = env.str("FLOWS_MASTER_KEYS", default="")
FLOWS_MASTER_KEYS_FILE = env.str("FLOWS_MASTER_KEYS_FILE", default="")
# The longest an invitation token may live: a retired signing key stays published this long.
FLOWS_TOKEN_MAX_LIFETIME_DAYS = env.int("FLOWS_TOKEN_MAX_LIFETIME_DAYS", default=30)

# --- Audit trail ------------------------------------------------------------------------------
# The chain's HMAC keys, `<id>:<base64 32 bytes>`, comma-separated, the first current; the
# checkpoint signing key (Ed25519, `<id>:<base64 32 bytes>`, inline or in a file) and the public
# halves of retired signing keys. Never stored in the database. See docs/audit.md.
FLOWS_AUDIT_KEYS = env.str("FLOWS_AUDIT_KEYS", default="")
FLOWS_AUDIT_SIGNING_KEY = env.str("FLOWS_AUDIT_SIGNING_KEY", default="")
FLOWS_AUDIT_SIGNING_KEY_FILE = env.str("FLOWS_AUDIT_SIGNING_KEY_FILE", default="")
FLOWS_AUDIT_PUBLIC_KEYS = env.str("FLOWS_AUDIT_PUBLIC_KEYS", default="")

# --- Invitations -----------------------------------------------------------------------------
FLOWS_TOKEN_ISSUER = env.str("FLOWS_TOKEN_ISSUER", default="https://console.thepia.net")
FLOWS_TOKEN_AUDIENCE = env.str("FLOWS_TOKEN_AUDIENCE", default="flows.thepia.net")
# The link sent to the invitee; the token goes in the fragment, which browsers never send to servers.
FLOWS_INVITATION_LINK = env.str("FLOWS_INVITATION_LINK", default="https://{domain}/{app}/invitation#token={token}")
FLOWS_INVITATION_RETENTION_DAYS = env.int("FLOWS_INVITATION_RETENTION_DAYS", default=90)

# --- E-mail ----------------------------------------------------------------------------------
# Invitation e-mails (docs/invitations.md). EMAIL_URL: an SMTP URL, e.g.
# `smtp+tls://user:password@smtp.example.com:587` (STARTTLS) or `smtp+ssl://…:465`. Unset, every
# message is written as an .eml file into FLOWS_MAIL_DIR (default .devdb/mail/), for development.
# The console backend is refused: it would print the invitee's address to the logs.
FLOWS_MAIL_DIR = env.path("FLOWS_MAIL_DIR", default=str(BASE_DIR / ".devdb" / "mail"))
if _email_url := env.str("EMAIL_URL", default=""):
    if not _email_url.startswith(("smtp://", "smtps://", "smtp+tls://", "smtp+ssl://")):
        raise environ.ImproperlyConfigured("EMAIL_URL must be an smtp://, smtp+tls:// or smtp+ssl:// URL.")
    _email = environ.Env.email_url_config(_email_url)
    EMAIL_BACKEND = _email["EMAIL_BACKEND"]
    EMAIL_HOST, EMAIL_PORT = _email["EMAIL_HOST"], _email["EMAIL_PORT"]
    EMAIL_HOST_USER, EMAIL_HOST_PASSWORD = _email["EMAIL_HOST_USER"] or "", _email["EMAIL_HOST_PASSWORD"] or ""
    EMAIL_USE_TLS, EMAIL_USE_SSL = _email.get("EMAIL_USE_TLS", False), _email.get("EMAIL_USE_SSL", False)
else:
    EMAIL_BACKEND = "config.mail.EmlFileBackend"
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Flows <no-reply@thepia.net>")

# --- Staff ---------------------------------------------------------------------------------
# The console's public address, for links printed by commands (create_staff_user's password link).
FLOWS_CONSOLE_URL = env.str("FLOWS_CONSOLE_URL", default="http://127.0.0.1:8000")

# Sign-in hardening (docs/staff-access.md). A second factor (TOTP) for every staff user, except
# with DEBUG by default: the development superuser of `make run` signs in with a password alone.
FLOWS_STAFF_REQUIRE_MFA = env.bool("FLOWS_STAFF_REQUIRE_MFA", default=not DEBUG)
# Reveal, rotate, erase, export and grant need a password (and second factor) confirmed this recently.
FLOWS_STAFF_ELEVATION_MINUTES = env.int("FLOWS_STAFF_ELEVATION_MINUTES", default=5)
OTP_TOTP_ISSUER = "Flows Console"
# django-axes: after this many failures a username, and separately an IP address, is locked out.
AXES_FAILURE_LIMIT = env.int("FLOWS_STAFF_LOGIN_FAILURE_LIMIT", default=5)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_COOLOFF_TIME = env.int("FLOWS_STAFF_LOCKOUT_HOURS", default=1)
AXES_RESET_ON_SUCCESS = True
# Unlocking is `manage.py unlock_staff_user`, audited; axes' own admin pages would bypass the trail.
AXES_ENABLE_ADMIN = False
# The IP is the peer's address, or, when BEHIND_TLS_PROXY says a load balancer is in front, the
# right-most X-Forwarded-For entry: the one the balancer appended (entries to its left are the client's
# own words, and a client could forge them to spread its failures over invented addresses).
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"] if env.bool("BEHIND_TLS_PROXY", default=False) else ["REMOTE_ADDR"]
)
AXES_IPWARE_PROXY_ORDER = "right-most"

# --- Tenant API ------------------------------------------------------------------------------
# Requests per minute per API key, unless the key sets its own `rate_limit`.
FLOWS_API_RATE_LIMIT_PER_MINUTE = env.int("FLOWS_API_RATE_LIMIT_PER_MINUTE", default=600)
# Larger request bodies are refused with 413 before they are parsed.
FLOWS_API_MAX_BODY_BYTES = 64 * 1024

# --- Metrics (docs/monitoring.md) -------------------------------------------------------------
# The bearer token Prometheus sends to /metrics; unset, the endpoint does not exist (404).
FLOWS_METRICS_TOKEN = env.str("FLOWS_METRICS_TOKEN", default="")
# Per-client series only for this many clients (busiest by invitations and by API requests today,
# fullest by seats); every client counts in its tier's aggregate.
FLOWS_METRICS_TOP_CLIENTS = env.int("FLOWS_METRICS_TOP_CLIENTS", default=10)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# The console's own date formats (config/formats/en/formats.py): "2026-11-23 14:05", not "Nov. 23, 2026, 2:05 p.m.".
FORMAT_MODULE_PATH = ["config.formats"]

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))

SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_TLS_PROXY", default=False) else None
X_FRAME_OPTIONS = "DENY"
# A form sent without its CSRF token gets a console page, not Django's bare one (config/views.py).
CSRF_FAILURE_VIEW = "config.views.csrf_failure"
# An idle staff session ends: its expiry moves forward on every request and lapses after this long.
SESSION_COOKIE_AGE = env.int("FLOWS_STAFF_IDLE_MINUTES", default=30) * 60
SESSION_SAVE_EVERY_REQUEST = True
# The console loads nothing from elsewhere: scripts and styles are the admin's own files. The tenant
# API's documentation page (django-ninja's Swagger UI) sets its own policy needs, so /api/ is left out.
CONTENT_SECURITY_POLICY = {
    "EXCLUDE_URL_PREFIXES": ["/api/"],
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],  # the admin's templates carry style attributes
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "config.middleware.RequestIdFilter"},
        "no_query_string": {"()": "config.middleware.QueryStringFilter"},
    },
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["request_id"]},
        "server": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["request_id", "no_query_string"],
        },
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # Django's request logger prints the request line only; SQL logging stays off (it could carry data).
    "loggers": {
        # Replaces Django's default `django` logger, which would print every record a second time.
        "django": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO"), "propagate": False},
        "django.db.backends": {"level": "WARNING"},
        # django-axes: its start-up banner (on every command) and per-attempt notes stay out; its
        # warnings (failures and lockouts, with the username and address masked) stay in. The trail
        # records each lockout with the account (`staff.locked_out`).
        "axes": {"level": "WARNING"},
        # The development server's request lines (`make run`), without their query strings.
        "django.server": {"handlers": ["server"], "level": "INFO", "propagate": False},
    },
}
