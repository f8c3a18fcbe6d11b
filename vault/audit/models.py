"""The audit log: one row per action or refused attempt, each hashing the one before.

`entry_hash = SHA-256(prev_hash || canonical JSON of the entry's fields)`; `AuditHead`
is a single row holding the latest sequence number and hash, locked while appending
so two writers cannot fork the chain. Rows are only ever inserted (services).
"""

from __future__ import annotations

from django.db import models


class AuditEntry(models.Model):
    seq = models.PositiveBigIntegerField(unique=True)
    at = models.DateTimeField()
    actor = models.CharField(max_length=150)
    roles = models.CharField(max_length=300, blank=True, default="")
    municipality = models.CharField(max_length=40, blank=True, default="")
    action = models.CharField(max_length=60)
    target = models.CharField(max_length=300, blank=True, default="")
    purpose = models.CharField(max_length=60, blank=True, default="")
    result = models.CharField(max_length=16)  # ok | refused | failed
    detail = models.TextField(blank=True, default="")  # canonical JSON
    prev_hash = models.CharField(max_length=64)
    entry_hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["seq"]


class AuditHead(models.Model):
    seq = models.PositiveBigIntegerField(default=0)
    entry_hash = models.CharField(max_length=64)


class AuditAnchor(models.Model):
    seq = models.PositiveBigIntegerField()
    entry_hash = models.CharField(max_length=64)
    store_key = models.CharField(max_length=1024)
    anchored_at = models.DateTimeField()
