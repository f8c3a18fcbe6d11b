"""Viewing in pairs: the policy's pair rules and consent, and the watermarked session."""
