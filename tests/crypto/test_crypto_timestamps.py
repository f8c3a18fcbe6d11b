"""The one way logs and commands write a time (crypto/timestamps.py): UTC, ISO 8601, `Z`,
whatever zone the machine or Django set for the process."""

from __future__ import annotations

import datetime as dt
import io
import logging
import time
from zoneinfo import ZoneInfo

import pytest
from local_zone import local_zone

from crypto.timestamps import UtcLogFormatter, utc_text

WINTER = dt.datetime(2026, 12, 5, 13, 4, 5, 678_000, tzinfo=dt.UTC)
SUMMER = dt.datetime(2026, 7, 1, 22, 30, 0, tzinfo=dt.UTC)


def test_epoch_seconds_and_aware_datetimes_are_written_in_utc_with_z() -> None:
    assert utc_text(WINTER) == "2026-12-05T13:04:05Z"
    assert utc_text(WINTER, millis=True) == "2026-12-05T13:04:05.678Z"
    assert utc_text(WINTER.timestamp()) == "2026-12-05T13:04:05Z"
    # the same instant given in Amsterdam's summer time: the UTC day before midnight
    assert utc_text(SUMMER.astimezone(ZoneInfo("Europe/Amsterdam"))) == "2026-07-01T22:30:00Z"


def test_a_time_without_a_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="has no time zone"):
        utc_text(dt.datetime(2026, 12, 5, 13, 4, 5))


def test_a_log_line_carries_utc_and_z_though_the_process_is_set_to_amsterdam() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(UtcLogFormatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    record = logging.makeLogRecord(
        {"name": "dock.daemon", "levelname": "INFO", "msg": "dock started"}
    )
    record.created = WINTER.timestamp()
    with local_zone("Europe/Amsterdam"):
        assert time.localtime(record.created).tm_hour == 14  # what asctime used to show
        handler.emit(record)
    assert out.getvalue() == "2026-12-05T13:04:05.678Z dock.daemon INFO dock started\n"
