"""Scripted shifts shipped with the simulator (TOML); see sim/shift.py for the format."""
