"""``threadstance items``: look at and export the items in the store."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.markup import escape
from rich.table import Table

from pipeline.cli.common import DbOption, console
from pipeline.csvsafe import safe_frame
from pipeline.data.selection import KINDS, open_existing_store
from pipeline.errors import UserError
from pipeline.store.outfile import atomic_output

app = typer.Typer(help="Inspect and export stored items.", no_args_is_help=True)
EXPORT_COLUMNS = ["item_id", "thread_id", "kind", "parent_id", "position", "depth", "author", "posted_at",
                  "text", "flags", "revision"]


@app.command("export")
def export(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output file (default: stdout for jsonl/csv).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl | csv | parquet")] = "jsonl",
    thread: Annotated[str | None, typer.Option(help="Only this thread id.")] = None,
    kind: Annotated[list[str] | None, typer.Option(help="Only these kinds (repeatable).")] = None,
    db: str = DbOption,
) -> None:
    """Export items (with thread title) as JSONL, CSV or Parquet."""
    if fmt not in ("jsonl", "csv", "parquet"):
        raise UserError(f"--format {fmt!r}: choose jsonl, csv or parquet")
    if fmt == "parquet" and out is None:
        raise UserError("--format parquet needs --out FILE")
    bad = sorted(set(kind or ()) - set(KINDS))
    if bad:
        raise UserError(f"--kind {bad[0]!r}: choose {', '.join(KINDS)}")
    with open_existing_store(db) as store:
        rows = store.items(thread_id=thread, kinds=kind)
        titles = {t["thread_id"]: t["title"] for t in store.threads()}
    records = [{**{k: r[k] for k in EXPORT_COLUMNS}, "thread_title": titles.get(r["thread_id"])} for r in rows]
    write_records(records, out, fmt, columns=[*EXPORT_COLUMNS, "thread_title"])
    if out is not None:
        console.print(f"wrote {len(records)} items to {out}", markup=False, highlight=False)


def write_records(records: list[dict], out: Path | None, fmt: str, columns: list[str] | None = None) -> None:
    """Write dict records as jsonl/csv/parquet to ``out`` (whole or not at all) or stdout for text formats;
    ``columns`` gives an empty CSV or Parquet file its header."""
    if fmt == "jsonl":
        if out is None:
            sys.stdout.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
            return
        with atomic_output(out) as tmp, open(tmp, "w", encoding="utf-8") as fh:
            for r in records:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        return
    frame = pd.DataFrame.from_records(records, columns=columns)
    for col in frame.columns:
        if frame[col].map(lambda v: isinstance(v, (list, dict))).any():
            frame[col] = frame[col].map(lambda v: json.dumps(v, ensure_ascii=False)
                                        if isinstance(v, (list, dict)) else v)
    if fmt == "csv" and out is None:
        sys.stdout.write(safe_frame(frame).to_csv(index=False))  # the exact text: click.echo strips ANSI when piped
        return
    assert out is not None
    with atomic_output(out) as tmp:
        if fmt == "csv":
            safe_frame(frame).to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)


@app.command("show")
def show(
    thread: Annotated[str | None, typer.Option(help="Only this thread id.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Rows to show.")] = 50,
    db: str = DbOption,
) -> None:
    """Print items as a table (id, kind, author, time, text excerpt)."""
    with open_existing_store(db) as store:
        rows = store.items(thread_id=thread)[:limit]
    table = Table(show_lines=False)
    for col in ("item_id", "kind", "author", "posted_at", "text"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(escape(r["item_id"]), r["kind"], escape(r["author"] or ""), escape(r["posted_at"] or ""),
                      escape(r["text"][:80].replace("\n", " ")))
    console.print(table)
