"""The back office's pages: thin views over the services and selectors.

Each view finds the actor, calls one service or selector and renders. A refusal from
the policy (already audited by the service) becomes a 403 page naming the rule; a bad
request re-renders the form with the message.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth import login, logout
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseNotAllowed,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from vault.access import SECTIONS, Actor, actor_for, open_sections, refuse
from vault.accounts.models import Municipality, Officer
from vault.casework import services as casework
from vault.casework.models import CaseRequest
from vault.catalog.models import Hold, Recording
from vault.catalog.selectors import recording_custody, recording_get, recording_list
from vault.clock import SYSTEM_CLOCK, Clock
from vault.errors import (
    AuthenticationFailed,
    FootageUnavailable,
    NotFound,
    PermissionRefused,
    VaultError,
)
from vault.local_time import municipality_zone
from vault.policy import PURPOSES
from vault.reports import services as reports
from vault.reports.models import ShiftReport
from vault.signin.services import sign_in
from vault.viewing import services as viewings
from vault.web import words
from vault.web.site import site_config, site_store, vault_key, work_dir

log = logging.getLogger(__name__)

CLOCK: Clock = SYSTEM_CLOCK
VIEW_PURPOSES = ("complaint", "learning", "access_request")  # viewing in the browser
RANGE = re.compile(r"bytes=(\d*)-(\d*)")
MAX_CHUNK = 4 << 20  # one response never carries more than this of the stream
STREAM_CHUNK = 256 << 10
SHORT_RECORDING = 15.0  # seconds: encoded whole before the page shows (a second or so)
STREAM_WAITS = 60  # seconds a reader waits for the encoder before giving up
REQUEST_CHOICES = 500  # recordings the requests form offers, newest first


def _remote(request: HttpRequest) -> str:
    """The client's address: behind our own reverse proxy, the hop it added last.

    The sign-in lock-out is kept per address, so everyone seen as the proxy's address
    would share one lock. Only a trusted proxy's X-Forwarded-For is read, and only its
    last entry (what the proxy appended; anything before it the client could write).
    """
    addr = str(request.META.get("REMOTE_ADDR", ""))
    if addr in settings.TRUSTED_PROXIES:
        hops = [h.strip() for h in str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",")]
        if hops and hops[-1]:
            addr = hops[-1]
    return addr[:64]


def page(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Signed-in only; the actor as second argument; policy refusals as 403 pages."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return redirect(f"{reverse('login')}?next={request.path}")
        actor = actor_for(request.user)
        try:
            return view(request, actor, *args, **kwargs)
        except PermissionRefused as exc:
            return render(request, "web/refused.html", {"message": str(exc)}, status=403)
        except NotFound as exc:
            raise Http404(str(exc)) from None

    return wrapped


def section(name: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """The view is the page of menu section `name`: whoever may not open it (the rule the
    menu is built from, `vault.access.open_sections`) is refused, audited, before it runs."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def gated(request: HttpRequest, actor: Actor, *args: Any, **kwargs: Any) -> HttpResponse:
            if name not in open_sections(actor):
                rule = SECTIONS[name]
                raise refuse(
                    actor=actor,
                    action=rule.action or f"{name}.list",
                    target=name,
                    clock=CLOCK,
                    reason="the policies of your municipalities let none of your roles "
                    f"({actor.describe() or 'none'}) open {name}",
                )
            return view(request, actor, *args, **kwargs)

        return gated

    return decorate


def _when(text: str, field: str) -> dt.datetime | None:
    """A time typed into a page: in the municipality's zone, as the pages show times."""
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise VaultError(
            _("%(field)s: %(text)r is not a date/time (2026-11-02 or 2026-11-02T08:00)")
            % {"field": field, "text": text}
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=municipality_zone())


# --- signing in -------------------------------------------------------------------------------


def login_view(request: HttpRequest) -> HttpResponse:
    error = ""
    if request.method == "POST":
        try:
            actor = sign_in(
                username=request.POST.get("username", ""),
                password=request.POST.get("password", ""),
                clock=CLOCK,
                remote=_remote(request),
            )
        except AuthenticationFailed as exc:
            error = str(exc)
        else:
            login(request, actor.user, backend="django.contrib.auth.backends.ModelBackend")
            nxt = request.POST.get("next", "")
            safe = url_has_allowed_host_and_scheme(nxt, allowed_hosts=None) and nxt.startswith("/")
            return redirect(nxt if safe else "/")
    return render(
        request,
        "web/login.html",
        {"error": error, "next": request.GET.get("next", "")},
        status=401 if error else 200,
    )


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    viewings.viewing_end_all_for_session(request.session.session_key or "", reason="sign-out")
    logout(request)
    return redirect("login")


