"""Alembic environment: run with a connection handed over by callcenter.storage.store.migrate."""
from alembic import context

from callcenter.storage.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
