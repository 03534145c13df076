"""``threadstance labelstudio``: export items as Label Studio tasks (optionally with the model's
pre-annotations) and import its JSON export, keeping every annotator's labels."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from pipeline.annotation.labelstudio import (
    agreement_lines,
    annotator_agreement,
    export_project,
    import_export,
    prediction_for_task,
    read_export,
)
from pipeline.cli.common import OptionalDbOption, check_device, console, err_console
from pipeline.config.schema import DEFAULT_SCHEMA_PATH, LabelSchema, load_schema
from pipeline.data.labels import write_labels, write_text_atomic
from pipeline.data.selection import ItemContext, open_existing_store, parse_filters, select_items
from pipeline.errors import UserError

app = typer.Typer(help="Label Studio interchange (tasks + labelling config out, JSON export in).",
                  no_args_is_help=True)


@app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", help="Folder for tasks.json and config.xml.")],
    db: str | None = OptionalDbOption,
    filters: Annotated[list[str] | None, typer.Option("--filter", help="KEY=VALUE: kind=comment|reply|paragraph, "
                                                                       "thread=ID, item=ID (repeatable).")] = None,
    schema_path: Annotated[Path, typer.Option("--schema", help="Label schema YAML.")] = DEFAULT_SCHEMA_PATH,
    model: Annotated[Path | None, typer.Option("--model", help="Model directory: add its labels, probabilities "
                                                               "and evidence as pre-annotations.")] = None,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda | mps")] = "auto",
) -> None:
    """Write one task per item (tasks.json) and a labelling config generated from the schema (config.xml)."""
    schema = load_schema(schema_path)
    with open_existing_store(db) as store:
        items = select_items(store, parse_filters(filters))
    if not items:
        err_console.print("[yellow]warning:[/] no items match; writing an empty task list")
    predictions = None
    version = ""
    if model is not None and items:
        check_device(device)
        predictions, version = model_predictions(model, items, schema, device)
    tasks_path, config_path = export_project(items, schema, out, predictions)
    console.print(f"wrote {len(items)} tasks to {tasks_path}"
                  + (f" with pre-annotations from model {version}" if predictions else "")
                  + f" and the labelling config to {config_path}", highlight=False)


def model_predictions(model: Path, items: list[ItemContext], schema: LabelSchema,
                      device: str) -> tuple[dict[str, dict[str, Any]], str]:
    """Label Studio pre-annotations per item id (prediction records with evidence), and the model_version."""
    from transformers.utils import logging as hf_logging

    from pipeline.inference.classify import classify_records
    from pipeline.inference.predict import Predictor

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    predictor = Predictor(model, device=device, batch_size=32, max_batch_tokens=8192, precision="auto")
    if predictor.targets != schema.target_names or predictor.stance_classes != schema.stance_classes \
            or predictor.sentiment_classes != schema.sentiment_classes:
        raise UserError("the model's targets and classes differ from the label schema (--schema)", model)
    records = classify_records(predictor, [{**c.item, "parent_text": c.parent_text} for c in items])
    return {r["item_id"]: prediction_for_task(r, schema) for r in records}, predictor.model_version


@app.command("import")
def import_(
    export_file: Annotated[Path, typer.Argument(help="Label Studio JSON export (list of tasks).")],
    out: Annotated[Path, typer.Option("--out", help="A label file (*.jsonl) when the export holds one annotator's "
                                                    "labels; otherwise a folder that gets one label file per "
                                                    "annotator and agreement.json.")],
    annotator: Annotated[str | None, typer.Option("--annotator", help="Annotator name for every record (only "
                                                                      "with one Label Studio user).")] = None,
    completed_by: Annotated[str | None, typer.Option("--completed-by", help="Only annotations by this Label "
                                                                            "Studio user (id or email).")] = None,
    schema_path: Annotated[Path, typer.Option("--schema", help="Label schema YAML.")] = DEFAULT_SCHEMA_PATH,
) -> None:
    """Convert a Label Studio JSON export into label files, one per annotator, with agreement across annotators.

    Tasks or annotations that cannot be read are listed by task id and left out; the rest is imported
    (exit status 1 when something was left out).
    """
    schema = load_schema(schema_path)
    result = import_export(read_export(export_file), schema, annotator=annotator, completed_by=completed_by)
    by_annotator = result.by_annotator()
    pairs = annotator_agreement(by_annotator, schema)
    if out.suffix == ".jsonl":
        if len(by_annotator) > 1:
            raise UserError(f"the export holds labels by {len(by_annotator)} annotators "
                            f"({', '.join(sorted(by_annotator))}): give --out a folder (one label file per "
                            "annotator) or keep one with --completed-by", out)
        n = write_labels(out, result.records)
        console.print(f"wrote {n} labels to {out}", markup=False, highlight=False)
    else:
        if out.exists() and not out.is_dir():
            raise UserError("--out is a file; give a folder, or a *.jsonl path for one annotator", out)
        out.mkdir(parents=True, exist_ok=True)
        for name, records in sorted(by_annotator.items()):
            path = out / f"{file_stem(name)}.jsonl"
            write_labels(path, records)
            console.print(f"wrote {len(records)} labels by {name} to {path}", markup=False, highlight=False)
        write_text_atomic(out / "agreement.json", json.dumps(pairs, indent=2, ensure_ascii=False) + "\n")
    for line in agreement_lines(pairs, schema):
        console.print(f"agreement: {line}", markup=False, highlight=False)
    if result.unannotated:
        err_console.print(f"[yellow]note:[/] {len(result.unannotated)} task(s) without an annotation were left "
                          f"out (first: {escape(result.unannotated[0])})", highlight=False)
    for problem in result.problems:
        err_console.print(f"[bold red]not imported:[/] {escape(str(problem))}", highlight=False, soft_wrap=True)
    if result.problems:
        err_console.print(f"{len(result.problems)} task(s)/annotation(s) not imported from {escape(str(export_file))}; "
                          f"{len(result.records)} label(s) imported", highlight=False)
        raise typer.Exit(1)


def file_stem(annotator: str) -> str:
    """A file name for an annotator's label file: letters, digits, ``.``, ``@``, ``-`` and ``_`` kept."""
    return re.sub(r"[^A-Za-z0-9.@_-]+", "_", annotator).strip("._") or "annotator"
