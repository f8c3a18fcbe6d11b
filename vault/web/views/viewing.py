"""Viewing in pairs in the browser: starting with the second person's sign-in, the
viewing's page, its watermarked stream with byte ranges, seeks and the end.

The session and its rules are in `vault.viewing`; here only the HTTP: a range asked
for while the stream is still being encoded is answered with the bytes that exist. Any
worker answers any of these requests: the viewing is a database row, and a worker
without the stream builds the same bytes itself. A start while every encoder of the
worker is busy answers 503 with Retry-After and a page that says when to try again.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseNotAllowed,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render

from vault.access import Actor
from vault.errors import AuthenticationFailed, FootageUnavailable, PermissionRefused, VaultError
from vault.viewing import services as viewings
from vault.viewing.selectors import viewing_duration
from vault.web.views import base
from vault.web.views.base import page
from vault.web.views.catalog import recording_of, recording_page

RANGE = re.compile(r"bytes=(\d*)-(\d*)")
MAX_CHUNK = 4 << 20  # one response never carries more than this of the stream
STREAM_CHUNK = 256 << 10
SHORT_RECORDING = 15.0  # seconds: encoded whole before the page shows (a second or so)
STREAM_WAITS = 60  # seconds a reader waits for the encoder before giving up
ROW_CHECK_SECONDS = 1.0  # a growing stream being sent asks its row this often


@page
def viewing_start(request: HttpRequest, actor: Actor, device: str, rec: str) -> HttpResponse:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    r = recording_of(actor, device, rec)
    p = request.POST
    purpose = p.get("purpose", "")
    try:
        second = viewings.viewing_second_person(
            actor=actor,
            recording=r,
            purpose=purpose,
            username=p.get("second_username", ""),
            password=p.get("second_password", ""),
            remote=base._remote(request),
            clock=base.CLOCK,
        )
        v = viewings.viewing_start(
            recording=r,
            purpose=purpose,
            first=actor,
            second=second,
            session_key=request.session.session_key or "",
            store=base.site_store(),
            vault_key=base.vault_key(),
            clock=base.CLOCK,
            work_dir=base.work_dir(),
        )
    except (PermissionRefused, AuthenticationFailed) as exc:
        return recording_page.__wrapped__(  # type: ignore[attr-defined]
            request,
            actor,
            device,
            rec,
            error=str(exc),
            status=403,
        )
    except viewings.ViewingBusy as exc:  # audited as a failed start; try again shortly
        resp = render(
            request,
            "web/busy.html",
            {"message": str(exc), "retry_after": exc.retry_after, "back": request.path[:-4]},
            status=503,
        )
        resp["Retry-After"] = str(exc.retry_after)
        return resp
    except FootageUnavailable as exc:  # audited as a failed start; said on the same page
        return recording_page.__wrapped__(  # type: ignore[attr-defined]
            request,
            actor,
            device,
            rec,
            error=str(exc),
            status=500,
        )
    except VaultError as exc:
        return recording_page.__wrapped__(  # type: ignore[attr-defined]
            request,
            actor,
            device,
            rec,
            error=str(exc),
            status=400,
        )
    return redirect("viewing", viewing_id=v.id)


def _viewing(request: HttpRequest, actor: Actor, viewing_id: str) -> viewings.Viewing:
    return viewings.viewing_get(
        viewing_id=viewing_id,
        session_key=request.session.session_key or "",
        clock=base.CLOCK,
        actor=actor,
    )


def _media(v: viewings.Viewing) -> Any:
    """This worker's copy of the stream (built here if another worker started it)."""
    return viewings.viewing_media(
        viewing=v, store=base.site_store(), vault_key=base.vault_key(), work_dir=base.work_dir()
    )


@page
def viewing_page(request: HttpRequest, actor: Actor, viewing_id: str) -> HttpResponse:
    v = _viewing(request, actor, viewing_id)
    # A short recording is ready almost at once: the browser then plays the finished
    # file with byte ranges. A long one starts playing while it is encoded (Media Source
    # Extensions fed from the growing stream), seeking within what has arrived.
    duration = viewing_duration(viewing=v)
    media = _media(v)
    complete = media.wait_done(timeout=10.0 if 0 < duration <= SHORT_RECORDING else 0)
    mime = "" if complete else media.mime_codecs(timeout=10)
    # A stream that failed by now is said on the page; a later failure, by its script.
    failure = viewings.viewing_failure(viewing=v, clock=base.CLOCK)
    return render(
        request,
        "web/viewing.html",
        {
            "v": v,
            "complete": complete,
            "duration": f"{max(duration, 0):.3f}",
            "mime": mime,
            "failure": failure,
        },
    )


