"""URL routes of the back office (the web pages come with the browser front end)."""

from __future__ import annotations

from typing import Any

urlpatterns: list[Any] = []
