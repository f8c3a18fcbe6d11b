"""The camera's event log: chain, signatures, tamper detection, torn-tail repair."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.keys import SigningKey
from formats.eventlog import (
    GENESIS,
    EventLog,
    EventLogError,
    EventRejected,
    read_events,
    signed_by_device,
    verify_event_log,
    verify_event_piece,
)


class StepClock:
    def __init__(self, t: float = 1_790_000_000.0) -> None:
        self.t = t

    def now(self) -> float:
        self.t += 0.25
        return self.t


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate(kind="device")


def _write(path: Path, key: SigningKey, n: int) -> None:
    with EventLog(path, key, StepClock()) as log:
        for i in range(n):
            log.append("button", button="record", index=i, path=Path("/x"), raw=b"\x01\x02")


def test_chain_verifies_and_reopens_where_it_stopped(tmp_path: Path, key: SigningKey) -> None:
    path = tmp_path / "events" / "events.jsonl"
    _write(path, key, 3)
    with EventLog(path, key, StepClock(1_790_000_100.0)) as log:
        assert log.last_seq == 3
        event = log.append("power_off", reason="test")
    assert event.seq == 4
    report = verify_event_log(path, key.public_bytes())
    assert [e.seq for e in report.events] == [1, 2, 3, 4]
    assert report.events[0].prev == GENESIS
    assert report.events[1].prev == report.events[0].hash
    assert report.events[0].fields == {"button": "record", "index": 0, "path": "/x", "raw": "0102"}
    assert report.last_hash == event.hash
    assert [e.kind for e in read_events(path)] == ["button"] * 3 + ["power_off"]
    # Every line is a JSON object with exactly the documented keys.
    for line in path.read_text().splitlines():
        assert set(json.loads(line)) == {"seq", "utc", "kind", "fields", "prev", "hash", "sig"}


def test_other_device_key_does_not_verify(tmp_path: Path, key: SigningKey) -> None:
    path = tmp_path / "events.jsonl"
    _write(path, key, 2)
    with pytest.raises(EventLogError, match="line 1: signature"):
        verify_event_log(path, SigningKey.generate().public_bytes())
    with pytest.raises(EventLogError, match="not signed by this camera"):
        EventLog(path, SigningKey.generate(), StepClock())


def _tamper_edit(lines: list[bytes]) -> list[bytes]:
    obj = json.loads(lines[1])
    obj["fields"]["index"] = 99
    return [lines[0], json.dumps(obj).encode(), *lines[2:]]


def _tamper_resign_free_edit(lines: list[bytes]) -> list[bytes]:
    obj = json.loads(lines[2])
    obj["utc"] = obj["utc"] + 1
    return [*lines[:2], json.dumps(obj).encode(), *lines[3:]]


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda ls: [ls[0], *ls[2:]], "seq 3 where 2"),  # dropped
        (lambda ls: [ls[1], ls[0], *ls[2:]], "seq 2 where 1"),  # reordered
        (lambda ls: [ls[0], ls[1], ls[1], *ls[2:]], "seq 2 where 3"),  # duplicated
        (_tamper_edit, "line 2: hash does not match"),
        (_tamper_resign_free_edit, "line 3: hash does not match"),
        (lambda ls: [*ls[:3], b"not json"], "line 4: not JSON"),
        (lambda ls: [*ls[:3], b'{"seq": 4}'], "line 4: not an event"),
    ],
)
def test_tampering_is_detected(
    tmp_path: Path, key: SigningKey, tamper: Callable[[list[bytes]], list[bytes]], message: str
) -> None:
    path = tmp_path / "events.jsonl"
    _write(path, key, 4)
    lines = path.read_bytes().splitlines()
    path.write_bytes(b"\n".join(tamper(lines)) + b"\n")
    with pytest.raises(EventLogError, match=message):
        verify_event_log(path, key.public_bytes())


def test_forged_chain_with_a_different_key_is_detected(tmp_path: Path, key: SigningKey) -> None:
    """A whole consistent chain re-made by someone else's key verifies only for that key."""
    path = tmp_path / "events.jsonl"
    _write(path, SigningKey.generate(), 3)
    with pytest.raises(EventLogError, match="signature"):
        verify_event_log(path, key.public_bytes())


def test_torn_tail_is_reported_then_cut_on_open(tmp_path: Path, key: SigningKey) -> None:
    path = tmp_path / "events.jsonl"
    _write(path, key, 3)
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"seq": 4, "utc": 17900')  # a power cut mid-write
    with pytest.raises(EventLogError, match="torn last line"):
        verify_event_log(path, key.public_bytes())
    report = verify_event_log(path, key.public_bytes(), allow_torn_tail=True)
    assert report.count == 3 and report.torn_tail_bytes == 23
    assert len(list(read_events(path))) == 3
    with EventLog(path, key, StepClock()) as log:
        assert log.repaired_bytes == 23
        assert log.append("boot", repaired_bytes=log.repaired_bytes).seq == 4
    assert path.read_bytes().startswith(whole)
    assert verify_event_log(path, key.public_bytes()).count == 4


