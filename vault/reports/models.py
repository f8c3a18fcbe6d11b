"""What the camera's event log tells the back office.

- `ShiftReport`: the officer's report of one recording, drafted from the camera's signed
  event log and completed and submitted by the officer.
- `CameraStatus`: what the latest event log said about a camera (last docking, profile
  version, health); nothing per officer.

The tables are the ones vault.web created (`web_shiftreport`, `web_camerastatus`); the
models moved here.
"""

from __future__ import annotations

from django.db import models

from vault.accounts.models import Officer
from vault.catalog.models import Recording


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
        db_table = "web_shiftreport"  # where vault.web kept it
        ordering = ["-pressed_at"]


class CameraStatus(models.Model):
    device_id = models.CharField(max_length=64, unique=True)
    last_docked_at = models.DateTimeField(null=True, blank=True)
    profile_version = models.CharField(max_length=100, blank=True, default="")
    health = models.CharField(max_length=300, blank=True, default="")
    events_seen = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField()

    class Meta:
        db_table = "web_camerastatus"  # where vault.web kept it
