"""The back office's server log in UTC with `Z` (crypto/timestamps.py), though Django sets
the process's zone to the municipality's (Europe/Amsterdam) for the pages."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from local_zone import local_zone

ROOT = Path(__file__).resolve().parents[2]

SERVER = """
import logging, time
import vault.site.wsgi
print(time.tzname[0], flush=True)
logging.getLogger("vault.viewings").info("viewing started")
"""


def test_the_server_log_is_utc_with_z_in_a_process_set_to_amsterdam(tmp_path: Path) -> None:
    env = dict(os.environ, BODYCAM_VAULT_HOME=str(tmp_path / "home"), TZ="UTC")
    env.pop("DJANGO_SETTINGS_MODULE", None)
    proc = subprocess.run(
        [sys.executable, "-P", "-W", "ignore", "-c", SERVER],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "CET"  # Django set the process's zone: local time is not UTC
    line = proc.stderr.strip().splitlines()[-1]
    m = re.fullmatch(
        r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z INFO vault.viewings: viewing started", line
    )
    assert m, proc.stderr
    at = dt.datetime.fromisoformat(m.group(1)).replace(tzinfo=dt.UTC)
    assert abs(at.timestamp() - time.time()) < 120, line


def test_gunicorn_writes_its_server_and_access_log_times_in_utc_with_z(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from gunicorn.config import Config

    from vault.web.gunicorn_log import UtcLogger
    from vault.web.serve import gunicorn_argv

    argv = gunicorn_argv(bind="127.0.0.1:8000", threads=4, timeout=60)
    assert argv[argv.index("--logger-class") + 1] == "vault.web.gunicorn_log.UtcLogger"
    cfg = Config()
    cfg.set("errorlog", "-")
    with local_zone("Europe/Amsterdam"):
        log = UtcLogger(cfg)
        try:
            log.info("Listening at: http://127.0.0.1:8000")
            stamp = log.now()
        finally:
            for handler in log.error_log.handlers:
                log.error_log.removeHandler(handler)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    m = re.fullmatch(
        r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z \[\d+\] \[INFO\] Listening at: \S+", line
    )
    assert m, line
    at = dt.datetime.fromisoformat(m.group(1)).replace(tzinfo=dt.UTC)
    assert abs(at.timestamp() - time.time()) < 120, line
    assert re.fullmatch(r"\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\]", stamp), stamp
