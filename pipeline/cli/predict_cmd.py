"""``threadstance predict``: classify thread files or stdin lines with a trained model; with ``--db`` the files
are also ingested and the predictions stored, exactly as ``threadstance reclassify`` stores them."""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from pipeline.cli.common import SafeConsole, check_device, err_console
from pipeline.config.settings import DEFAULT_MODELS
from pipeline.errors import UserError
from pipeline.progress import throughput

FORMATS = ("table", "jsonl", "csv")
JOB = "predict"  # how `predict --db` runs are named in the store's runs table
SENTIMENT_STYLE = {"negative": "red", "neutral": "yellow", "positive": "green"}
STANCE_STYLE = {"favor": "green", "against": "red"}
NONE_LABEL = "none"  # the stance class the narrow table leaves out


def predict(
    paths: Annotated[list[str], typer.Argument(help="Thread files or folders in any ingest format (text dump, "
                                               "HTML, JSONL), or - for one text per line on stdin.",
                                               show_default=False)],
    model: Annotated[Path, typer.Option("--model", help="Model directory (models/RUN_NAME).")] = DEFAULT_MODELS / "default",
    fmt: Annotated[str, typer.Option("--format", help="table | jsonl | csv")] = "table",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write here instead of stdout.")] = None,
    db: Annotated[str | None, typer.Option("--db", help="Also ingest the files into this store (SQLite file or PostgreSQL URL) and store the "
                                            "predictions there, as `threadstance reclassify` does (items it already "
                                            "holds a prediction of from this model are not classified again).",
                                            show_default=False)] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="At most this many texts per model call.")] = 32,
    max_batch_tokens: Annotated[int, typer.Option("--max-batch-tokens", min=16, help="At most this many padded word "
                                                  "pieces per model call (texts are sorted by length).")] = 8192,
    backend: Annotated[str, typer.Option("--backend", help="torch | onnx | onnx-int8 (see `threadstance export onnx`)")] = "torch",
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda | mps")] = "auto",
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="CPU threads for the model.")] = None,
    precision: Annotated[str, typer.Option("--precision", help="auto | fp32 | bf16. auto = bf16 autocast where the "
                                           "CPU has native bf16 (~1.7× faster; labels may differ on near-ties), "
                                           "else fp32")] = "auto",
    input_format: Annotated[str, typer.Option("--input-format", help="auto | text | html | jsonl")] = "auto",
    min_confidence: Annotated[float | None, typer.Option(
        "--min-confidence", help="A head whose top probability is below this says `abstain` instead of its label "
        "(0 = never; with --db the store keeps the model's labels).", show_default=False)] = None,
    engine: Annotated[str, typer.Option("--engine", help="With --db: local, or ray (batch inference on Ray Data, "
                                        "pip install 'threadstance[ray]'; docs/scaling.md).")] = "local",
    address: Annotated[str | None, typer.Option("--address", help="--engine ray: the Ray cluster (default: a local "
                                                "Ray).", show_default=False)] = None,
    actors: Annotated[int, typer.Option("--actors", min=1, help="--engine ray: model replicas.")] = 1,
    gpus_per_actor: Annotated[float, typer.Option("--gpus-per-actor", min=0, help="--engine ray: GPUs per actor.")] = 0.0,
) -> None:
    """Classify new thread files (or stdin lines): sentiment and per-target stance with probabilities.

    Output records follow docs/formats.md ("Prediction records"). With --db the files are ingested into the
    store first and the predictions are stored under the model's model_version, so `threadstance trends`
    and `export predictions` see them; the output is then read back from the store.
    """
    from pipeline.inference.classify import classify_records, items_from_threads
    from pipeline.ingest.parse import parse_file
    from pipeline.ingest.paths import scan_paths, shown

    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: choose table, jsonl or csv")
    if input_format not in ("auto", "text", "html", "jsonl"):
        raise UserError(f"--input-format {input_format!r}: choose auto, text, html or jsonl")
    check_device(device)
    from pipeline.inference.abstain import apply_min_confidence, check_min_confidence

    min_confidence = check_min_confidence(min_confidence)
    if db is not None and "-" in paths:
        raise UserError("--db stores ingested files, and stdin (-) is not a file: save it to a file and pass "
                        "its path")
    if db is not None:
        # The model is checked (and loaded) before anything is written: a missing or damaged --model
        # must not leave the files' items in the store without predictions.
        from pipeline.inference.engine import EngineSpec
        from pipeline.jobs.schedule import model_version_of
        from pipeline.store.db import Store

        spec = EngineSpec(engine, address, actors, gpus_per_actor)
        spec.check()
        model_version_of(model, "pass a trained model folder with --model (train one with `threadstance train`)")
        predictor = load_predictor(model, device, batch_size, backend, threads, max_batch_tokens, precision)
        predictor.engine_spec = spec
        with Store(db) as store:
            records, failed = _predict_into_store(store, paths, input_format, predictor)
        write_output([apply_min_confidence(r, min_confidence) for r in records], fmt, out)
        _report_failures(failed, escape)
        return
    items: list[dict[str, Any]] = []
    failed: list[str] = []
    for arg in paths:
        if arg == "-":
            try:
                items.extend(items_from_stdin(sys.stdin, input_format))
            except UserError as exc:
                failed.append("<stdin>")
                err_console.print(f"[bold red]error:[/] {escape(str(exc))} — stdin skipped", highlight=False)
            continue
        files, refused = scan_paths([arg])
        for link in refused:  # a link out of the folder or pointing nowhere: named, nothing read (as ingest)
            failed.append(shown(link.path))
            err_console.print(f"[bold red]error:[/] {escape(link.message)} — file skipped", highlight=False)
        for path in files:
            try:
                _, threads_ = parse_file(path, input_format)
            except UserError as exc:
                failed.append(str(path))
                err_console.print(f"[bold red]error:[/] {escape(str(exc))} — file skipped", highlight=False)
                continue
            except Exception as exc:  # noqa: BLE001 - a parser bug must not hide the other files
                failed.append(str(path))
                err_console.print(f"[bold red]error:[/] {escape(str(path))}: cannot parse ({type(exc).__name__}: "
                                  f"{escape(str(exc))}) — file skipped", highlight=False)
                continue
            items.extend(items_from_threads(threads_))
    records: list[dict[str, Any]] = []
    if items:
        predictor = load_predictor(model, device, batch_size, backend, threads, max_batch_tokens, precision)
        started = time.perf_counter()
        records = classify_with_progress(predictor, items, classify_records)
        seconds = time.perf_counter() - started
    write_output([apply_min_confidence(r, min_confidence) for r in records], fmt, out)
    if items:
        err_console.print(f"[dim]{len(records)} items · model {predictor.model_version} · {backend} on "
                          f"{predictor.device} · {throughput(len(records), seconds)}[/]", highlight=False)
    elif not failed:
        err_console.print("no items to classify", highlight=False)
    _report_failures(failed, escape)


