"""Django app configuration of vault.casework."""

from django.apps import AppConfig


class Config(AppConfig):
    name = "vault.casework"
    label = "vault_casework"
    default_auto_field = "django.db.models.BigAutoField"
