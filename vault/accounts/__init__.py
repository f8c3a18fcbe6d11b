"""Municipalities, back-office users' roles per municipality, and officers."""
