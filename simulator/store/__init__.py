"""Storage: the typed SQLAlchemy models, the engine and its sessions, and migrations.

Owns the tables (models), opening a database and running one unit of work
(db: Store.transaction, retries, the 451-worthy StoreUnavailable), the Alembic
schema (schema, migrations/), and statements compiled once per dialect and run
on the session's own cursor (prepared). It holds no intake rule and no
pricing; it imports only the org-free vocabulary below it (domain, errors) and
must never import the pipeline, the reports or anything above them.
"""
