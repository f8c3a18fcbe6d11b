"""The police / prosecutor package: made by the back office, checked anywhere (vault/EXPORT.md)."""
