"""From items to prediction records: what ``threadstance predict`` prints and ``reclassify`` stores/exports.

A record is flat JSON-friendly data about one item: its id and author, the sentiment label with its
probabilities, every target's stance with probabilities, the targets with a non-none stance, and the
``model_version`` that produced it. :func:`flat_record` turns it into one row of scalar columns
(CSV/Parquet).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pipeline.inference.predict import Prediction
from pipeline.ingest.model import Thread

ITEM_FIELDS = ("thread_id", "kind", "parent_id", "author", "posted_at")


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


def items_from_lines(lines: Iterable[str], prefix: str = "stdin") -> list[dict[str, Any]]:
    """One item per non-empty line: ids ``stdin/1``, ``stdin/2`` … (numbered among non-empty lines)."""
    out = []
    for line in lines:
        text = line.strip()
        if text:
            out.append({"item_id": f"{prefix}/{len(out) + 1}", "thread_id": prefix, "kind": "comment",
                        "parent_id": None, "author": None, "posted_at": None, "text": text, "parent_text": None})
    return out


def prediction_record(item: dict[str, Any], pred: Prediction, model_version: str,
                      with_text: bool = True) -> dict[str, Any]:
    """The JSON record of one classified item."""
    rec: dict[str, Any] = {"id": item["item_id"]}
    rec.update({k: item.get(k) for k in ITEM_FIELDS})
    rec.update({"sentiment": pred.sentiment, "sentiment_probs": pred.sentiment_probs, "stance": pred.stance,
                "stance_probs": pred.stance_probs, "targets": pred.targets, "model_version": model_version})
    if with_text:
        rec["text"] = item["text"]
    return rec


def flat_record(rec: dict[str, Any]) -> dict[str, Any]:
    """One row of scalar columns: ``p_sentiment_<class>``, ``stance_<target>``, ``p_<target>_<class>``,
    ``targets`` joined with ``;``."""
    row: dict[str, Any] = {k: v for k, v in rec.items()
                           if k not in ("sentiment_probs", "stance", "stance_probs", "targets", "text")}
    for c, p in rec["sentiment_probs"].items():
        row[f"p_sentiment_{c}"] = p
    for t, label in rec["stance"].items():
        row[f"stance_{t}"] = label
        for c, p in rec["stance_probs"][t].items():
            row[f"p_{t}_{c}"] = p
    row["targets"] = ";".join(rec["targets"])
    if "text" in rec:
        row["text"] = rec["text"]
    return row


def classify_items(predictor: Any, items: Sequence[dict[str, Any]]) -> list[Prediction]:
    """Predictions for items in input order (parents passed when the model's input spec uses them)."""
    parents = [i.get("parent_text") for i in items] if predictor.spec.include_parent else None
    return predictor.predict([i["text"] for i in items], parents)
