"""How a time is written in every log line and every command's output: UTC, ISO 8601, `Z`.

```
2026-12-05T13:04:05Z        utc_text(t)                 a command's output, a message
2026-12-05T13:04:05.123Z    utc_text(t, millis=True)    a log line (UtcLogFormatter), text or JSON
```

One convention for the camera, the dock, the simulator and the back office, whatever
zone the machine is set to (Django sets the process's zone to the municipality's, so
`logging`'s default `asctime` would be local time without a zone). The back office's
web pages show the municipality's own zone instead (vault/web/local_time.py) and the
watermark on viewed footage both. This module sits in the bottom layer so that every
package may import it.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys

LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


def utc_text(when: float | dt.datetime, *, millis: bool = False) -> str:
    """`2026-12-05T13:04:05Z` for epoch seconds or an aware datetime (milliseconds: `.123Z`)."""
    if isinstance(when, dt.datetime):
        if when.tzinfo is None:
            raise ValueError(f"{when} has no time zone: which instant it means is unknown")
        t = when.astimezone(dt.UTC)
    else:
        t = dt.datetime.fromtimestamp(when, dt.UTC)
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    if millis:
        text += f".{t.microsecond // 1000:03d}"
    return text + "Z"


class UtcLogFormatter(logging.Formatter):
    """A log formatter whose `asctime` is `utc_text(created, millis=True)`."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return utc_text(record.created, millis=True)


def utc_stderr_handler(fmt: str = LOG_FORMAT) -> logging.Handler:
    """A handler that writes log lines to stderr with their time in UTC (`Z`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(UtcLogFormatter(fmt))
    return handler


def log_to_stderr(level: int | str, fmt: str = LOG_FORMAT) -> None:
    """`logging.basicConfig` for a process's log on stderr, its times in UTC with `Z`.

    Like basicConfig it does nothing when the root logger already has a handler (a
    test's log capture, an embedding program's own set-up).
    """
    logging.basicConfig(level=level, handlers=[utc_stderr_handler(fmt)])
