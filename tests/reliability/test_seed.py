"""The run's seed: fixed for `make test`, fresh for `make reliability`, given to repeat one."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import fault_support
import pytest
from fault_support import FIXED_SEED, SEED_ENV, seed_origin, session_seed

ROOT = Path(__file__).resolve().parents[2]


def _seed(monkeypatch: pytest.MonkeyPatch, value: str | None) -> tuple[int, str]:
    """The seed a new run would take with BODYCAM_SEED set to `value` (unset: None)."""
    monkeypatch.setattr(fault_support, "_session_seed", [])
    if value is None:
        monkeypatch.delenv(SEED_ENV, raising=False)
    else:
        monkeypatch.setenv(SEED_ENV, value)
    return session_seed(), seed_origin()


def test_without_a_seed_every_run_meets_the_same_faults(
    monkeypatch: pytest.MonkeyPatch, tally: Any
) -> None:
    make_tally = type(tally)  # the suite's summary (tests/reliability/conftest.py)
    assert _seed(monkeypatch, None) == (FIXED_SEED, "fixed")
    assert _seed(monkeypatch, None) == (FIXED_SEED, "fixed")
    assert _seed(monkeypatch, "") == (FIXED_SEED, "fixed")
    line = make_tally(FIXED_SEED, "fixed", "short").lines()[0]
    assert (
        line
        == f"reliability (short), seed {FIXED_SEED} (fixed; repeat with {SEED_ENV}={FIXED_SEED})"
    )


def test_fresh_draws_a_new_seed_and_a_given_one_repeats(
    monkeypatch: pytest.MonkeyPatch, tally: Any
) -> None:
    make_tally = type(tally)
    drawn = {_seed(monkeypatch, "fresh") for _ in range(3)}
    assert len(drawn) == 3 and {origin for _, origin in drawn} == {"fresh"}
    seed = next(iter(drawn))[0]
    line = make_tally(seed, "fresh", "full").lines()[0]
    assert line.endswith(f"(fresh; repeat with {SEED_ENV}={seed} make reliability)")
    assert _seed(monkeypatch, str(seed)) == (seed, f"from {SEED_ENV}")
    with pytest.raises(ValueError):
        _seed(monkeypatch, "tomorrow")


def test_make_reliability_explores_and_make_test_does_not() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipes = dict(re.findall(r"^(\w+): (?:\$\(STAMP\)|install)\n((?:\t.*\n)+)", makefile, re.M))
    assert f"{SEED_ENV}=$${{{SEED_ENV}:-fresh}}" in recipes["reliability"]
    assert SEED_ENV not in recipes["test"]
