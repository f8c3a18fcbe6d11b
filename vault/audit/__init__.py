"""The append-only, hash-chained audit log and its anchors in the store."""