@page
def home(request: HttpRequest, actor: Actor) -> HttpResponse:
    """The first page of the menu (the officer's: his shift reports)."""
    sections = open_sections(actor)
    if "catalog" in sections:
        return redirect("catalog")
    if sections:
        return redirect(sections[0])
    raise refuse(
        actor=actor,
        action="catalog.list",
        clock=CLOCK,
        reason=f"your roles ({actor.describe() or 'none'}) open none of the back office's pages",
    )


# --- catalog ------------------------------------------------------------------------------


@page
@section("catalog")
def catalog(request: HttpRequest, actor: Actor) -> HttpResponse:
    q = request.GET
    error = ""
    recordings: list[Recording] = []
    try:
        qs = recording_list(
            actor=actor,
            clock=CLOCK,
            camera=q.get("camera") or None,
            officer=q.get("officer") or None,
            purpose=q.get("purpose", ""),
            since=_when(q.get("since", ""), _("From")),
            until=_when(q.get("until", ""), _("Until")),
            state=q.get("state") or None,
            hold=q.get("hold") or None,
        )
        recordings = list(qs[:500])
    except PermissionRefused:
        raise
    except VaultError as exc:
        error = str(exc)
    held = set(
        Hold.objects.filter(recording__in=recordings, lifted_at__isnull=True).values_list(
            "recording_id", flat=True
        )
    )
    return render(
        request,
        "web/catalog.html",
        {
            "recordings": recordings,
            "held": held,
            "q": q,
            "error": error,
            "states": Recording.State.values,
            "holds": ["any", "none", *Hold.Kind.values],
            "purposes": PURPOSES,
        },
        status=400 if error else 200,
    )


def _recording(actor: Actor, device: str, rec: str) -> Recording:
    from vault.catalog.selectors import recording_detail

    return recording_detail(actor=actor, ref=f"{device}/{rec}", clock=CLOCK)


@page
def recording_page(
    request: HttpRequest, actor: Actor, device: str, rec: str, error: str = "", status: int = 200
) -> HttpResponse:
    r = _recording(actor, device, rec)
    custody = recording_custody(actor=actor, recording=r)
    from vault.access import policy_of

    policy = policy_of(r.municipality)
    rules = {p: policy.viewing[p] for p in VIEW_PURPOSES if p in policy.viewing}
    return render(
        request,
        "web/recording.html",
        {
            "r": r,
            "segments": r.segments.all(),
            "holds": r.holds.all().order_by("opened_at"),
            "custody": custody.entries,
            "custody_full": custody.complete,
            "rules": rules,
            "consent_needed": any(rule.officer_consent for rule in rules.values()),
            "error": error,
            "report": ShiftReport.objects.filter(recording=r).first(),
            "requests": r.case_requests.all(),
        },
        status=status,
    )


@page
def viewing_start(request: HttpRequest, actor: Actor, device: str, rec: str) -> HttpResponse:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    r = _recording(actor, device, rec)
    p = request.POST
    purpose = p.get("purpose", "")
    try:
        if not p.get("second_username") or not p.get("second_password"):
            raise refuse(
                actor=actor,
                action="viewing.start",
                municipality=r.municipality.code,
                target=str(r),
                purpose=purpose,
                clock=CLOCK,
                reason="always at least two people view together: the second person "
                "signs in here with their own credentials",
            )
        second = sign_in(
            username=p["second_username"],
            password=p["second_password"],
            clock=CLOCK,
            remote=_remote(request),
            action="viewing.second",
            municipality=r.municipality.code,
        )
        v = viewings.viewing_start(
            recording=r,
            purpose=purpose,
            first=actor,
            second=second,
            session_key=request.session.session_key or "",
            store=site_store(),
            vault_key=vault_key(),
            clock=CLOCK,
            work_dir=work_dir(),
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
        clock=CLOCK,
        actor=actor,
    )


@page
def viewing_page(request: HttpRequest, actor: Actor, viewing_id: str) -> HttpResponse:
    v = _viewing(request, actor, viewing_id)
    # A short recording is ready almost at once: the browser then plays the finished
    # file with byte ranges. A long one starts playing while it is encoded (Media Source
    # Extensions fed from the growing stream), seeking within what has arrived.
    r = Recording.objects.filter(pk=v.recording_pk).first()
    duration = (r.ended_at - r.footage_start_at).total_seconds() if r and r.ended_at else 0
    complete = v.media.wait_done(timeout=10.0 if 0 < duration <= SHORT_RECORDING else 0)
    mime = "" if complete else v.media.mime_codecs(timeout=10)
    # A stream that failed by now is said on the page; a later failure, by its script.
    failure = viewings.viewing_failure(viewing=v, clock=CLOCK)
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
    failure = viewings.viewing_failure(viewing=v, clock=CLOCK)
    resp = JsonResponse({"done": v.media.done, "error": failure})
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
    media = v.media
    header = request.headers.get("Range", "").strip()
    m = RANGE.fullmatch(header)
    failure = viewings.viewing_failure(viewing=v, clock=CLOCK)
    if failure:
        return _failed_stream(failure)
    if not media.done and (m is None or (m[1] in ("", "0") and not m[2])):
        resp: HttpResponseBase = StreamingHttpResponse(_grow(media), content_type="video/mp4")
    else:
        resp = _ranged(media, m, bool(header))
        failure = viewings.viewing_failure(viewing=v, clock=CLOCK)
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


