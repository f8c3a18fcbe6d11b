"""The back office: camera registry, catalog, retention and holds, policy, audit (Django)."""
