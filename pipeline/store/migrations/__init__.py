"""The store's schema migrations (Alembic, scripts in ``versions/``), run in place when a store is opened.

Revision ``NNNN`` is schema version N on every back end. A store's version is the ``alembic_version``
row; SQLite stores also keep it in ``PRAGMA user_version``, which is all that stores written before
Alembic have: those are stamped with their version first, then upgraded. Each upgrade runs inside the
caller's transaction (SQLite ``BEGIN IMMEDIATE``, PostgreSQL's transactional DDL), so a killed migration
leaves the store as it was.
"""
from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from pipeline.store.migrations.legacy import MIGRATIONS

SCHEMA_VERSION = 2  # the newest revision, as a number
HEAD = f"{SCHEMA_VERSION:04d}"
FOLDER = Path(__file__).resolve().parent

__all__ = ["HEAD", "MIGRATIONS", "SCHEMA_VERSION", "current_version", "upgrade"]


def current_version(conn: sa.Connection, sqlite: bool) -> int:
    """The store's schema version: 0 for an empty database."""
    if sqlite:  # kept in step with alembic_version; a store from before Alembic has only this
        return int(conn.exec_driver_sql("PRAGMA user_version").scalar() or 0)
    if not sa.inspect(conn).has_table("alembic_version"):
        return 0
    row = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    return int(row) if row else 0


def upgrade(conn: sa.Connection, sqlite: bool) -> None:
    """Bring the schema to :data:`HEAD` (call inside a transaction on ``conn``)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(FOLDER))
    cfg.attributes["connection"] = conn
    version = current_version(conn, sqlite)
    if version and not sa.inspect(conn).has_table("alembic_version"):
        command.stamp(cfg, f"{version:04d}")
    command.upgrade(cfg, HEAD)
    if sqlite:
        conn.exec_driver_sql(f"PRAGMA user_version = {SCHEMA_VERSION}")
