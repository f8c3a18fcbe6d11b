"""gunicorn's own log lines (server and access log) with their times in UTC (`Z`).

gunicorn writes local time with an offset (`[05/Dec/2026:14:04:05 +0100]`), in the
zone Django sets for the pages; the project's logs are all UTC (crypto/timestamps.py).
`bodycam vault serve` passes this class as `--logger-class`.
"""

from __future__ import annotations

import logging.handlers
import time
from typing import Any

from gunicorn.glogging import Logger

from crypto.timestamps import UtcLogFormatter, utc_text


class UtcLogger(Logger):
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers:
            if not isinstance(handler, logging.handlers.SysLogHandler):  # syslog stamps its own
                handler.setFormatter(UtcLogFormatter(self.error_fmt))

    def now(self) -> str:
        """The access log's `%(t)s`: `[2026-12-05T13:04:05.123Z]`."""
        return f"[{utc_text(time.time(), millis=True)}]"
