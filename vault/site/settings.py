"""Django settings of the back office, read from the environment with safe defaults.

- `BODYCAM_VAULT_HOME`: the site's state folder (default `~/.local/state/bodycam-vault`);
  the SQLite database, the secret key and the back-office signing key live there.
- `BODYCAM_VAULT_DATABASE`: `sqlite:///PATH` (default `HOME/vault.sqlite3`) or
  `postgresql://USER@/DBNAME?host=/socket/dir` (psycopg 3; any libpq URL works).
- `BODYCAM_VAULT_SECRET_KEY`: else a random key kept in `HOME/secret_key` (0600).
- `BODYCAM_VAULT_DEBUG=1` only for development; production passes `check --deploy`.
"""

from __future__ import annotations

import os
import secrets
import urllib.parse
from pathlib import Path
from typing import Any

HOME = Path(
    os.environ.get("BODYCAM_VAULT_HOME", Path.home() / ".local" / "state" / "bodycam-vault")
).absolute()


def database_from_url(url: str) -> dict[str, Any]:
    """A Django DATABASES entry from sqlite:///path or postgresql://... URLs."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "sqlite":
        path = urllib.parse.unquote(parsed.path)
        if not path:
            raise ValueError(f"database URL {url!r} has no path")
        # WAL and a busy timeout: the timer's purge and a person's command may overlap.
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": path,
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;",
            },
        }
    if parsed.scheme in ("postgres", "postgresql"):
        query = dict(urllib.parse.parse_qsl(parsed.query))
        options = {k: v for k, v in query.items() if k not in ("host", "port")}
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": urllib.parse.unquote(parsed.path.lstrip("/")) or "bodycam",
            "USER": urllib.parse.unquote(parsed.username or ""),
            "PASSWORD": urllib.parse.unquote(parsed.password or ""),
            "HOST": query.get("host") or parsed.hostname or "",
            "PORT": query.get("port") or (str(parsed.port) if parsed.port else ""),
            "OPTIONS": options,
        }
    raise ValueError(f"database URL {url!r}: use sqlite:///PATH or postgresql://...")


def _secret_key() -> str:
    env = os.environ.get("BODYCAM_VAULT_SECRET_KEY")
    if env:
        return env
    path = HOME / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    HOME.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key


SECRET_KEY = _secret_key()
DEBUG = os.environ.get("BODYCAM_VAULT_DEBUG") == "1"
ALLOWED_HOSTS = [
    h for h in os.environ.get("BODYCAM_VAULT_HOSTS", "127.0.0.1,localhost").split(",") if h
]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "vault.accounts.apps.Config",
    "vault.registry.apps.Config",
    "vault.catalog.apps.Config",
    "vault.audit.apps.Config",
    "vault.signin.apps.Config",
    "vault.casework.apps.Config",
    "vault.reports.apps.Config",
    "vault.viewing.apps.Config",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "vault.site.urls"
DATABASES = {
    "default": database_from_url(
        os.environ.get("BODYCAM_VAULT_DATABASE", f"sqlite:///{HOME / 'vault.sqlite3'}")
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "Europe/Amsterdam"
# A Dutch municipality's back office: the pages in Dutch, English on the page's switch.
LANGUAGE_CODE = "nl"
LANGUAGES = [("nl", "Nederlands"), ("en", "English")]
USE_I18N = True
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
LANGUAGE_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SAMESITE = "Strict"
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Deployment hardening (checked by `manage.py check --deploy`).
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
LANGUAGE_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_AGE = 8 * 3600
SECURE_SSL_REDIRECT = os.environ.get("BODYCAM_VAULT_SSL_REDIRECT", "0" if DEBUG else "1") == "1"
SECURE_HSTS_SECONDS = 0 if DEBUG else 31536000
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
LOGGING = {"version": 1, "disable_existing_loggers": False}

# --- web front end (vault/web) -------------------------------------------------------------
INSTALLED_APPS += ["django.contrib.staticfiles", "vault.web.apps.Config"]
# Static files served by the application server itself, compressed and cache-busted.
MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "vault.web.context.back_office",
            ],
            # every page prints its times with `local_time` (the municipality's zone, shown)
            "builtins": ["vault.web.templatetags.times"],
        },
    }
]
STATIC_URL = "/static/"
STATIC_ROOT = HOME / "static"
WHITENOISE_USE_FINDERS = True  # no collectstatic step needed on a small site
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
# Sessions end after 30 idle minutes, at the latest after the 8-hour working day.
SESSION_IDLE_SECONDS = int(os.environ.get("BODYCAM_VAULT_SESSION_IDLE", "1800"))
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Strict"
# Failed sign-ins for one name from one address lock that name for that address (only)
# for LOCKOUT_SECONDS; each further failure doubles it, up to LOCKOUT_MAX_SECONDS.
LOCKOUT_FAILURES = 5
LOCKOUT_SECONDS = 15 * 60
LOCKOUT_MAX_SECONDS = 24 * 3600
LOGIN_FAILURES_KEPT = 10_000  # stored failures in all; the oldest are forgotten first
# Reverse proxies whose X-Forwarded-For (its last entry) names the client, for the
# lock-out per address: by default the local one the unit file puts in front.
TRUSTED_PROXIES = frozenset(
    os.environ.get("BODYCAM_VAULT_TRUSTED_PROXIES", "127.0.0.1 ::1").replace(",", " ").split()
)
# Behind the TLS-terminating reverse proxy the unit file describes.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
if os.environ.get("BODYCAM_VAULT_LOCAL_HTTP") == "1":
    # `bodycam vault serve --local-http`: plain HTTP on 127.0.0.1 for a demo or a test.
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE_SSL_REDIRECT = False
    LANGUAGE_COOKIE_SECURE = False
    SECURE_HSTS_SECONDS = 0
    SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_PRELOAD = False
MIDDLEWARE += [
    "vault.web.middleware.SiteLanguageMiddleware",
    "vault.web.middleware.SessionIdleMiddleware",
    "vault.web.middleware.NoStoreMiddleware",
    "vault.web.middleware.ContentSecurityPolicyMiddleware",
]
