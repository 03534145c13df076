"""``threadstance labelstudio``: export items as Label Studio tasks and import its JSON export."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from pipeline.annotation.labelstudio import export_project, import_export, read_export
from pipeline.cli.common import console, err_console
from pipeline.config.schema import DEFAULT_SCHEMA_PATH, load_schema
from pipeline.data.labels import write_labels
from pipeline.data.selection import open_existing_store, parse_filters, select_items

app = typer.Typer(help="Label Studio interchange (tasks + labelling config out, JSON export in).",
                  no_args_is_help=True)


@app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", help="Folder for tasks.json and config.xml.")],
    db: Annotated[Path | None, typer.Option("--db", help="SQLite store (default: THREADSTANCE_DB or "
                                                         "work/threadstance.sqlite).")] = None,
    filters: Annotated[list[str] | None, typer.Option("--filter", help="KEY=VALUE: kind=comment|reply|paragraph, "
                                                                       "thread=ID, item=ID (repeatable).")] = None,
    schema_path: Annotated[Path, typer.Option("--schema", help="Label schema YAML.")] = DEFAULT_SCHEMA_PATH,
) -> None:
    """Write one task per item (tasks.json) and a labelling config generated from the schema (config.xml)."""
    schema = load_schema(schema_path)
    with open_existing_store(db) as store:
        items = select_items(store, parse_filters(filters))
    if not items:
        err_console.print("[yellow]warning:[/] no items match; writing an empty task list")
    tasks_path, config_path = export_project(items, schema, out)
    console.print(f"wrote {len(items)} tasks to {tasks_path} and the labelling config to {config_path}",
                  highlight=False)


@app.command("import")
def import_(
    export_file: Annotated[Path, typer.Argument(help="Label Studio JSON export (list of tasks).")],
    out: Annotated[Path, typer.Option("--out", help="Label file (JSONL) to write.")],
    annotator: Annotated[str | None, typer.Option("--annotator", help="Annotator name for every record "
                                                                      "(default: the Label Studio user).")] = None,
    completed_by: Annotated[str | None, typer.Option("--completed-by", help="Only annotations by this Label "
                                                                            "Studio user (id or email).")] = None,
    schema_path: Annotated[Path, typer.Option("--schema", help="Label schema YAML.")] = DEFAULT_SCHEMA_PATH,
) -> None:
    """Convert a Label Studio JSON export into a label file (checked against the schema)."""
    schema = load_schema(schema_path)
    result = import_export(read_export(export_file), schema, export_file, annotator=annotator,
                           completed_by=completed_by)
    for warning in result.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(str(warning))}", highlight=False)
    if result.unannotated:
        err_console.print(f"[yellow]note:[/] {len(result.unannotated)} task(s) without an annotation were left "
                          f"out (first: {result.unannotated[0]})", highlight=False)
    n = write_labels(out, result.records)
    console.print(f"wrote {n} labels to {out}", markup=False, highlight=False)
