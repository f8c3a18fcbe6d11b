"""Django app configuration of vault.registry."""

from django.apps import AppConfig


class Config(AppConfig):
    name = "vault.registry"
    label = "vault_registry"
    default_auto_field = "django.db.models.BigAutoField"
