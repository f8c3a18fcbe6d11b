"""The requests register: access requests, complaints and claims, and the holds they open."""
