"""Numbered SQL migrations of the store, applied in order by ``store_sql``; written for
SQLite, translated for PostgreSQL by ``sql_db``."""
