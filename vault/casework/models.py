"""The requests register: citizen access requests (kept as their own register),
complaints, police/prosecutor claims. Each opens holds on its recordings and closes
them when it is done.

The tables are the ones vault.web created (`web_caserequest` and its two link tables);
the model moved here.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from vault.accounts.models import Municipality
from vault.catalog.models import Hold, Recording


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
        db_table = "web_caserequest"  # where vault.web kept it
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["municipality", "kind", "reference"], name="case_request_unique"
            )
        ]
