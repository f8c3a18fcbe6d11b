"""Reading the shift reports and the cameras' status.

Visibility is applied here: the officer sees their own reports, the coordinator and the
cluster manager (READER_ROLES, who the reports are submitted to) every report of their
municipality; `camera_overview` shows the cameras `camera_list` shows the user, each with
who wears it now and what its latest event log said.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, QuerySet

from vault.access import SHIFT_REPORT_READERS, Actor
from vault.accounts.models import Officer
from vault.catalog.models import Recording
from vault.clock import Clock
from vault.errors import NotFound
from vault.registry.models import Assignment, Camera
from vault.reports.models import CameraStatus, ShiftReport

READER_ROLES = SHIFT_REPORT_READERS  # who the reports are submitted to


@dataclass(frozen=True)
class CameraRow:
    """A registered camera, the officer it is assigned to now, and what its latest event
    log said (last docking, profile version, health); `status` None: never docked."""

    camera: Camera
    officer: Officer | None
    status: CameraStatus | None


def camera_overview(
    *, actor: Actor, clock: Clock, include_removed: bool = False
) -> list[CameraRow]:
    """The cameras `camera_list` shows this user, each with its wearer and its status."""
    from vault.registry.selectors import camera_list

    cams = list(camera_list(actor=actor, clock=clock, include_removed=include_removed))
    status = {
        s.device_id: s
        for s in CameraStatus.objects.filter(device_id__in=[c.device_id for c in cams])
    }
    now = clock.utc()
    worn: dict[int, Officer] = {}
    current = Assignment.objects.filter(camera__in=cams, starts_at__lte=now).filter(
        Q(ends_at__isnull=True) | Q(ends_at__gt=now)
    )
    for a in current.select_related("officer").order_by("starts_at", "id"):
        worn[a.camera_id] = a.officer  # the latest that started wins, as in `officer_at`
    return [CameraRow(c, worn.get(c.pk), status.get(c.device_id)) for c in cams]


def _reader_municipalities(actor: Actor) -> list[str]:
    return [m for m, roles in actor.roles.items() if roles & set(READER_ROLES)]


def report_list(*, actor: Actor, state: str = "") -> QuerySet[ShiftReport]:
    """The officer's own reports, and every report of the coordinator's municipality."""
    mine = Q(officer__user_id=actor.user.pk) if actor.user is not None else Q(pk__in=[])
    qs = ShiftReport.objects.filter(
        mine | Q(recording__municipality__code__in=_reader_municipalities(actor))
    )
    if state:
        qs = qs.filter(state=state)
    return qs.select_related("recording", "recording__municipality", "officer", "recording__camera")


def report_overview(*, actor: Actor, limit: int) -> list[ShiftReport]:
    """The reports page: drafts first, then submitted ones, newest first, at most `limit`."""
    return list(report_list(actor=actor).order_by("state", "-pressed_at")[:limit])


def report_get(*, actor: Actor, report_id: int) -> ShiftReport:
    found = report_list(actor=actor).filter(pk=report_id).first()
    if found is None:
        raise NotFound(f"no report {report_id} visible to {actor.username}")
    return found


def unsubmitted(*, actor: Actor) -> QuerySet[ShiftReport]:
    return report_list(actor=actor, state=ShiftReport.State.DRAFT)


def report_is_own(*, actor: Actor, report: ShiftReport) -> bool:
    """Whether `report` is the actor's own (only its officer completes and submits it)."""
    return (
        report.officer is not None
        and actor.user is not None
        and report.officer.user_id == actor.user.pk
    )


def recording_report(*, recording: Recording) -> ShiftReport | None:
    """The shift report drafted for `recording`, if any (shown on its page)."""
    return ShiftReport.objects.filter(recording=recording).first()
