"""The docking-station ingest daemon: slot watcher, camera ingest, storage, ledger, CLI."""
