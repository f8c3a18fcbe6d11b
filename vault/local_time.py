"""Times on the back office's pages: in the municipality's zone, with the zone shown.

```
local_text(t)              05-12-2026 14:04 CET      (the default: to the minute)
local_text(t, "second")    05-12-2026 14:04:05 CET
local_text(t, "time")      14:04:05 CET
local_text(t, "date")      05-12-2026
```

Templates print every time through the `local_time` filter (vault/web/templatetags/
times.py, loaded on every page), the shift report's PDF and the watermark through
`local_text`. The zone is the site's `TIME_ZONE` (vault/site/settings.py); the
abbreviation says whether summer time applies (CET, CEST). Logs and commands write UTC
instead (crypto/timestamps.py).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

FORMATS = {
    "date": "%d-%m-%Y",
    "minute": "%d-%m-%Y %H:%M %Z",
    "second": "%d-%m-%Y %H:%M:%S %Z",
    "time": "%H:%M:%S %Z",
}


def municipality_zone() -> dt.tzinfo:
    from django.conf import settings

    return ZoneInfo(settings.TIME_ZONE)


def local_text(
    when: dt.datetime | None, precision: str = "minute", zone: dt.tzinfo | None = None
) -> str:
    """`when` in the municipality's zone (or `zone`) with the zone's name; "" for None."""
    if precision not in FORMATS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(FORMATS)}")
    if when is None:
        return ""
    if when.tzinfo is None:
        raise ValueError(f"{when} has no time zone: which instant it means is unknown")
    return when.astimezone(zone or municipality_zone()).strftime(FORMATS[precision])
