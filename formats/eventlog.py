"""The camera's event log: append-only, hash-chained, signed JSON lines.

Every press, recording start and stop, indicator, dock, fault, clock sync, boot
and recovery is one line of `HOME/volume/events/events.jsonl`:

```
{"seq": 7, "utc": 1790000012.5, "kind": "record_start", "fields": {...},
 "prev": "<hash of event 6>", "hash": "<sha256 hex>", "sig": "<Ed25519 hex>"}
```

`hash` is SHA-256 over `b"bodycam-event-v1\\0"` + the canonical JSON (sorted keys,
no spaces, ASCII) of `{seq, utc, kind, fields, prev}`; `sig` is the device key's
Ed25519 signature over `b"bodycam-event-sig-v1\\0"` + the 32 hash bytes. The first
event's `prev` is 64 zeros. So an edited, dropped, reordered or inserted line
breaks the chain, and only the camera can extend it. Each append is written
with one `write()` on an O_APPEND descriptor and fsynced before it returns: a
power cut loses at most the line being written, and that torn tail is cut off
(and said so in the log) the next time the camera opens it.

The log is what the officer's end-of-shift report is built from and it is
offloaded with the footage; the dock checks it with `verify_event_log`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import os
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from crypto.files import fsync_dir

log = logging.getLogger(__name__)

EVENTS_DIR = "events"
EVENTS_FILE = "events.jsonl"
HASH_DOMAIN = b"bodycam-event-v1\0"
SIGNATURE_DOMAIN = b"bodycam-event-sig-v1\0"
GENESIS = "0" * 64
MAX_LINE = 16 * 1024  # bytes; one event, fields included
MAX_FIELDS = 64
MAX_KIND = 64
_KIND = re.compile(r"[a-z][a-z0-9_]{0,63}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX128 = re.compile(r"[0-9a-f]{128}")
_TAIL_PROBE = MAX_LINE + 2  # enough bytes from the end to hold the last whole line


class WallClock(Protocol):
    """The part of the camera clock the log needs (sim.clock.Clock has it)."""

    def now(self) -> float: ...


class EventSigner(Protocol):
    """The device key as the event log uses it (crypto.keys.SigningKey)."""

    def sign(self, message: bytes) -> bytes: ...

    def public_bytes(self) -> bytes: ...


class EventLogError(ValueError):
    """An event log that does not verify or cannot be extended; the message names the line."""

    def __init__(self, path: Path, line: int, reason: str) -> None:
        super().__init__(f"{path}: line {line}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


class EventRejected(ValueError):
    """An event that cannot be logged as given (bad kind, too large, not JSON)."""


@dataclass(frozen=True)
class Event:
    """One verified (or just written) line of the log."""

    seq: int
    utc: float
    kind: str
    fields: dict[str, Any]
    prev: str
    hash: str
    sig: str

    def to_line(self) -> bytes:
        record = {
            "seq": self.seq,
            "utc": self.utc,
            "kind": self.kind,
            "fields": self.fields,
            "prev": self.prev,
            "hash": self.hash,
            "sig": self.sig,
        }
        return _dumps(record) + b"\n"


@dataclass(frozen=True)
class EventLogReport:
    """What `verify_event_log` found: every event checked, in order."""

    path: Path
    events: tuple[Event, ...]
    torn_tail_bytes: int

    @property
    def count(self) -> int:
        return len(self.events)

    @property
    def last_hash(self) -> str:
        return self.events[-1].hash if self.events else GENESIS

    def of_kind(self, *kinds: str) -> list[Event]:
        return [e for e in self.events if e.kind in kinds]


def _dumps(obj: Any) -> bytes:
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def event_hash(seq: int, utc: float, kind: str, fields: Mapping[str, Any], prev: str) -> str:
    """The chain hash of one event (hex)."""
    body = {"seq": seq, "utc": utc, "kind": kind, "fields": dict(fields), "prev": prev}
    return hashlib.sha256(HASH_DOMAIN + _dumps(body)).hexdigest()


def signature_message(hash_hex: str) -> bytes:
    """What the device key signs for an event whose hash is `hash_hex`."""
    return SIGNATURE_DOMAIN + bytes.fromhex(hash_hex)


def _jsonable(value: Any) -> Any:
    """Plain JSON for field values: paths and enums as text, bytes as hex."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    enum_value = getattr(value, "value", None)
    if isinstance(enum_value, str | int):
        return enum_value
    return str(value)


def events_path(volume: Path) -> Path:
    """Where a camera volume keeps its event log."""
    return Path(volume) / EVENTS_DIR / EVENTS_FILE


