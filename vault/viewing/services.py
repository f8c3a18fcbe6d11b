"""Viewing in pairs: a viewing is a database row, its watermarked stream any worker's.

`viewing_start` checks the pair with `vault.viewing.rules.viewing_pair_check` (every refusal
audited there; where the policy asks for the officer's consent, the consent the officer
recorded beforehand, which the start entry refers to), decrypts in memory, checks that
the result opens as video, writes the viewing's row (`vault.viewing.models.Viewing`) and
starts burning the watermark in on this worker's encoder pool. The row is shared by every
worker and host: any of them answers the viewing's next request, building the same
stream in its own memory when it has none (`vault.viewing.streams`: deterministic, so the
bytes match). Each checks the row before serving a byte: the viewing is open, and the
request comes from the browser session that started it. `viewing_seek` and
`viewing_end` are audited; ending it (the end button, signing out, 30 idle minutes) ends
it in the row, so everywhere; each worker drops its copy when it sees that. No copy exists
at any point: there is no download route, the stream is served `no-store` and only to
the session that started it, and nothing decrypted is written to disk.

When every encoder of this worker is busy a new viewing is refused with `ViewingBusy`
(audited as a failed start), which says when to try again.

Footage that cannot be prepared says so. What can be known before the start (it does
not verify or decrypt, or holds no video) fails the start: audited as `viewing.start`
with result "failed" (or "refused" for footage whose origin no longer checks) and the
reason, raised as `FootageUnavailable` for the page to show. A stream that fails while
it is encoded is audited once as `viewing.failed` with the reason (in the row, so once
for all workers), by the first request that touches the viewing after the failure (its
page asks every second while the stream is prepared); its memory is dropped and the
viewing stays open until it is ended, so its page and its stream can say why.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from django.db import transaction
from django.db.models import F

from crypto.errors import FormatError
from crypto.keys import VaultKey
from store import Store, StoreError
from vault.access import Actor, refuse
from vault.catalog.models import Recording
from vault.clock import SYSTEM_CLOCK, Clock
from vault.errors import FootageUnavailable, InvalidRequest, NotFound, OriginRefused
from vault.local_time import municipality_zone
from vault.media import MediaError
from vault.signin.services import sign_in
from vault.viewing.models import Viewing as ViewingRow
from vault.viewing.playback import (
    GrowingMedia,
    check_playable,
    decrypt_to_memory,
    encode_watermarked,
)
from vault.viewing.rules import viewing_pair_check
from vault.viewing.streams import POOL, STREAMS, ViewingBusy
from vault.viewing.watermark import Watermark

__all__ = ["ViewingBusy"]  # raised by viewing_start; the page answers 503 with Retry-After

log = logging.getLogger(__name__)

IDLE_LIMIT = dt.timedelta(minutes=30)
# How often a viewing's "last seen" is written: not on every byte range, but often enough
# that the idle limit (30 minutes) is kept to within a minute.
LAST_SEEN_EVERY = dt.timedelta(minutes=1)
ID_LENGTH = 32  # the row's key: secrets.token_urlsafe(16) is 22 characters


@dataclass
class Viewing:
    """An open viewing as a request sees it: its row, and this worker's stream if any."""

    row: ViewingRow
    media: GrowingMedia | None = None

    @property
    def id(self) -> str:
        return str(self.row.id)

    @property
    def recording(self) -> str:
        return str(self.row.recording)

    @property
    def recording_pk(self) -> int:
        return int(self.row.recording_id)

    @property
    def municipality(self) -> str:
        return str(self.row.municipality)

    @property
    def purpose(self) -> str:
        return str(self.row.purpose)

    @property
    def first(self) -> str:
        return str(self.row.first)

    @property
    def second(self) -> str:
        return str(self.row.second)

    @property
    def started_at(self) -> dt.datetime:
        started: dt.datetime = self.row.started_at
        return started

    @property
    def failure(self) -> str:
        return str(self.row.failure)


def _session_hash(session_key: str) -> str:
    return hashlib.sha256(session_key.encode()).hexdigest()


def viewing_mark(row: ViewingRow) -> Watermark:
    """The viewers' mark, from the row alone: the same in every worker."""
    return Watermark.for_viewing(
        [row.first, row.second],
        row.purpose,
        row.started_at,
        str(row.recording),
        zone=municipality_zone(),
    )


