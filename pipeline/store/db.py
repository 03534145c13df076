"""The embedded SQLite store: threads, items (with revisions), labels, predictions and runs.

One file, WAL mode, schema versioned through ``PRAGMA user_version`` with forward migrations.
Writers use :meth:`Store.transaction` so a failed input never leaves half-written rows.
"""
from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import UserError
from pipeline.ingest.model import Thread
from pipeline.store.migrations import MIGRATIONS, SCHEMA_VERSION
from pipeline.store.predictions import PredictionQueries
from pipeline.store.sqlite import StoreError, sha256_text, store_error, utcnow

__all__ = ["ITEM_COLUMNS", "MIGRATIONS", "SCHEMA_VERSION", "Store", "StoreError", "WriteCounts", "sha256_text",
           "store_error", "utcnow"]

ITEM_COLUMNS = ("item_id", "thread_id", "kind", "parent_id", "position", "depth", "author", "posted_at",
                "text", "flags", "revision")


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
    """A threadstance SQLite database.

    Args:
        path: The database file; parent folders are created. Opening migrates older schemas. An existing
            store this process may not write (read-only file or folder, read-only file system) is opened
            read-only: reading works, and every write fails with a :class:`StoreError` saying so.
    """

    read_only: bool = False

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_file() and not writable(self.path):
            self._open_readonly()
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the store's folder: {exc.strerror or exc}", self.path) from exc
        try:
            self.conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except sqlite3.Error as exc:
            raise UserError(f"cannot open the SQLite store: {exc}", self.path) from exc
        self.conn.row_factory = sqlite3.Row
        try:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.migrate()
        except sqlite3.Error as exc:
            self.conn.close()
            if "readonly" in str(exc).lower() and self.path.is_file():  # read-only in a way os.access missed
                self._open_readonly()
                return
            raise store_error(exc, self.path) from exc

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    @property
    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        """Apply pending migrations, each in its own transaction."""
        version = self.schema_version
        if version > SCHEMA_VERSION:
            raise UserError(f"store schema v{version} is newer than this threadstance (v{SCHEMA_VERSION}); "
                            "upgrade threadstance", self.path)
        for target in range(version, SCHEMA_VERSION):
            with self.transaction():
                for statement in MIGRATIONS[target].split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version = {target + 1}")

    def _rollback(self) -> None:
        # SQLite may already have rolled back by itself (disk full, I/O error): ROLLBACK would then fail
        # with "cannot rollback - no transaction is active" and hide the real error.
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, rolled back on any exception.

        SQLite errors (disk full, read-only file, locked, I/O) become a :class:`StoreError` naming the
        store file; nothing of the transaction is kept, so the next run carries on.
        """
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise store_error(exc, self.path) from exc
        try:
            yield self.conn
        except sqlite3.Error as exc:
            self._rollback()
            raise store_error(exc, self.path) from exc
        except BaseException:
            self._rollback()
            raise
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise store_error(exc, self.path) from exc

    # ---- ingest -------------------------------------------------------------------------------
    def source_unchanged(self, path: str, sha256: str) -> bool:
        row = self.conn.execute("SELECT sha256 FROM sources WHERE path = ?", (path,)).fetchone()
        return row is not None and row["sha256"] == sha256

    def record_source(self, path: str, sha256: str, fmt: str, encoding: str, threads: int) -> None:
        self.conn.execute(
            "INSERT INTO sources(path, sha256, format, encoding, threads, ingested_at) VALUES (?,?,?,?,?,?) "
            "ON CONFLICT(path) DO UPDATE SET sha256=excluded.sha256, format=excluded.format, "
            "encoding=excluded.encoding, threads=excluded.threads, ingested_at=excluded.ingested_at",
            (path, sha256, fmt, encoding, threads, utcnow()))

    def write_thread(self, thread: Thread) -> WriteCounts:
        """Upsert a thread and its items; call inside :meth:`transaction`.

        A new item is inserted; an item whose text is unchanged is left alone (metadata refreshed if it
        differs); an item whose text changed keeps its previous text in ``item_revisions`` and gets
        revision + 1. Nothing is written, and ``updated_at`` is kept, when nothing differs.
        """
        now = utcnow()
        counts = WriteCounts(threads=1)
        old_thread = self.conn.execute(
            "SELECT title, standfirst, article_date, url, source, declared_comments FROM threads "
            "WHERE thread_id = ?", (thread.thread_id,)).fetchone()
        values = (thread.title, thread.standfirst, thread.article_date,
                  thread.url if thread.url is not None or old_thread is None else old_thread["url"],
                  thread.source, thread.declared_comments)
        if old_thread is None:
            self.conn.execute(
                "INSERT INTO threads(title, standfirst, article_date, url, source, declared_comments, thread_id, "
                "first_ingested_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)", (*values, thread.thread_id, now, now))
        existing = {row[0]: row for row in self.conn.execute(
            "SELECT item_id, thread_id, kind, parent_id, position, depth, author, posted_at, flags, text, "
            "text_sha256, revision FROM items WHERE thread_id = ?", (thread.thread_id,))}
        inserts = []
        for item in thread.items:
            digest = sha256_text(item.text)
            meta = (item.thread_id, item.kind, item.parent_id, item.position, item.depth, item.author,
                    item.posted_at, json.dumps(sorted(set(item.flags))))
            old = existing.get(item.item_id)
            if old is None:
                inserts.append((*meta, item.item_id, item.text, digest, now, now))
                counts.new += 1
            elif old["text_sha256"] == digest:
                if tuple(old)[1:9] != meta:
                    self.conn.execute(
                        "UPDATE items SET thread_id=?, kind=?, parent_id=?, position=?, depth=?, author=?, "
                        "posted_at=?, flags=? WHERE item_id=?", (*meta, item.item_id))
                counts.unchanged += 1
            else:
                self.conn.execute(
                    "INSERT INTO item_revisions(item_id, revision, text, text_sha256, replaced_at) "
                    "VALUES (?,?,?,?,?)", (item.item_id, old["revision"], old["text"], old["text_sha256"], now))
                self.conn.execute(
                    "UPDATE items SET thread_id=?, kind=?, parent_id=?, position=?, depth=?, author=?, "
                    "posted_at=?, flags=?, text=?, text_sha256=?, revision=revision + 1, updated_at=? "
                    "WHERE item_id=?", (*meta, item.text, digest, now, item.item_id))
                counts.updated += 1
        if inserts:
            self.conn.executemany(
                "INSERT INTO items(thread_id, kind, parent_id, position, depth, author, posted_at, flags, "
                "item_id, text, text_sha256, revision, first_seen_at, updated_at) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,1,?,?)", inserts)
        if old_thread is not None and (tuple(old_thread) != values or counts.new or counts.updated):
            self.conn.execute(
                "UPDATE threads SET title=?, standfirst=?, article_date=?, url=?, source=?, declared_comments=?, "
                "updated_at=? WHERE thread_id=?", (*values, now, thread.thread_id))
        return counts

    # ---- reading ------------------------------------------------------------------------------
    def items(self, thread_id: str | None = None, kinds: Iterable[str] | None = None,
              item_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Items as dicts (flags decoded), in thread and page order."""
        sql = f"SELECT {', '.join(ITEM_COLUMNS)}, text_sha256 FROM items"
        where, args = [], []
        if thread_id is not None:
            where.append("thread_id = ?")
            args.append(thread_id)
        if kinds is not None:
            kinds = list(kinds)
            where.append(f"kind IN ({','.join('?' * len(kinds))})")
            args.extend(kinds)
        if item_ids is not None:
            ids = list(item_ids)
            where.append("item_id IN (SELECT value FROM json_each(?))")
            args.append(json.dumps(ids))
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY thread_id, position"
        return [_item_dict(row) for row in self.conn.execute(sql, args)]

    def item_ids(self) -> set[str]:
        return {row[0] for row in self.conn.execute("SELECT item_id FROM items")}

    def threads(self) -> list[dict[str, Any]]:
        return [dict(row) for row in self.conn.execute("SELECT * FROM threads ORDER BY thread_id")]

    def thread(self, thread_id: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM threads WHERE thread_id = ?", (thread_id,)).fetchone()
        return dict(row) if row else None

    def revisions(self, item_id: str) -> list[dict[str, Any]]:
        return [dict(row) for row in self.conn.execute(
            "SELECT * FROM item_revisions WHERE item_id = ? ORDER BY revision", (item_id,))]

    def counts(self) -> dict[str, int]:
        out = {"threads": self.conn.execute("SELECT COUNT(*) FROM threads").fetchone()[0]}
        for kind in ("paragraph", "comment", "reply"):
            out[kind] = self.conn.execute("SELECT COUNT(*) FROM items WHERE kind = ?", (kind,)).fetchone()[0]
        return out

    # ---- opening read-only --------------------------------------------------------------------
    @classmethod
    def open_readonly(cls, path: str | Path) -> Store:
        """Open an existing store for reading: for reports, exports and dry runs.

        Nothing is written, except that an older schema is migrated first when the store is writable.
        A store in a folder this process cannot write is read as an immutable file (no ``-wal`` / ``-shm``
        files needed). Errors are a one-line :class:`StoreError` naming the store.
        """
        path = Path(path)
        if path.is_file() and writable(path):
            probe = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
            try:
                old = int(probe.execute("PRAGMA user_version").fetchone()[0]) < SCHEMA_VERSION
            except sqlite3.Error:
                old = False  # reported below, by the read-only open
            finally:
                probe.close()
            if old:
                cls(path).close()  # migrate, as any opening for writing would
        self = cls.__new__(cls)
        self.path = path
        self._open_readonly()
        return self

    def _open_readonly(self) -> None:
        """Connect read-only (``mode=ro``; ``immutable=1`` when the folder is not writable, so no ``-shm``
        file can be made, and no other process has unsaved changes in a ``-wal`` file) and read the schema."""
        self.read_only = True
        wal = self.path.with_name(self.path.name + "-wal")
        folder_writable = os.access(self.path.parent, os.W_OK)
        modes = ["mode=ro"] if folder_writable or (wal.is_file() and wal.stat().st_size) else []
        if not folder_writable:
            modes.append("immutable=1")
        uri = self.path.resolve().as_uri()
        for i, mode in enumerate(modes):
            conn = None
            try:
                conn = sqlite3.connect(f"{uri}?{mode}", uri=True, timeout=30, isolation_level=None)
                conn.row_factory = sqlite3.Row
                version = int(conn.execute("PRAGMA user_version").fetchone()[0])
                conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            except sqlite3.Error as exc:
                if conn is not None:
                    conn.close()
                if i == len(modes) - 1:
                    raise store_error(exc, self.path) from exc
                continue
            self.conn = conn
            break
        self._check_readonly_version(version)

    def _check_readonly_version(self, version: int) -> None:
        if version == SCHEMA_VERSION:
            return
        self.conn.close()
        if version > SCHEMA_VERSION:
            raise UserError(f"store schema v{version} is newer than this threadstance (v{SCHEMA_VERSION}); "
                            "upgrade threadstance", self.path)
        raise StoreError(f"the store is read-only: cannot write the upgrade of its schema v{version} to "
                         f"v{SCHEMA_VERSION} (open it once with write permission, e.g. `threadstance ingest`)",
                         self.path)


def writable(path: Path) -> bool:
    """Whether this process may write the store file and create its ``-wal`` / ``-shm`` files beside it."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def _item_dict(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    out["flags"] = json.loads(out["flags"])
    return out
