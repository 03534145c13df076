"""Alembic environment: migrations run on the connection the store hands over, inside its transaction."""
from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
# render_as_batch: SQLite cannot ALTER most of a table, so column changes are written as batch operations
# (copy into a new table, swap); transactional_ddl False: the store's own transaction wraps the upgrade.
context.configure(connection=connection, render_as_batch=True, transactional_ddl=False)
context.run_migrations()
