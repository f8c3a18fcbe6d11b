"""Failed sign-ins per user name and source address, kept for the lock-out.

The table is the one vault.web created (`web_loginfailure`); the model moved here.
"""

from __future__ import annotations

from django.db import models


class LoginFailure(models.Model):
    username = models.CharField(max_length=150, db_index=True)
    at = models.DateTimeField()
    remote = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        db_table = "web_loginfailure"  # where vault.web kept it
