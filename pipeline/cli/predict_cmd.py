"""``threadstance predict``: classify thread files or stdin lines with a trained model (no store needed)."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline.cli.common import check_device, err_console
from pipeline.config.settings import DEFAULT_MODELS
from pipeline.errors import UserError

FORMATS = ("table", "jsonl", "csv")
SENTIMENT_STYLE = {"negative": "red", "neutral": "yellow", "positive": "green"}
STANCE_STYLE = {"favor": "green", "against": "red"}


def predict(
    paths: Annotated[list[str], typer.Argument(help="Thread files or folders in any ingest format (text dump, "
                                               "HTML, JSONL), or - for one text per line on stdin.",
                                               show_default=False)],
    model: Annotated[Path, typer.Option("--model", help="Model directory (models/<run>).")] = DEFAULT_MODELS / "default",
    fmt: Annotated[str, typer.Option("--format", help="table | jsonl | csv")] = "table",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write here instead of stdout.")] = None,
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
) -> None:
    """Classify new thread files (or stdin lines): sentiment and per-target stance with probabilities."""
    from rich.markup import escape

    from pipeline.inference.classify import (
        classify_items,
        flat_record,
        items_from_threads,
        prediction_record,
    )
    from pipeline.ingest.parse import expand_paths, parse_file

    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: choose table, jsonl or csv")
    if input_format not in ("auto", "text", "html", "jsonl"):
        raise UserError(f"--input-format {input_format!r}: choose auto, text, html or jsonl")
    check_device(device)
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
        for path in expand_paths([arg]):
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
        preds = classify_with_progress(predictor, items, classify_items)
        seconds = time.perf_counter() - started
        records = [prediction_record(item, pred, predictor.model_version) for item, pred in zip(items, preds)]
    write_output(records, fmt, out, flat_record)
    if items:
        err_console.print(f"[dim]{len(records)} items · model {predictor.model_version} · {backend} on "
                          f"{predictor.device} · {len(records) / max(seconds, 1e-9):.0f} items/s[/]", highlight=False)
    elif not failed:
        err_console.print("no items to classify", highlight=False)
    if failed:
        err_console.print(f"[bold red]{len(failed)} file(s) failed:[/] {escape(', '.join(failed))}", highlight=False)
        raise typer.Exit(1)


def classify_with_progress(predictor: Any, items: list[dict[str, Any]], classify_items: Any,
                           min_items: int = 500) -> list[Any]:
    """All predictions in input order; without a terminal, a plain progress line per ~10 % of the items."""
    from pipeline.progress import PlainProgress, is_terminal

    if is_terminal(err_console.file) or len(items) < min_items:
        return classify_items(predictor, items)
    parents = [i.get("parent_text") for i in items] if predictor.spec.include_parent else None
    out: list[Any] = [None] * len(items)
    progress = PlainProgress(len(items), "classify", "items", stream=err_console.file)
    for idx, preds in predictor.predict_batches([i["text"] for i in items], parents):
        for i, pred in zip(idx, preds):
            out[i] = pred
        progress.advance(len(idx))
    return out


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


def write_output(records: list[dict[str, Any]], fmt: str, out: Path | None, flat: Any) -> None:
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        _emit(text, out)
    elif fmt == "csv":
        import pandas as pd

        from pipeline.csvsafe import safe_frame

        frame = pd.DataFrame.from_records([flat(r) for r in records]) if records else None
        _emit(safe_frame(frame).to_csv(index=False) if frame is not None else "", out)
    elif out is None:
        from pipeline.cli.common import console

        render_tables(records, console)
    else:
        from rich.console import Console

        with open(out, "w", encoding="utf-8") as fh:
            render_tables(records, Console(file=fh, width=160, no_color=True, force_terminal=False))


def _emit(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        out.write_text(text, encoding="utf-8")


def _label(label: str, prob: float, style: str | None) -> str:
    shown = f"{label} {prob:.2f}"
    return f"[{style}]{shown}[/]" if style else f"[dim]{shown}[/]"


def render_tables(records: list[dict[str, Any]], console: Any, wide: bool | None = None) -> None:
    """One rich table per thread: item, author, truncated text, sentiment and stance, label + probability.

    Wide consoles (≥ 130 columns) get one column per target; narrower ones one ``stance`` column listing
    the targets with a non-none stance (the rest are none).
    """
    from rich.markup import escape
    from rich.table import Table

    wide = console.width >= 130 if wide is None else wide
    by_thread: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_thread.setdefault(r.get("thread_id") or "", []).append(r)
    for thread_id, rows in by_thread.items():
        targets = list(rows[0]["stance"])
        table = Table(title=escape(f"{thread_id} · model {rows[0]['model_version']}"), title_justify="left",
                      caption=None if wide else "stance: targets with a non-none stance; all others are none",
                      caption_justify="left")
        id_width = min(max(len(_short_id(r["id"], thread_id)) for r in rows), 12)
        label_widths = [max(len(t), 12) for t in targets] if wide else [28]
        fixed = id_width + 13 + sum(label_widths) + 3 * (3 + len(label_widths)) + 1
        table.add_column("item", no_wrap=True, width=id_width, overflow="ellipsis")
        table.add_column("author: text", width=max(16, console.width - fixed), overflow="ellipsis", no_wrap=True)
        table.add_column("sentiment", no_wrap=True, width=13)
        for t, w in zip(targets if wide else ["stance"], label_widths):
            table.add_column(t, no_wrap=True, width=w, overflow="ellipsis")
        for r in rows:
            text = escape(" ".join(r.get("text", "").split())[:300])
            if r.get("author"):
                text = f"[bold]{escape(r['author'])}:[/] {text}"
            cells = [escape(_short_id(r["id"], thread_id)), text,
                     _label(r["sentiment"], r["sentiment_probs"][r["sentiment"]], SENTIMENT_STYLE.get(r["sentiment"]))]
            if wide:
                for t in targets:
                    label = r["stance"][t]
                    cells.append(_label(label, r["stance_probs"][t][label], STANCE_STYLE.get(label)))
            else:
                cells.append("\n".join(f"{t}: " + _label(r["stance"][t], r["stance_probs"][t][r["stance"][t]],
                                                          STANCE_STYLE.get(r["stance"][t])) for t in r["targets"])
                             or "[dim]none[/]")
            table.add_row(*cells)
        console.print(table)


def _short_id(item_id: str, thread_id: str) -> str:
    return item_id[len(thread_id) + 1:] if item_id.startswith(thread_id + "/") else item_id
