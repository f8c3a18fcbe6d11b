"""Django app configuration of vault.catalog."""

from django.apps import AppConfig


class Config(AppConfig):
    name = "vault.catalog"
    label = "vault_catalog"
    default_auto_field = "django.db.models.BigAutoField"
