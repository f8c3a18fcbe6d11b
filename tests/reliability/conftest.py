"""The reliability suite: faults across the whole chain, seeded, with a summary at the end.

Short form by default (it runs in `make test`); `BODYCAM_RELIABILITY=full` (what
`make reliability` sets) runs the same code with larger counts. Every test draws its
faults from a generator seeded by the session seed and its own name, so one test run
alone with the printed seed meets the same faults. Without `BODYCAM_SEED` the seed is
fixed (`make test` gives the same verdict on every machine and run); `make reliability`
sets `BODYCAM_SEED=fresh` and explores a new seed each run; `BODYCAM_SEED=N` repeats one.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
for support in ("dock", "e2e"):  # dock_support, s3_support, fault_support, e2e_support
    path = str(HERE.parent / support)
    if path not in sys.path:
        sys.path.insert(0, path)

from dock_support import Dock, make_camera  # noqa: E402
from fake_camera import FakeCamera  # noqa: E402
from fault_support import FRESH, SEED_ENV, rng_for, seed_origin, session_seed  # noqa: E402
from s3_support import ACCESS_KEY, REGION, SECRET_KEY, WeedServer, start_weed  # noqa: E402

from crypto.keys import SigningKey, VaultKey  # noqa: E402

MODE_ENV = "BODYCAM_RELIABILITY"


@dataclass
class Tally:
    """What the suite did, for the summary: every test adds to it."""

    seed: int
    origin: str  # "fixed", "fresh" or "from BODYCAM_SEED"
    mode: str
    faults: dict[str, int] = field(default_factory=dict)
    bad_inputs: int = 0
    segments_checked: int = 0
    segments_lost: int = 0
    false_releases: int = 0
    used: bool = False

    def fault(self, kind: str, n: int = 1) -> None:
        self.used = True
        self.faults[kind] = self.faults.get(kind, 0) + n

    def checked(self, segments: int, lost: int = 0, false_releases: int = 0) -> None:
        self.used = True
        self.segments_checked += segments
        self.segments_lost += lost
        self.false_releases += false_releases

    def repeat(self) -> str:
        run = " make reliability" if self.mode == "full" else ""
        return f"repeat with {SEED_ENV}={self.seed}{run}"

    def lines(self) -> list[str]:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())) or "none"
        return [
            f"reliability ({self.mode}), seed {self.seed} ({self.origin}; {self.repeat()})",
            f"faults injected: {sum(self.faults.values())} ({kinds})",
            f"bad inputs tried: {self.bad_inputs}",
            f"segments checked: {self.segments_checked}",
            f"segments lost: {self.segments_lost} (must be 0)",
            f"false releases: {self.false_releases} (must be 0)",
        ]


_TALLY = pytest.StashKey[Tally]()


def _seed() -> int:
    try:
        return session_seed()
    except ValueError:
        raw = os.environ.get(SEED_ENV)
        raise pytest.UsageError(
            f"{SEED_ENV} must be an integer or {FRESH!r}, not {raw!r}"
        ) from None


def pytest_configure(config: pytest.Config) -> None:
    mode = os.environ.get(MODE_ENV, "short")
    if mode not in ("short", "full"):
        raise pytest.UsageError(f"{MODE_ENV} must be 'short' or 'full', not {mode!r}")
    given = getattr(config, "workerinput", {}).get(_SEED_KEY)
    if given is not None:  # a pytest-xdist worker: the seed its controller drew
        seed, origin = given
        config.stash[_TALLY] = Tally(int(seed), str(origin), mode)
        return
    config.stash[_TALLY] = Tally(_seed(), seed_origin(), mode)


# Under pytest-xdist (`make test` runs two workers) every worker uses the controller's
# seed, and the controller adds up what each worker did for the one summary.
_SEED_KEY = "bodycam_seed"
_TALLY_KEY = "bodycam_tally"


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    tally = node.config.stash[_TALLY]
    node.workerinput[_SEED_KEY] = (tally.seed, tally.origin)


def pytest_sessionfinish(session: pytest.Session) -> None:
    output = getattr(session.config, "workeroutput", None)
    tally = session.config.stash.get(_TALLY, None)
    if output is not None and tally is not None and tally.used:
        output[_TALLY_KEY] = {
            "faults": tally.faults,
            "bad_inputs": tally.bad_inputs,
            "segments_checked": tally.segments_checked,
            "segments_lost": tally.segments_lost,
            "false_releases": tally.false_releases,
        }


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    done = getattr(node, "workeroutput", {}).get(_TALLY_KEY)
    if done is None:
        return
    tally = node.config.stash[_TALLY]
    for kind, n in done["faults"].items():
        tally.fault(kind, n)
    tally.bad_inputs += done["bad_inputs"]
    tally.checked(done["segments_checked"], done["segments_lost"], done["false_releases"])


def pytest_report_header(config: pytest.Config) -> str:
    tally = config.stash[_TALLY]
    return f"reliability: {tally.mode} form, seed {tally.seed} ({tally.origin})"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    tally = terminalreporter.config.stash.get(_TALLY, None)
    if tally is None or not tally.used:
        return
    terminalreporter.section("reliability summary")
    for line in tally.lines():
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def tally(request: pytest.FixtureRequest) -> Tally:
    return request.config.stash[_TALLY]


@pytest.fixture
def rng(request: pytest.FixtureRequest, tally: Tally) -> random.Random:
    """This test's generator: the same faults for the same seed, whatever else runs."""
    return rng_for(tally.seed, request.node.nodeid.split("::", 1)[-1])


@pytest.fixture(scope="session")
def count(tally: Tally) -> Callable[[int, int], int]:
    """count(short, full): how many of something this form runs."""

    def pick(short: int, full: int) -> int:
        return full if tally.mode == "full" else short

    return pick


@pytest.fixture(scope="session")
def weed() -> Iterator[WeedServer]:
    """A real SeaweedFS with S3 on 127.0.0.1 for this suite (free ports of its own)."""
    with tempfile.TemporaryDirectory(prefix="bodycam-rel-weed-") as tmp:
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


@dataclass
class SiteKeys:
    dock: SigningKey
    vault: VaultKey


@pytest.fixture(scope="session")
def site_keys() -> SiteKeys:
    return SiteKeys(SigningKey.generate(kind="dock"), VaultKey.generate())


@pytest.fixture
def docks(tmp_path: Path) -> Iterator[Dock]:
    dock = Dock(tmp_path / "slots")
    yield dock
    dock.close()


@pytest.fixture
def make_cam(tmp_path: Path, site_keys: SiteKeys) -> Iterator[Callable[..., FakeCamera]]:
    made: list[FakeCamera] = []

    def make(name: str = "cam1", transfer: str = "mass-storage") -> FakeCamera:
        cam = make_camera(
            tmp_path / "cameras", name, [site_keys.dock.public_bytes()], site_keys.vault, transfer
        )
        made.append(cam)
        return cam

    yield make
    for cam in made:
        cam.close()
