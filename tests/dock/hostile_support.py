"""Hostile cameras for the dock's tests: the real control server, lying where it may.

`HostileServer` is `firmware.control.CameraControlServer` on a real pty, serving a
real `FakeCamera` (real keys, HELLO, AUTH, SET_TIME and RELEASE, real sealed files),
with its LIST_RECORDINGS, READ and EVENT_LOG answers replaced the way someone holding
a registered camera could replace them: names the format does not allow (`../x`,
`a/b`, NUL, control bytes, over-long), sizes other than the signed ones, an endless
event log, more files than a session takes. It counts what the dock asked for, so a
test can prove the dock never read a refused path or more bytes than allowed.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fake_camera import FakeCamera

from firmware.control import CameraControlServer
from formats.protocol import LIST_PAGE_ENTRIES, MAX_JSON, Fields, MessageType
from sim.pty import PtySerialPort

PAGE_BUDGET = MAX_JSON - 2048  # JSON bytes of one LIST_RECORDINGS page


@dataclass
class Lies:
    """What a hostile camera says instead of the truth."""

    # extra LIST_RECORDINGS entries: (recording, name, size), any JSON values
    entries: list[tuple[Any, Any, Any]] = field(default_factory=list)
    # READ of these exact paths answers these bytes (the camera serves anything)
    files: dict[str, bytes] = field(default_factory=dict)
    # listed size of a real file (relative path -> size)
    listed_sizes: dict[str, int] = field(default_factory=dict)
    # size READ reports for a real file; bytes past its real end are filler
    read_sizes: dict[str, int] = field(default_factory=dict)
    # an event log of this many bytes, lines of `event_line` bytes (None: the real one)
    event_log_size: int | None = None
    event_line: int = 100


class HostileServer(CameraControlServer):
    """The real control server of `camera`, with LIST/READ/EVENT_LOG lying as `lies` says."""

    def __init__(self, camera: FakeCamera, lies: Lies) -> None:
        super().__init__(camera, PtySerialPort())
        self.camera = camera
        self.lies = lies
        self.read_paths: Counter[str] = Counter()  # bytes served per requested path
        self.event_bytes = 0  # event log bytes served
        self._handlers[MessageType.LIST_RECORDINGS] = (True, self._lying_list)
        self._handlers[MessageType.READ] = (True, self._lying_read)
        self._handlers[MessageType.EVENT_LOG] = (True, self._lying_event_log)

    def _entries(self) -> list[tuple[Any, Any, Any]]:
        real: list[tuple[Any, Any, Any]] = []
        root = self.camera.recordings
        for rec in sorted(root.iterdir()) if root.is_dir() else []:
            for f in sorted(rec.iterdir()):
                rel = f"recordings/{rec.name}/{f.name}"
                real.append((rec.name, f.name, self.lies.listed_sizes.get(rel, f.stat().st_size)))
        everything = real + list(self.lies.entries)
        return sorted(everything, key=lambda e: f"{e[0]}/{e[1]}")

    def _lying_list(self, fields: Fields, blob: bytes) -> tuple[dict[str, Any], bytes]:
        after = fields.optional("after") or ""
        entries = [e for e in self._entries() if f"{e[0]}/{e[1]}" > after]
        page: list[dict[str, Any]] = []
        budget = 0
        for rec, name, size in entries:
            item = {"recording": rec, "name": name, "size": size}
            cost = len(json.dumps(item)) + 1
            if len(page) >= LIST_PAGE_ENTRIES or budget + cost > PAGE_BUDGET:
                break
            page.append(item)
            budget += cost
        return {"files": page, "more": len(page) < len(entries)}, b""

    def _lying_read(self, fields: Fields, blob: bytes) -> tuple[dict[str, Any], bytes]:
        path = fields.optional("path")
        offset = fields.integer("offset", 0, 2**62)
        length = fields.integer("length", 1, 1 << 16)
        key = path if isinstance(path, str) else repr(path)
        if key in self.lies.files:
            data = self.lies.files[key]
            piece = data[offset : offset + length]
            self.read_paths[key] += len(piece)
            return {"size": len(data), "offset": offset}, piece
        if key in self.lies.read_sizes:
            real = (self.camera.volume / key).read_bytes()
            size = self.lies.read_sizes[key]
            end = min(size, offset + length)
            piece = real[offset:end] + b"\0" * max(0, end - max(offset, len(real)))
            self.read_paths[key] += len(piece)
            return {"size": size, "offset": offset}, piece
        fields_out, data = super()._read(fields, blob)
        self.read_paths[key] += len(data)
        return fields_out, data

    def _lying_event_log(self, fields: Fields, blob: bytes) -> tuple[dict[str, Any], bytes]:
        size = self.lies.event_log_size
        if size is None:
            return super()._event_log(fields, blob)
        offset = fields.integer("offset", 0, 2**62)
        length = fields.integer("length", 1, 1 << 16)
        end = min(size, offset + length)
        line = self.lies.event_line
        piece = bytes(10 if (i + 1) % line == 0 else 120 for i in range(offset, end))
        self.event_bytes += len(piece)
        return {"size": size}, piece


def tree(root: Path) -> dict[str, bytes | str]:
    """Every path under `root` (not following links): file bytes, "dir" or "link -> X"."""
    out: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = f"link -> {path.readlink()}"
        elif path.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = path.read_bytes()
    return out
