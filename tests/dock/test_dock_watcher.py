"""The slot watcher: whole-folder moves, files still being written, lost events, unplugs."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from dock.slots import Slot
from dock.watcher import SlotWatcher


class ManualClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return 1_790_000_000.0 + self.t

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:  # the Clock protocol; the watcher never sleeps
        self.t += seconds


def make_volume(root: Path, name: str) -> Path:
    volume = root / "cameras" / name / "volume"
    (volume / "recordings").mkdir(parents=True)
    (volume / "DEVICE.json").write_text('{"device_id": "BC-00000000"}')
    return volume


def dock_whole(slots: Path, name: str, volume: Path) -> Path:
    tmp = slots / f".{name}.tmp"
    tmp.mkdir()
    os.symlink(volume, tmp / "volume")
    os.symlink("/dev/null", tmp / "serial")
    os.rename(tmp, slots / name)
    return slots / name


def test_folder_moved_in_whole_is_docked_after_settling(tmp_path: Path) -> None:
    slots = tmp_path / "slots"
    slots.mkdir()
    clock = ManualClock()
    # no periodic rescan: only the Observer's event for the moved folder can find it
    with SlotWatcher(slots, clock=clock, settle=1.0, rescan_interval=1e9) as watcher:
        assert watcher.poll() == []
        volume = make_volume(tmp_path, "a")
        tmp = slots / ".slot-1.tmp"
        tmp.mkdir()
        os.symlink(volume, tmp / "volume")
        os.rename(tmp, slots / "slot-1")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (not watcher.pending() or watcher.wait(0.3)):
            watcher.wait(0.2)
            assert watcher.poll() == []  # seen, settling; a .tmp folder is never reported
        assert watcher.pending() == ["slot-1"]
        clock.t += 1.01
        events = watcher.poll()
        assert events == [("docked", Slot("slot-1", slots / "slot-1"))]
        slot = events[0][1]
        assert isinstance(slot, Slot) and slot.volume == slots / "slot-1" / "volume"
        clock.t += 10
        assert watcher.poll() == []  # reported once


def test_files_still_being_written_delay_the_slot_until_stable(tmp_path: Path) -> None:
    slots = tmp_path / "slots"
    slots.mkdir()
    clock = ManualClock()
    watcher = SlotWatcher(slots, clock=clock, settle=1.0, use_observer=False)
    # a real mount: the folder appears first, its content fills in afterwards
    slot = slots / "slot-2"
    slot.mkdir()
    assert watcher.poll() == []
    volume = slot / "volume"
    (volume / "recordings" / "rec-1").mkdir(parents=True)
    growing = volume / "recordings" / "rec-1" / "seg-000000.bcs"
    for _ in range(3):
        with open(growing, "ab") as f:
            f.write(os.urandom(1000))
        clock.t += 0.6  # written more often than the settle time: never ready
        assert watcher.poll() == []
    clock.t += 0.6
    assert watcher.poll() == []  # unchanged for 0.6 s only
    clock.t += 0.5
    assert [k for k, _ in watcher.poll()] == ["docked"]


def test_lost_events_are_caught_by_the_periodic_rescan(tmp_path: Path) -> None:
    slots = tmp_path / "slots"
    slots.mkdir()
    clock = ManualClock()
    watcher = SlotWatcher(slots, clock=clock, settle=0.0, rescan_interval=5.0, use_observer=False)
    assert watcher.poll() == []  # first poll rescans
    dock_whole(slots, "slot-3", make_volume(tmp_path, "c"))
    clock.t += 1
    assert watcher.poll() == []  # no event arrived and no rescan is due yet
    clock.t += 5
    assert watcher.poll() == [("docked", Slot("slot-3", slots / "slot-3"))]


def test_vanishing_and_replaced_slots_are_reported_undocked(tmp_path: Path) -> None:
    slots = tmp_path / "slots"
    slots.mkdir()
    clock = ManualClock()
    watcher = SlotWatcher(slots, clock=clock, settle=0.0, use_observer=False)
    slot = dock_whole(slots, "slot-4", make_volume(tmp_path, "d"))
    assert [k for k, _ in watcher.poll()] == ["docked"]
    shutil.rmtree(slot)
    watcher.request_rescan()
    assert watcher.poll() == [("undocked", "slot-4")]
    # undocked and another camera docked under the same name between two looks
    dock_whole(slots, "slot-4", make_volume(tmp_path, "e"))
    watcher.request_rescan()
    assert [k for k, _ in watcher.poll()] == ["docked"]
    shutil.rmtree(slots / "slot-4")
    dock_whole(slots, "slot-4", make_volume(tmp_path, "f"))
    watcher.request_rescan()
    assert [k for k, _ in watcher.poll()] == ["undocked", "docked"]


def test_observer_events_wake_the_watcher(tmp_path: Path) -> None:
    slots = tmp_path / "slots"
    slots.mkdir()
    watcher = SlotWatcher(slots, settle=0.0, rescan_interval=3600.0)
    with watcher:
        assert watcher.poll() == []
        dock_whole(slots, "slot-5", make_volume(tmp_path, "g"))
        events: list[tuple[str, Any]] = []
        deadline = time.monotonic() + 10
        while not events and time.monotonic() < deadline:
            watcher.wait(0.5)
            events = list(watcher.poll())
        assert [(k, getattr(s, "name", s)) for k, s in events] == [("docked", "slot-5")]
        shutil.rmtree(slots / "slot-5")
        events = []
        deadline = time.monotonic() + 10
        while not events and time.monotonic() < deadline:
            watcher.wait(0.5)
            events = list(watcher.poll())
        assert events == [("undocked", "slot-5")]


def test_slot_whose_serial_port_vanished_is_reported_undocked(tmp_path: Path) -> None:
    """A camera killed while docked leaves its slot; its port went with it: gone, not done."""
    slots = tmp_path / "slots"
    slots.mkdir()
    port = tmp_path / "pts-7"  # stands in for the pty, which closes with its process
    port.write_bytes(b"")
    tmp = slots / ".slot-5.tmp"
    tmp.mkdir()
    os.symlink(make_volume(tmp_path, "f"), tmp / "volume")
    os.symlink(port, tmp / "serial")
    os.rename(tmp, slots / "slot-5")
    watcher = SlotWatcher(slots, clock=ManualClock(), settle=0.0, use_observer=False)
    assert [k for k, _ in watcher.poll()] == ["docked"]
    port.unlink()
    watcher.request_rescan()
    assert watcher.poll() == [("undocked", "slot-5")]
    watcher.request_rescan()
    assert watcher.poll() == [] and watcher.docked() == []
    assert (slots / "slot-5").is_dir()  # the dock reports it; it never deletes a slot


def test_a_gone_cameras_slot_loses_only_its_links(tmp_path: Path) -> None:
    """remove_gone_slot: the slot's links and folder go, never what they point at."""
    import pytest

    from dock.slots import SlotNotRemoved, remove_gone_slot

    slots = tmp_path / "slots"
    slots.mkdir()
    volume = make_volume(tmp_path, "g")
    (volume / "recordings" / "r1").mkdir()
    (volume / "recordings" / "r1" / "seg-000000.bcs").write_bytes(b"footage")
    port = tmp_path / "pts-9"
    port.write_bytes(b"")

    def slot(name: str) -> Path:
        path = slots / name
        path.mkdir()
        os.symlink(volume, path / "volume")
        os.symlink(port, path / "serial")
        return path

    live = slot("live")
    assert remove_gone_slot(slots, "live") is None  # its port is there
    assert os.path.islink(live / "serial") and os.path.islink(live / "volume")
    port.unlink()  # the camera died: its pty went with it
    crowded = slot("crowded")
    (crowded / "notes.txt").write_text("someone's file")
    with pytest.raises(SlotNotRemoved, match=r"holds notes\.txt: left as it is"):
        remove_gone_slot(slots, "crowded")
    assert os.path.islink(crowded / "serial") and (crowded / "notes.txt").is_file()
    os.symlink(live, slots / "linked")
    with pytest.raises(SlotNotRemoved, match="not a folder"):
        remove_gone_slot(slots, "linked")
    assert remove_gone_slot(slots, "live") == str(port)
    assert not os.path.lexists(live)
    assert remove_gone_slot(slots, "live") is None  # already gone
    # the camera's files are all still there
    assert (volume / "DEVICE.json").is_file()
    assert (volume / "recordings" / "r1" / "seg-000000.bcs").read_bytes() == b"footage"
