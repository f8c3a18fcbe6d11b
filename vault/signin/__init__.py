"""Signing in: Django's password check behind a lock-out per user name and address."""
