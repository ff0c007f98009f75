"""Persistence: SQLAlchemy 2 (async) tables, Alembic migrations and the Store that reads and
writes call records and agent sessions. SQLite by default, PostgreSQL by URL."""
