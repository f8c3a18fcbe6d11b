"""sim.volume: a directory with a capacity limit; full storage raises StorageFull."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from sim.volume import DirectoryVolume, StorageFull


def test_usage_counts_every_file_below_the_root(tmp_path: Path) -> None:
    volume = DirectoryVolume(tmp_path / "volume", 10_000)
    assert volume.root.is_dir() and volume.used_bytes() == 0 and volume.free_bytes() == 10_000
    (volume.root / "DEVICE.json").write_bytes(b"x" * 100)
    seg = volume.root / "recordings" / "20261122T181500Z-ab12"
    seg.mkdir(parents=True)
    (seg / "000001.seg.part").write_bytes(b"y" * 2_500)
    assert volume.used_bytes() == 2_600
    assert volume.free_bytes() == 7_400
    (seg / "000001.seg.part").rename(seg / "000001.seg")
    assert volume.used_bytes() == 2_600


def test_reserve_refuses_what_does_not_fit(tmp_path: Path) -> None:
    volume = DirectoryVolume(tmp_path / "v", 1_000)
    (volume.root / "a").write_bytes(b"z" * 600)
    assert volume.reserve(400) == 0  # exactly full still fits
    with pytest.raises(StorageFull, match="401 bytes needed, 400 of 1000 free; dock") as caught:
        volume.reserve(401)
    assert isinstance(caught.value, OSError) and caught.value.errno == errno.ENOSPC
    (volume.root / "a").unlink()  # offloaded and released: room again
    assert volume.reserve(1_000) == 0


def test_free_never_goes_negative(tmp_path: Path) -> None:
    volume = DirectoryVolume(tmp_path / "v", 10)
    (volume.root / "big").write_bytes(b"q" * 50)  # a writer that did not ask first
    assert volume.free_bytes() == 0
    with pytest.raises(StorageFull):
        volume.reserve(1)


def test_symlinks_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"o" * 5_000)
    volume = DirectoryVolume(tmp_path / "v", 1_000)
    (volume.root / "link").symlink_to(outside)
    assert volume.used_bytes() == 0


@pytest.mark.parametrize("capacity", [0, -5])
def test_capacity_must_be_positive(tmp_path: Path, capacity: int) -> None:
    with pytest.raises(ValueError, match="capacity"):
        DirectoryVolume(tmp_path / "v", capacity)


def test_negative_reservation_is_a_bug(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="negative"):
        DirectoryVolume(tmp_path / "v", 10).reserve(-1)