class EventLog:
    """The append side of one camera's event log. Thread-safe (the control server logs too).

    ```
    log = EventLog(events_path(volume), device_key, clock)   # opens, repairs a torn tail
    log.append("record_start", recording_id="...", prerecord_seconds=30)
    log.close()
    ```
    """

    def __init__(self, path: Path, signer: EventSigner, clock: WallClock) -> None:
        self.path = Path(path)
        self._signer = signer
        self._clock = clock
        self._lock = threading.Lock()
        self._group_depth = 0  # inside group(): appends wait for one fsync at its end
        self._unsynced = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.repaired_bytes = 0
        self.last_kind: str | None = None  # kind of the last event before this session
        self.last_fields: dict[str, Any] = {}
        self._seq, self._last_hash = self._open_tail()
        self._fd: int | None = os.open(
            self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644
        )
        if self.repaired_bytes or self._seq == 0:
            fsync_dir(self.path.parent)

    @property
    def last_seq(self) -> int:
        return self._seq

    @property
    def last_hash(self) -> str:
        return self._last_hash

    def _open_tail(self) -> tuple[int, str]:
        """Sequence number and hash of the last whole event; cut a torn final line."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return 0, GENESIS
        if size == 0:
            return 0, GENESIS
        with open(self.path, "r+b") as f:
            start = max(0, size - _TAIL_PROBE)
            f.seek(start)
            tail = f.read()
            cut = tail.rfind(b"\n")
            if cut != len(tail) - 1:
                # A power cut during the last write: that line never completed. Keep
                # every whole line and drop the fragment; the camera logs that it did.
                if cut < 0 and start > 0:
                    raise EventLogError(
                        self.path, 0, f"the last {len(tail)} bytes hold no line end"
                    )
                keep = start + cut + 1
                self.repaired_bytes = size - keep
                f.truncate(keep)
                f.flush()
                os.fsync(f.fileno())
                log.warning("%s: cut a torn last line of %d bytes", self.path, size - keep)
                if keep == 0:
                    return 0, GENESIS
                tail = tail[: cut + 1]
            lines = tail.rstrip(b"\n").rsplit(b"\n", 1)
            last_line = lines[-1]
        event = _parse_line(self.path, 0, last_line)
        expected = event_hash(event.seq, event.utc, event.kind, event.fields, event.prev)
        if not hmac.compare_digest(expected, event.hash):
            raise EventLogError(self.path, event.seq, "the last event does not match its hash")
        if not _verify(self._signer.public_bytes(), event):
            raise EventLogError(
                self.path, event.seq, "the last event is not signed by this camera's key"
            )
        self.last_kind, self.last_fields = event.kind, event.fields
        return event.seq, event.hash

    def append(self, kind: str, **fields: Any) -> Event:
        """Sign and durably append one event; returns it."""
        if not isinstance(kind, str) or not _KIND.fullmatch(kind):
            raise EventRejected(
                f"event kind {kind!r} must be lowercase letters, digits and _ (at most {MAX_KIND})"
            )
        if len(fields) > MAX_FIELDS:
            raise EventRejected(f"event {kind} has {len(fields)} fields, at most {MAX_FIELDS}")
        clean = _jsonable(fields)
        with self._lock:
            if self._fd is None:
                raise EventRejected(f"event log {self.path} is closed")
            seq = self._seq + 1
            utc = float(self._clock.now())
            digest = event_hash(seq, utc, kind, clean, self._last_hash)
            sig = self._signer.sign(signature_message(digest)).hex()
            event = Event(seq, utc, kind, clean, self._last_hash, digest, sig)
            line = event.to_line()
            if len(line) > MAX_LINE:
                raise EventRejected(
                    f"event {kind} is {len(line)} bytes, at most {MAX_LINE}: log less detail"
                )
            written = os.write(self._fd, line)
            if written != len(line):
                # A short write is a full or failing volume: the partial line is cut at
                # the next open, so the chain stays whole.
                raise OSError(f"event log {self.path}: short write ({written}/{len(line)})")
            if self._group_depth:
                self._unsynced = True
            else:
                os.fsync(self._fd)
            self._seq, self._last_hash = seq, digest
        log.debug("event %d %s %s", seq, kind, clean)
        return event

    @contextmanager
    def group(self) -> Iterator[None]:
        """The events appended inside are made durable together, by one fsync at the end.

        For a moment that logs several events at once (a record press: the button, the
        state, the recording, the indicators): each is durable when the block ends, as
        each would be after its own `append()`, for one disk flush instead of six. A
        power cut inside the block leaves a prefix of its lines (the chain stays whole;
        a torn last line is cut at the next open).
        """
        with self._lock:
            self._group_depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._group_depth -= 1
                if not self._group_depth and self._unsynced:
                    self._unsynced = False
                    if self._fd is not None:
                        os.fsync(self._fd)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                if self._unsynced:
                    os.fsync(self._fd)
                    self._unsynced = False
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EventLog({str(self.path)!r}, seq={self._seq})"


def _verify(public: bytes, event: Event) -> bool:
    from crypto.keys import verify_signature

    try:
        return bool(
            verify_signature(public, signature_message(event.hash), bytes.fromhex(event.sig))
        )
    except ValueError:
        return False


def _parse_line(path: Path, number: int, raw: bytes) -> Event:
    if len(raw) > MAX_LINE:
        raise EventLogError(path, number, f"line is {len(raw)} bytes, at most {MAX_LINE}")
    try:
        obj = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EventLogError(path, number, f"not JSON ({exc})") from None
    if not isinstance(obj, dict) or set(obj) != {
        "seq",
        "utc",
        "kind",
        "fields",
        "prev",
        "hash",
        "sig",
    }:
        raise EventLogError(path, number, "not an event (keys seq utc kind fields prev hash sig)")
    seq, utc, kind, fields = obj["seq"], obj["utc"], obj["kind"], obj["fields"]
    prev, digest, sig = obj["prev"], obj["hash"], obj["sig"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise EventLogError(path, number, f"seq {seq!r} is not a positive integer")
    if not isinstance(utc, int | float) or isinstance(utc, bool) or not math.isfinite(utc):
        raise EventLogError(path, number, f"utc {utc!r} is not a time")
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise EventLogError(path, number, f"kind {kind!r} is not an event kind")
    if not isinstance(fields, dict):
        raise EventLogError(path, number, "fields is not an object")
    for name, value in (("prev", prev), ("hash", digest)):
        if not isinstance(value, str) or not _HEX64.fullmatch(value):
            raise EventLogError(path, number, f"{name} is not 64 lowercase hex digits")
    if not isinstance(sig, str) or not _HEX128.fullmatch(sig):
        raise EventLogError(path, number, "sig is not 128 lowercase hex digits")
    return Event(seq, float(utc), kind, fields, prev, digest, sig)


def read_events(path: Path) -> Iterator[Event]:
    """Parse the log line by line without checking the chain (see verify_event_log)."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.endswith(b"\n"):
                return  # a torn final line is not an event
            yield _parse_line(Path(path), number, raw.rstrip(b"\n"))