def _report_failures(failed: list[str], escape: Any) -> None:
    if failed:
        err_console.print(f"[bold red]{len(failed)} file(s) failed:[/] {escape(', '.join(failed))}", highlight=False)
        raise typer.Exit(1)


def _predict_into_store(store: Any, paths: list[str], input_format: str,
                        predictor: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """Ingest every file (one transaction each), classify the items of the ingested files that have no
    prediction of their current text from this model (as reclassify does), record a ``predict`` run, and
    return the stored records of the files' items in file order, plus the files that failed."""
    from pipeline.inference.classify import StoredCounts
    from pipeline.inference.engine import EngineSpec, classify_pending
    from pipeline.store.db import utcnow
    from pipeline.store.load import ingest_paths
    from pipeline.store.records import stored_records

    failed: list[str] = []

    def on_file(result: Any) -> None:
        for warning in result.warnings:
            err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
        if not result.ok:
            failed.append(result.path)
            err_console.print(f"[bold red]error:[/] {escape(result.error or '')} — file skipped, nothing written",
                              highlight=False, soft_wrap=True)

    report = ingest_paths(store, paths, input_format, on_file)
    item_ids = list(dict.fromkeys(i for f in report.files if f.ok for i in f.item_ids))
    if not item_ids:
        if not failed:
            err_console.print("no items to classify", highlight=False)
        return [], failed
    version = predictor.model_version
    counts: dict[str, Any] = {"files_ingested": sum(1 for f in report.files if f.ok and not f.skipped_unchanged),
                              "files_unchanged": sum(1 for f in report.files if f.skipped_unchanged),
                              "files_failed": len(failed), "items_new": sum(f.counts.new for f in report.files),
                              "items_updated": sum(f.counts.updated for f in report.files), "items": len(item_ids)}
    run_id = store.start_run(JOB, version)
    try:
        wanted = set(item_ids)
        pending = [i for i in store.pending_items(version) if i["item_id"] in wanted]
        started = time.perf_counter()
        stored = StoredCounts()
        if pending:
            started = time.perf_counter()
            args = {"model_dir": predictor.model_dir, "device": str(predictor.device), "batch_size": predictor.batch_size,
                    "backend": predictor.backend, "num_threads": predictor.num_threads,
                    "max_batch_tokens": predictor.max_batch_tokens, "precision": predictor.precision}
            stored = classify_pending(getattr(predictor, "engine_spec", EngineSpec()), args, store, pending, run_id,
                                      _progress_callback(len(pending)), predictor=predictor)
        seconds = time.perf_counter() - started
        counts.update(classified=stored.classified, reclassified_after_edit=stored.reclassified_after_edit,
                      already_stored=len(item_ids) - len(pending))
    except BaseException as exc:
        store.update_run(run_id, status="failed", ended_at=utcnow(), counts=counts,
                         errors=[f"{type(exc).__name__}: {exc}"])
        raise
    store.update_run(run_id, status="partial" if failed else "ok", ended_at=utcnow(), counts=counts,
                     errors=[f"failed: {path}" for path in failed])
    by_id = {r["item_id"]: r for r in stored_records(store, version, item_ids=wanted)}
    err_console.print(f"[dim]{len(item_ids)} items · model {version} · stored in {escape(str(store.path))}: "
                      f"{stored.classified} classified ({throughput(len(pending), seconds)}), "
                      f"{len(item_ids) - len(pending)} already stored · run {run_id}[/]", highlight=False)
    return [by_id[i] for i in item_ids if i in by_id], failed


def _progress_callback(total: int, min_items: int = 500) -> Any:
    """Plain progress lines (about every 10 %) for big jobs when stderr is not a terminal, else None."""
    from pipeline.progress import PlainProgress, is_terminal

    if is_terminal(err_console.file) or total < min_items:
        return None
    progress = PlainProgress(total, "classify", "items", stream=err_console.file)
    last = [0]

    def on_batch(done: int, counts: Any) -> None:
        progress.advance(done - last[0])
        last[0] = done

    return on_batch


def classify_with_progress(predictor: Any, items: list[dict[str, Any]], classify_records: Any,
                           min_items: int = 500) -> list[dict[str, Any]]:
    """Prediction records in input order; without a terminal, a plain progress line per ~10 % of the items.

    Evidence is found once for all items after the last batch (as :func:`classify_records` does), so its
    sentences share length-sorted batches across the whole input instead of one small call per batch.
    """
    from pipeline.inference.classify import with_evidence
    from pipeline.progress import PlainProgress, is_terminal
    from pipeline.store.records import prediction_record

    if is_terminal(err_console.file) or len(items) < min_items:
        return classify_records(predictor, items)
    parents = [i.get("parent_text") for i in items] if predictor.spec.include_parent else None
    preds: list[Any] = [None] * len(items)
    progress = PlainProgress(len(items), "classify", "items", stream=err_console.file)
    for idx, batch in predictor.predict_batches([i["text"] for i in items], parents):
        for i, pred in zip(idx, batch):
            preds[i] = pred
        progress.advance(len(idx))
    err_console.print("evidence: scoring the sentences of items with a stance", markup=False, highlight=False)
    found = with_evidence(predictor, items, preds)
    return [prediction_record(item, pred, predictor.model_version, evidence=ev)
            for item, pred, ev in zip(items, preds, found)]


def items_from_stdin(stream: Any, input_format: str = "auto") -> list[dict[str, Any]]:
    """Items from stdin: one text per line (``auto``), or a whole JSONL / HTML / text dump when
    ``--input-format`` names one (issue 15: the JSON line itself used to be classified)."""
    from pipeline.inference.classify import items_from_lines, items_from_threads

    if input_format == "auto":
        return items_from_lines(stream)
    import hashlib

    from pipeline.ingest.parse import parse_raw
    from pipeline.ingest.reader import RawInput

    text = stream.read()
    if not text.strip():
        return []
    raw = RawInput("<stdin>", text, "utf-8", hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest())
    return items_from_threads(parse_raw(raw, input_format))


def load_predictor(model: Path, device: str, batch_size: int, backend: str, threads: int | None,
                   max_batch_tokens: int | None = None, precision: str = "auto") -> Any:
    """A Predictor with the library chatter (weight-loading bars, tokenizer length notes) silenced."""
    from transformers.utils import logging as hf_logging

    from pipeline.inference.predict import Predictor

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    return Predictor(model, device=device, batch_size=batch_size, backend=backend, num_threads=threads,
                     max_batch_tokens=max_batch_tokens, precision=precision)


def write_output(records: list[dict[str, Any]], fmt: str, out: Path | None) -> None:
    """jsonl (the records) or csv (flattened columns) through the one record writer, or rich tables."""
    if fmt in ("jsonl", "csv"):
        from pipeline.store.records import write_records

        write_records(records, out, fmt)
        return
    if out is None:
        from pipeline.cli.common import console

        render_tables(records, console)
    else:
        from pipeline.store.outfile import atomic_output

        with atomic_output(out) as tmp, open(tmp, "w", encoding="utf-8") as fh:  # whole or not at all
            render_tables(records, SafeConsole(file=fh, width=160, no_color=True, force_terminal=False))


def _label(head: dict[str, Any], styles: dict[str, str]) -> str:
    """``label prob`` of one head of a record, coloured by label (dim for none and unknown labels)."""
    shown = f"{head['label']} {head['prob']:.2f}"
    style = styles.get(head["label"])
    return f"[{style}]{shown}[/]" if style else f"[dim]{shown}[/]"


def render_tables(records: list[dict[str, Any]], console: Any, wide: bool | None = None) -> None:
    """One rich table per thread: item, author, truncated text, sentiment and stance, label + probability.

    Wide consoles (≥ 130 columns) get one column per target; narrower ones one ``stance`` column listing
    the targets with a non-none stance (the rest are none).
    """
    from rich.table import Table

    wide = console.width >= 130 if wide is None else wide
    by_thread: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_thread.setdefault(r.get("thread_id") or "", []).append(r)
    for thread_id, rows in by_thread.items():
        targets = list(rows[0]["stance"])
        table = Table(title=escape(f"{thread_id} · model {rows[0]['model_version']}"), title_justify="left",
                      caption=("" if wide else "stance: targets with a non-none stance; all others are none · ")
                      + "underlined: the evidence sentence of each non-none stance",
                      caption_justify="left")
        id_width = min(max(len(_short_id(r["item_id"], thread_id)) for r in rows), 12)
        label_widths = [max(len(t), 12) for t in targets] if wide else [28]
        fixed = id_width + 13 + sum(label_widths) + 3 * (3 + len(label_widths)) + 1
        table.add_column("item", no_wrap=True, width=id_width, overflow="ellipsis")
        table.add_column("author: text", width=max(16, console.width - fixed), overflow="ellipsis", no_wrap=True)
        table.add_column("sentiment", no_wrap=True, width=13)
        for t, w in zip(targets if wide else ["stance"], label_widths):
            table.add_column(t, no_wrap=True, width=w, overflow="ellipsis")
        for r in rows:
            text = _text_cell(r, escape)
            if r.get("author"):
                text = f"[bold]{escape(r['author'])}:[/] {text}"
            cells = [escape(_short_id(r["item_id"], thread_id)), text, _label(r["sentiment"], SENTIMENT_STYLE)]
            if wide:
                cells += [_label(r["stance"][t], STANCE_STYLE) for t in targets]
            else:
                cells.append("\n".join(f"{t}: " + _label(head, STANCE_STYLE) for t, head in r["stance"].items()
                                       if head["label"] != NONE_LABEL) or "[dim]none[/]")
            table.add_row(*cells)
        console.print(table)


def _text_cell(rec: dict[str, Any], escape: Any, limit: int = 300) -> str:
    """The item text on one line (at most ``limit`` characters) with its evidence sentences underlined."""
    import re

    raw = rec.get("text") or ""
    spans = sorted({(h["evidence"]["start"], h["evidence"]["end"]) for h in rec["stance"].values()
                    if isinstance(h.get("evidence"), dict)})
    pieces, pos = [], 0
    for start, end in spans:
        if start >= pos:
            pieces += [(raw[pos:start], False), (raw[start:end], True)]
            pos = end
    pieces.append((raw[pos:], False))
    out, room = [], limit
    for piece, marked in pieces:
        shown = re.sub(r"\s+", " ", piece)[:room]
        if not out:
            shown = shown.lstrip()
        room -= len(shown)
        if shown:
            out.append(f"[underline]{escape(shown)}[/]" if marked else escape(shown))
    return "".join(out)


def _short_id(item_id: str, thread_id: str) -> str:
    return item_id[len(thread_id) + 1:] if item_id.startswith(thread_id + "/") else item_id
