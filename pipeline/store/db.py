"""The store: threads, items (with revisions), labels, predictions and runs, in SQLite or PostgreSQL.

One schema and one query layer for both back ends: SQLAlchemy Core statements (portable SQL with named
parameters) on the connection :mod:`pipeline.store.backend` opens, schema versions as Alembic migrations
(:mod:`pipeline.store.migrations`) run in place when a store is opened. Writers use
:meth:`Store.transaction` so a failed input never leaves half-written rows.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from pipeline.errors import UserError
from pipeline.ingest.model import Thread
from pipeline.store.backend import Backend, backend_for
from pipeline.store.migrations import MIGRATIONS, SCHEMA_VERSION, current_version, upgrade
from pipeline.store.predictions import PredictionQueries
from pipeline.store.sqlite import DB_ERRORS, StoreError, sha256_text, store_error, utcnow

__all__ = ["ITEM_COLUMNS", "MIGRATIONS", "SCHEMA_VERSION", "Store", "StoreError", "WriteCounts", "sha256_text",
           "store_error", "utcnow"]

ITEM_COLUMNS = ("item_id", "thread_id", "kind", "parent_id", "position", "depth", "author", "posted_at",
                "text", "flags", "revision")
THREAD_FIELDS = ("title", "standfirst", "article_date", "url", "source", "declared_comments")
META_FIELDS = ("thread_id", "kind", "parent_id", "position", "depth", "author", "posted_at", "flags")
ID_CHUNK = 5000  # ids per ``IN (…)`` list (SQLite allows 32,766 parameters)


@dataclass
class WriteCounts:
    """What writing one input did to the store."""

    threads: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0

    def add(self, other: WriteCounts) -> None:
        self.threads += other.threads
        self.new += other.new
        self.updated += other.updated
        self.unchanged += other.unchanged


class Store(PredictionQueries):
    """A threadstance store.

    Args:
        path: A SQLite file (parent folders are created) or a PostgreSQL URL ``postgresql://user@host:port/db``.
            Opening migrates older schemas. An existing SQLite store this process may not write (read-only
            file or folder, read-only file system) is opened read-only: reading works, and every write
            fails with a :class:`StoreError` saying so.

    ``db`` is the SQLAlchemy connection every query runs on; ``conn`` is its driver connection (for SQLite
    the ``sqlite3`` connection, rows readable by name).
    """

    read_only: bool = False

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.backend: Backend = backend_for(path)
        self.path = self.backend.path
        self._depth = 0
        self.db, self.read_only = self.backend.open(read_only)
        self.conn = self.db.connection.driver_connection
        if self.read_only:
            self._check_readonly_version(self.schema_version)
            return
        try:
            self.migrate()
        except StoreError as exc:
            self.close()
            if "read-only" in str(exc) and self.backend.name == "sqlite" and Path(self.path).is_file():
                self.db, self.read_only = self.backend.open(True)  # read-only in a way os.access missed
                self.conn = self.db.connection.driver_connection
                self._check_readonly_version(self.schema_version)
                return
            raise

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection for good (SQLite checkpoints its WAL file when the last one closes)."""
        engine = self.db.engine
        self.db.close()
        engine.dispose()

    @property
    def schema_version(self) -> int:
        return current_version(self.db, self.backend.name == "sqlite")

    def migrate(self) -> None:
        """Apply pending migrations in one transaction (nothing is changed when the schema is current)."""
        version = self.schema_version
        if version > SCHEMA_VERSION:
            raise UserError(f"store schema v{version} is newer than this threadstance (v{SCHEMA_VERSION}); "
                            "upgrade threadstance", self.path)
        if version < SCHEMA_VERSION:
            with self.transaction():
                upgrade(self.db, self.backend.name == "sqlite")

    # ---- queries and transactions --------------------------------------------------------------
    def _x(self, sql: str, params: Any = None) -> sa.CursorResult[Any]:
        """Run one statement (named ``:parameters``; a list of dicts runs it once per dict)."""
        return self.db.execute(sa.text(sql), params if params is not None else {})

    def _all(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        return [dict(row._mapping) for row in self._x(sql, params)]

    def _one(self, sql: str, params: Any = None) -> dict[str, Any] | None:
        row = self._x(sql, params).first()
        return dict(row._mapping) if row is not None else None

    def _scalar(self, sql: str, params: Any = None) -> Any:
        return self._x(sql, params).scalar()

    def _rollback(self) -> None:
        # The database may already have rolled back by itself (SQLite on disk full or I/O error): a failing
        # ROLLBACK must not hide the real error.
        try:
            self.db.exec_driver_sql("ROLLBACK")
        except DB_ERRORS:
            pass

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """BEGIN (SQLite: IMMEDIATE) … COMMIT, rolled back on any exception; inside another transaction of
        this store it joins it (the outer one commits).

        Database errors (disk full, read-only, locked, I/O, connection lost) become a :class:`StoreError`
        naming the store; nothing of the transaction is kept, so the next run carries on.
        """
        if self._depth:
            self._depth += 1
            try:
                yield self.db
            finally:
                self._depth -= 1
            return
        try:
            self.db.exec_driver_sql(self.backend.begin_sql())
        except DB_ERRORS as exc:
            raise store_error(exc, self.path) from exc
        self._depth = 1
        try:
            yield self.db
        except DB_ERRORS as exc:
            self._depth = 0
            self._rollback()
            raise store_error(exc, self.path) from exc
        except BaseException:
            self._depth = 0
            self._rollback()
            raise
        self._depth = 0
        try:
            self.db.exec_driver_sql("COMMIT")
        except DB_ERRORS as exc:
            self._rollback()
            raise store_error(exc, self.path) from exc

    # ---- ingest -------------------------------------------------------------------------------
    def source_unchanged(self, path: str, sha256: str) -> bool:
        return self._scalar("SELECT sha256 FROM sources WHERE path = :p", {"p": path}) == sha256

    def record_source(self, path: str, sha256: str, fmt: str, encoding: str, threads: int) -> None:
        self._x("INSERT INTO sources(path, sha256, format, encoding, threads, ingested_at) "
                "VALUES (:path, :sha256, :format, :encoding, :threads, :at) "
                "ON CONFLICT(path) DO UPDATE SET sha256=excluded.sha256, format=excluded.format, "
                "encoding=excluded.encoding, threads=excluded.threads, ingested_at=excluded.ingested_at",
                {"path": path, "sha256": sha256, "format": fmt, "encoding": encoding, "threads": threads,
                 "at": utcnow()})

    def write_thread(self, thread: Thread) -> WriteCounts:
        """Upsert a thread and its items; call inside :meth:`transaction`.

        A new item is inserted; an item whose text is unchanged is left alone (metadata refreshed if it
        differs); an item whose text changed keeps its previous text in ``item_revisions`` and gets
        revision + 1. Nothing is written, and ``updated_at`` is kept, when nothing differs.
        """
        now = utcnow()
        counts = WriteCounts(threads=1)
        old_thread = self._one(f"SELECT {', '.join(THREAD_FIELDS)} FROM threads WHERE thread_id = :t",
                               {"t": thread.thread_id})
        values = {"title": thread.title, "standfirst": thread.standfirst, "article_date": thread.article_date,
                  "url": thread.url if thread.url is not None or old_thread is None else old_thread["url"],
                  "source": thread.source, "declared_comments": thread.declared_comments}
        if old_thread is None:
            self._x(f"INSERT INTO threads({', '.join(THREAD_FIELDS)}, thread_id, first_ingested_at, updated_at) "
                    f"VALUES ({', '.join(':' + f for f in THREAD_FIELDS)}, :thread_id, :now, :now)",
                    {**values, "thread_id": thread.thread_id, "now": now})
        existing = {row["item_id"]: row for row in self._all(
            f"SELECT item_id, {', '.join(META_FIELDS)}, text, text_sha256, revision FROM items WHERE thread_id = :t",
            {"t": thread.thread_id})}
        inserts = []
        set_meta = ", ".join(f"{f}=:{f}" for f in META_FIELDS)
        for item in thread.items:
            digest = sha256_text(item.text)
            meta = {"thread_id": item.thread_id, "kind": item.kind, "parent_id": item.parent_id,
                    "position": item.position, "depth": item.depth, "author": item.author,
                    "posted_at": item.posted_at, "flags": json.dumps(sorted(set(item.flags)))}
            old = existing.get(item.item_id)
            if old is None:
                inserts.append({**meta, "item_id": item.item_id, "text": item.text, "text_sha256": digest, "now": now})
                counts.new += 1
            elif old["text_sha256"] == digest:
                if any(old[f] != meta[f] for f in META_FIELDS):
                    self._x(f"UPDATE items SET {set_meta} WHERE item_id=:item_id", {**meta, "item_id": item.item_id})
                counts.unchanged += 1
            else:
                self._x("INSERT INTO item_revisions(item_id, revision, text, text_sha256, replaced_at) "
                        "VALUES (:item_id, :revision, :text, :text_sha256, :now)",
                        {"item_id": item.item_id, "revision": old["revision"], "text": old["text"],
                         "text_sha256": old["text_sha256"], "now": now})
                self._x(f"UPDATE items SET {set_meta}, text=:text, text_sha256=:text_sha256, revision=revision + 1, "
                        "updated_at=:now WHERE item_id=:item_id",
                        {**meta, "text": item.text, "text_sha256": digest, "now": now, "item_id": item.item_id})
                counts.updated += 1
        if inserts:
            self._x(f"INSERT INTO items({', '.join(META_FIELDS)}, item_id, text, text_sha256, revision, first_seen_at, "
                    f"updated_at) VALUES ({', '.join(':' + f for f in META_FIELDS)}, :item_id, :text, :text_sha256, 1, "
                    ":now, :now)", inserts)
        if old_thread is not None and (old_thread != values or counts.new or counts.updated):
            self._x(f"UPDATE threads SET {', '.join(f'{f}=:{f}' for f in THREAD_FIELDS)}, updated_at=:now "
                    "WHERE thread_id=:thread_id", {**values, "now": now, "thread_id": thread.thread_id})
        return counts

    # ---- reading ------------------------------------------------------------------------------
    def items(self, thread_id: str | None = None, kinds: Iterable[str] | None = None,
              item_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Items as dicts (flags decoded), in thread and page order."""
        where, params = [], {}
        if thread_id is not None:
            where.append("thread_id = :thread_id")
            params["thread_id"] = thread_id
        if kinds is not None:
            where.append("kind IN :kinds")
            params["kinds"] = list(kinds)
        sql = f"SELECT {', '.join(ITEM_COLUMNS)}, text_sha256 FROM items"
        if item_ids is None:
            chunks: list[list[str] | None] = [None]
        else:
            where.append("item_id IN :ids")
            ids = list(dict.fromkeys(item_ids))
            chunks = [ids[i:i + ID_CHUNK] for i in range(0, len(ids), ID_CHUNK)]
        if where:
            sql += " WHERE " + " AND ".join(where)
        stmt = sa.text(sql + " ORDER BY thread_id, position")
        stmt = stmt.bindparams(*(sa.bindparam(k, expanding=True) for k in ("kinds", "ids")
                                 if k in params or (k == "ids" and item_ids is not None)))
        out: list[dict[str, Any]] = []
        for chunk in chunks:
            if chunk is not None and not chunk:
                continue
            out.extend(_item_dict(row._mapping) for row in self.db.execute(
                stmt, {**params, **({"ids": chunk} if chunk is not None else {})}))
        if len(chunks) > 1:
            out.sort(key=lambda d: (d["thread_id"], d["position"]))
        return out

    def item_ids(self) -> set[str]:
        return {row[0] for row in self._x("SELECT item_id FROM items")}

    def threads(self) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM threads ORDER BY thread_id")

    def thread(self, thread_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM threads WHERE thread_id = :t", {"t": thread_id})

    def revisions(self, item_id: str) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM item_revisions WHERE item_id = :i ORDER BY revision", {"i": item_id})

    def counts(self) -> dict[str, int]:
        out = {"threads": int(self._scalar("SELECT COUNT(*) FROM threads"))}
        for kind in ("paragraph", "comment", "reply"):
            out[kind] = int(self._scalar("SELECT COUNT(*) FROM items WHERE kind = :k", {"k": kind}))
        return out

    # ---- opening read-only --------------------------------------------------------------------
    @classmethod
    def open_readonly(cls, path: str | Path) -> Store:
        """Open an existing store for reading: for reports, exports and dry runs.

        Nothing is written, except that an older schema is migrated first when the store is writable.
        A SQLite store in a folder this process cannot write is read as an immutable file (no ``-wal`` /
        ``-shm`` files needed). Errors are a one-line :class:`StoreError` naming the store.
        """
        backend = backend_for(path)
        if backend.name != "sqlite" or (Path(path).is_file() and backend.writable()):
            try:
                probe = cls(path, read_only=True)
                probe.close()
            except StoreError as exc:
                if "read-only: cannot write the upgrade" not in str(exc):
                    raise
                cls(path).close()  # migrate, as any opening for writing would
        return cls(path, read_only=True)

    def _check_readonly_version(self, version: int) -> None:
        if version == SCHEMA_VERSION:
            return
        self.close()
        if version > SCHEMA_VERSION:
            raise UserError(f"store schema v{version} is newer than this threadstance (v{SCHEMA_VERSION}); "
                            "upgrade threadstance", self.path)
        raise StoreError(f"the store is read-only: cannot write the upgrade of its schema v{version} to "
                         f"v{SCHEMA_VERSION} (open it once with write permission, e.g. `threadstance ingest`)",
                         self.path)


def writable(path: Path) -> bool:
    """Whether this process may write the SQLite store file and create its ``-wal`` / ``-shm`` files beside it."""
    return backend_for(path).writable()


def _item_dict(row: Any) -> dict[str, Any]:
    out = dict(row)
    out["flags"] = json.loads(out["flags"])
    return out
