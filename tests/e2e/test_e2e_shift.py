"""A whole shipped shift in fast-forward, then every recording opened with the site's vault key.

The Heusden scenario (30 s pre-record, three incidents, a battery cut mid-recording)
runs at a reduced picture size; each recording on each volume must decrypt with the
vault key the shift runner created, start with a keyframe, hold consecutive frames,
and cover the configured pre-roll when the camera was on long enough.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from e2e_support import assert_consecutive, decode, decrypt, scan_volume

from crypto.keys import VaultKey
from sim.shift import run_shift

START_UTC = datetime(2026, 11, 22, 17, 0, tzinfo=UTC).timestamp()  # heusden.toml
SCENARIOS = Path(__file__).resolve().parents[2] / "sim" / "scenarios"


def test_heusden_shift_decrypts_with_the_site_vault_key(tmp_path: Path) -> None:
    text = (SCENARIOS / "heusden.toml").read_text()
    small = "width = 320\nheight = 240\nfps = 15\ngop_frames = 15\nbitrate_kbps = 600"
    assert text.count("width = 640\nheight = 360\nbitrate_kbps = 1500") == 2
    text = text.replace("width = 640\nheight = 360\nbitrate_kbps = 1500", small)
    scenario = tmp_path / "heusden-small.toml"
    scenario.write_text(text)
    result = run_shift(scenario, tmp_path / "out")
    vault = VaultKey.load(result.keys_dir / "vault.key")

    assert [len(c.recordings) for c in result.cameras] == [2, 1]
    for cam in result.cameras:
        assert scan_volume(cam.volume) == {}
        for rec in cam.recordings:
            assert rec.complete
            decoded = decode(
                decrypt(rec.path, vault, cam.device_public), cut_by_power=rec.recovered
            )
            assert decoded.first_packet_keyframe
            assert_consecutive(decoded.counters)
            # Every press in this shift came at least 45 s after power-on.
            assert rec.prerecord_covered is not None and rec.prerecord_covered >= 30
            # Frame n was captured n / 15 s after the camera's power-on (0:00 / 0:05).
            boot_utc = START_UTC + (0 if cam.name == "boa-1" else 5)
            first_capture = boot_utc + decoded.counters[0] / 15
            assert rec.started_utc is not None
            assert first_capture <= rec.started_utc - 30 + 1e-3
    boa1 = result.camera("boa-1")
    assert [r.recovered for r in boa1.recordings] == [False, True]
    assert boa1.recordings[1].stop_reason.startswith("power cut")
