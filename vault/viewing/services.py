"""Viewing in pairs: the session that holds one viewing's watermarked stream in memory.

`viewing_start` checks the pair with `vault.viewing.rules.viewing_pair_check` (every refusal
audited there; where the policy asks for the officer's consent, the consent the officer
recorded beforehand, which the start entry refers to), decrypts
in memory, checks that the result opens as video and starts burning the watermark in;
the result lives only in this process, tied to the browser session that started it.
`viewing_seek` and `viewing_end` are audited; an idle viewing ends by itself. No copy
exists at any point: there is no download route, the stream is served `no-store` and
only to the session that started it.

Footage that cannot be prepared says so. What can be known before the start (it does
not verify or decrypt, or holds no video) fails the start: audited as `viewing.start`
with result "failed" (or "refused" for footage whose origin no longer checks) and the
reason, raised as `FootageUnavailable` for the page to show. A stream that fails while
it is encoded is audited once as `viewing.failed` with the reason, by the first request
that touches the viewing after the failure (its page asks every second while the stream
is prepared) or by the sweep every request runs; its memory is dropped and the viewing
stays open until it is ended, so its page and its stream can say why.

Served by one process (gunicorn with threads, see `vault.web.serve`), so the registry
is a dict guarded by a lock.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.db import transaction

from crypto.errors import FormatError
from crypto.keys import VaultKey
from store import Store, StoreError
from vault.access import Actor, refuse
from vault.catalog.models import Recording
from vault.clock import Clock
from vault.errors import FootageUnavailable, InvalidRequest, NotFound, OriginRefused
from vault.local_time import municipality_zone
from vault.media import MediaError
from vault.signin.services import sign_in
from vault.viewing.playback import (
    GrowingMedia,
    check_playable,
    decrypt_to_memory,
    encode_in_background,
)
from vault.viewing.rules import viewing_pair_check
from vault.viewing.watermark import Watermark

log = logging.getLogger(__name__)

IDLE_LIMIT = dt.timedelta(minutes=30)
MAX_VIEWINGS = 8  # bounded memory: each holds one recording's watermarked video


@dataclass
class Viewing:
    id: str
    session_key: str
    recording_pk: int
    recording: str
    municipality: str
    purpose: str
    first: str
    second: str
    pair: tuple[str, str]
    started_at: dt.datetime
    media: GrowingMedia = field(repr=False)
    encoder: threading.Thread | None = field(default=None, repr=False)
    stop: threading.Event = field(default_factory=threading.Event, repr=False)
    last_seen: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    seeks: int = 0
    failure: str = ""  # why its stream could not be prepared (audited as viewing.failed)


_lock = threading.Lock()
_viewings: dict[str, Viewing] = {}


def _audit(
    actor_name: str, v: Viewing, action: str, clock: Clock, result: str = "ok", **detail: object
) -> None:
    from vault.audit.services import audit_record

    with transaction.atomic():
        audit_record(
            actor=actor_name,
            municipality=v.municipality,
            action=action,
            target=f"{v.recording} viewed by {v.first}+{v.second}",
            purpose=v.purpose,
            result=result,
            clock=clock,
            detail={"viewing": v.id, **detail},
        )


# What can go wrong before a viewing starts: the store, the sealed format, the origin
# check, the media (no video in it), the disk of the work folder.
_CANNOT_PREPARE = (OriginRefused, FormatError, StoreError, MediaError, OSError)


def _start_failed(
    *,
    recording: Recording,
    purpose: str,
    first: Actor,
    second: Actor,
    pair: tuple[str, str],
    exc: Exception,
    clock: Clock,
) -> None:
    from vault.audit.services import audit_record

    muni = recording.municipality.code
    with transaction.atomic():
        audit_record(
            actor=first.username,
            roles=first.describe(muni),
            municipality=muni,
            action="viewing.start",
            target=f"{recording} viewed by {first.username}+{second.username}",
            purpose=purpose,
            result="refused" if isinstance(exc, OriginRefused) else "failed",
            clock=clock,
            detail={
                "error": f"{type(exc).__name__}: {exc}",
                "pair": list(pair),
                "second": second.username,
                "copy": False,
            },
        )


def _reason(recording: Recording, exc: Exception) -> str:
    """One line naming the recording once (media errors name it already)."""
    text = str(exc) or type(exc).__name__
    return text if text.startswith(str(recording)) else f"{recording}: {text}"


def viewing_start(
    *,
    recording: Recording,
    purpose: str,
    first: Actor,
    second: Actor,
    session_key: str,
    store: Store,
    vault_key: VaultKey,
    clock: Clock,
    work_dir: Path | None = None,
) -> Viewing:
    """Check the pair, then prepare the watermarked stream; audited as viewing.start.

    Raises FootageUnavailable (audited as a failed start) when the recording does not
    verify, decrypt or open as video; OriginRefused (audited as refused) when its
    origin no longer checks.
    """
    muni = recording.municipality
    decision = viewing_pair_check(
        recording=recording,
        purpose=purpose,
        first=first,
        second=second,
        clock=clock,
    )
    if recording.state == Recording.State.PURGED:
        raise InvalidRequest(f"{recording} was purged: nothing is left to view")
    now = clock.now()
    mark = Watermark.for_viewing(
        [first.username, second.username], purpose, now, str(recording), zone=municipality_zone()
    )
    t0 = time.perf_counter()
    try:
        plain = decrypt_to_memory(
            recording=recording, store=store, vault_key=vault_key, work_dir=work_dir
        )
        check_playable(plain, name=str(recording))
    except _CANNOT_PREPARE as exc:
        log.warning("viewing of %s cannot start: %s", recording, exc)
        _start_failed(
            recording=recording,
            purpose=purpose,
            first=first,
            second=second,
            pair=decision.pair,
            exc=exc,
            clock=clock,
        )
        if isinstance(exc, OriginRefused):
            raise
        raise FootageUnavailable(f"the viewing cannot start: {_reason(recording, exc)}") from None
    decrypt_s, plain_bytes = time.perf_counter() - t0, len(plain)
    with _lock:
        _expire_locked(clock)
        if sum(1 for other in _viewings.values() if not other.failure) >= MAX_VIEWINGS:
            raise InvalidRequest(f"{MAX_VIEWINGS} viewings are open on this server: end one first")
    # The picture is encoded while it plays: the browser starts on the first fragment.
    media, encoder, stop = encode_in_background(plain, mark)
    del plain  # the encoder thread holds the only reference now
    v = Viewing(
        id=secrets.token_urlsafe(16),
        session_key=session_key,
        recording_pk=recording.pk,
        recording=str(recording),
        municipality=muni.code,
        purpose=purpose,
        first=first.username,
        second=second.username,
        pair=decision.pair,
        started_at=now,
        media=media,
        encoder=encoder,
        stop=stop,
        last_seen=now,
    )
    with _lock:
        _viewings[v.id] = v
    _audit(
        first.username,
        v,
        "viewing.start",
        clock,
        pair=list(decision.pair),
        second=second.username,
        consent=decision.consent,
        copy=False,
    )
    log.info(
        "viewing %s of %s started (%s): %d bytes fetched, verified and decrypted in %.3f s",
        v.id,
        v.recording,
        purpose,
        plain_bytes,
        decrypt_s,
    )
    return v


def _release(v: Viewing) -> None:
    """Stop the encoder and drop the decrypted picture from memory."""
    v.stop.set()
    if v.encoder is not None and v.encoder is not threading.current_thread():
        v.encoder.join(timeout=30)
    v.media.drop()


def _settle_locked(v: Viewing, clock: Clock) -> None:
    """A stream that failed while it was encoded: audited once, its memory dropped."""
    if v.failure or not v.media.done or not v.media.error or _viewings.get(v.id) is not v:
        return  # fine so far, settled already, or ended (an ended stream stops on purpose)
    v.failure = f"the viewing stream could not be prepared: {v.media.error}"
    v.media.drop()
    _audit(v.first, v, "viewing.failed", clock, result="failed", error=v.media.error)


def _expire_locked(clock: Clock) -> None:
    now = clock.now()
    for vid in [k for k, v in _viewings.items() if now - v.last_seen > IDLE_LIMIT]:
        v = _viewings.pop(vid)
        _release(v)
        _audit(v.first, v, "viewing.end", clock, reason="idle")
    for v in list(_viewings.values()):
        _settle_locked(v, clock)


def viewing_get(
    *, viewing_id: str, session_key: str, clock: Clock, actor: Actor | None = None
) -> Viewing:
    """The viewing, only for the browser session that started it.

    Any other request is answered NotFound and, with the `actor` who asked, audited as a
    refused `viewing.access` in the actor's municipality: the same entry and the same
    answer whether the id is another session's viewing, an ended one or made up.
    """
    with _lock:
        _expire_locked(clock)
        v = _viewings.get(viewing_id)
        if v is not None and secrets.compare_digest(v.session_key, session_key):
            v.last_seen = clock.now()
            return v
    if actor is not None:
        refuse(
            actor=actor,
            action="viewing.access",
            target=f"viewing {viewing_id[:64]}",
            clock=clock,
            reason="no such viewing open in this session",
        )
    raise NotFound("no such viewing open in this session (it ended or expired)")


def viewing_failure(*, viewing: Viewing, clock: Clock) -> str:
    """Why the viewing's stream could not be prepared; "" while nothing went wrong.

    The first call after a failure audits it (viewing.failed) and drops the stream.
    """
    with _lock:
        _settle_locked(viewing, clock)
        return viewing.failure


def viewing_seek(
    *,
    viewing_id: str,
    session_key: str,
    position: float,
    clock: Clock,
    actor: Actor | None = None,
) -> None:
    v = viewing_get(viewing_id=viewing_id, session_key=session_key, clock=clock, actor=actor)
    if not 0 <= position < 10 * 24 * 3600:
        raise InvalidRequest(f"seek position {position!r} is out of range")
    v.seeks += 1
    _audit(v.first, v, "viewing.seek", clock, position=round(position, 2))


def viewing_end(
    *,
    viewing_id: str,
    session_key: str,
    clock: Clock,
    reason: str = "ended",
    actor: Actor | None = None,
) -> None:
    v = viewing_get(viewing_id=viewing_id, session_key=session_key, clock=clock, actor=actor)
    with _lock:
        _viewings.pop(v.id, None)
    _release(v)
    _audit(v.first, v, "viewing.end", clock, reason=reason, seeks=v.seeks)


def viewing_end_all_for_session(
    session_key: str, *, reason: str, clock: Clock | None = None
) -> int:
    from vault.clock import SYSTEM_CLOCK

    with _lock:
        gone = [v for v in _viewings.values() if v.session_key == session_key]
        for v in gone:
            _viewings.pop(v.id, None)
    for v in gone:
        _release(v)
        _audit(v.first, v, "viewing.end", clock or SYSTEM_CLOCK, reason=reason)
    return len(gone)


def open_viewings() -> int:
    with _lock:
        return len(_viewings)


def viewing_second_person(
    *,
    actor: Actor,
    recording: Recording,
    purpose: str,
    username: str,
    password: str,
    remote: str,
    clock: Clock,
) -> Actor:
    """The second viewer, signed in here with their own credentials (audited in the
    recording's municipality); without them the viewing is refused before it starts."""
    if not username or not password:
        raise refuse(
            actor=actor,
            action="viewing.start",
            municipality=recording.municipality.code,
            target=str(recording),
            purpose=purpose,
            clock=clock,
            reason="always at least two people view together: the second person "
            "signs in here with their own credentials",
        )
    return sign_in(
        username=username,
        password=password,
        clock=clock,
        remote=remote,
        action="viewing.second",
        municipality=recording.municipality.code,
    )
