"""The Python API for notebooks: the CLI's work as functions that return records or pandas DataFrames.

Every function returns plain prediction records (dicts, docs/formats.md "Prediction records") or, with
``as_frame=True``, a DataFrame with one flattened column per field (``sentiment.label``,
``stance.funding.probs.against``, …), the columns of ``threadstance export predictions --format csv``.
Worked example: docs/api.md. ::

    from pipeline import api

    model = api.load_model("models/default")
    api.classify(model, ["Managers never listen.", "Ofsted were fair to us."])
    api.ingest(["../shared/seeds"], db="work/notebook.sqlite", model=model)
    api.read_predictions("work/notebook.sqlite", model, as_frame=True)

The API sits on top of the pipeline, beside the CLI (it never imports the CLI): models are loaded by
:class:`pipeline.inference.predict.Predictor`, records are built by
:func:`pipeline.store.records.prediction_record`, and stored predictions are written exactly as
``threadstance reclassify`` writes them (:func:`pipeline.inference.classify.classify_into_store`).
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.errors import UserError
from pipeline.inference.predict import Predictor

__all__ = ["load_model", "classify", "ingest", "read_predictions", "trends"]


def load_model(path: str | Path, *, device: str = "auto", precision: str = "auto", backend: str = "torch",
               batch_size: int = 32) -> Predictor:
    """Load a trained model folder (``models/<run>``) once, for any number of :func:`classify` calls.

    Args:
        path: The model folder written by ``threadstance train``.
        device: ``auto``, ``cpu``, ``cuda`` or ``mps``.
        precision: ``auto`` (bf16 autocast on CPUs with native bf16, else fp32), ``fp32`` or ``bf16``.
        backend: ``torch``, ``onnx`` or ``onnx-int8`` (after ``threadstance export onnx``).
        batch_size: At most this many texts per model call.

    Returns:
        A :class:`~pipeline.inference.predict.Predictor`; ``.model_version`` names the model, ``.targets``
        its stance targets.
    """
    from transformers.utils import logging as hf_logging

    if not isinstance(path, (str, Path)) or not str(path).strip():
        raise UserError(f"load_model: path must be a model folder (a str or Path), got {_kind(path)}")
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    return Predictor(path, device=device, batch_size=batch_size, backend=backend, precision=precision)


def classify(model: Predictor, data: Sequence[str] | Any, *, text_column: str = "text",
             id_column: str | None = None, as_frame: bool | None = None) -> list[dict[str, Any]] | Any:
    """Classify texts: a list of strings, or a pandas DataFrame with a text column.

    Args:
        model: From :func:`load_model`.
        data: Strings (their ids are ``text/1``, ``text/2``, … in list order), or a DataFrame whose
            ``text_column`` holds the texts; its ``thread_id``, ``kind``, ``parent_id``, ``author`` and
            ``posted_at`` columns, when present, are copied into the records.
        text_column: The DataFrame column with the texts.
        id_column: The DataFrame column with item ids (default: the index, as strings).
        as_frame: Return a DataFrame (default: True for a DataFrame input, False for a list); a DataFrame
            input keeps its index.

    Returns:
        Prediction records in input order, or their flattened DataFrame.
    """
    import pandas as pd

    from pipeline.inference.classify import classify_records, has_text, items_from_lines
    from pipeline.store.records import records_frame

    if not isinstance(model, Predictor):
        raise UserError(f"classify: model must come from load_model(), got {_kind(model)}")
    is_frame = isinstance(data, pd.DataFrame)
    if not is_frame and (isinstance(data, (bytes, bytearray)) or not isinstance(data, Iterable)):
        raise UserError(f"classify: data must be a list of strings or a DataFrame, got {_kind(data)}")
    if is_frame:
        if text_column not in data.columns:
            raise UserError(f"no column {text_column!r} in the DataFrame (columns: {', '.join(map(str, data.columns))}); "
                            "pass text_column=")
        ids = [str(i) for i in (data[id_column] if id_column else data.index)]
        texts = dict(zip(ids, data[text_column]))
        items = []
        for item_id, (_, row) in zip(ids, data.iterrows()):
            text = row[text_column]
            if not isinstance(text, str) or not has_text(text):
                raise UserError(f"row {item_id!r}: {text_column} is empty (no visible character) or not text")
            meta = {k: _plain(row.get(k)) for k in ("thread_id", "kind", "parent_id", "author", "posted_at")}
            items.append({"item_id": item_id, **meta, "kind": meta["kind"] or "comment", "text": text,
                          "parent_text": texts.get(meta["parent_id"]) if meta["parent_id"] else None})
    else:
        texts = [data] if isinstance(data, str) else list(data)
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not has_text(t)]
        if bad:
            raise UserError(f"text {bad[0]} of {len(texts)} is empty (no visible character) or not a string")
        items = items_from_lines(texts, prefix="text")
    records = classify_records(model, items) if items else []
    if not (is_frame if as_frame is None else as_frame):
        return records
    frame = records_frame(records)
    if is_frame:
        frame.index = data.index
    return frame


def _kind(value: Any) -> str:
    """How an argument of the wrong type is named in an error: ``None``, ``int 12345``, ``str ''``."""
    return "None" if value is None else f"{type(value).__name__} {repr(value)[:40]}"


def _plain(value: Any) -> str | None:
    """A DataFrame cell as record metadata: missing → None, a timestamp → ISO 8601, else text."""
    import pandas as pd

    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def ingest(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], db: str | Path, *,
           model: Predictor | None = None,
           input_format: str = "auto", as_frame: bool = False) -> list[dict[str, Any]] | Any:
    """Ingest thread files (text dumps, WordPress HTML, JSONL; folders are read recursively) into a store.

    One transaction per file: a file that cannot be parsed writes nothing and is reported, the others
    are still ingested. With ``model``, the ingested items that have no prediction of their current text
    from it are then classified and stored, exactly as ``threadstance predict --db`` and
    ``threadstance reclassify`` store them.

    Args:
        paths: A file or folder (str or Path), or a list of them. In a folder, symbolic links that lead
            out of it or point nowhere are not read: each is a failed record saying so.
        db: The SQLite store (created when missing).
        model: From :func:`load_model`, to classify and store the items too.
        input_format: ``auto``, ``text``, ``html`` or ``jsonl``.
        as_frame: Return a DataFrame instead of records.

    Returns:
        One record per file: ``path``, ``ok``, ``threads``, ``items``, ``new``, ``updated``, ``unchanged``,
        ``classified`` (items classified and stored now; 0 without a model), ``warnings``, ``error``.
    """
    import pandas as pd

    from pipeline.inference.classify import classify_into_store
    from pipeline.store.db import Store
    from pipeline.store.load import ingest_paths

    files = _path_list(paths)
    out = []
    with Store(db) as store:
        report = ingest_paths(store, files, input_format)
        classified: dict[str, int] = {}
        if model is not None:
            pending = store.pending_items(model.model_version)
            by_file = {i: f.path for f in report.files if f.ok for i in f.item_ids}
            pending = [i for i in pending if i["item_id"] in by_file]
            classify_into_store(model, store, pending)
            for item in pending:
                classified[by_file[item["item_id"]]] = classified.get(by_file[item["item_id"]], 0) + 1
        for f in report.files:
            out.append({"path": f.path, "ok": f.ok, "threads": f.counts.threads, "items": len(f.item_ids),
                        "new": f.counts.new, "updated": f.counts.updated, "unchanged": f.counts.unchanged,
                        "classified": classified.get(f.path, 0), "warnings": list(f.warnings), "error": f.error})
    return pd.DataFrame.from_records(out) if as_frame else out


def _path_list(paths: Any) -> list[str]:
    """``paths`` as a list of path strings: one str / Path / bytes is one path (never its characters)."""
    def one(p: Any) -> str:
        if isinstance(p, (str, bytes, os.PathLike)):
            text = os.fsdecode(p)
            if not text:
                raise UserError("empty path: name a file or folder (use \".\" for the working directory)")
            return text
        raise TypeError(f"paths must be a file or folder path (str or Path) or a list of them, not "
                        f"{type(p).__name__} {p!r:.60}")

    if isinstance(paths, (str, bytes, os.PathLike)):
        return [one(paths)]
    if isinstance(paths, (Mapping, set, frozenset)) or not isinstance(paths, Iterable):
        raise TypeError(f"paths must be a file or folder path (str or Path) or a list of them, not "
                        f"{type(paths).__name__}")
    return [one(p) for p in paths]


def read_predictions(db: str | Path, model: Predictor | str | Path | None = None, *, thread: str | None = None,
                     kinds: Sequence[str] | None = None, as_frame: bool = True) -> list[dict[str, Any]] | Any:
    """Stored predictions of one model, one per item whose current text it classified, in thread order.

    Args:
        db: The SQLite store.
        model: A loaded model, a model folder, a model_version string, or None for the model of the
            latest reclassify run (else of the newest prediction).
        thread: Only this thread id.
        kinds: Only these item kinds (``comment``, ``reply``, ``paragraph``).
        as_frame: A flattened DataFrame (default) or the records.

    Returns:
        The records of ``threadstance export predictions``, or their DataFrame.
    """
    from pipeline.inference.classify import resolve_model_version
    from pipeline.store.backend import store_exists
    from pipeline.store.db import Store
    from pipeline.store.records import records_frame, stored_records

    if not store_exists(db):
        raise UserError("no store here", db)
    store = Store.open_readonly(db)
    try:
        version = model.model_version if isinstance(model, Predictor) else resolve_model_version(store, model)
        records = stored_records(store, version, thread_id=thread, kinds=kinds)
    finally:
        store.close()
    return records_frame(records) if as_frame else records


# ---- trends --------------------------------------------------------------------------------------
def trends(db: str | Path, model: Predictor | str | Path | None = None, *, by: str = "year",
           kinds: Sequence[str] | None = None, thread: str | Sequence[str] | None = None, since: str | None = None,
           until: str | None = None, min_confidence: float | None = None, min_items: int = 30,
           min_threads: int = 3, method: str = "acc", n_boot: int = 1000, seed: int = 13, as_frame: bool = True) -> Any:
    """Label shares per period, corrected for classifier error, with 95 % intervals (``threadstance trends``).

    Args:
        db: The SQLite store.
        model: A loaded model, a model folder, a model_version string (its folder is looked up under
            ``models/``), or None for the model of the latest reclassify run. The folder's out-of-fold
            table gives the misclassification rates; without one only raw shares are filled in.
        by: ``month``, ``quarter`` or ``year``.
        kinds: Only these item kinds (``comment``, ``reply``, ``paragraph``).
        thread: Only this thread id (or these).
        since, until: First and last date counted (``YYYY-MM-DD``).
        min_confidence: Labels whose top probability is below this abstain: left out of the shares and
            reported as the label ``abstain``.
        min_items, min_threads: Periods with fewer items or fewer threads get ``too_few`` True.
        method: ``acc`` (counts) or ``pacc`` (mean probabilities).
        n_boot, seed: Bootstrap replicates and seed of the intervals.
        as_frame: A DataFrame (default) or a list of dicts.

    Returns:
        One row per (period, target, label): ``period, period_start, period_end, target, label, n,
        n_threads, share_raw, raw_ci_low, raw_ci_high, share, ci_low, ci_high, method, too_few``
        (``target`` is ``sentiment`` or a stance target; ``share`` is the corrected share). The
        DataFrame's ``attrs`` hold ``model_version`` and ``notes`` (e.g. why shares are not corrected).
    """
    from pipeline.reporting.trends import trends as compute

    threads = [thread] if isinstance(thread, str) else thread
    result = compute(db, model.model_dir if isinstance(model, Predictor) else model, by, kinds=kinds,
                     threads=threads, since=since, until=until, min_confidence=min_confidence, min_items=min_items,
                     min_threads=min_threads, method=method, n_boot=n_boot, seed=seed)
    frame = result.frame
    frame.attrs.update(model_version=result.model_version, notes=list(result.notes))
    return frame if as_frame else frame.to_dict(orient="records")
