"""`{{ t|local_time }}`, `{{ t|local_time:"second" }}`: every time a page prints.

A builtin of the site's templates (vault/site/settings.py), so no page loads it.
"""

from __future__ import annotations

import datetime as dt

from django import template

from vault.local_time import local_text

register = template.Library()


@register.filter
def local_time(value: object, precision: str = "minute") -> str:
    """The time in the municipality's zone with the zone shown (vault/local_time.py).

    Like Django's `date` filter, anything but a time (None, a missing attribute's "")
    shows as "", so `|default:"-"` still applies.
    """
    return local_text(value if isinstance(value, dt.datetime) else None, precision)
