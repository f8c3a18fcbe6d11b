"""Django app configuration of vault.viewing."""

from django.apps import AppConfig


class Config(AppConfig):
    name = "vault.viewing"
    label = "vault_viewing"
    default_auto_field = "django.db.models.BigAutoField"
