"""What the camera, the dock and the back office share: formats and one clock protocol.

The wire codec of the serial control channel (`protocol.py`, spec PROTOCOL.md), the
signed event log (`eventlog.py`, spec EVENTLOG.md), the dock's signed ingest record
(`ingest_record.py`) and the back office's signed camera registry (`registry.py`),
both specified in RECORDS.md, the configuration profile model and its integrator
signature (`profile.py`, `profile_sign.py`, `profile_cli.py`: `bodycam profile
validate`), and the `Clock` protocol (`clock.py`). It sits above `crypto/` and
`store/` (the registry is published into a store through the store's interface) and
below the camera, the dock and the back office, which import what they share from
here and never each other.
"""
