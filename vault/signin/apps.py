"""Django app configuration of vault.signin."""

from django.apps import AppConfig


class Config(AppConfig):
    name = "vault.signin"
    label = "vault_signin"
    default_auto_field = "django.db.models.BigAutoField"
