"""``threadstance labels``: check label files against the schema and the store."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from pipeline.cli.common import console, err_console
from pipeline.config.schema import DEFAULT_SCHEMA_PATH, LabelSchema, load_schema
from pipeline.config.settings import DEFAULT_STORE
from pipeline.data.labels import LabelCheck, check_label_file, label_counts
from pipeline.errors import UserError
from pipeline.store.backend import store_exists
from pipeline.store.db import Store

app = typer.Typer(help="Check label files (JSONL keyed by item id).", no_args_is_help=True)

SchemaOption = typer.Option("--schema", help="Label schema YAML.")


def store_item_ids(db: str | None) -> tuple[set[str] | None, str]:
    """Item ids of the store to check against, and a note saying which store (or none) was used."""
    if db is not None:
        if not store_exists(db):
            raise UserError("no store here (check --db, or run `threadstance ingest` first)", db)
        path = db
    elif store_exists(DEFAULT_STORE):
        path = DEFAULT_STORE
    else:
        return None, (f"no --db given and no store at {DEFAULT_STORE}: checking labels against the schema only "
                      "(item ids not checked)")
    with Store.open_readonly(path) as store:
        ids = store.item_ids()
    return ids, f"item ids checked against {path} ({len(ids)} items)"


@app.command("check")
def check(
    files: Annotated[list[Path], typer.Argument(help="Label files (JSONL).")],
    schema_path: Annotated[Path, SchemaOption] = DEFAULT_SCHEMA_PATH,
    db: Annotated[str | None, typer.Option("--db", help="Store whose item ids the labels must use: a SQLite file or "
                                         "a PostgreSQL URL (default: env THREADSTANCE_DB, else "
                                         "work/threadstance.sqlite, if it exists).", show_default=False)] = None,
) -> None:
    """Report every problem with file:line; print label counts when all files are clean."""
    schema = load_schema(schema_path)
    item_ids, note = store_item_ids(db)
    err_console.print(note, highlight=False)
    results = [check_label_file(path, schema, item_ids) for path in files]
    problems = [p for r in results for p in r.problems]
    for problem in problems:
        console.print(str(problem), highlight=False, markup=False, soft_wrap=True)
    if problems:
        bad = sum(1 for r in results if not r.ok)
        err_console.print(f"[bold red]{len(problems)} problem(s)[/] in {bad} of {len(results)} file(s)")
        raise typer.Exit(1)
    for result in results:
        console.print(counts_table(result, schema))
    console.print(f"[green]ok[/]: {len(results)} file(s), {sum(len(r.records) for r in results)} labels, "
                  "no problems")


def counts_table(result: LabelCheck, schema: LabelSchema) -> Table:
    """Label counts per field for one clean file."""
    counts = label_counts(result.records, schema)
    annotators = sorted({r.annotator for r in result.records})
    table = Table(title=escape(f"{result.path}: {len(result.records)} items, annotator(s) {', '.join(annotators) or '-'}"))
    table.add_column("field")
    classes = list(dict.fromkeys([*schema.sentiment_classes, *schema.stance_classes]))
    for cls in classes:
        table.add_column(cls, justify="right")
    for name, counter in counts.items():
        allowed = schema.sentiment_classes if name == "sentiment" else schema.stance_classes
        table.add_row(name, *[str(counter.get(c, 0)) if c in allowed else "" for c in classes])
    return table
