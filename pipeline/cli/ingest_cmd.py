"""``threadstance ingest``: split article pages into items in the store."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from pipeline.cli.common import DbOption, console, err_console
from pipeline.ingest.paths import scan_paths, shown
from pipeline.progress import PlainProgress, is_terminal
from pipeline.store.db import Store
from pipeline.store.load import FileResult, IngestReport, ingest_file


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders of article pages.")],
    fmt: Annotated[str, typer.Option("--format", help="auto | text | html | jsonl")] = "auto",
    db: str = DbOption,
) -> None:
    """Ingest article pages (text dumps, WordPress HTML, JSONL) into the store."""
    if fmt not in ("auto", "text", "html", "jsonl"):
        err_console.print(f"[bold red]error:[/] --format {escape(repr(fmt))}: choose auto, text, html or jsonl")
        raise typer.Exit(2)
    files, refused = scan_paths(paths)
    report = IngestReport(files=[FileResult(path=shown(link.path), ok=False, error=link.message) for link in refused])
    with Store(db) as store:
        if not is_terminal(err_console.file) and len(files) >= 5:  # cron, CI, | tee: plain lines, never silent
            plain = PlainProgress(len(files), "ingest", "files", stream=err_console.file)
            for path in files:
                report.files.append(ingest_file(store, path, fmt))
                plain.advance()
        else:
            with Progress(TextColumn("[bold]ingest"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                          console=err_console, disable=len(files) < 5) as progress:
                task = progress.add_task("ingest", total=len(files))
                for path in files:
                    report.files.append(ingest_file(store, path, fmt))
                    progress.advance(task)
    from pipeline.store.backend import shown as store_shown

    print_report(report, store_shown(db))
    if report.failed:
        raise typer.Exit(1)


def print_report(report: IngestReport, db: str | Path) -> None:
    for f in report.files:
        for warning in f.warnings:
            err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
        if not f.ok:
            err_console.print(f"[bold red]error:[/] {escape(f.error or '')} — file skipped, nothing written", highlight=False,
                              soft_wrap=True)  # one line per message, whatever the terminal width
    ok = [f for f in report.files if f.ok]
    table = Table(title=escape(f"Ingest summary → {shown(db)}"))
    for col in ("files", "threads", "paragraphs", "comments", "replies", "new", "updated", "unchanged",
                "warnings", "failed"):
        table.add_column(col, justify="right")
    table.add_row(str(len(report.files)), str(report.total("threads")), str(report.total("paragraph")),
                  str(report.total("comment")), str(report.total("reply")),
                  str(sum(f.counts.new for f in ok)), str(sum(f.counts.updated for f in ok)),
                  str(sum(f.counts.unchanged for f in ok)), str(sum(len(f.warnings) for f in report.files)),
                  str(len(report.failed)))
    console.print(table)