def _grow(media: Any) -> Any:
    pos, idle = 0, 0
    while idle < STREAM_WAITS:
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
            clock=CLOCK,
            session_key=request.session.session_key or "",
            actor=actor,
        )
        return HttpResponse(status=204)
    if what == "end":
        viewings.viewing_end(
            viewing_id=viewing_id,
            clock=CLOCK,
            session_key=request.session.session_key or "",
            actor=actor,
        )
        return redirect("catalog")
    return HttpResponse("event: seek or end", status=400)


# --- cameras and officers -------------------------------------------------------------------


@page
@section("cameras")
def cameras(request: HttpRequest, actor: Actor) -> HttpResponse:
    from vault.registry import services as reg

    error = ""
    if request.method == "POST":
        p = request.POST
        try:
            op = p.get("op")
            if op == "register":
                reg.camera_register(
                    actor=actor,
                    municipality=p.get("municipality", ""),
                    device_id=p.get("device_id", "").strip(),
                    public_key=p.get("public_key", "").strip(),
                    model=p.get("model", ""),
                    clock=CLOCK,
                )
                _publish(actor)
            elif op == "remove":
                reg.camera_remove(actor=actor, device_id=p.get("device_id", ""), clock=CLOCK)
                _publish(actor)
            elif op == "assign":
                reg.camera_assign(
                    actor=actor,
                    device_id=p.get("device_id", ""),
                    officer_code=p.get("officer", ""),
                    starts_at=_when(p.get("starts_at", ""), _("From")) or CLOCK.now(),
                    ends_at=_when(p.get("ends_at", ""), _("Until")),
                    clock=CLOCK,
                )
            else:
                raise VaultError(_("unknown operation %(op)r") % {"op": op})
            return redirect("cameras")
        except PermissionRefused:
            raise
        except (VaultError, ValueError) as exc:
            error = str(exc)
    rows = reports.camera_overview(actor=actor, clock=CLOCK)
    munis = sorted({r.camera.municipality for r in rows}, key=lambda m: m.code) or list(
        Municipality.objects.filter(code__in=list(actor.roles))
    )
    officers = Officer.objects.filter(municipality__code__in=list(actor.roles)).order_by("code")
    return render(
        request,
        "web/cameras.html",
        {"rows": rows, "error": error, "municipalities": munis, "officers": officers},
        status=400 if error else 200,
    )


def _publish(actor: Actor) -> None:
    from crypto.keys import SigningKey
    from vault.registry.services import registry_publish

    cfg = site_config()
    registry_publish(
        actor=actor,
        store=site_store(),
        signing_key=SigningKey.load(cfg.path(cfg.registry_key)),
        site=cfg.site,
        clock=CLOCK,
    )


@page
def sync(request: HttpRequest, actor: Actor) -> HttpResponse:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    from vault.catalog.services import catalog_sync

    catalog_sync(actor=actor, store=site_store(), clock=CLOCK)
    reports.shift_sync(actor=actor, store=site_store(), clock=CLOCK)
    return redirect("catalog")


# --- requests register ---------------------------------------------------------------------


