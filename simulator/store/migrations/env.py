"""Alembic environment for intake-sim, run only through simulator.store.schema.

The caller hands over a connection already inside a transaction, so an
upgrade is all-or-nothing (SQLite and PostgreSQL both have transactional
DDL) and uses the same engine settings as the listener.
"""

from __future__ import annotations

from alembic import context

from simulator.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("intake-sim migrations run through `intake-sim db upgrade`, not offline")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
