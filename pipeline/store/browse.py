"""Read queries for the results dashboard (``threadstance serve``): a flat, indexed copy of one model's
predictions, built in memory from the store opened read-only.

The store's tables are reached as schema ``s`` of an in-memory SQLite database: a SQLite store file is
attached with ``mode=ro``, a PostgreSQL store is copied in (:mod:`pipeline.store.mirror`).
:meth:`BrowseIndex.refresh` copies every item with its current-revision prediction of one model version into
the table ``flat`` (labels, the probability of each label and every class probability as columns, the date
the item is counted under) plus per-thread label shares into ``thread_stats``, and indexes them. List pages,
filters, counts and downloads then run parameterised SQL against that copy, so a page of a store with a
million items costs a few index lookups. The copy is rebuilt when the store changed (the source's version:
``PRAGMA data_version`` of a file) or another model version is asked for. Nothing is ever written to the store.
"""
from __future__ import annotations

import json
import re
import sqlite3
import threading
import weakref
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.store.backend import backend_for
from pipeline.store.mirror import BrowseSource
from pipeline.store.records import load_record

KINDS = ("paragraph", "comment", "reply")
COUNT_CAP = 100_000  # a filtered count stops here ("100,000+"), so a text search never scans twice
SORTS = {"date": "f.date DESC, f.item_id DESC", "date_asc": "f.date, f.item_id", "thread": "f.thread_id, f.position",
         "confidence": "f.conf, f.item_id"}


@dataclass
class Schema:
    """Heads of the indexed model: sentiment classes, stance targets and their classes (from the records)."""

    sentiment: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    stance: list[str] = field(default_factory=list)

    def prob_columns(self) -> list[tuple[str, str, str]]:
        """(column, task, class) of every class probability column: p0, p1, …"""
        out = [("sentiment", c) for c in self.sentiment] + [(t, c) for t in self.targets for c in self.stance]
        return [(f"p{k}", task, c) for k, (task, c) in enumerate(out)]


@dataclass
class ItemFilter:
    """Filters of the items table. ``target`` None filters and ranks by the sentiment head."""

    target: str | None = None
    label: str | None = None
    conf_min: float | None = None
    conf_max: float | None = None
    kinds: Sequence[str] = ()
    thread_id: str | None = None
    since: str | None = None
    until: str | None = None
    text: str | None = None


