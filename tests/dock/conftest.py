"""Fixtures for the dock: one SeaweedFS server per session, S3 credentials, stores."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from s3_support import ACCESS_KEY, REGION, SECRET_KEY, WeedServer, start_weed


@pytest.fixture(scope="session")
def weed() -> Iterator[WeedServer]:
    """A real SeaweedFS with S3 on 127.0.0.1, started once for the session.

    Session-scoped fixtures are set up before the per-test leak check takes its
    snapshot, so the server does not count as a leaked child of the first test.
    """
    with tempfile.TemporaryDirectory(prefix="bodycam-weed-") as tmp:
        server = start_weed(Path(tmp))
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return env
