"""WSGI entry point of the back office (gunicorn `vault.site.wsgi:application`)."""

from __future__ import annotations

import logging
import os

from django.core.wsgi import get_wsgi_application

from crypto.timestamps import log_to_stderr

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vault.site.settings")
application = get_wsgi_application()
# The server's own log (journal): what the back office did, at INFO; keys never logged.
# Times in UTC with `Z` (crypto/timestamps.py), though Django set the process's zone to
# the municipality's for the pages.
log_to_stderr(logging.WARNING, "%(asctime)s %(levelname)s %(name)s: %(message)s")
logging.getLogger("vault").setLevel(os.environ.get("BODYCAM_VAULT_LOG_LEVEL", "INFO"))

# A viewing's work folder holds only sealed (encrypted) files and is removed after each
# viewing starts; whatever a killed server left there goes now, before the first request.
from vault.web.site import wipe_work_dir  # noqa: E402

wipe_work_dir()