def test_torn_first_line_starts_a_fresh_chain(tmp_path: Path, key: SigningKey) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"seq": 1, "ut')
    with EventLog(path, key, StepClock()) as log:
        assert log.repaired_bytes == 14
        assert log.append("boot").prev == GENESIS
    assert verify_event_log(path, key.public_bytes()).count == 1


@pytest.mark.parametrize(
    ("kind", "fields", "message"),
    [
        ("Bad Kind", {}, "event kind"),
        ("", {}, "event kind"),
        ("note", {"text": "x" * 20_000}, "at most 16384"),
        ("note", {f"f{i}": i for i in range(65)}, "65 fields"),
    ],
)
def test_bad_events_are_refused_and_the_log_stays_whole(
    tmp_path: Path, key: SigningKey, kind: str, fields: dict[str, object], message: str
) -> None:
    path = tmp_path / "events.jsonl"
    with EventLog(path, key, StepClock()) as log:
        log.append("boot")
        with pytest.raises(EventRejected, match=message):
            log.append(kind, **fields)
        log.append("power_off")
    assert [e.kind for e in verify_event_log(path, key.public_bytes()).events] == [
        "boot",
        "power_off",
    ]


def test_closed_log_refuses_appends(tmp_path: Path, key: SigningKey) -> None:
    log = EventLog(tmp_path / "e.jsonl", key, StepClock())
    log.close()
    with pytest.raises(EventRejected, match="closed"):
        log.append("boot")


def test_overlong_line_is_refused_by_the_verifier(tmp_path: Path, key: SigningKey) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"x" * 20_000 + b"\n")
    with pytest.raises(EventLogError, match="longer than"):
        verify_event_log(path, key.public_bytes())


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.dictionaries(
            st.text(min_size=1, max_size=8),
            st.one_of(
                st.integers(-(2**53), 2**53),
                st.floats(allow_nan=False, allow_infinity=False),
                st.text(max_size=30),
                st.booleans(),
                st.none(),
                st.lists(st.integers(0, 10), max_size=3),
            ),
            max_size=5,
        ),
        min_size=1,
        max_size=5,
    )
)
def test_any_json_fields_round_trip_and_verify(
    tmp_path_factory: pytest.TempPathFactory, field_sets: list[dict[str, object]]
) -> None:
    key = SigningKey.from_seed(bytes(range(32)))
    path = tmp_path_factory.mktemp("log") / "events.jsonl"
    with EventLog(path, key, StepClock()) as log:
        for fields in field_sets:
            log.append("note", **{f"k_{i}": v for i, v in enumerate(fields.values())})
    report = verify_event_log(path, key.public_bytes())
    assert report.count == len(field_sets)
    for event, fields in zip(report.events, field_sets, strict=True):
        assert list(event.fields.values()) == list(fields.values())


def test_a_piece_cut_from_the_middle_verifies_alone(tmp_path: Path, key: SigningKey) -> None:
    """What the dock offloads from an offset: links inside the piece, hashes, signatures."""
    path = tmp_path / "events.jsonl"
    _write(path, key, 5)
    lines = path.read_bytes().splitlines(keepends=True)
    piece = b"".join(lines[2:])
    events = verify_event_piece(piece, key.public_bytes())
    assert [e.seq for e in events] == [3, 4, 5]
    assert all(signed_by_device(e, key.public_bytes()) for e in events)
    other = SigningKey.generate().public_bytes()
    with pytest.raises(EventLogError, match="signature"):
        verify_event_piece(piece, other)
    # without signatures: still hashes and links; the signature is then per line
    assert not signed_by_device(verify_event_piece(piece, other, signatures=False)[0], other)
    dropped = lines[2] + lines[4]
    with pytest.raises(EventLogError, match="seq 5 after 3"):
        verify_event_piece(dropped, key.public_bytes(), signatures=False)
    doc = json.loads(lines[3])
    doc["fields"]["index"] = 99  # edited content, old hash
    edited = lines[2] + json.dumps(doc).encode() + b"\n"
    with pytest.raises(EventLogError, match="hash does not match"):
        verify_event_piece(edited, key.public_bytes(), signatures=False)


def test_a_group_of_events_is_flushed_once_at_its_end(
    tmp_path: Path, key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    import formats.eventlog as eventlog

    path = tmp_path / "events" / "events.jsonl"
    synced: list[int] = []
    real_fsync = eventlog.os.fsync
    with EventLog(path, key, StepClock()) as log:
        monkeypatch.setattr(eventlog.os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
        with log.group():
            with log.group():  # nested: still one flush, at the outer end
                log.append("button", button="record")
                log.append("state", to="recording")
            log.append("record_start", recording_id="r")
            assert synced == []  # written, not yet flushed
            # Written in order: a reader (or the next open) sees every line so far.
            assert [e.kind for e in read_events(path)] == ["button", "state", "record_start"]
        assert len(synced) == 1
        log.append("indicator", indicator="led")  # outside a group: flushed on its own
        assert len(synced) == 2
    report = verify_event_log(path, key.public_bytes())
    assert [e.seq for e in report.events] == [1, 2, 3, 4]
