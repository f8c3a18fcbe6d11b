"""URL routes of the back office: the web pages (vault/web)."""

from __future__ import annotations

from typing import Any

from django.urls import include, path

urlpatterns: list[Any] = [path("", include("vault.web.urls"))]
