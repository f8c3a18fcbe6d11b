"""Django app configuration of vault.reports."""

from django.apps import AppConfig


class Config(AppConfig):
    name = "vault.reports"
    label = "vault_reports"
    default_auto_field = "django.db.models.BigAutoField"
