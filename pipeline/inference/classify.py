"""From items to predictions: classify item dicts, and classify store items into the store.

Items are dicts with ``item_id``, ``thread_id``, ``kind``, ``parent_id``, ``author``, ``posted_at``,
``text`` and ``parent_text``. Predictions become records through the one record builder,
:func:`pipeline.store.records.prediction_record`, each non-none stance with its evidence sentence
(:func:`with_evidence`). :func:`classify_into_store` is how both ``threadstance reclassify`` and
``threadstance predict --db`` store predictions.
"""
from __future__ import annotations

import json
import os
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import UserError
from pipeline.inference.evidence import Evidence, find_evidence
from pipeline.inference.predict import Prediction
from pipeline.ingest.model import Thread
from pipeline.store.records import prediction_record


def items_from_threads(threads: Iterable[Thread]) -> list[dict[str, Any]]:
    """Items of parsed threads as dicts, each with ``parent_text`` (the replied-to item's text, or None)."""
    out = []
    for thread in threads:
        texts = {item.item_id: item.text for item in thread.items}
        for item in thread.items:
            out.append({"item_id": item.item_id, "thread_id": item.thread_id, "kind": item.kind,
                        "parent_id": item.parent_id, "author": item.author, "posted_at": item.posted_at,
                        "text": item.text, "parent_text": texts.get(item.parent_id) if item.parent_id else None})
    return out


def has_text(text: str) -> bool:
    """Whether ``text`` has a visible character: whitespace, zero-width and other format characters
    (U+200B, U+FEFF, U+2060 …) and control characters alone make an empty text, treated like ``""``."""
    return any(not c.isspace() and unicodedata.category(c) not in ("Cf", "Cc") for c in text)


def items_from_lines(lines: Iterable[str], prefix: str = "stdin") -> list[dict[str, Any]]:
    """One item per non-empty line: ids ``stdin/1``, ``stdin/2`` … (numbered among non-empty lines; a line
    of only invisible characters is empty, :func:`has_text`)."""
    out = []
    for line in lines:
        text = line.strip()
        if has_text(text):
            out.append({"item_id": f"{prefix}/{len(out) + 1}", "thread_id": prefix, "kind": "comment",
                        "parent_id": None, "author": None, "posted_at": None, "text": text, "parent_text": None})
    return out


def classify_items(predictor: Any, items: Sequence[dict[str, Any]]) -> list[Prediction]:
    """Predictions for items in input order (parents passed when the model's input spec uses them)."""
    parents = [i.get("parent_text") for i in items] if predictor.spec.include_parent else None
    return predictor.predict([i["text"] for i in items], parents)


def with_evidence(predictor: Any, items: Sequence[dict[str, Any]], preds: Sequence[Prediction]) -> list[dict[str, Evidence]]:
    """The evidence sentence per non-none stance of each item (:func:`pipeline.inference.evidence.find_evidence`,
    one batched model call for all of them)."""
    parents = [i.get("parent_text") for i in items] if predictor.spec.include_parent else None
    return find_evidence(predictor, [i["text"] for i in items], preds, parents)


def classify_records(predictor: Any, items: Sequence[dict[str, Any]], evidence: bool = True) -> list[dict[str, Any]]:
    """Prediction records for items in input order (with evidence for every non-none stance unless told not)."""
    preds = classify_items(predictor, items)
    found = with_evidence(predictor, items, preds) if evidence else [None] * len(preds)
    return [prediction_record(item, pred, predictor.model_version, evidence=ev)
            for item, pred, ev in zip(items, preds, found)]


@dataclass
class StoredCounts:
    """What :func:`classify_into_store` added."""

    classified: int = 0
    reclassified_after_edit: int = 0


def classify_into_store(predictor: Any, store: Any, items: Sequence[dict[str, Any]], run_id: int | None = None,
                        on_batch: Callable[[int, StoredCounts], None] | None = None) -> StoredCounts:
    """Classify store items (dicts from ``Store.pending_items``) and store their records, one committed
    transaction per batch (shortest texts first), keyed by (item_id, model_version, revision).

    An existing prediction for the same key is kept as it is (``ON CONFLICT DO NOTHING``), and predictions
    of other revisions and other model versions stay as history, so a run killed at any point loses at
    most the batch in flight. Where workers share the store (PostgreSQL) the items are claimed a batch at a
    time (:meth:`pipeline.store.db.Store.claim`): items another worker holds or has stored are skipped.
    ``on_batch(items_done, counts)`` is called after each commit.
    """
    version = predictor.model_version
    counts = StoredCounts()
    if store.backend.shares_work:
        ordered = sorted(items, key=lambda i: len(i["text"]))
        size = int(getattr(predictor, "batch_size", 32) or 32)
        chunks = [ordered[k:k + size] for k in range(0, len(ordered), size)]
    else:
        chunks = [list(items)]
    done = 0
    for chunk in chunks:
        with store.claim(version, chunk) as claimed:
            if not claimed:
                done += len(chunk)
                continue
            parents = [i["parent_text"] for i in claimed] if predictor.spec.include_parent else None
            for idx, preds in predictor.predict_batches([i["text"] for i in claimed], parents):
                rows = []
                found = with_evidence(predictor, [claimed[i] for i in idx], preds)
                for i, pred, ev in zip(idx, preds, found):
                    rows.append(stored_row(claimed[i], prediction_record(claimed[i], pred, version, with_text=False,
                                                                         evidence=ev), run_id))
                with store.transaction():
                    added = store.add_predictions(rows)
                counts.classified += added
                edited = sum(1 for i in idx if claimed[i].get("edited"))
                # fewer rows added than sent: a concurrent writer stored some first; count only what was added
                counts.reclassified_after_edit += edited if added == len(rows) else min(added, edited)
                done += len(idx)
                if on_batch:
                    on_batch(done, counts)
            done += len(chunk) - len(claimed)
    return counts


def stored_row(item: dict[str, Any], record: dict[str, Any], run_id: int | None) -> tuple[Any, ...]:
    """The row :meth:`pipeline.store.db.Store.add_predictions` takes for one item's record (without text)."""
    return (item["item_id"], record["model_version"], item["revision"], item["text_sha256"],
            record["sentiment"]["label"], json.dumps(record, ensure_ascii=False), run_id)


def resolve_model_version(store: Any, model: str | Path | None) -> str:
    """The model_version meant by ``model``: a model folder's, a model_version as given, or (None) the
    model of the latest reclassify run, else of the newest prediction in the store."""
    from pipeline.modeling.folder import ModelFolder

    if model is not None and ModelFolder(model).is_model():
        return ModelFolder(model).recorded_version()
    if model is not None and ("/" in str(model) or os.sep in str(model) or Path(model).exists()):
        raise UserError("no trained model folder here (give a model folder or a model_version)", model)
    version = str(model) if model is not None else store.latest_model_version()
    if not version:
        raise UserError("no predictions in the store yet (run `threadstance reclassify` or `threadstance predict "
                        "--db`)", store.path)
    return version
