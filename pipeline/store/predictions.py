"""The store's prediction and run queries, a part of :class:`pipeline.store.db.Store` (which owns the
connection and the transactions): pending items, predictions and their history, and reclassify runs."""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any

from pipeline.store.records import load_record
from pipeline.store.sqlite import utcnow


class PredictionQueries:
    """Predictions (keyed by item, model version and text revision) and runs; mixed into ``Store``."""

    conn: sqlite3.Connection
    transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]

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
