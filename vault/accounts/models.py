"""Municipalities, who holds which role where, and the officers who wear cameras.

Users are Django's own (password hashing, authentication). A user's roles are
memberships per municipality, so in a shared system (H2O) a privacy officer may serve
one municipality and not its neighbour. Officers are the people who wear cameras; an
officer may have a user account (to consent or to see their own footage for a report).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Municipality(models.Model):
    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=100)
    policy_name = models.CharField(
        max_length=1024, help_text="shipped policy name or the TOML file's absolute path"
    )

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="memberships"
    )
    municipality = models.ForeignKey(
        Municipality, on_delete=models.PROTECT, related_name="memberships"
    )
    role = models.CharField(max_length=40)
    granted_at = models.DateTimeField()
    granted_by = models.CharField(max_length=150)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "municipality", "role"], name="membership_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.municipality_id}:{self.role}"


class Officer(models.Model):
    municipality = models.ForeignKey(
        Municipality, on_delete=models.PROTECT, related_name="officers"
    )
    code = models.SlugField(max_length=40, help_text="badge or personnel code")
    name = models.CharField(max_length=100)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="officer",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["municipality", "code"], name="officer_code_unique")
        ]

    def __str__(self) -> str:
        return f"{self.municipality_id}/{self.code}"
