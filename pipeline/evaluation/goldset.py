"""The gold set an evaluation scores: gold labels, the items' text from the store, kind groups."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config.schema import LabelSchema
from pipeline.errors import UserError
from pipeline.ingest.jsonl import jsonl_lines

MIN_BOOTSTRAP = 1000
CI_LEVEL = 0.95
ECE_BINS = 10
N_CONFIDENT_ERRORS = 20
# Item kinds are reported in two groups: reader comments (with replies) read very differently from
# article paragraphs, and the gold set is mostly paragraphs.
GROUPS: dict[str, tuple[str, ...]] = {"comments": ("comment", "reply"), "paragraphs": ("paragraph",)}
MAX_IDS_IN_MESSAGE = 20
KINDS = ("comment", "reply", "paragraph")


def _id_list(ids: list[str]) -> str:
    shown = ", ".join(ids[:MAX_IDS_IN_MESSAGE])
    return shown + (f", … (+{len(ids) - MAX_IDS_IN_MESSAGE} more)" if len(ids) > MAX_IDS_IN_MESSAGE else "")


# ---- inputs ----------------------------------------------------------------------------------------------

@dataclass
class EvalSet:
    """The items under evaluation, aligned lists: ids, kinds, texts, parent texts, gold label columns and
    thread ids (the bootstrap's clusters)."""

    ids: list[str]
    kinds: list[str]
    texts: list[str]
    parents: list[str | None]
    gold: dict[str, list[str]]
    threads: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def group_index(self, group: str) -> np.ndarray:
        return np.array([i for i, k in enumerate(self.kinds) if k in GROUPS[group]], dtype=int)

    def subset(self, index: np.ndarray | list[int]) -> EvalSet:
        ix = [int(i) for i in index]
        return EvalSet([self.ids[i] for i in ix], [self.kinds[i] for i in ix], [self.texts[i] for i in ix],
                       [self.parents[i] for i in ix], {f: [v[i] for i in ix] for f, v in self.gold.items()},
                       [self.threads[i] for i in ix] if self.threads else [])

    def records(self, schema: LabelSchema) -> list[dict]:
        """Corpus-style records (``id``, ``text``, ``sentiment``, ``stance``, ``kind``, ``parent_text``)."""
        return [{"id": self.ids[i], "text": self.texts[i], "sentiment": self.gold["sentiment"][i],
                 "stance": {t: self.gold[t][i] for t in schema.target_names}, "kind": self.kinds[i],
                 "parent_text": self.parents[i], "source": "gold"} for i in range(len(self))]


def read_gold(path: str | Path, schema: LabelSchema) -> dict[str, Any]:
    """Gold labels by item id (strict: the first problem in the file is a UserError with its line)."""
    from pipeline.data.labels import read_labels

    p = Path(path)
    if not p.is_file():
        raise UserError("gold label file not found (pass --gold FILE or set evaluation.gold)", p)
    records = read_labels(p, schema)
    if not records:
        raise UserError("gold label file has no labels", p)
    return {r.item_id: r for r in records}


def read_item_ids(path: str | Path) -> list[str]:
    """Item ids to evaluate: one per line (``#`` comments and blank lines ignored), or JSONL with ``item_id``."""
    p = Path(path)
    try:
        lines = jsonl_lines(p.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise UserError(f"cannot read the item id file: {exc.strerror or exc}", p) from exc
    ids: list[str] = []
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("{"):
            try:
                line = json.loads(line)["item_id"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise UserError("expected an item id or a JSON object with 'item_id'", p, lineno) from exc
        if line not in ids:
            ids.append(line)
    if not ids:
        raise UserError("no item ids in the file", p)
    return ids


def require_gold(item_ids: list[str], gold: dict[str, Any], gold_path: str | Path) -> None:
    """Evaluating an item without a gold label is an error that names the items, never a silent skip."""
    missing = [i for i in item_ids if i not in gold]
    if missing:
        raise UserError(f"{len(missing)} item(s) asked for evaluation have no gold label in this file: "
                        f"{_id_list(missing)}", gold_path)


def ensure_seeds_ingested(ids: list[str], db: str | Path, seeds: str | Path | None,
                          log: Any = None) -> bool:
    """Ingest the seed threads into ``db`` when some of ``ids`` are not there yet (a fresh checkout runs
    ``evaluate`` before any ``run``). Returns True when it ingested. Nothing happens without a seeds folder."""
    from pipeline.store.db import Store

    if seeds is None or not Path(seeds).is_dir():
        return False
    if Path(db).is_file():
        with Store(db) as store:
            present = {r["item_id"] for r in store.items(item_ids=ids)}
        if all(i in present for i in ids):
            return False
    from pipeline.store.load import ingest_paths

    if log:
        log(f"gold items are not in {db} yet: ingesting the seed threads from {seeds}")
    with Store(db) as store:
        report = ingest_paths(store, [seeds])
    if report.failed:
        raise UserError(f"{len(report.failed)} seed file(s) failed to ingest: {report.failed[0].error}", seeds)
    return True


def load_eval_set(gold: dict[str, Any], schema: LabelSchema, db: str | Path,
                  item_ids: list[str] | None = None, gold_path: str | Path = "gold",
                  seeds: str | Path | None = None, log: Any = None) -> EvalSet:
    """The gold items (or ``item_ids``, which must all have gold) with their text from the store; with
    ``seeds``, missing gold items are first ingested from that folder."""
    from pipeline.store.db import Store

    ids = list(item_ids) if item_ids is not None else list(gold)
    if item_ids is not None:
        require_gold(ids, gold, gold_path)
    ensure_seeds_ingested(ids, db, seeds, log)
    hint = f"ingest the seed threads first: `threadstance ingest ../shared/seeds --db {db}`"
    if not Path(db).is_file():
        raise UserError(f"no store here; {hint}", db)
    with Store(db) as store:
        rows = {r["item_id"]: r for r in store.items(item_ids=ids)}
        parent_ids = sorted({r["parent_id"] for r in rows.values() if r.get("parent_id")})
        parents = {r["item_id"]: r["text"] for r in store.items(item_ids=parent_ids)} if parent_ids else {}
    missing = [i for i in ids if i not in rows]
    if missing:
        raise UserError(f"{len(missing)} gold item(s) are not in the store: {_id_list(missing)}; {hint}", db)
    gold_cols: dict[str, list[str]] = {"sentiment": [gold[i].sentiment for i in ids]}
    for t in schema.target_names:
        gold_cols[t] = [gold[i].stance[t] for i in ids]
    return EvalSet(ids, [rows[i]["kind"] for i in ids], [rows[i]["text"] for i in ids],
                   [parents.get(rows[i].get("parent_id") or "") for i in ids], gold_cols,
                   [rows[i]["thread_id"] for i in ids])
