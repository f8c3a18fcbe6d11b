"""`bodycam vault serve`: the back office's web pages under gunicorn.

`--workers N` gunicorn worker processes (default: the number of cores), each with
threads. Any worker answers any request: sessions and viewings are database rows, and a
worker asked for a viewing's stream it does not hold builds the same bytes in its own
memory (`vault.viewing.streams`), so neither sticky sessions nor a shared cache are
needed, and several hosts can serve one site behind one proxy (vault/README.md). Static
files come from the same processes (whitenoise). It listens on 127.0.0.1:8000 by default,
meant to sit behind a TLS-terminating reverse proxy that sets X-Forwarded-Proto;
`--local-http` is for a demo on this machine only.

`bodycam vault createsuperuser --admin NAME` is `init`'s set-up of the first
administrator as one command on a site whose store is already configured.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_BIND = "127.0.0.1:8000"
MAX_WORKERS = 64
MAX_THREADS = 256
# gunicorn changes to its --chdir and puts that folder first on the import path: the
# folder the project's packages are installed in, never the one `bodycam` runs from.
PACKAGES_DIR = Path(__file__).resolve().parents[2]


def default_workers() -> int:
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


def _count(top: int) -> Any:
    """An argparse type: a whole number 1..top; argparse names the option in its error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be a whole number from 1 to {top}, got {text}"
            ) from None
        if not 1 <= value <= top:
            raise argparse.ArgumentTypeError(f"must be from 1 to {top}, got {text}")
        return value

    return parse


def gunicorn_argv(*, bind: str, threads: int, timeout: int, workers: int = 1) -> list[str]:
    from vault.site.config import python_argv

    return [
        *python_argv("-m", "gunicorn"),
        "vault.site.wsgi:application",
        "--chdir",
        str(PACKAGES_DIR),
        "--bind",
        bind,
        "--workers",
        str(workers),
        "--worker-class",
        "gthread",
        "--threads",
        str(threads),
        "--timeout",
        str(timeout),
        "--access-logfile",
        "-",
        "--logger-class",
        "vault.web.gunicorn_log.UtcLogger",
        "--forwarded-allow-ips",
        "127.0.0.1",
    ]


def cmd_serve(args: argparse.Namespace) -> int:
    from vault.site.config import SiteConfig, check_migrated, default_home, ensure_django

    home = (Path(args.home) if args.home else default_home()).absolute()  # gunicorn chdirs
    SiteConfig.load(home)  # a missing site is a one-line error, not a server that 500s
    ensure_django(home)
    check_migrated()
    env = dict(
        os.environ, BODYCAM_VAULT_HOME=str(home), DJANGO_SETTINGS_MODULE="vault.site.settings"
    )
    if args.local_http:
        env["BODYCAM_VAULT_LOCAL_HTTP"] = "1"
    host = args.bind.rsplit(":", 1)[0]
    env.setdefault("BODYCAM_VAULT_HOSTS", f"{host},localhost,127.0.0.1")
    argv = gunicorn_argv(
        bind=args.bind, workers=args.workers, threads=args.threads, timeout=args.timeout
    )
    print(f"back office on http://{args.bind}/ (home {home}, {args.workers} workers)", flush=True)
    os.execve(sys.executable, argv, env)
    return 0  # not reached


def cmd_createsuperuser(args: argparse.Namespace) -> int:
    from vault.clock import SYSTEM_CLOCK
    from vault.commands.session import _password
    from vault.site.config import SiteConfig, default_home, ensure_django, migrate

    home = Path(args.home).absolute() if args.home else default_home()
    SiteConfig.load(home)
    ensure_django(home)
    migrate()
    from vault.accounts.services import site_setup

    made = site_setup(
        policies=args.policy,
        admin_username=args.admin,
        admin_password=_password(f"new password for {args.admin}: "),
        clock=SYSTEM_CLOCK,
    )
    print(
        f"administrator {args.admin} of {', '.join(m.code for m in made)}: sign in at "
        "the back office and add users per role"
    )
    return 0


def add_web_commands(sub: Any) -> None:
    p = sub.add_parser("serve", help="the web pages (gunicorn, default 127.0.0.1:8000)")
    p.add_argument("--home", default=None)
    p.add_argument("--bind", default=DEFAULT_BIND, help="HOST:PORT (default %(default)s)")
    p.add_argument(
        "--workers",
        type=_count(MAX_WORKERS),
        default=default_workers(),
        help="worker processes (default: the number of cores, here %(default)s)",
    )
    p.add_argument(
        "--threads",
        type=_count(MAX_THREADS),
        default=8,
        help="threads per worker (default %(default)s)",
    )
    p.add_argument(
        "--timeout",
        type=int,
        default=300,
        help="seconds a request may take (preparing a long viewing)",
    )
    p.add_argument(
        "--local-http",
        action="store_true",
        help="plain HTTP cookies and no HTTPS redirect: a demo on this machine",
    )
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("createsuperuser", help="the first administrator of a configured site")
    p.add_argument("--home", default=None)
    p.add_argument("--admin", required=True)
    p.add_argument("--policy", action="append", required=True)
    p.set_defaults(func=cmd_createsuperuser)
