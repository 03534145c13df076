"""Where the dashboard's browse index reads a store from (:class:`pipeline.store.browse.BrowseIndex`).

The index runs its SQL on SQLite, against the store's tables under the schema name ``s``. Each back end says
how those tables get there (:meth:`pipeline.store.backend.Backend.browse_source`):

* :class:`AttachedFile`: a SQLite store file attached read-only; queries read it live and ``PRAGMA
  data_version`` tells when another process committed to it.
* :class:`PostgresMirror`: a PostgreSQL store copied into an attached in-memory SQLite database: the threads,
  the items, their earlier revisions and the predictions of the indexed model, read in one repeatable-read,
  read-only transaction (a consistent snapshot while workers write), in pages of rows by primary key. It is
  copied again when the server's write counters for the database or its newest run change (PostgreSQL
  publishes a session's counters when it goes idle).
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from pipeline.errors import UserError
from pipeline.store.migrations import SCHEMA_VERSION, current_version
from pipeline.store.sqlite import store_error

PAGE = 5000

# Store tables and columns the index reads, with the SQLite types of the copy, and each table's key.
MIRRORED: dict[str, tuple[tuple[tuple[str, str], ...], tuple[str, ...]]] = {
    "threads": ((("thread_id", "TEXT"), ("title", "TEXT"), ("standfirst", "TEXT"), ("article_date", "TEXT"),
                 ("url", "TEXT"), ("declared_comments", "INTEGER")), ("thread_id",)),
    "items": ((("item_id", "TEXT"), ("thread_id", "TEXT"), ("kind", "TEXT"), ("parent_id", "TEXT"),
               ("position", "INTEGER"), ("depth", "INTEGER"), ("author", "TEXT"), ("posted_at", "TEXT"),
               ("text", "TEXT"), ("flags", "TEXT"), ("revision", "INTEGER")), ("item_id",)),
    "item_revisions": ((("item_id", "TEXT"), ("revision", "INTEGER"), ("text", "TEXT"), ("replaced_at", "TEXT")),
                       ("item_id", "revision")),
    "predictions": ((("item_id", "TEXT"), ("model_version", "TEXT"), ("revision", "INTEGER"), ("record", "TEXT")),
                    ("item_id", "model_version", "revision")),
}
INDEXES = ("CREATE INDEX s.items_thread ON items(thread_id, position)",
           "CREATE INDEX s.predictions_version ON predictions(model_version, item_id, revision)")


class BrowseSource:
    """Puts a store's tables under schema ``s`` of the index's connection and says when they changed."""

    path: Path | str  # the store, for messages

    def attach(self, conn: sqlite3.Connection) -> None:
        raise NotImplementedError

    def version(self, conn: sqlite3.Connection) -> Hashable:
        """A value that changes whenever the store has changed."""
        raise NotImplementedError

    def load(self, conn: sqlite3.Connection, model_version: str | None) -> None:
        """Make schema ``s`` show the store as it is now, with ``model_version``'s predictions."""

    def close(self) -> None:
        """Release what the source holds open."""


