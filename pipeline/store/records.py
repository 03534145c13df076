"""The prediction record: the one shape of a prediction, wherever it appears.

``threadstance predict`` prints it, ``reclassify`` and ``predict --db`` store it, ``export predictions``
and the reclassify snapshot write it, and ``pipeline.api`` returns it (docs/formats.md, "Prediction
records")::

    {"item_id": "t/c1", "thread_id": "t", "kind": "comment", "parent_id": None, "author": "Sam",
     "posted_at": "2016-06-28T13:00:00+01:00", "model_version": "4e143f1e955f",
     "sentiment": {"label": "negative", "prob": 0.81, "probs": {"negative": 0.81, ...}},
     "stance": {"funding": {"label": "against", "prob": 0.7, "probs": {...}}, ...},
     "text": "..."}

:func:`prediction_record` is the only function that builds one. The store keeps records without
``text`` (the item's text is in ``items``) and hands them back with it (:func:`stored_records`).
Records stored before this schema (``id``, ``sentiment_probs``, ``stance_probs``, ``targets``) are
converted when read (:func:`upgrade_record`), so readers only ever see this shape. Tables (CSV,
Parquet, DataFrames) flatten it into one column per leaf, named by its path: ``sentiment.label``,
``stance.funding.probs.against`` (:func:`records_frame`).
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from pipeline.errors import UserError

ITEM_FIELDS = ("item_id", "thread_id", "kind", "parent_id", "author", "posted_at")
RECORD_FIELDS = (*ITEM_FIELDS, "model_version", "sentiment", "stance", "text")
EVIDENCE_FIELDS = ("text", "start", "end", "score")
HEAD_FIELDS = ("label", "prob", "probs")
EXPORT_FORMATS = ("jsonl", "csv", "parquet", "hf")


class PredictionLike(Protocol):
    """What a record is built from (``pipeline.modeling.outputs.Prediction``)."""

    sentiment: str
    sentiment_probs: Mapping[str, float]
    stance: Mapping[str, str]
    stance_probs: Mapping[str, Mapping[str, float]]


def head_record(label: str, probs: Mapping[str, float]) -> dict[str, Any]:
    """One head's prediction: ``{"label", "prob" (of that label), "probs" (every class)}``."""
    return {"label": label, "prob": float(probs[label]), "probs": {c: float(p) for c, p in probs.items()}}


