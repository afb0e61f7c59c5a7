"""Numbered SQL migrations of the store, applied in order by ``store.schema``; written for
SQLite, translated for PostgreSQL by ``sql_db``."""
