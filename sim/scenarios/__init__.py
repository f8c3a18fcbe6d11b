"""Scripted shifts shipped with the simulator (TOML); see sim/scenario.py for the format."""