def prediction_record(item: Mapping[str, Any], pred: PredictionLike, model_version: str, *,
                      with_text: bool = True, evidence: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The record of one classified item (``item``: a dict with the :data:`ITEM_FIELDS` and ``text``).

    ``evidence`` (target → :class:`pipeline.inference.evidence.Evidence` or its dict) adds
    ``stance[target]["evidence"] = {"text", "start", "end", "score"}``, the sentence of the item text
    (``text[start:end]``) that most supports a non-none stance. Tables flatten any added field by itself.
    """
    rec: dict[str, Any] = {k: item.get(k) for k in ITEM_FIELDS}
    rec["model_version"] = model_version
    rec["sentiment"] = head_record(pred.sentiment, pred.sentiment_probs)
    rec["stance"] = {t: head_record(label, pred.stance_probs[t]) for t, label in pred.stance.items()}
    for t, ev in (evidence or {}).items():
        rec["stance"][t]["evidence"] = ev.to_dict() if hasattr(ev, "to_dict") else dict(ev)
    if with_text:
        rec["text"] = item.get("text")
    return rec


def upgrade_record(rec: dict[str, Any]) -> dict[str, Any]:
    """A stored record in this schema: records written before it (flat ``sentiment`` label with
    ``sentiment_probs``, ``stance_probs``, ``id``, ``targets``) are converted; others are returned as is."""
    if not isinstance(rec.get("sentiment"), str) or "sentiment_probs" not in rec:
        return rec
    out: dict[str, Any] = {k: rec.get(k) for k in ITEM_FIELDS}
    out["item_id"] = rec.get("item_id", rec.get("id"))
    out["model_version"] = rec.get("model_version")
    out["sentiment"] = head_record(rec["sentiment"], rec["sentiment_probs"])
    out["stance"] = {t: head_record(label, rec["stance_probs"][t]) for t, label in rec.get("stance", {}).items()}
    if "text" in rec:
        out["text"] = rec["text"]
    return out


def load_record(stored: str | None) -> dict[str, Any] | None:
    """A record from the store's JSON column (converted to this schema), or None."""
    return upgrade_record(json.loads(stored)) if stored else None


def stored_records(store: Any, model_version: str, *, thread_id: str | None = None,
                   kinds: Iterable[str] | None = None, item_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Records of ``model_version`` for the stored items whose current text it classified, in thread and
    page order, with the item's current metadata and text. Items without such a prediction (never
    classified, or edited since) are left out: ``reclassify`` (or ``predict --db``) classifies them."""
    kinds = set(kinds) if kinds is not None else None
    wanted = set(item_ids) if item_ids is not None else None
    out = []
    for row in store.items_with_predictions(model_version, predicted_only=True):
        if row["predicted_text_sha256"] != row["text_sha256"]:
            continue
        if (thread_id is not None and row["thread_id"] != thread_id) or (kinds is not None and row["kind"] not in kinds):
            continue
        if wanted is not None and row["item_id"] not in wanted:
            continue
        rec = {k: row[k] for k in ITEM_FIELDS}
        rec.update((k, v) for k, v in row["record"].items() if k not in ITEM_FIELDS and k != "text")
        rec["text"] = row["text"]
        out.append(rec)
    return out


def records_frame(records: Sequence[Mapping[str, Any]]) -> Any:
    """Records as a pandas DataFrame, one column per leaf named by its path (``sentiment.label``,
    ``stance.funding.probs.against``), ``text`` last."""
    import pandas as pd

    if not records:
        return pd.DataFrame(columns=[f for f in RECORD_FIELDS if f not in ("sentiment", "stance")])
    frame = pd.json_normalize(list(records), sep=".")
    # The same columns in the same order whatever the data: tables from different runs stack. Evidence
    # columns exist for every target of a prediction record, empty where its stance is none.
    first = records[0]
    lead = [k for k in first if k not in RECORD_FIELDS and k in frame.columns]  # e.g. suggest's rank and score
    order = lead + [c for c in (*ITEM_FIELDS, "model_version") if c in frame.columns]
    if isinstance(first.get("sentiment"), Mapping):
        order += ["sentiment.label", "sentiment.prob", *(f"sentiment.probs.{c}" for c in first["sentiment"]["probs"])]
    stance = first["stance"] if isinstance(first.get("stance"), Mapping) else {}
    for t, head in stance.items():
        order += [f"stance.{t}.label", f"stance.{t}.prob", *(f"stance.{t}.probs.{c}" for c in head["probs"]),
                  *(f"stance.{t}.evidence.{k}" for k in EVIDENCE_FIELDS)]
    for col in order:
        if col not in frame.columns:
            frame[col] = None
    for col in (f"stance.{t}.evidence.{k}" for t in stance for k in ("start", "end")):
        frame[col] = frame[col].astype("Int64")  # character offsets, empty where there is no evidence
    rest = [c for c in frame.columns if c not in order and c != "text"]
    return frame[order + rest + (["text"] if "text" in frame.columns else [])]


def write_records(records: Sequence[Mapping[str, Any]], out: str | Path | None, fmt: str) -> None:
    """Write records as ``jsonl`` (one record per line), ``csv`` / ``parquet`` (flattened columns,
    :func:`records_frame`; CSV cells a spreadsheet would run are neutralised) or ``hf`` (a Hugging Face
    ``datasets`` folder with the nested records; ``datasets.load_from_disk`` reads it). ``out`` None
    writes jsonl / csv to stdout; parquet and hf need a path."""
    import sys

    if fmt not in EXPORT_FORMATS:
        raise UserError(f"--format {fmt!r}: choose {', '.join(EXPORT_FORMATS)}")
    if out is None and fmt in ("parquet", "hf"):
        raise UserError(f"--format {fmt} needs --out {'FOLDER' if fmt == 'hf' else 'FILE'}")
    if fmt == "hf":
        _write_hf(records, Path(str(out)))
        return
    if out is None:
        from pipeline.csvsafe import safe_frame

        if fmt == "jsonl":
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        else:
            text = safe_frame(records_frame(records)).to_csv(index=False) if records else ""
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    write_records_file(records, Path(out), fmt)


def write_records_file(records: Sequence[Mapping[str, Any]], out: Path, fmt: str) -> None:
    """jsonl, csv or parquet into ``out``, whole or not at all (:func:`pipeline.store.outfile.atomic_output`)."""
    from pipeline.csvsafe import safe_frame
    from pipeline.store.outfile import atomic_output

    with atomic_output(out) as tmp:
        if fmt == "jsonl":
            with open(tmp, "w", encoding="utf-8") as fh:
                for r in records:
                    fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        elif fmt == "csv":
            tmp.write_text(safe_frame(records_frame(records)).to_csv(index=False) if records else "",
                           encoding="utf-8")
        else:
            records_frame(records).to_parquet(tmp, index=False)


def _write_hf(records: Sequence[Mapping[str, Any]], out: Path) -> None:
    """A ``datasets`` folder; an existing folder is replaced only when it is one (dataset_info.json)."""
    import shutil

    import datasets

    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "dataset_info.json").is_file())):
        raise UserError("--format hf writes a folder: this path exists and is not a datasets folder", out)
    from pipeline.store.outfile import output_error

    tmp = out.with_name(f".{out.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        datasets.Dataset.from_list([dict(r) for r in records]).save_to_disk(str(tmp))
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise output_error(exc, out) from exc
    finally:
        if bars:
            datasets.enable_progress_bars()
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
