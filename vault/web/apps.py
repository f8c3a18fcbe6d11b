"""Django app configuration of the web front end."""

from __future__ import annotations

from django.apps import AppConfig


class Config(AppConfig):
    name = "vault.web"
    label = "web"
    verbose_name = "Back office web pages"
    default_auto_field = "django.db.models.BigAutoField"
