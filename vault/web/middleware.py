"""The page language, session idle expiry, no-store caching and the Content-Security-Policy."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.utils import translation
from django.utils.cache import patch_vary_headers

log = logging.getLogger(__name__)


class SiteLanguageMiddleware:
    """The site's language (LANGUAGE_CODE, Dutch) unless the user chose another on the page.

    Django's LocaleMiddleware would follow the browser's Accept-Language, and a
    municipality's desktops often run an English browser for staff who work in Dutch: the
    choice is the user's own, made with the page's switch (Django's `set_language`, which
    keeps it in the language cookie).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        chosen = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME, "")
        language = chosen if chosen in dict(settings.LANGUAGES) else settings.LANGUAGE_CODE
        translation.activate(language)
        request.LANGUAGE_CODE = language
        response = self.get_response(request)
        patch_vary_headers(response, ("Cookie",))
        response.headers.setdefault("Content-Language", language)
        return response


class SessionIdleMiddleware:
    """Sign out a session idle for longer than SESSION_IDLE_SECONDS."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            # Wall time on purpose: session expiry is about real people leaving a screen.
            now = time.time()
            last = request.session.get("last_seen")
            if isinstance(last, (int, float)) and now - last > settings.SESSION_IDLE_SECONDS:
                from vault.viewing.services import viewing_end_all_for_session

                viewing_end_all_for_session(request.session.session_key or "", reason="idle")
                logout(request)
            else:
                request.session["last_seen"] = now
        return self.get_response(request)


class NoStoreMiddleware:
    """Nothing the back office shows is kept by a browser or a proxy cache."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not request.path.startswith(settings.STATIC_URL):
            response["Cache-Control"] = "no-store"
            response["Pragma"] = "no-cache"
        return response


# Only the site's own files: no inline script or style (the templates have none), no
# other origin, no plugins, no framing. The viewing plays its stream from this origin,
# a long one through Media Source Extensions, whose object URL is a blob: URL.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)


class ContentSecurityPolicyMiddleware:
    """Every response says which scripts, styles and media the browser may load."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response
