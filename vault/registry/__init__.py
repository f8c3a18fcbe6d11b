"""The camera registry: cameras, docking stations, officer assignments, signed publication."""
