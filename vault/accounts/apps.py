"""Django app configuration of vault.accounts."""

from django.apps import AppConfig


class Config(AppConfig):
    name = "vault.accounts"
    label = "vault_accounts"
    default_auto_field = "django.db.models.BigAutoField"
