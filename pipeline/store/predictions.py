"""The store's prediction and run queries, a part of :class:`pipeline.store.db.Store` (which owns the
connection and the transactions): pending items, claims of them by concurrent workers, predictions and
their history, and reclassify runs."""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import sqlalchemy as sa

from pipeline.store.records import load_record
from pipeline.store.sqlite import utcnow

PENDING = ("NOT EXISTS (SELECT 1 FROM predictions r WHERE r.item_id = i.item_id AND r.model_version = :mv "
           "AND r.revision = i.revision)")
EDITED = ("EXISTS (SELECT 1 FROM predictions o WHERE o.item_id = i.item_id AND o.model_version = :mv "
          "AND o.revision != i.revision)")


class PredictionQueries:
    """Predictions (keyed by item, model version and text revision) and runs; mixed into ``Store``."""

    db: sa.Connection
    backend: Any
    transaction: Callable[[], AbstractContextManager[sa.Connection]]
    _x: Callable[..., Any]
    _all: Callable[..., list[dict[str, Any]]]
    _scalar: Callable[..., Any]

    def pending_items(self, model_version: str) -> list[dict[str, Any]]:
        """Items whose current text revision has no prediction from ``model_version``, in thread order.

        Each dict has ``parent_text``, ``revision`` and ``edited`` (1 when the model classified an earlier
        revision of the item: the text changed since, so it is reclassified after the edit).
        """
        return self._all(
            "SELECT i.item_id, i.thread_id, i.kind, i.parent_id, i.author, i.posted_at, i.text, i.text_sha256, "
            f"i.revision, p.text AS parent_text, CASE WHEN {EDITED} THEN 1 ELSE 0 END AS edited "
            f"FROM items i LEFT JOIN items p ON p.item_id = i.parent_id WHERE {PENDING} "
            "ORDER BY i.thread_id, i.position", {"mv": model_version})

    @contextmanager
    def claim(self, model_version: str, items: Sequence[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
        """The ``items`` (dicts from :meth:`pending_items`) this worker is to classify now; their predictions
        are written inside the block (:meth:`add_predictions` in :meth:`transaction` joins the claim).

        Where several workers share the store (PostgreSQL), the block is one transaction that locks the
        items' rows with ``FOR UPDATE SKIP LOCKED``: items another worker holds are left out, and so are
        items it committed meanwhile (checked again after locking). A worker killed inside the block
        loses its claim with its connection, and the rows are free for the others. With one worker at a
        time (SQLite, under the run's file lock) every item is returned and nothing is locked.
        """
        if not self.backend.shares_work:
            yield list(items)
            return
        with self.transaction():
            ids = sa.bindparam("ids", expanding=True)
            locked = [row[0] for row in self.db.execute(sa.text(
                "SELECT item_id FROM items WHERE item_id IN :ids ORDER BY item_id"
                + self.backend.claim_clause).bindparams(ids), {"ids": [i["item_id"] for i in items]})]
            still = {row[0] for row in self.db.execute(sa.text(
                f"SELECT i.item_id FROM items i WHERE i.item_id IN :ids AND {PENDING}").bindparams(ids),
                {"ids": locked, "mv": model_version})} if locked else set()
            yield [i for i in items if i["item_id"] in still]

    def count_pending(self, model_version: str) -> int:
        return int(self._scalar(f"SELECT COUNT(*) FROM items i WHERE {PENDING}", {"mv": model_version}))

    def add_predictions(self, rows: Iterable[tuple[str, str, int, str, str, str, int | None]]) -> int:
        """Insert (item_id, model_version, revision, text_sha256, sentiment, record_json, run_id) rows; an
        existing (item_id, model_version, revision) prediction is kept as it is, and predictions of other
        revisions stay as history. Call inside :meth:`transaction`. Returns rows added."""
        keys = ("item_id", "model_version", "revision", "text_sha256", "sentiment", "record", "run_id")
        now = utcnow()
        params = [{**dict(zip(keys, row)), "now": now} for row in rows]
        if not params:
            return 0
        result = self._x(f"INSERT INTO predictions({', '.join(keys)}, predicted_at) "
                         f"VALUES ({', '.join(':' + k for k in keys)}, :now) ON CONFLICT DO NOTHING", params)
        return max(int(result.rowcount), 0)

    def prediction_counts(self) -> dict[str, int]:
        """Predictions per model version (every revision counted)."""
        return {row[0]: int(row[1]) for row in self._x(
            "SELECT model_version, COUNT(*) FROM predictions GROUP BY model_version ORDER BY model_version")}

    def predicted_item_ids(self, model_version: str) -> set[str]:
        """Items with a prediction from ``model_version`` of any revision."""
        return {row[0] for row in self._x("SELECT DISTINCT item_id FROM predictions WHERE model_version = :mv",
                                          {"mv": model_version})}

    def count_stale_predictions(self, model_version: str) -> int:
        """Items whose text changed after ``model_version`` classified them and that have no prediction of
        their current revision yet (the next reclassify run classifies them)."""
        return int(self._scalar(f"SELECT COUNT(*) FROM items i WHERE {EDITED} AND {PENDING}", {"mv": model_version}))

    def prediction_history(self, item_id: str, model_version: str | None = None) -> list[dict[str, Any]]:
        """Every prediction of an item (all revisions, oldest first), ``record`` decoded."""
        sql = "SELECT * FROM predictions WHERE item_id = :i"
        if model_version is not None:
            sql += " AND model_version = :mv"
        out = self._all(sql + " ORDER BY model_version, revision", {"i": item_id, "mv": model_version})
        for d in out:
            d["record"] = load_record(d["record"])
        return out

    def items_with_predictions(self, model_version: str, predicted_only: bool = False) -> list[dict[str, Any]]:
        """Items joined with their thread (title, article_date, first comment time) and the latest prediction
        of ``model_version`` (``record`` decoded; None when the item has none; a prediction of an earlier
        revision has ``predicted_text_sha256`` != ``text_sha256``), in thread order."""
        join = "JOIN" if predicted_only else "LEFT JOIN"
        rows = self._all(
            "SELECT i.item_id, i.thread_id, t.title AS thread_title, t.article_date, "
            "(SELECT MIN(c.posted_at) FROM items c WHERE c.thread_id = i.thread_id) AS thread_first_posted_at, "
            "i.kind, i.parent_id, i.position, i.depth, i.author, i.posted_at, i.revision, i.text, "
            "i.text_sha256, r.model_version, r.sentiment, r.record, r.text_sha256 AS predicted_text_sha256, "
            f"r.run_id, r.predicted_at FROM items i JOIN threads t ON t.thread_id = i.thread_id {join} predictions r "
            "ON r.item_id = i.item_id AND r.model_version = :mv AND r.revision = (SELECT MAX(x.revision) FROM "
            "predictions x WHERE x.item_id = i.item_id AND x.model_version = :mv) ORDER BY i.thread_id, i.position",
            {"mv": model_version})
        for d in rows:
            d["record"] = load_record(d["record"])
        return rows

    def start_run(self, job: str, model_version: str | None = None) -> int:
        """A new ``running`` run of ``job``; this process holds the run's lock while its store is open."""
        with self.transaction():
            run_id = int(self._scalar("INSERT INTO runs(job, started_at, status, model_version) "
                                      "VALUES (:job, :at, 'running', :mv) RETURNING run_id",
                                      {"job": job, "at": utcnow(), "mv": model_version}))
        self.backend.try_lock(self.db, run_id)
        return run_id

    def update_run(self, run_id: int, **fields: Any) -> None:
        """Set run columns (status, ended_at, model_version, counts, errors); dicts/lists stored as JSON."""
        allowed = {"status", "ended_at", "model_version", "counts", "errors"}
        if not fields or set(fields) - allowed:
            raise ValueError(f"update_run: fields must be among {sorted(allowed)}")
        values = [json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v for v in fields.values()]
        with self.transaction():
            self._x(f"UPDATE runs SET {', '.join(f'{k} = :{k}' for k in fields)} WHERE run_id = :run_id",
                    {**dict(zip(fields, values)), "run_id": run_id})

    def mark_abandoned_runs(self, job: str, by_run: int | None = None) -> list[int]:
        """Runs of ``job`` still 'running' whose process is gone become 'killed'. With one run at a time
        (SQLite: call while holding the job's file lock) that is every other one; where workers share the
        store (PostgreSQL) a run whose process lives holds its run lock and is left alone."""
        with self.transaction():
            ids = [row[0] for row in self._x("SELECT run_id FROM runs WHERE job = :job AND status = 'running' "
                                             "AND run_id != :me ORDER BY run_id", {"job": job, "me": by_run or -1})]
            ids = [run_id for run_id in ids if self.backend.lock_is_free(self.db, run_id)]
            for run_id in ids:
                errors = json.loads(self._scalar("SELECT errors FROM runs WHERE run_id = :r", {"r": run_id}) or "[]")
                errors.append("the process ended without finishing the run (killed or crashed); "
                              f"marked by run {by_run}" if by_run else "marked killed")
                self._x("UPDATE runs SET status = 'killed', errors = :e WHERE run_id = :r",
                        {"e": json.dumps(errors), "r": run_id})
        return ids

    def runs(self, job: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Runs, newest first, with counts and errors decoded."""
        sql = "SELECT * FROM runs" + (" WHERE job = :job" if job else "") + " ORDER BY run_id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        out = []
        for d in self._all(sql, {"job": job}):
            d["counts"] = json.loads(d["counts"] or "{}")
            d["errors"] = json.loads(d["errors"] or "[]")
            out.append(d)
        return out

    def latest_model_version(self) -> str | None:
        """The model version of the latest finished reclassify run, else of the newest prediction."""
        version = self._scalar("SELECT model_version FROM runs WHERE job = 'reclassify' AND model_version "
                               "IS NOT NULL AND status IN ('ok', 'partial') ORDER BY run_id DESC LIMIT 1")
        if version is None:
            version = self._scalar("SELECT model_version FROM predictions "
                                   "ORDER BY predicted_at DESC, COALESCE(run_id, -1) DESC LIMIT 1")
        return version
