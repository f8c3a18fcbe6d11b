"""The dock's log lines: UTC with Z on stderr, or one JSON object per line (--json-logs)."""

from __future__ import annotations

import json
import logging
from typing import Any

from crypto.timestamps import utc_stderr_handler, utc_text


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any extra fields."""

    _standard = set(vars(logging.makeLogRecord({})))

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": utc_text(record.created, millis=True),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._standard and key not in doc and not key.startswith("_"):
                doc[key] = (
                    value if isinstance(value, str | int | float | bool | None) else str(value)
                )
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, sort_keys=True)


def configure_logging(json_logs: bool, verbose: bool = True) -> None:
    """Logs to stderr: JSON lines (--json-logs) or plain text, INFO and up; times in UTC (`Z`)."""
    handler = utc_stderr_handler()
    if json_logs:
        handler.setFormatter(JsonLogFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    # boto3/urllib3 chatter is not the operator's business
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "watchdog"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
