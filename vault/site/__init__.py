"""The back office's Django project: settings from the environment, set-up helpers."""
