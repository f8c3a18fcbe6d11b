"""The coordinator's camera registry, trusted docking stations and camera assignments.

A camera row is one registration of one device key. Re-provisioning a camera means
removing the old row and adding a new one: only one active row per device id.
"""

from __future__ import annotations

from django.db import models

from vault.accounts.models import Municipality, Officer


class Camera(models.Model):
    device_id = models.CharField(max_length=64)
    public_key = models.CharField(max_length=64, help_text="Ed25519, 64 lowercase hex")
    municipality = models.ForeignKey(Municipality, on_delete=models.PROTECT, related_name="cameras")
    model = models.CharField(max_length=64, blank=True, default="")
    added_by = models.CharField(max_length=150)
    added_at = models.DateTimeField()
    removed_by = models.CharField(max_length=150, blank=True, default="")
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["device_id"],
                condition=models.Q(removed_at__isnull=True),
                name="camera_one_active_registration",
            )
        ]
        indexes = [models.Index(fields=["device_id", "public_key"])]

    def __str__(self) -> str:
        return self.device_id


class DockStation(models.Model):
    name = models.SlugField(max_length=64, unique=True)
    public_key = models.CharField(max_length=64, unique=True)
    added_by = models.CharField(max_length=150)
    added_at = models.DateTimeField()


class Assignment(models.Model):
    """A camera worn by an officer: for one shift (ends_at set) or standing (open end)."""

    camera = models.ForeignKey(Camera, on_delete=models.PROTECT, related_name="assignments")
    officer = models.ForeignKey(Officer, on_delete=models.PROTECT, related_name="assignments")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(null=True, blank=True)
    assigned_by = models.CharField(max_length=150)
    assigned_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_at__isnull=True)
                | models.Q(ends_at__gt=models.F("starts_at")),
                name="assignment_ends_after_start",
            )
        ]
        indexes = [models.Index(fields=["camera", "starts_at"])]


class RegistryPublication(models.Model):
    version = models.PositiveIntegerField(unique=True)
    store_key = models.CharField(max_length=1024)
    sha256 = models.CharField(max_length=64)
    cameras = models.PositiveIntegerField()
    published_by = models.CharField(max_length=150)
    published_at = models.DateTimeField()
