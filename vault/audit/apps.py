"""Django app configuration of vault.audit."""

from django.apps import AppConfig


class Config(AppConfig):
    name = "vault.audit"
    label = "vault_audit"
    default_auto_field = "django.db.models.BigAutoField"
