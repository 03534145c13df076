"""What the gold set under evaluation holds: items per kind and thread, label distributions, source files,
and the agreement of the annotation passes stored beside it.

Every number is computed from the files and the store; nothing is copied from a README. Annotation passes
are found beside the gold file: a folder (the gold file's own, or one level below it) holding
``pass_a.jsonl`` and ``pass_b.jsonl`` is one pair of independent passes; its ``disputes.jsonl`` or
``adjudication.jsonl`` lists the adjudicated fields, and a ``changes.jsonl`` marks passes that revised
earlier labels instead of labelling from scratch.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

from pipeline.config.schema import LabelSchema
from pipeline.evaluation.goldset import KINDS, EvalSet
from pipeline.evaluation.scoring import label_support
from pipeline.ingest.jsonl import jsonl_lines

PASS_FILES = ("pass_a.jsonl", "pass_b.jsonl")
ADJUDICATION_FILES = ("disputes.jsonl", "adjudication.jsonl")
CHANGES_FILE = "changes.jsonl"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _jsonl_lines(path: Path) -> int:
    return sum(1 for line in jsonl_lines(path.read_text(encoding="utf-8-sig")) if line.strip())


def pass_pairs(gold_path: str | Path) -> list[Path]:
    """Folders beside the gold file (its own, then its subfolders) that hold both annotation pass files."""
    root = Path(gold_path).resolve().parent
    candidates = [root, *sorted(p for p in root.iterdir() if p.is_dir())] if root.is_dir() else []
    return [d for d in candidates if all((d / f).is_file() for f in PASS_FILES)]


def pass_agreement(folder: Path, root: Path, schema: LabelSchema) -> dict[str, Any]:
    """Cohen's kappa and raw agreement per field between the two passes in ``folder``, with the disputed
    and adjudicated field counts (computed by :func:`pipeline.evaluation.agreement.compare_labels`)."""
    from pipeline.data.labels import read_labels
    from pipeline.evaluation.agreement import compare_labels

    a, b = (read_labels(folder / f, schema) for f in PASS_FILES)
    rep = compare_labels(a, b, schema)
    fields = {f.field: {"n": f.n, "agreed": f.agreed, "raw_agreement": f.observed, "kappa": f.kappa}
              for f in rep.fields}
    adjudication = next((folder / f for f in ADJUDICATION_FILES if (folder / f).is_file()), None)
    rel = folder.relative_to(root).as_posix()
    return {
        "folder": "." if rel == "." else rel,
        "files": [(folder / f).relative_to(root).as_posix() for f in PASS_FILES],
        "annotators": [rep.annotators_a, rep.annotators_b],
        "common": len(rep.common), "only_a": len(rep.only_a), "only_b": len(rep.only_b),
        "items_fully_agreed": rep.items_fully_agreed, "items_disputed": rep.disputed_items,
        "fields_disputed": sum(f.n - f.agreed for f in rep.fields),
        "fields": fields,
        "adjudication": {"file": adjudication.relative_to(root).as_posix(), "fields": _jsonl_lines(adjudication)}
        if adjudication else None,
        "revises_earlier_labels": (folder / CHANGES_FILE).is_file(),
    }


def thread_table(es: EvalSet, db: str | Path) -> list[dict[str, Any]]:
    """One row per gold thread: title, date, source file name and the gold items per kind."""
    from pipeline.store.db import Store

    with Store(db) as store:
        meta = {t["thread_id"]: t for t in store.threads()}
    rows = []
    for tid in sorted(set(es.threads)):
        kinds = Counter(k for k, t in zip(es.kinds, es.threads) if t == tid)
        m = meta.get(tid, {})
        rows.append({"thread_id": tid, "title": m.get("title"), "article_date": m.get("article_date"),
                     "source": Path(m["source"]).name if m.get("source") else None,
                     "n": sum(kinds.values()), "by_kind": {k: kinds[k] for k in KINDS}})
    return rows


def describe_gold(gold_path: str | Path, gold: dict[str, Any], es: EvalSet, schema: LabelSchema,
                  db: str | Path) -> dict[str, Any]:
    """The gold-set section of the report: file, items per kind and thread, labels, annotators, agreement."""
    path = Path(gold_path)
    root = path.resolve().parent
    kinds = Counter(es.kinds)
    return {
        "path": str(gold_path), "sha256": _sha256(path), "records_in_file": len(gold), "n_items": len(es),
        "by_kind": {k: kinds[k] for k in KINDS},
        "threads": thread_table(es, db),
        "labels": label_support(es, schema),
        "annotators": dict(Counter(gold[i].annotator for i in es.ids).most_common()),
        "agreement": [pass_agreement(d, root, schema) for d in pass_pairs(path)],
    }
