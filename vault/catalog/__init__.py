"""The catalog of stored recordings: sync from the store, holds, retention purge."""
