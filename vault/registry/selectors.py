"""Reading the registry: which keys a device was registered with, who wore a camera when."""

from __future__ import annotations

import datetime as dt

from django.db.models import Q, QuerySet

from vault.access import Actor, authorize_any
from vault.accounts.models import Officer
from vault.clock import Clock
from vault.registry.models import Assignment, Camera


def camera_registrations(device_id: str) -> list[Camera]:
    """Every registration of a device id, active first (origin checks try each key)."""
    return list(
        Camera.objects.filter(device_id=device_id)
        .select_related("municipality")
        .order_by("removed_at", "-added_at")
    )


def officer_at(camera: Camera, at: dt.datetime) -> Officer | None:
    """The officer the coordinator assigned this camera to at `at` (latest assignment wins)."""
    a = (
        Assignment.objects.filter(camera__device_id=camera.device_id, starts_at__lte=at)
        .filter(Q(ends_at__isnull=True) | Q(ends_at__gt=at))
        .select_related("officer")
        .order_by("-starts_at", "-id")
        .first()
    )
    return a.officer if a is not None else None


def camera_list(*, actor: Actor, clock: Clock, include_removed: bool = False) -> QuerySet[Camera]:
    munis = authorize_any(actor=actor, action="catalog.list", clock=clock, target="cameras")
    qs = Camera.objects.filter(municipality__in=munis).select_related("municipality")
    if not include_removed:
        qs = qs.filter(removed_at__isnull=True)
    return qs.order_by("municipality__code", "device_id")
