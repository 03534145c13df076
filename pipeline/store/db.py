"""The embedded SQLite store: threads, items (with revisions), labels, predictions and runs.

One file, WAL mode, schema versioned through ``PRAGMA user_version`` with forward migrations.
Writers use :meth:`Store.transaction` so a failed input never leaves half-written rows.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipeline.errors import UserError
from pipeline.ingest.model import Thread
from pipeline.store.records import load_record

# Each entry migrates the schema from version i to i + 1. Never edit a released entry; append.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE threads (
        thread_id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        standfirst TEXT,
        article_date TEXT,
        url TEXT,
        source TEXT NOT NULL,
        declared_comments INTEGER,
        first_ingested_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE items (
        item_id TEXT PRIMARY KEY,
        thread_id TEXT NOT NULL REFERENCES threads(thread_id),
        kind TEXT NOT NULL CHECK (kind IN ('comment', 'reply', 'paragraph')),
        parent_id TEXT,
        position INTEGER NOT NULL,
        depth INTEGER NOT NULL,
        author TEXT,
        posted_at TEXT,
        text TEXT NOT NULL,
        text_sha256 TEXT NOT NULL,
        flags TEXT NOT NULL DEFAULT '[]',
        revision INTEGER NOT NULL DEFAULT 1,
        first_seen_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX items_thread ON items(thread_id, position);
    CREATE TABLE item_revisions (
        item_id TEXT NOT NULL REFERENCES items(item_id),
        revision INTEGER NOT NULL,
        text TEXT NOT NULL,
        text_sha256 TEXT NOT NULL,
        replaced_at TEXT NOT NULL,
        PRIMARY KEY (item_id, revision)
    );
    CREATE TABLE sources (
        path TEXT PRIMARY KEY,
        sha256 TEXT NOT NULL,
        format TEXT NOT NULL,
        encoding TEXT NOT NULL,
        threads INTEGER NOT NULL,
        ingested_at TEXT NOT NULL
    );
    CREATE TABLE predictions (
        item_id TEXT NOT NULL REFERENCES items(item_id),
        model_version TEXT NOT NULL,
        text_sha256 TEXT NOT NULL,
        sentiment TEXT NOT NULL,
        record TEXT NOT NULL,
        run_id INTEGER,
        predicted_at TEXT NOT NULL,
        PRIMARY KEY (item_id, model_version)
    );
    CREATE TABLE runs (
        run_id INTEGER PRIMARY KEY AUTOINCREMENT,
        job TEXT NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        status TEXT NOT NULL,
        model_version TEXT,
        counts TEXT NOT NULL DEFAULT '{}',
        errors TEXT NOT NULL DEFAULT '[]'
    );
    """,
    # v2: a prediction belongs to one text revision of its item (issue 15: edited comments). The key
    # becomes (item_id, model_version, revision): an edit gets a new prediction, the old one stays as
    # history. Existing rows get the revision whose text they were made from (0 if it is unknown).
    """
    CREATE TABLE predictions_v2 (
        item_id TEXT NOT NULL REFERENCES items(item_id),
        model_version TEXT NOT NULL,
        revision INTEGER NOT NULL,
        text_sha256 TEXT NOT NULL,
        sentiment TEXT NOT NULL,
        record TEXT NOT NULL,
        run_id INTEGER,
        predicted_at TEXT NOT NULL,
        PRIMARY KEY (item_id, model_version, revision)
    );
    INSERT INTO predictions_v2(item_id, model_version, revision, text_sha256, sentiment, record, run_id,
                               predicted_at)
    SELECT p.item_id, p.model_version,
           COALESCE((SELECT i.revision FROM items i WHERE i.item_id = p.item_id AND i.text_sha256 = p.text_sha256),
                    (SELECT MAX(v.revision) FROM item_revisions v
                     WHERE v.item_id = p.item_id AND v.text_sha256 = p.text_sha256), 0),
           p.text_sha256, p.sentiment, p.record, p.run_id, p.predicted_at
    FROM predictions p;
    DROP TABLE predictions;
    ALTER TABLE predictions_v2 RENAME TO predictions;
    CREATE INDEX predictions_version ON predictions(model_version, item_id, revision);
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)
ITEM_COLUMNS = ("item_id", "thread_id", "kind", "parent_id", "position", "depth", "author", "posted_at",
                "text", "flags", "revision")


def utcnow() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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


class StoreError(UserError):
    """The SQLite store could not be read or written (disk full, read-only, locked, damaged)."""


def store_error(exc: sqlite3.Error, path: str | Path) -> StoreError:
    """A one-line, actionable StoreError for a sqlite3 error; never an empty message."""
    text = str(exc).strip() or type(exc).__name__
    low = text.lower()
    if "disk is full" in low or "disk full" in low:
        message = "disk full: the store could not be written; this step was rolled back (free space and rerun)"
    elif "readonly" in low or "read-only" in low:
        message = "the store is read-only: cannot write (check the file and folder permissions)"
    elif "locked" in low or "busy" in low:
        message = "the store is locked by another process; try again when it has finished"
    elif "not a database" in low or "malformed" in low:
        message = f"the store file is damaged or not a threadstance database ({text})"
    elif "unable to open" in low:
        message = f"cannot open the store ({text})"
    else:
        message = f"SQLite error: {text}; this step was rolled back"
    return StoreError(message, path)


class Store:
    """A threadstance SQLite database.

    Args:
        path: The database file; parent folders are created. Opening migrates older schemas.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
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
    # ---- predictions and runs (reclassify) ----------------------------------------------------
    @classmethod
    def open_readonly(cls, path: str | Path) -> Store:
        """Open an existing store without writing anything (no migration): for dry runs and reports."""
        self = cls.__new__(cls)
        self.path = Path(path)
        try:
            self.conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        except sqlite3.Error as exc:
            raise UserError(f"cannot open the SQLite store read-only: {exc}", self.path) from exc
        self.conn.row_factory = sqlite3.Row
        return self

    def pending_items(self, model_version: str) -> list[dict[str, Any]]:
        """Items whose current text revision has no prediction from ``model_version``, in thread order.

        Each dict has ``parent_text``, ``revision`` and ``edited`` (1 when the model classified an earlier
        revision of the item: the text changed since, so it is reclassified after the edit).
        """
        rows = self.conn.execute(
            "SELECT i.item_id, i.thread_id, i.kind, i.parent_id, i.author, i.posted_at, i.text, i.text_sha256, "
            "i.revision, p.text AS parent_text, EXISTS (SELECT 1 FROM predictions o WHERE o.item_id = i.item_id "
            "AND o.model_version = ?1 AND o.revision != i.revision) AS edited "
            "FROM items i LEFT JOIN items p ON p.item_id = i.parent_id "
            "WHERE NOT EXISTS (SELECT 1 FROM predictions r WHERE r.item_id = i.item_id AND r.model_version = ?1 "
            "AND r.revision = i.revision) ORDER BY i.thread_id, i.position", (model_version,))
        return [dict(row) for row in rows]

    def count_pending(self, model_version: str) -> int:
        return self.conn.execute(
            "SELECT COUNT(*) FROM items i WHERE NOT EXISTS (SELECT 1 FROM predictions r "
            "WHERE r.item_id = i.item_id AND r.model_version = ? AND r.revision = i.revision)",
            (model_version,)).fetchone()[0]

    def add_predictions(self, rows: Iterable[tuple[str, str, int, str, str, str, int | None]]) -> int:
        """Insert (item_id, model_version, revision, text_sha256, sentiment, record_json, run_id) rows; an
        existing (item_id, model_version, revision) prediction is kept as it is, and predictions of other
        revisions stay as history. Call inside :meth:`transaction`. Returns rows added."""
        before = self.conn.total_changes
        now = utcnow()
        self.conn.executemany(
            "INSERT OR IGNORE INTO predictions(item_id, model_version, revision, text_sha256, sentiment, record, "
            "run_id, predicted_at) VALUES (?,?,?,?,?,?,?,?)", [(*row, now) for row in rows])
        return self.conn.total_changes - before

    def prediction_counts(self) -> dict[str, int]:
        """Predictions per model version (every revision counted)."""
        return {row[0]: row[1] for row in self.conn.execute(
            "SELECT model_version, COUNT(*) FROM predictions GROUP BY model_version ORDER BY model_version")}

    def count_stale_predictions(self, model_version: str) -> int:
        """Items whose text changed after ``model_version`` classified them and that have no prediction of
        their current revision yet (the next reclassify run classifies them)."""
        return self.conn.execute(
            "SELECT COUNT(*) FROM items i WHERE EXISTS (SELECT 1 FROM predictions o WHERE o.item_id = i.item_id "
            "AND o.model_version = ?1 AND o.revision != i.revision) AND NOT EXISTS (SELECT 1 FROM predictions r "
            "WHERE r.item_id = i.item_id AND r.model_version = ?1 AND r.revision = i.revision)",
            (model_version,)).fetchone()[0]

    def prediction_history(self, item_id: str, model_version: str | None = None) -> list[dict[str, Any]]:
        """Every prediction of an item (all revisions, oldest first), ``record`` decoded."""
        sql = "SELECT * FROM predictions WHERE item_id = ?"
        args: list[Any] = [item_id]
        if model_version is not None:
            sql += " AND model_version = ?"
            args.append(model_version)
        out = []
        for row in self.conn.execute(sql + " ORDER BY model_version, revision", args):
            d = dict(row)
            d["record"] = load_record(d["record"])
            out.append(d)
        return out

    def items_with_predictions(self, model_version: str, predicted_only: bool = False) -> list[dict[str, Any]]:
        """Items joined with their thread (title, article_date, first comment time) and the latest prediction
        of ``model_version`` (``record`` decoded; None when the item has none; a prediction of an earlier
        revision has ``predicted_text_sha256`` != ``text_sha256``), in thread order."""
        join = "JOIN" if predicted_only else "LEFT JOIN"
        rows = self.conn.execute(
            "SELECT i.item_id, i.thread_id, t.title AS thread_title, t.article_date, "
            "(SELECT MIN(c.posted_at) FROM items c WHERE c.thread_id = i.thread_id) AS thread_first_posted_at, "
            "i.kind, i.parent_id, i.position, i.depth, i.author, i.posted_at, i.revision, i.text, "
            "i.text_sha256, r.model_version, r.sentiment, r.record, r.text_sha256 AS predicted_text_sha256, "
            f"r.run_id, r.predicted_at FROM items i JOIN threads t ON t.thread_id = i.thread_id {join} predictions r "
            "ON r.item_id = i.item_id AND r.model_version = ?1 AND r.revision = (SELECT MAX(x.revision) FROM "
            "predictions x WHERE x.item_id = i.item_id AND x.model_version = ?1) ORDER BY i.thread_id, i.position",
            (model_version,))
        out = []
        for row in rows:
            d = dict(row)
            d["record"] = load_record(d["record"])
            out.append(d)
        return out

    def start_run(self, job: str, model_version: str | None = None) -> int:
        with self.transaction():
            cur = self.conn.execute("INSERT INTO runs(job, started_at, status, model_version) VALUES (?,?,?,?)",
                                    (job, utcnow(), "running", model_version))
        return int(cur.lastrowid)

    def update_run(self, run_id: int, **fields: Any) -> None:
        """Set run columns (status, ended_at, model_version, counts, errors); dicts/lists stored as JSON."""
        allowed = {"status", "ended_at", "model_version", "counts", "errors"}
        if not fields or set(fields) - allowed:
            raise ValueError(f"update_run: fields must be among {sorted(allowed)}")
        values = [json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v for v in fields.values()]
        with self.transaction():
            self.conn.execute(f"UPDATE runs SET {', '.join(f'{k} = ?' for k in fields)} WHERE run_id = ?",
                              (*values, run_id))

    def mark_abandoned_runs(self, job: str, by_run: int | None = None) -> list[int]:
        """Runs of ``job`` still 'running' become 'killed' (call while holding the job's lock)."""
        with self.transaction():
            ids = [row[0] for row in self.conn.execute(
                "SELECT run_id FROM runs WHERE job = ? AND status = 'running' AND run_id != ?", (job, by_run or -1))]
            for run_id in ids:
                errors = json.loads(self.conn.execute("SELECT errors FROM runs WHERE run_id = ?",
                                                      (run_id,)).fetchone()[0] or "[]")
                errors.append("the process ended without finishing the run (killed or crashed); "
                              f"marked by run {by_run}" if by_run else "marked killed")
                self.conn.execute("UPDATE runs SET status = 'killed', errors = ? WHERE run_id = ?",
                                  (json.dumps(errors), run_id))
        return ids

    def runs(self, job: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Runs, newest first, with counts and errors decoded."""
        sql, args = "SELECT * FROM runs", []
        if job:
            sql += " WHERE job = ?"
            args.append(job)
        sql += " ORDER BY run_id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        out = []
        for row in self.conn.execute(sql, args):
            d = dict(row)
            d["counts"] = json.loads(d["counts"] or "{}")
            d["errors"] = json.loads(d["errors"] or "[]")
            out.append(d)
        return out

    def latest_model_version(self) -> str | None:
        """The model version of the latest finished reclassify run, else of the newest prediction."""
        row = self.conn.execute("SELECT model_version FROM runs WHERE job = 'reclassify' AND model_version "
                                "IS NOT NULL AND status IN ('ok', 'partial') ORDER BY run_id DESC LIMIT 1").fetchone()
        if row is None:
            row = self.conn.execute("SELECT model_version FROM predictions ORDER BY predicted_at DESC, rowid DESC "
                                    "LIMIT 1").fetchone()
        return row[0] if row else None


def _item_dict(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    out["flags"] = json.loads(out["flags"])
    return out
