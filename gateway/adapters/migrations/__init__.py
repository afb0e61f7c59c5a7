"""Numbered SQL migrations of the store, applied in order by ``store_sqlite``."""
