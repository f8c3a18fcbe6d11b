"""What the web front end adds to the back office's data.

- `LoginFailure`: failed sign-ins per user name and source address, for the lock-out.
- `CaseRequest`: the requests register (citizen access requests kept as their own
  register, complaints, police/prosecutor claims); each opens holds on its recordings
  and closes them when it is done.
- `ShiftReport`: the officer's report of one recording, drafted from the camera's signed
  event log and completed and submitted by the officer.
- `CameraStatus`: what the latest event log said about a camera (last docking, profile
  version, health); nothing per officer.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from vault.accounts.models import Municipality, Officer
from vault.catalog.models import Hold, Recording


class LoginFailure(models.Model):
    username = models.CharField(max_length=150, db_index=True)
    at = models.DateTimeField()
    remote = models.CharField(max_length=64, blank=True, default="")


class CaseRequest(models.Model):
    class Kind(models.TextChoices):
        ACCESS_REQUEST = "access_request", _("Citizen access request (GDPR art. 15)")
        COMPLAINT = "complaint", _("Complaint")
        PROSECUTOR = "prosecutor", _("Police / prosecutor claim")

    class Decision(models.TextChoices):
        PENDING = "", _("pending")
        GRANTED = "granted", _("granted")
        REFUSED = "refused", _("refused")

    municipality = models.ForeignKey(
        Municipality, on_delete=models.PROTECT, related_name="case_requests"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    reference = models.CharField(max_length=100)
    description = models.CharField(max_length=1000)
    received_at = models.DateTimeField()
    answer_due_at = models.DateTimeField(null=True, blank=True)
    within_window = models.BooleanField(null=True, help_text="access request: arrived in time")
    recordings = models.ManyToManyField(Recording, related_name="case_requests")
    holds = models.ManyToManyField(Hold, related_name="case_requests")
    decision = models.CharField(max_length=10, choices=Decision.choices, blank=True, default="")
    decision_text = models.CharField(max_length=1000, blank=True, default="")
    decided_by = models.CharField(max_length=150, blank=True, default="")
    decided_at = models.DateTimeField(null=True, blank=True)
    objection_at = models.DateTimeField(null=True, blank=True)
    objection_text = models.CharField(max_length=1000, blank=True, default="")
    executed_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.CharField(max_length=150, blank=True, default="")
    close_reason = models.CharField(max_length=500, blank=True, default="")
    opened_by = models.CharField(max_length=150)
    opened_at = models.DateTimeField()

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["municipality", "kind", "reference"], name="case_request_unique"
            )
        ]


class ShiftReport(models.Model):
    class State(models.TextChoices):
        DRAFT = "draft"
        SUBMITTED = "submitted"

    recording = models.OneToOneField(
        Recording, on_delete=models.PROTECT, related_name="shift_report"
    )
    officer = models.ForeignKey(
        Officer, null=True, blank=True, on_delete=models.PROTECT, related_name="shift_reports"
    )
    # From the signed event log (never typed in by anyone).
    pressed_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)
    preroll_seconds = models.FloatField()
    stop_reason = models.CharField(max_length=200, blank=True, default="")
    indicators = models.JSONField(default=list)
    events_verified = models.BooleanField(default=False)
    # Completed by the officer.
    reason = models.TextField(blank=True, default="")
    warning_given = models.BooleanField(null=True)
    warning_note = models.TextField(blank=True, default="")
    bystanders_informed = models.TextField(blank=True, default="")
    state = models.CharField(max_length=10, choices=State.choices, default=State.DRAFT)
    drafted_at = models.DateTimeField()
    submitted_at = models.DateTimeField(null=True, blank=True)
    submitted_by = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        ordering = ["-pressed_at"]


class CameraStatus(models.Model):
    device_id = models.CharField(max_length=64, unique=True)
    last_docked_at = models.DateTimeField(null=True, blank=True)
    profile_version = models.CharField(max_length=100, blank=True, default="")
    health = models.CharField(max_length=300, blank=True, default="")
    events_seen = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField()
