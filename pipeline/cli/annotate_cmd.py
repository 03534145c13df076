"""``threadstance annotate``: label items in the terminal, one key per decision, saved after every item."""
from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.prompt import Prompt
from rich.text import Text

from pipeline.annotation.annotate import AnnotationSession, Progress, run_annotation
from pipeline.cli.common import console
from pipeline.config.schema import DEFAULT_SCHEMA_PATH, LabelSchema, load_schema
from pipeline.data.selection import ItemContext, open_existing_store, parse_filters, select_items


def annotate(
    labels: Annotated[Path, typer.Option("--labels", help="Label file to append to (created if missing; "
                                                          "items already in it are skipped).")],
    db: Annotated[Path | None, typer.Option("--db", help="SQLite store (default: THREADSTANCE_DB or "
                                                         "work/threadstance.sqlite).")] = None,
    filters: Annotated[list[str] | None, typer.Option("--filter", help="KEY=VALUE: kind=comment|reply|paragraph, "
                                                                       "thread=ID, item=ID (repeatable).")] = None,
    annotator: Annotated[str | None, typer.Option("--annotator", help="Name stored with each label "
                                                                      "(default: your login).")] = None,
    schema_path: Annotated[Path, typer.Option("--schema", help="Label schema YAML.")] = DEFAULT_SCHEMA_PATH,
) -> None:
    """Label sentiment (n/u/p) and each stance target (f/a/n); s skip, z undo, q quit."""
    schema = load_schema(schema_path)
    with open_existing_store(db) as store:
        items = select_items(store, parse_filters(filters))
    session = AnnotationSession(items, schema, labels, annotator or _login())
    progress = session.progress()
    console.print(f"{progress.total} item(s) selected, {progress.done} already in {labels}; "
                  "keys: sentiment n/u/p, stance f/a/n, s skip, z undo, q quit", highlight=False)
    summary = run_annotation(session, ask=lambda prompt: Prompt.ask(escape(prompt), console=console),
                             show=lambda ctx, prog: console.print(render_item(ctx, prog, schema)),
                             say=lambda msg: console.print(msg, style="dim", highlight=False, markup=False))
    console.print(f"saved {summary.saved}, skipped {summary.skipped}, undone {summary.undone}; "
                  f"{session.progress().done}/{session.progress().total} labelled in {labels}", highlight=False)


def _login() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "annotator"


def render_item(ctx: ItemContext, progress: Progress, schema: LabelSchema) -> Panel:
    """The thread title, the parent comment for replies, the item text and the target statements."""
    body = Text()
    body.append(ctx.thread_title or "(untitled thread)", style="bold")
    body.append(f"\n{ctx.item_id}  ·  {ctx.kind}", style="dim")
    flags = ctx.item.get("flags") or []
    if flags:
        body.append(f"  ·  {', '.join(flags)}", style="dim")
    if ctx.item.get("author"):
        body.append(f"  ·  {ctx.item['author']}", style="dim")
    if ctx.parent_text:
        body.append("\n\nin reply to:\n", style="italic")
        body.append(ctx.parent_text, style="dim")
    body.append("\n\n")
    body.append(ctx.text)
    body.append("\n\ntargets:", style="italic")
    for name, target in schema.targets.items():
        body.append(f"\n  {name}: ", style="bold")
        body.append(target.statement, style="dim")
    title = f"item {progress.done + 1} of {progress.total}"
    return Panel(body, title=title, title_align="left")