class AttachedFile(BrowseSource):
    """A SQLite store file, attached with ``mode=ro``: read live, never written."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def attach(self, conn: sqlite3.Connection) -> None:
        if not self.path.is_file():
            raise UserError("no store here (run the main job, `threadstance ingest` or pass --db)", self.path)
        try:
            conn.execute("ATTACH DATABASE ? AS s", (f"{self.path.resolve().as_uri()}?mode=ro",))
            conn.execute("SELECT COUNT(*) FROM s.items").fetchone()
        except sqlite3.Error as exc:
            raise UserError(f"cannot read the store ({exc})", self.path) from exc

    def version(self, conn: sqlite3.Connection) -> Hashable:
        return int(conn.execute("PRAGMA s.data_version").fetchone()[0])


class PostgresMirror(BrowseSource):
    """A PostgreSQL store, copied into memory (see the module docstring).

    Args:
        connect: Opens a read-only connection to the store (the back end's; errors are one-line StoreErrors).
        path: The store for messages: its URL with the password masked.
    """

    def __init__(self, connect: Callable[[], sa.Connection], path: str) -> None:
        self.connect = connect
        self.path = path
        self._conn: sa.Connection | None = None

    def _db(self) -> sa.Connection:
        """The read-only connection, opened again if the server dropped it."""
        if self._conn is not None and self._conn.invalidated:  # the server dropped it during a query
            self.close()
        if self._conn is None:
            conn = self.connect()
            try:
                version = current_version(conn, False)
            except sa.exc.SQLAlchemyError as exc:
                _close(conn)
                raise store_error(exc, self.path) from exc
            if version == 0:
                _close(conn)
                raise UserError("no store in this database (run the main job, `threadstance ingest` or "
                                "`reclassify` with this --db first)", self.path)
            if version != SCHEMA_VERSION:
                _close(conn)
                raise UserError(f"store schema v{version}: this threadstance reads v{SCHEMA_VERSION} ("
                                + ("upgrade threadstance)" if version > SCHEMA_VERSION else
                                   "run `threadstance ingest` on it once to upgrade it)"), self.path)
            self._conn = conn
        return self._conn

    def attach(self, conn: sqlite3.Connection) -> None:
        self._db()  # a server that cannot be reached or a database without the schema is reported now
        conn.execute("ATTACH DATABASE ':memory:' AS s")
        for table, (columns, key) in MIRRORED.items():
            conn.execute(f"CREATE TABLE s.{table} (" + ", ".join(f"{c} {t}" for c, t in columns)
                         + f", PRIMARY KEY ({', '.join(key)}))")
        for sql in INDEXES:
            conn.execute(sql)

    def version(self, conn: sqlite3.Connection) -> Hashable:
        db = self._db()
        try:
            row = db.exec_driver_sql(
                "SELECT (SELECT tup_inserted + tup_updated + tup_deleted FROM pg_stat_database "
                "WHERE datname = current_database()), (SELECT MAX(run_id) FROM runs), "
                "(SELECT MAX(ended_at) FROM runs WHERE run_id = (SELECT MAX(run_id) FROM runs))").one()
        except sa.exc.SQLAlchemyError as exc:
            self.close()  # the next call connects again
            raise store_error(exc, self.path) from exc
        return tuple(row)

    def load(self, conn: sqlite3.Connection, model_version: str | None) -> None:
        db = self._db()
        try:
            db.exec_driver_sql("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                for table in MIRRORED:
                    conn.execute(f"DELETE FROM s.{table}")
                    self._copy(db, conn, table, model_version)
            finally:
                db.exec_driver_sql("COMMIT")
        except sa.exc.SQLAlchemyError as exc:
            self.close()
            raise store_error(exc, self.path) from exc

    @staticmethod
    def _copy(db: sa.Connection, conn: sqlite3.Connection, table: str, model_version: str | None) -> None:
        """Copy ``table`` page by page in key order (only ``model_version``'s rows of the predictions)."""
        columns, key = MIRRORED[table]
        names = [c for c, _ in columns]
        where = ["model_version = :mv"] if table == "predictions" else []
        insert = f"INSERT INTO s.{table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        last: tuple[Any, ...] | None = None
        while True:
            cond = where + ([f"({', '.join(key)}) > ({', '.join(f':k{j}' for j in range(len(key)))})"]
                            if last is not None else [])
            params: dict[str, Any] = {"mv": model_version or ""}
            params.update({f"k{j}": v for j, v in enumerate(last or ())})
            rows = db.execute(sa.text(
                f"SELECT {', '.join(names)} FROM {table}" + (" WHERE " + " AND ".join(cond) if cond else "")
                + f" ORDER BY {', '.join(key)} LIMIT {PAGE}"), params).all()
            if not rows:
                return
            conn.executemany(insert, [tuple(r) for r in rows])
            last = tuple(rows[-1][names.index(k)] for k in key)

    def close(self) -> None:
        if self._conn is not None:
            _close(self._conn)
            self._conn = None


def _close(conn: sa.Connection) -> None:
    try:
        conn.close()
        conn.engine.dispose()
    except sa.exc.SQLAlchemyError:
        pass
