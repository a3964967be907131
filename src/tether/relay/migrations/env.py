"""Alembic environment: the connection comes from AccountStore.migrate (never a config file)."""

from alembic import context

from tether.relay.accounts import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