def _audit(
    actor_name: str,
    row: ViewingRow,
    action: str,
    clock: Clock,
    result: str = "ok",
    **detail: object,
) -> None:
    from vault.audit.services import audit_record

    with transaction.atomic():
        audit_record(
            actor=actor_name,
            municipality=row.municipality,
            action=action,
            target=f"{row.recording} viewed by {row.first}+{row.second}",
            purpose=row.purpose,
            result=result,
            clock=clock,
            detail={"viewing": row.id, **detail},
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
    origin no longer checks; ViewingBusy (audited as a failed start) when every encoder
    of this worker is taken.
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
    now = clock.utc()
    if not POOL.reserve():
        busy = ViewingBusy(POOL.retry_after())
        _start_failed(
            recording=recording,
            purpose=purpose,
            first=first,
            second=second,
            pair=decision.pair,
            exc=busy,
            clock=clock,
        )
        raise busy
    t0 = time.perf_counter()
    try:
        plain = decrypt_to_memory(
            recording=recording, store=store, vault_key=vault_key, work_dir=work_dir
        )
        check_playable(plain, name=str(recording))
    except _CANNOT_PREPARE as exc:
        POOL.release()
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
    except BaseException:
        POOL.release()
        raise
    decrypt_s, plain_bytes = time.perf_counter() - t0, len(plain)
    try:
        with transaction.atomic():
            row = ViewingRow.objects.create(
                id=secrets.token_urlsafe(16),
                recording=recording,
                municipality=muni.code,
                purpose=purpose,
                first=first.username,
                second=second.username,
                pair=list(decision.pair),
                session_hash=_session_hash(session_key),
                started_at=now,
                last_seen_at=now,
            )
            _audit(
                first.username,
                row,
                "viewing.start",
                clock,
                pair=list(decision.pair),
                second=second.username,
                consent=decision.consent,
                copy=False,
            )
    except BaseException:
        POOL.release()
        raise
    # The picture is encoded while it plays: the browser starts on the first fragment.
    stream = STREAMS.start(row.id, plain, viewing_mark(row), reserved=True)
    del plain  # the encoder holds the only reference now
    log.info(
        "viewing %s of %s started (%s): %d bytes fetched, verified and decrypted in %.3f s",
        row.id,
        row.recording,
        purpose,
        plain_bytes,
        decrypt_s,
    )
    return Viewing(row, stream.media)


def viewing_media(
    *, viewing: Viewing, store: Store, vault_key: VaultKey, work_dir: Path | None = None
) -> GrowingMedia:
    """This worker's copy of the viewing's stream, built here when it has none.

    Another worker (or host) started the viewing: the recording is fetched, verified and
    decrypted in memory again and encoded with the mark the row gives, on this worker's
    pool (queued behind the running encoders). The bytes are the ones the first worker
    makes. Footage that no longer opens gives a stream that failed, with the reason.
    """
    if viewing.media is not None and not viewing.media.stopped:
        return viewing.media
    with STREAMS.building(viewing.id):
        stream = STREAMS.get(viewing.id)
        if stream is None:
            row = viewing.row
            try:
                plain = decrypt_to_memory(
                    recording=row.recording, store=store, vault_key=vault_key, work_dir=work_dir
                )
            except (*_CANNOT_PREPARE, InvalidRequest) as exc:
                log.warning("viewing %s: the footage does not open here: %s", row.id, exc)
                stream = STREAMS.failed(viewing.id, _reason(row.recording, exc))
            else:
                stream = STREAMS.start(viewing.id, plain, viewing_mark(row), reserved=False)
                del plain
                log.info("viewing %s: its stream is built on this worker too", row.id)
    viewing.media = stream.media
    return stream.media


def viewing_stream_bytes(
    *, viewing: Viewing, store: Store, vault_key: VaultKey, work_dir: Path | None = None
) -> bytes:
    """The viewing's whole watermarked stream, built now on this thread (no cache)."""
    row = viewing.row
    plain = decrypt_to_memory(
        recording=row.recording, store=store, vault_key=vault_key, work_dir=work_dir
    )
    media = GrowingMedia()
    encode_watermarked(plain, viewing_mark(row), media)
    return media.value()


def _end_row(viewing_id: str, *, reason: str, clock: Clock) -> bool:
    """End the viewing in its row (every worker sees it); audited once, by whoever ends it."""
    with transaction.atomic():
        row = (
            ViewingRow.objects.select_for_update()
            .select_related("recording")
            .filter(pk=viewing_id, ended_at__isnull=True)
            .first()
        )
        if row is None:
            return False
        row.ended_at = clock.utc()
        row.ended_reason = reason
        row.save(update_fields=["ended_at", "ended_reason"])
        _audit(row.first, row, "viewing.end", clock, reason=reason, seeks=row.seeks)
    STREAMS.drop(viewing_id)
    log.info("viewing %s ended (%s)", viewing_id, reason)
    return True


def _expire(clock: Clock) -> None:
    """End every viewing idle for longer than IDLE_LIMIT; drop this worker's ended streams."""
    now = clock.utc()
    for vid in ViewingRow.objects.filter(
        ended_at__isnull=True, last_seen_at__lt=now - IDLE_LIMIT
    ).values_list("id", flat=True):
        _end_row(vid, reason="idle", clock=clock)
    cached = STREAMS.ids()
    if cached:
        still_open = set(
            ViewingRow.objects.filter(pk__in=cached, ended_at__isnull=True).values_list(
                "id", flat=True
            )
        )
        for vid in cached:
            if vid not in still_open:
                STREAMS.drop(vid)


def viewing_get(
    *, viewing_id: str, session_key: str, clock: Clock, actor: Actor | None = None
) -> Viewing:
    """The viewing, only for the browser session that started it, from any worker.

    Any other request is answered NotFound and, with the `actor` who asked, audited as a
    refused `viewing.access` in the actor's municipality: the same entry and the same
    answer whether the id is another session's viewing, an ended one or made up.
    """
    _expire(clock)
    row = (
        ViewingRow.objects.select_related("recording", "recording__camera")
        .filter(pk=viewing_id, ended_at__isnull=True)
        .first()
        if len(viewing_id) <= ID_LENGTH
        else None
    )
    if row is not None and secrets.compare_digest(row.session_hash, _session_hash(session_key)):
        now = clock.utc()
        if now - row.last_seen_at >= LAST_SEEN_EVERY:
            ViewingRow.objects.filter(pk=row.pk).update(last_seen_at=now)
            row.last_seen_at = now
        stream = STREAMS.get(row.id)
        return Viewing(row, stream.media if stream is not None else None)
    if actor is not None:
        refuse(
            actor=actor,
            action="viewing.access",
            target=f"viewing {viewing_id[:64]}",
            clock=clock,
            reason="no such viewing open in this session",
        )
    raise NotFound("no such viewing open in this session (it ended or expired)")


def viewing_still_open(*, viewing: Viewing) -> bool:
    """Whether the viewing's row is still open (a stream being sent asks again and again:
    ended through another worker, its bytes stop here too)."""
    if ViewingRow.objects.filter(pk=viewing.id, ended_at__isnull=True).exists():
        return True
    STREAMS.drop(viewing.id)
    return False


def viewing_failure(*, viewing: Viewing, clock: Clock) -> str:
    """Why the viewing's stream could not be prepared; "" while nothing went wrong.

    The first call (in any worker) after its stream failed audits it (viewing.failed),
    keeps the reason in the row and drops the stream.
    """
    if viewing.row.failure:
        return viewing.failure
    media = viewing.media
    if media is None or media.stopped or not media.done or not media.error:
        return ""
    reason = f"the viewing stream could not be prepared: {media.error}"[:1000]
    with transaction.atomic():
        won = ViewingRow.objects.filter(pk=viewing.id, failure="", ended_at__isnull=True).update(
            failure=reason
        )
        if won:
            viewing.row.failure = reason
            _audit(
                viewing.first,
                viewing.row,
                "viewing.failed",
                clock,
                result="failed",
                error=media.error,
            )
    if not won:
        viewing.row.refresh_from_db(fields=["failure", "ended_at"])
        if not viewing.row.failure:
            return ""  # ended meanwhile: an ended stream stops on purpose
    media.drop()
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
    ViewingRow.objects.filter(pk=v.id).update(seeks=F("seeks") + 1)
    _audit(v.first, v.row, "viewing.seek", clock, position=round(position, 2))


def viewing_end(
    *,
    viewing_id: str,
    session_key: str,
    clock: Clock,
    reason: str = "ended",
    actor: Actor | None = None,
) -> None:
    v = viewing_get(viewing_id=viewing_id, session_key=session_key, clock=clock, actor=actor)
    _end_row(v.id, reason=reason, clock=clock)


def viewing_end_all_for_session(
    session_key: str, *, reason: str, clock: Clock | None = None
) -> int:
    """End every viewing the session started (signing out, an idle session), everywhere."""
    ids = list(
        ViewingRow.objects.filter(
            session_hash=_session_hash(session_key), ended_at__isnull=True
        ).values_list("id", flat=True)
    )
    return sum(_end_row(vid, reason=reason, clock=clock or SYSTEM_CLOCK) for vid in ids)


def open_viewings() -> int:
    """Viewings open anywhere (every worker, every host)."""
    return int(ViewingRow.objects.filter(ended_at__isnull=True).count())


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