@page
@section("requests")
def requests_page(request: HttpRequest, actor: Actor) -> HttpResponse:
    error = ""
    if request.method == "POST":
        p = request.POST
        try:
            muni = Municipality.objects.filter(code=p.get("municipality", "")).first()
            if muni is None or muni.code not in actor.roles:
                raise VaultError(_("choose one of your municipalities"))
            refs = p.getlist("recordings")
            if not refs:
                raise VaultError(_("choose the recordings the request is about"))
            recs = [recording_get(actor=actor, ref=x, clock=CLOCK) for x in refs]
            case = casework.request_open(
                actor=actor,
                municipality=muni,
                kind=p.get("kind", ""),
                reference=p.get("reference", ""),
                description=p.get("description", ""),
                received_at=_when(p.get("received_at", ""), _("Received")) or CLOCK.now(),
                recordings=recs,
                store=site_store(),
                clock=CLOCK,
            )
            return redirect("request", request_id=case.pk)
        except PermissionRefused as exc:
            error = str(exc)
        except VaultError as exc:
            error = str(exc)
    cases = list(casework.request_list(actor=actor, clock=CLOCK, kind=request.GET.get("kind", "")))
    munis = Municipality.objects.filter(code__in=list(actor.roles))
    # The form picks from the catalog: the recordings this user may list whose footage is kept.
    shown = recording_list(actor=actor, clock=CLOCK).exclude(state=Recording.State.PURGED)
    choices = [(f"{r.device_id}/{r.recording_id}", r) for r in shown[:REQUEST_CHOICES]]
    return render(
        request,
        "web/requests.html",
        {
            "cases": cases,
            "choices": choices,
            "picked": set(request.POST.getlist("recordings")),
            "error": error,
            "kinds": CaseRequest.Kind.choices,
            "municipalities": munis,
            "now": CLOCK.now(),
            "p": request.POST,
        },
        status=400 if error else 200,
    )


@page
def request_page(request: HttpRequest, actor: Actor, request_id: int) -> HttpResponse:
    case = casework.request_get(actor=actor, request_id=request_id, clock=CLOCK)
    error = ""
    if request.method == "POST":
        p = request.POST
        try:
            op = p.get("op")
            if op == "decide":
                casework.request_decide(
                    actor=actor,
                    case=case,
                    decision=p.get("decision", ""),
                    text=p.get("text", ""),
                    clock=CLOCK,
                )
            elif op == "object":
                casework.request_object(actor=actor, case=case, text=p.get("text", ""), clock=CLOCK)
            elif op == "close":
                casework.request_close(
                    actor=actor,
                    case=case,
                    reason=p.get("text", ""),
                    store=site_store(),
                    clock=CLOCK,
                )
            else:
                raise VaultError(_("unknown operation %(op)r") % {"op": op})
            return redirect("request", request_id=case.pk)
        except VaultError as exc:
            error = str(exc)
    return render(
        request,
        "web/request.html",
        {"case": case, "error": error, "now": CLOCK.now()},
        status=400 if error else 200,
    )


# --- audit ------------------------------------------------------------------------------------


@page
@section("audit")
def audit_page(request: HttpRequest, actor: Actor) -> HttpResponse:
    from vault.audit.selectors import audit_search
    from vault.audit.services import audit_verify

    q = request.GET
    entries = audit_search(actor=actor, clock=CLOCK, filters=dict(q.items()))
    report = audit_verify()
    return render(
        request,
        "web/audit.html",
        {
            "entries": entries,
            "q": q,
            "report": report,
            "results": ["ok", "refused", "failed"],
            "purposes": list(words.PURPOSES),
        },
    )


# --- the officer's shift report -------------------------------------------------------------


@page
@section("reports")
def reports_page(request: HttpRequest, actor: Actor) -> HttpResponse:
    rows = list(reports.report_list(actor=actor).order_by("state", "-pressed_at")[:300])
    return render(request, "web/reports.html", {"rows": rows})


@page
def report_page(request: HttpRequest, actor: Actor, report_id: int) -> HttpResponse:
    rep = reports.report_get(actor=actor, report_id=report_id)
    error = ""
    if request.method == "POST":
        p = request.POST
        warning = {"yes": True, "no": False}.get(p.get("warning_given", ""))
        try:
            reports.report_complete(
                actor=actor,
                report=rep,
                reason=p.get("reason", ""),
                warning_given=warning,
                warning_note=p.get("warning_note", ""),
                bystanders_informed=p.get("bystanders", ""),
                submit="submit" in p,
                clock=CLOCK,
            )
            return redirect("report", report_id=rep.pk)
        except PermissionRefused as exc:
            error = str(exc)
        except VaultError as exc:
            error = str(exc)
    own = rep.officer is not None and rep.officer.user_id == actor.user.pk  # type: ignore[union-attr]
    return render(
        request,
        "web/report.html",
        {"rep": rep, "error": error, "own": own},
        status=400 if error else 200,
    )


@page
def report_print(request: HttpRequest, actor: Actor, report_id: int) -> HttpResponse:
    rep = reports.report_get(actor=actor, report_id=report_id)
    return render(request, "web/report_print.html", {"rep": rep})


@page
def report_pdf(request: HttpRequest, actor: Actor, report_id: int) -> HttpResponse:
    rep = reports.report_get(actor=actor, report_id=report_id)
    resp = HttpResponse(reports.report_pdf(rep), content_type="application/pdf")
    resp["Content-Disposition"] = f'inline; filename="report-{rep.recording.recording_id}.pdf"'
    return resp
