"""``threadstance export``: stored predictions as records (``predictions``), or an ONNX Runtime copy of a
trained model (``onnx``, optionally int8-quantised)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from pipeline.cli.common import DbOption, console, err_console
from pipeline.config.settings import DEFAULT_MODELS
from pipeline.errors import UserError

app = typer.Typer(help="Export stored predictions, or a trained model for other runtimes.", no_args_is_help=True)


@app.command("predictions")
def predictions(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output file (a folder for hf; default: stdout "
                                             "for jsonl and csv).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl | csv | parquet | hf (a Hugging Face datasets "
                                     "folder, read with datasets.load_from_disk)")] = "jsonl",
    model: Annotated[str | None, typer.Option("--model", help="Model directory or model_version (default: the "
                                              "model of the latest reclassify run).")] = None,
    thread: Annotated[str | None, typer.Option(help="Only this thread id.")] = None,
    kind: Annotated[list[str] | None, typer.Option(help="Only these kinds (repeatable): comment, reply, "
                                                   "paragraph.")] = None,
    db: str = DbOption,
) -> None:
    """Export the stored predictions of one model as prediction records (docs/formats.md): the nested records
    (jsonl, hf) or one flattened column per field (csv, parquet). Items whose current text that model has not
    classified are left out (`threadstance reclassify` classifies them)."""
    from pipeline.data.selection import KINDS
    from pipeline.inference.classify import resolve_model_version
    from pipeline.store.db import Store
    from pipeline.store.records import EXPORT_FORMATS, stored_records, write_records

    if fmt not in EXPORT_FORMATS:
        raise UserError(f"--format {fmt!r}: choose {', '.join(EXPORT_FORMATS)}")
    bad = sorted(set(kind or ()) - set(KINDS))
    if bad:
        raise UserError(f"--kind {bad[0]!r}: choose {', '.join(KINDS)}")
    from pipeline.store.backend import store_exists

    if not store_exists(db):
        raise UserError("no store here yet (run `threadstance reclassify` or `threadstance predict --db` first)", db)
    store = Store.open_readonly(db)
    try:
        version = resolve_model_version(store, model)
        records = stored_records(store, version, thread_id=thread, kinds=kind)
        stale = store.count_pending(version) if records else 0
        # a mistyped --model must not write an empty export and exit 0 (trends refuses it too)
        unknown = not records and version not in store.prediction_counts()
    finally:
        store.close()
    if unknown:
        raise UserError(f"no predictions from model version {version} in the store", db)
    write_records(records, out, fmt)
    if out is not None:
        console.print(f"wrote {len(records)} predictions of model {version} to {out}", markup=False,
                      highlight=False, soft_wrap=True)
    if not records:
        where = " matching --thread / --kind" if thread or kind else ""
        err_console.print(f"[yellow]warning:[/] no predictions of model {escape(version)} in the store{where}",
                          highlight=False, soft_wrap=True)
    elif stale:
        err_console.print(f"[yellow]note:[/] {stale} stored items have no prediction of their current text from "
                          f"model {escape(version)}; run `threadstance reclassify` to classify them", highlight=False,
                          soft_wrap=True)


@app.command("onnx")
def onnx(
    model: Annotated[Path, typer.Option("--model", help="Model directory (models/RUN_NAME).")] = DEFAULT_MODELS / "default",
    quantize: Annotated[str | None, typer.Option("--quantize", help="Also write an int8 dynamically quantised "
                                                 "model.int8.onnx.")] = None,
    exporter: Annotated[str, typer.Option("--exporter", help="dynamo (torch.export) | legacy (TorchScript)")] = "dynamo",
) -> None:
    """Write model.onnx (and model.int8.onnx) into the model directory; use them with --backend onnx|onnx-int8."""
    from transformers.utils import logging as hf_logging

    from pipeline.inference.onnx_export import export_onnx

    hf_logging.disable_progress_bar()
    result = export_onnx(model, quantize, exporter)
    for note in result.notes:
        err_console.print(f"[yellow]warning:[/] {escape(str(note))}", highlight=False)
    for path in result.files:
        console.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB; max |prob diff| vs torch on a check "
                      f"batch {result.max_abs_diff[path.name]:.1e}; exporter {result.exporter})", highlight=False, soft_wrap=True)
