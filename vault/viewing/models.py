"""An open (or ended) viewing, shared by every web worker and host of the back office.

The row is the viewing: which recording, for which purpose, the two people and the
pair of the policy they formed, the browser session that started it (as a SHA-256 of
its key, never the key), when it started and was last seen, and when and why it ended.
Every worker checks it before serving a byte of the stream, so ending it anywhere ends
it everywhere. The picture itself is never stored: each worker that serves the viewing
builds the watermarked stream in its own memory from this row (`vault.viewing.streams`).
"""

from __future__ import annotations

from django.db import models

from vault.catalog.models import Recording


class Viewing(models.Model):
    id = models.CharField(primary_key=True, max_length=32)
    recording = models.ForeignKey(Recording, on_delete=models.PROTECT, related_name="viewings")
    municipality = models.CharField(max_length=64)  # the recording's, as audited
    purpose = models.CharField(max_length=32)
    first = models.CharField(max_length=150)  # who started it (user names)
    second = models.CharField(max_length=150)  # who signed in beside them
    pair = models.JSONField(default=list)  # the policy's participants they filled
    session_hash = models.CharField(max_length=64)  # SHA-256 hex of the session key
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    seeks = models.PositiveIntegerField(default=0)
    failure = models.CharField(max_length=1000, blank=True, default="")
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_reason = models.CharField(max_length=32, blank=True, default="")

    class Meta:
        indexes = [models.Index(fields=["ended_at", "last_seen_at"])]

    def __str__(self) -> str:
        return f"viewing {self.id}"
