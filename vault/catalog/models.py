"""What the store holds, as the catalog knows it: recordings, segments, holds, tombstones.

Rows are written only by `vault.catalog.services` (sync, holds, purge). A purged
recording keeps its row (state `purged`) and a tombstone: what went, when, by which
rule; its segment hashes stay as the chain of custody, no footage does.
"""

from __future__ import annotations

from django.db import models

from vault.accounts.models import Municipality, Officer
from vault.registry.models import Camera


class Recording(models.Model):
    class State(models.TextChoices):
        STORED = "stored"  # complete and verified
        INCOMPLETE = "incomplete"  # manifest has no end yet, or segments missing
        PURGED = "purged"

    municipality = models.ForeignKey(
        Municipality, on_delete=models.PROTECT, related_name="recordings"
    )
    camera = models.ForeignKey(Camera, on_delete=models.PROTECT, related_name="recordings")
    officer = models.ForeignKey(
        Officer, null=True, blank=True, on_delete=models.PROTECT, related_name="recordings"
    )
    site = models.CharField(max_length=200)
    device_id = models.CharField(max_length=64)
    recording_id = models.CharField(max_length=64)
    record_pressed_at = models.DateTimeField(help_text="signed start of the recording")
    footage_start_at = models.DateTimeField(help_text="first frame, pre-roll included")
    ended_at = models.DateTimeField(null=True, blank=True)
    preroll_seconds = models.FloatField()
    complete = models.BooleanField()
    recovered = models.BooleanField(help_text="closed by power-cut recovery")
    segment_count = models.PositiveIntegerField()
    total_bytes = models.BigIntegerField()
    header_key = models.CharField(max_length=1024)
    manifest_key = models.CharField(max_length=1024)
    ingest_dock = models.CharField(max_length=64, blank=True, default="")
    ingested_at = models.DateTimeField(null=True, blank=True)
    ingest_record_key = models.CharField(max_length=1024, blank=True, default="")
    retention_ends_at = models.DateTimeField()
    state = models.CharField(max_length=16, choices=State.choices)
    store_fingerprint = models.CharField(max_length=64, help_text="SHA-256 of its store keys")
    synced_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["site", "device_id", "recording_id"], name="recording_unique"
            )
        ]
        indexes = [
            models.Index(fields=["state", "retention_ends_at"]),
            models.Index(fields=["municipality", "record_pressed_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.device_id}/{self.recording_id}"


class Segment(models.Model):
    recording = models.ForeignKey(Recording, on_delete=models.CASCADE, related_name="segments")
    index = models.PositiveIntegerField()
    name = models.CharField(max_length=64)
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    chunks = models.PositiveIntegerField()
    recovered = models.BooleanField()
    start_at = models.DateTimeField()
    store_key = models.CharField(max_length=1024)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["recording", "index"], name="segment_unique")
        ]
        ordering = ["index"]


class Hold(models.Model):
    class Kind(models.TextChoices):
        ACCESS_REQUEST = "access_request"
        COMPLAINT = "complaint"
        PROSECUTOR = "prosecutor"

    recording = models.ForeignKey(Recording, on_delete=models.PROTECT, related_name="holds")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    reference = models.CharField(max_length=100, help_text="case or request number")
    reason = models.CharField(max_length=500)
    received_at = models.DateTimeField(
        null=True, blank=True, help_text="access request: when it arrived"
    )
    answer_due_at = models.DateTimeField(null=True, blank=True)
    opened_by = models.CharField(max_length=150)
    opened_at = models.DateTimeField()
    lifted_by = models.CharField(max_length=150, blank=True, default="")
    lifted_at = models.DateTimeField(null=True, blank=True)
    lift_reason = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        indexes = [models.Index(fields=["recording", "lifted_at"])]


class Tombstone(models.Model):
    recording = models.OneToOneField(Recording, on_delete=models.PROTECT, related_name="tombstone")
    purged_at = models.DateTimeField()
    rule = models.CharField(max_length=200)
    purged_by = models.CharField(max_length=150)
    objects_removed = models.PositiveIntegerField()


class Notification(models.Model):
    """Someone the policy says must be informed (e.g. the officer of a claimed recording)."""

    municipality = models.ForeignKey(Municipality, on_delete=models.PROTECT)
    recording = models.ForeignKey(Recording, on_delete=models.PROTECT)
    officer = models.ForeignKey(Officer, null=True, blank=True, on_delete=models.PROTECT)
    role = models.CharField(max_length=40, blank=True, default="")
    event = models.CharField(max_length=40)
    created_at = models.DateTimeField()