def _phrase(text: str) -> str | None:
    """An FTS5 phrase query for the words of ``text`` (None without a word; no operator reaches FTS5)."""
    words = re.findall(r"\w+", text)
    return '"' + " ".join(words) + '"' if words else None


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class BrowseIndex:
    """The dashboard's read-only view of a store.

    Args:
        store: An existing store: a SQLite file or a PostgreSQL URL (read only; never created, migrated or
            written).
        date_of: Maps an item row (``posted_at``, ``article_date``, ``thread_first_posted_at``) to the
            ``YYYY-MM-DD`` it is counted under, or None (the trends rule).
    """

    def __init__(self, store: str | Path, date_of: Callable[[dict[str, Any]], str | None]) -> None:
        self.source = backend_for(store).browse_source()
        self.path = self.source.path
        self.date_of = date_of
        self.lock = threading.RLock()
        # autocommit: a transaction left open would pin the read snapshot of an attached file (no later commit
        # seen, its WAL never checkpointed); refresh() runs in one explicit transaction
        self.conn = sqlite3.connect("file::memory:", uri=True, check_same_thread=False, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        try:
            self.source.attach(self.conn)
        except BaseException:
            _close(self.conn, self.source)
            raise
        self.model_version: str | None = None
        self.schema = Schema()
        self.generation = 0  # set by the owner that replaces one index by a newer one (the dashboard)
        self._state: tuple[str | None, Hashable] | None = None
        # closed when the index is closed or no longer referenced (a request may still read a replaced one)
        self._finalizer = weakref.finalize(self, _close, self.conn, self.source)

    def close(self) -> None:
        with self.lock:
            self._finalizer()

    def _q(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self.lock:
            return self.conn.execute(sql, tuple(args)).fetchall()

    # ---- building the flat copy ---------------------------------------------------------------------
    def data_version(self) -> Hashable:
        """Changes whenever another connection commits to the store."""
        with self.lock:
            return self.source.version(self.conn)

    @property
    def built_version(self) -> Hashable:
        """The source's version when the flat copy was last built (None before the first build)."""
        return self._state[1] if self._state else None

    def refresh(self, model_version: str | None) -> bool:
        """Make ``flat`` hold ``model_version``'s predictions of the store as it is now; True if rebuilt."""
        with self.lock:
            state = (model_version, self.data_version())
            if state == self._state:
                return False
            self.conn.execute("BEGIN")
            try:
                self.source.load(self.conn, model_version)
                self._build(model_version)
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
            self._state = state
            return True

    def _schema_of(self, model_version: str | None) -> Schema:
        if model_version is None:
            return Schema()
        row = self.conn.execute("SELECT record FROM s.predictions WHERE model_version = ? LIMIT 1",
                                (model_version,)).fetchone()
        rec = load_record(row[0]) if row else None
        if not rec:
            return Schema()
        stance = rec.get("stance") or {}
        first = next(iter(stance.values()), {"probs": {}})
        return Schema(list(rec["sentiment"]["probs"]), list(stance), list(first["probs"]))

    def _build(self, model_version: str | None) -> None:
        c = self.conn
        self.schema = schema = self._schema_of(model_version)
        self.model_version = model_version
        probs = schema.prob_columns()
        stance_cols = [f"t{j}_label TEXT, t{j}_prob REAL" for j in range(len(schema.targets))]
        c.execute("DROP TABLE IF EXISTS flat_fts")
        c.execute("DROP TABLE IF EXISTS flat")
        c.execute("DROP TABLE IF EXISTS thread_stats")
        c.execute("CREATE TABLE flat (rid INTEGER PRIMARY KEY, item_id TEXT, thread_id TEXT, kind TEXT, "
                  "position INTEGER, depth INTEGER, author TEXT, posted_at TEXT, date TEXT, revision INTEGER, "
                  "text TEXT, s_label TEXT, s_prob REAL"
                  + "".join(f", {col}" for col in stance_cols) + "".join(f", {p} REAL" for p, _, _ in probs) + ")")
        rows = c.execute(
            "SELECT i.item_id, i.thread_id, i.kind, i.position, i.depth, i.author, i.posted_at, i.revision, i.text, "
            "t.article_date, f.first AS thread_first_posted_at, p.record FROM s.items i "
            "JOIN s.threads t ON t.thread_id = i.thread_id "
            "LEFT JOIN (SELECT thread_id, MIN(posted_at) AS first FROM s.items GROUP BY thread_id) f "
            "ON f.thread_id = i.thread_id "
            "LEFT JOIN s.predictions p ON p.item_id = i.item_id AND p.model_version = ? AND p.revision = i.revision "
            "ORDER BY i.thread_id, i.position", (model_version or "",))
        n_cols = 13 + 2 * len(schema.targets) + len(probs)
        insert = f"INSERT INTO flat VALUES (NULL{', ?' * (n_cols - 1)})"
        batch: list[tuple[Any, ...]] = []
        for row in rows:
            d = dict(row)
            rec = load_record(d.pop("record"))
            values: list[Any] = [d["item_id"], d["thread_id"], d["kind"], d["position"], d["depth"], d["author"],
                                 d["posted_at"], self.date_of(d), d["revision"], d["text"]]
            if rec:
                heads = [rec["sentiment"]] + [rec["stance"].get(t, {}) for t in schema.targets]
                for h in heads:
                    values += [h.get("label"), h.get("prob")]
                values += [(rec["sentiment"] if task == "sentiment" else rec["stance"].get(task, {})).get(
                    "probs", {}).get(cls) for _, task, cls in probs]
            else:
                values += [None] * (2 + 2 * len(schema.targets) + len(probs))
            batch.append(tuple(values))
            if len(batch) >= 5000:
                c.executemany(insert, batch)
                batch.clear()
        if batch:
            c.executemany(insert, batch)
        for col in ("thread_id, position", "date, item_id", "kind", "s_label, s_prob", "item_id",
                    *(f"t{j}_label, t{j}_prob" for j in range(len(schema.targets)))):
            c.execute(f"CREATE INDEX flat_{col.split(',')[0]} ON flat({col})")
        c.execute("CREATE VIRTUAL TABLE flat_fts USING fts5(text, content='flat', content_rowid='rid')")
        c.execute("INSERT INTO flat_fts(flat_fts) VALUES ('rebuild')")
        shares = "".join(f", AVG(t{j}_label = ?) AS t{j}_{k}" for j in range(len(schema.targets))
                         for k in range(len(schema.stance)))
        c.execute("CREATE TABLE thread_stats AS SELECT f.thread_id, t.title, t.article_date, COUNT(*) AS n, "
                  f"COUNT(f.s_label) AS n_pred, MIN(f.date) AS first_date{shares} FROM flat f "
                  "JOIN s.threads t ON t.thread_id = f.thread_id GROUP BY f.thread_id",
                  [cls for _ in schema.targets for cls in schema.stance])
        c.execute("CREATE INDEX thread_stats_date ON thread_stats(first_date, thread_id)")

    # ---- counts -------------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Threads, items by kind and items with a current prediction of the indexed model."""
        out = {"threads": self._q("SELECT COUNT(*) FROM s.threads")[0][0]}
        for kind in KINDS:
            out[kind] = self._q("SELECT COUNT(*) FROM flat WHERE kind = ?", (kind,))[0][0]
        out["items"] = sum(out[k] for k in KINDS)
        out["classified"] = self._q("SELECT COUNT(*) FROM flat WHERE s_label IS NOT NULL")[0][0]
        return out

    def has_thread(self, thread_id: str) -> bool:
        return bool(self._q("SELECT 1 FROM s.threads WHERE thread_id = ?", (thread_id,)))

    # ---- items --------------------------------------------------------------------------------------
    def _where(self, f: ItemFilter) -> tuple[str, list[Any], str]:
        """WHERE clause, its arguments and the confidence column for ``f``."""
        where, args = [], []
        j = self.schema.targets.index(f.target) if f.target in self.schema.targets else None
        label_col, conf = (f"f.t{j}_label", f"f.t{j}_prob") if j is not None else ("f.s_label", "f.s_prob")
        if f.label:
            where.append(f"{label_col} = ?")
            args.append(f.label)
        if f.conf_min is not None:
            where.append(f"{conf} >= ?")
            args.append(f.conf_min)
        if f.conf_max is not None:
            where.append(f"{conf} <= ?")
            args.append(f.conf_max)
        if f.kinds:
            where.append(f"f.kind IN ({','.join('?' * len(f.kinds))})")
            args.extend(f.kinds)
        for cond, value in (("f.thread_id = ?", f.thread_id), ("f.date >= ?", f.since), ("f.date <= ?", f.until)):
            if value:
                where.append(cond)
                args.append(value)
        if f.text:  # every word of the text, in this order (full-text index of the flat copy)
            phrase = _phrase(f.text)
            if phrase is None:
                where.append("0")
            else:
                where.append("f.rid IN (SELECT rowid FROM flat_fts WHERE flat_fts MATCH ?)")
                args.append(phrase)
        return (" WHERE " + " AND ".join(where)) if where else "", args, conf

    def count_items(self, f: ItemFilter, cap: int = COUNT_CAP) -> int:
        """Items matching ``f``, counted up to ``cap`` (cap + 1 means "more than cap")."""
        where, args, _ = self._where(f)
        return self._q(f"SELECT COUNT(*) FROM (SELECT 1 FROM flat f{where} LIMIT ?)", [*args, cap + 1])[0][0]

    def items_page(self, f: ItemFilter, offset: int, limit: int, sort: str = "date") -> list[dict[str, Any]]:
        """One page of matching items with their thread title and the filtered head's confidence."""
        where, args, conf = self._where(f)
        order = SORTS.get(sort, SORTS["date"]).replace("f.conf", conf)
        # the page is chosen on the flat copy's indexes alone, then joined with its thread titles
        rows = self._q(f"SELECT f.*, {conf} AS conf, t.title FROM flat f JOIN s.threads t ON t.thread_id = f.thread_id "
                       f"WHERE f.rid IN (SELECT f.rid FROM flat f{where} ORDER BY {order} LIMIT ? OFFSET ?) "
                       f"ORDER BY {order}", [*args, int(limit), int(offset)])
        return [self._row(r) for r in rows]

    def _row(self, r: sqlite3.Row) -> dict[str, Any]:
        d = dict(r)
        d["stance"] = {t: (d.pop(f"t{j}_label"), d.pop(f"t{j}_prob")) for j, t in enumerate(self.schema.targets)}
        return d

    def items_by_id(self, item_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The indexed rows of ``item_ids`` (with thread title), by id."""
        rows = self._q("SELECT f.*, t.title FROM flat f JOIN s.threads t ON t.thread_id = f.thread_id "
                       "WHERE f.item_id IN (SELECT value FROM json_each(?))", (json.dumps(list(item_ids)),))
        return {r["item_id"]: self._row(r) for r in rows}

    def iter_records(self, f: ItemFilter, chunk: int = 2000) -> Iterator[list[dict[str, Any]]]:
        """Prediction records (docs/formats.md, with text) of every classified item matching ``f``, in chunks."""
        where, args, _ = self._where(f)
        where = where + (" AND " if where else " WHERE ") + "f.s_label IS NOT NULL"
        last = 0
        while True:
            rows = self._q(
                "SELECT f.rid, f.item_id, f.thread_id, f.kind, i.parent_id, f.author, f.posted_at, f.text, p.record "
                "FROM flat f JOIN s.items i ON i.item_id = f.item_id JOIN s.predictions p ON p.item_id = f.item_id "
                f"AND p.model_version = ? AND p.revision = f.revision{where} AND f.rid > ? ORDER BY f.rid LIMIT ?",
                [self.model_version, *args, last, chunk])
            if not rows:
                return
            out = []
            for r in rows:
                rec = {k: r[k] for k in ("item_id", "thread_id", "kind", "parent_id", "author", "posted_at")}
                stored = load_record(r["record"]) or {}
                rec["model_version"] = self.model_version
                rec.update((k, v) for k, v in stored.items() if k not in rec and k != "text")
                rec["text"] = r["text"]
                out.append(rec)
            last = rows[-1]["rid"]
            yield out

    def probabilities(self, f: ItemFilter) -> tuple[list[dict[str, Any]], list[list[float]]]:
        """Classified items matching ``f`` (item_id, thread_id, kind, date) and their class probabilities in
        :meth:`Schema.prob_columns` order."""
        where, args, _ = self._where(f)
        where = where + (" AND " if where else " WHERE ") + "f.s_label IS NOT NULL"
        cols = ", ".join(p for p, _, _ in self.schema.prob_columns())
        rows = self._q(f"SELECT f.item_id, f.thread_id, f.kind, f.date, {cols} FROM flat f{where} ORDER BY f.rid", args)
        return [dict(r) for r in rows], [list(r)[4:] for r in rows]

    # ---- threads ------------------------------------------------------------------------------------
    def count_threads(self, text: str | None = None) -> int:
        where, args = ("WHERE title LIKE ? ESCAPE '\\' OR thread_id LIKE ? ESCAPE '\\'", [_like(text)] * 2) \
            if text else ("", [])
        return self._q(f"SELECT COUNT(*) FROM thread_stats {where}", args)[0][0]

    def threads_page(self, text: str | None, offset: int, limit: int) -> list[dict[str, Any]]:
        """Threads (newest first) with item counts and the share of each stance label per target."""
        where, args = ("WHERE title LIKE ? ESCAPE '\\' OR thread_id LIKE ? ESCAPE '\\'", [_like(text)] * 2) \
            if text else ("", [])
        rows = self._q(f"SELECT * FROM thread_stats {where} ORDER BY COALESCE(article_date, first_date) DESC, "
                       "thread_id LIMIT ? OFFSET ?", [*args, int(limit), int(offset)])
        out = []
        for r in rows:
            d = dict(r)
            d["shares"] = {t: {c: d.pop(f"t{j}_{k}") for k, c in enumerate(self.schema.stance)}
                           for j, t in enumerate(self.schema.targets)}
            out.append(d)
        return out

    def thread_items(self, thread_id: str) -> list[dict[str, Any]]:
        """Every item of a thread in page order with its parent, its revisions and the indexed model's
        latest prediction (``record`` decoded; ``predicted_revision`` tells whether it is of the current text)."""
        rows = self._q(
            "SELECT i.item_id, i.kind, i.parent_id, i.position, i.depth, i.author, i.posted_at, i.text, i.revision, "
            "i.flags, r.record, r.revision AS predicted_revision FROM s.items i LEFT JOIN s.predictions r "
            "ON r.item_id = i.item_id AND r.model_version = ?1 AND r.revision = (SELECT MAX(x.revision) FROM "
            "s.predictions x WHERE x.item_id = i.item_id AND x.model_version = ?1) WHERE i.thread_id = ?2 "
            "ORDER BY i.position", (self.model_version or "", thread_id))
        edited = {r[0]: [] for r in self._q(
            "SELECT DISTINCT v.item_id FROM s.item_revisions v JOIN s.items i ON i.item_id = v.item_id "
            "WHERE i.thread_id = ?", (thread_id,))}
        for r in self._q("SELECT v.item_id, v.revision, v.text, v.replaced_at FROM s.item_revisions v JOIN s.items i "
                         "ON i.item_id = v.item_id WHERE i.thread_id = ? ORDER BY v.item_id, v.revision", (thread_id,)):
            edited[r["item_id"]].append(dict(r))
        out = []
        for r in rows:
            d = dict(r)
            d["record"] = load_record(d["record"])
            d["flags"] = json.loads(d["flags"] or "[]")
            d["revisions"] = edited.get(d["item_id"], [])
            out.append(d)
        return out

    def thread(self, thread_id: str) -> dict[str, Any] | None:
        rows = self._q("SELECT thread_id, title, standfirst, article_date, url, declared_comments FROM s.threads "
                       "WHERE thread_id = ?", (thread_id,))
        return dict(rows[0]) if rows else None


def _close(conn: sqlite3.Connection, source: BrowseSource) -> None:
    conn.close()
    source.close()