@page
def viewing_status(request: HttpRequest, actor: Actor, viewing_id: str) -> HttpResponse:
    """Whether the stream is complete, and why it could not be prepared if it failed."""
    v = _viewing(request, actor, viewing_id)
    media = _media(v)
    failure = viewings.viewing_failure(viewing=v, clock=base.CLOCK)
    resp = JsonResponse({"done": media.done, "error": failure})
    resp["Cache-Control"] = "no-store"
    return resp


@page
def viewing_stream(request: HttpRequest, actor: Actor, viewing_id: str) -> HttpResponseBase:
    """The watermarked MP4 with byte ranges, so the browser can seek; never cached.

    While the stream is still being encoded its length is unknown: the whole stream is
    sent as it grows (so playback starts on the first fragment), and a range is answered
    with the bytes that exist (`Content-Range: bytes A-B/*`). A stream that could not be
    prepared answers 500 with the reason as text.
    """
    v = _viewing(request, actor, viewing_id)
    header = request.headers.get("Range", "").strip()
    m = RANGE.fullmatch(header)
    failure = viewings.viewing_failure(viewing=v, clock=base.CLOCK)
    if failure:
        return _failed_stream(failure)
    media = _media(v)
    if not media.done and 0 < viewing_duration(viewing=v) <= SHORT_RECORDING:
        # Its page plays it as a finished file: a worker that is still building its own
        # copy answers once it is finished too, with the same length as the others.
        media.wait_done(timeout=STREAM_WAITS)
    if not media.done and (m is None or (m[1] in ("", "0") and not m[2])):
        resp: HttpResponseBase = StreamingHttpResponse(
            _grow(media, lambda: viewings.viewing_still_open(viewing=v)), content_type="video/mp4"
        )
    else:
        resp = _ranged(media, m, bool(header))
        failure = viewings.viewing_failure(viewing=v, clock=base.CLOCK)
        if failure:  # it failed while this request waited for bytes
            return _failed_stream(failure)
    resp["Accept-Ranges"] = "bytes"
    resp["Content-Disposition"] = "inline"
    resp["Cache-Control"] = "no-store"
    return resp


def _failed_stream(failure: str) -> HttpResponse:
    """The stream could not be prepared: a server error that says why, never 0 bytes."""
    resp = HttpResponse(failure, status=500, content_type="text/plain; charset=utf-8")
    resp["Cache-Control"] = "no-store"
    return resp


def _grow(media: Any, still_open: Callable[[], bool]) -> Any:
    """The stream as it grows; stops when the viewing ends anywhere (its row, each second)."""
    pos, idle = 0, 0
    checked = time.monotonic()
    while idle < STREAM_WAITS:
        if time.monotonic() - checked >= ROW_CHECK_SECONDS:
            if not still_open():
                return
            checked = time.monotonic()
        chunk = media.read(pos, pos + STREAM_CHUNK - 1, timeout=1.0)
        if chunk:
            pos, idle = pos + len(chunk), 0
            yield chunk
        elif media.done:
            return
        else:
            idle += 1


def _ranged(media: Any, m: re.Match[str] | None, asked: bool) -> HttpResponse:
    size = media.size() if media.done else None
    if m is None or (not m[1] and not m[2]):
        start, end, status = 0, (size or 0) - 1, 206 if asked else 200
    elif not m[1]:  # the last N bytes (only once the length is known)
        if size is None:
            return _unsatisfiable(None)
        start, end, status = max(0, size - int(m[2])), size - 1, 206
    else:
        start = int(m[1])
        end = int(m[2]) if m[2] else start + MAX_CHUNK - 1
        end = min(end, start + MAX_CHUNK - 1, (size - 1) if size is not None else end)
        status = 206
    if status == 200:
        return HttpResponse(media.read(0, end, timeout=0), content_type="video/mp4")
    data = media.read(start, end, timeout=STREAM_WAITS)
    if not data:
        return _unsatisfiable(size)
    resp = HttpResponse(data, status=206, content_type="video/mp4")
    resp["Content-Range"] = f"bytes {start}-{start + len(data) - 1}/{size if size else '*'}"
    return resp


def _unsatisfiable(size: int | None) -> HttpResponse:
    resp = HttpResponse(status=416)
    resp["Content-Range"] = f"bytes */{size if size is not None else '*'}"
    return resp


@page
def viewing_event(request: HttpRequest, actor: Actor, viewing_id: str) -> HttpResponse:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    what = request.POST.get("event", "")
    if what == "seek":
        try:
            position = float(request.POST.get("position", ""))
        except ValueError:
            return HttpResponse("position: a number of seconds", status=400)
        viewings.viewing_seek(
            viewing_id=viewing_id,
            position=position,
            clock=base.CLOCK,
            session_key=request.session.session_key or "",
            actor=actor,
        )
        return HttpResponse(status=204)
    if what == "end":
        viewings.viewing_end(
            viewing_id=viewing_id,
            clock=base.CLOCK,
            session_key=request.session.session_key or "",
            actor=actor,
        )
        return redirect("catalog")
    return HttpResponse("event: seek or end", status=400)