def verify_event_log(
    path: Path, device_public: bytes, *, allow_torn_tail: bool = False
) -> EventLogReport:
    """Check every line: format, sequence, hash chain and the device's signature.

    Raises EventLogError naming the first bad line. A final line without its line
    end (a power cut while it was written, before the camera repaired it) is an
    error unless `allow_torn_tail`.
    """
    path = Path(path)
    events: list[Event] = []
    prev = GENESIS
    torn = 0
    with open(path, "rb") as f:
        number = 0
        while True:
            raw = f.readline(MAX_LINE + 2)
            if not raw:
                break
            number += 1
            if not raw.endswith(b"\n"):
                if len(raw) > MAX_LINE:
                    raise EventLogError(path, number, f"line longer than {MAX_LINE} bytes")
                rest = f.read(1)
                if rest:
                    raise EventLogError(path, number, "line is not terminated")
                if not allow_torn_tail:
                    raise EventLogError(
                        path, number, f"torn last line ({len(raw)} bytes, no line end)"
                    )
                torn = len(raw)
                break
            event = _parse_line(path, number, raw[:-1])
            if event.seq != len(events) + 1:
                raise EventLogError(
                    path, number, f"seq {event.seq} where {len(events) + 1} was expected"
                )
            if not hmac.compare_digest(event.prev, prev):
                raise EventLogError(path, number, "prev does not match the previous event's hash")
            expected = event_hash(event.seq, event.utc, event.kind, event.fields, event.prev)
            if not hmac.compare_digest(expected, event.hash):
                raise EventLogError(path, number, "hash does not match the event's content")
            if not _verify(device_public, event):
                raise EventLogError(path, number, "signature does not verify for this device")
            events.append(event)
            prev = event.hash
    return EventLogReport(path=path, events=tuple(events), torn_tail_bytes=torn)


def verify_event_piece(
    data: bytes, device_public: bytes, *, origin: str = "event log piece", signatures: bool = True
) -> list[Event]:
    """Check a run of whole lines cut from the middle of a log (an offloaded piece).

    Each line must be well formed, hash to its own `hash`, carry the device's signature,
    and link to the line before it (consecutive `seq`, `prev`); the first line's link
    to what came before the piece is not checked here. Raises EventLogError naming the
    bad line. What the dock trusts a camera's statement by (e.g. `segment_released`).
    `signatures=False` checks format, hashes and links only (cheap), for a caller that
    checks the signature of the few lines it acts on with `signed_by_device`.
    """
    path = Path(origin)
    events: list[Event] = []
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for number, raw in enumerate(lines, start=1):
        event = _parse_line(path, number, raw)
        if events and event.seq != events[-1].seq + 1:
            raise EventLogError(path, number, f"seq {event.seq} after {events[-1].seq}")
        if events and not hmac.compare_digest(event.prev, events[-1].hash):
            raise EventLogError(path, number, "prev does not match the previous event's hash")
        expected = event_hash(event.seq, event.utc, event.kind, event.fields, event.prev)
        if not hmac.compare_digest(expected, event.hash):
            raise EventLogError(path, number, "hash does not match the event's content")
        if signatures and not _verify(device_public, event):
            raise EventLogError(path, number, "signature does not verify for this device")
        events.append(event)
    return events


def signed_by_device(event: Event, device_public: bytes) -> bool:
    """Whether the device key signed this event (its hash already checked)."""
    return _verify(device_public, event)
