"""``threadstance annotate``: label items in the terminal, one key press per decision, saved after every item.

With ``--model`` every field starts at the model's suggestion and every stance at its evidence sentence
(Enter accepts them all); ``--order suggest`` shows the items the model is least sure about first. Keys
and the label file format: docs/annotation.md.
"""
from __future__ import annotations

import getpass
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.panel import Panel
from rich.text import Text

from pipeline.annotation.annotate import AnnotationSession, Progress, View, run_annotation
from pipeline.cli.common import OptionalDbOption, check_device, console, err_console
from pipeline.config.schema import DEFAULT_SCHEMA_PATH, LabelSchema, load_schema
from pipeline.data.selection import ItemContext, open_existing_store, parse_filters, select_items
from pipeline.errors import UserError

ORDERS = ("store", "suggest")
EVIDENCE_STYLE = "bold underline"


def annotate(
    labels: Annotated[Path, typer.Option("--labels", help="Label file to append to (created if missing; "
                                                          "items already in it are skipped).")],
    db: str | None = OptionalDbOption,
    filters: Annotated[list[str] | None, typer.Option("--filter", help="KEY=VALUE: kind=comment|reply|paragraph, "
                                                                       "thread=ID, item=ID (repeatable).")] = None,
    annotator: Annotated[str | None, typer.Option("--annotator", help="Name stored with each label "
                                                                      "(default: your login).")] = None,
    schema_path: Annotated[Path, typer.Option("--schema", help="Label schema YAML.")] = DEFAULT_SCHEMA_PATH,
    model: Annotated[Path | None, typer.Option("--model", help="Model directory: its labels and evidence are "
                                                               "pre-selected (Enter accepts).")] = None,
    order: Annotated[str, typer.Option("--order", help="store (thread and page order) | suggest (most "
                                                       "informative first; needs --model)")] = "store",
    strategy: Annotated[str, typer.Option("--strategy", help="With --order suggest: uncertainty | diverse | "
                                                             "random.")] = "uncertainty",
    evidence: Annotated[bool, typer.Option("--evidence/--no-evidence", help="Pre-select the model's evidence "
                                                                            "sentence for each stance.")] = True,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda | mps")] = "auto",
) -> None:
    """Label sentiment (n/u/p) and each stance target (f/a/o), one key each; Enter accepts the model's
    suggestion, space keeps a field, e changes the evidence, s skip, z undo, q quit, ? help."""
    if order not in ORDERS:
        raise UserError(f"--order {order!r}: choose store or suggest")
    if order == "suggest" and model is None:
        raise UserError("--order suggest needs --model (the model ranks the items)")
    schema = load_schema(schema_path)
    with open_existing_store(db) as store:
        items = select_items(store, parse_filters(filters))
    session = AnnotationSession(items, schema, labels, annotator or _login())
    suggestions = None
    if model is not None:
        check_device(device)
        todo = [c for c in items if c.item_id not in session.done]
        items, suggestions = model_suggestions(model, items, todo, order, strategy, evidence, device)
        session = AnnotationSession(items, schema, labels, session.annotator, suggest=suggestions)
    progress = session.progress()
    console.print(f"{progress.total} item(s) selected, {progress.done} already in {labels}"
                  + (f"; model {suggestions.model_version}, {order} order" if suggestions else "")
                  + "; ? lists the keys", highlight=False)
    started = time.monotonic()
    with key_reader() as ask:
        summary = run_annotation(session, ask=ask,
                                 show=lambda view: console.print(render_item(view, schema, started)),
                                 say=lambda msg: console.print(msg, style="dim", highlight=False, markup=False))
    done = session.progress()
    console.print(f"saved {summary.saved}, skipped {summary.skipped}, undone {summary.undone}; "
                  f"{done.done}/{done.total} labelled in {labels}", highlight=False)
    for line in summary.agreement:
        console.print(line, highlight=False, markup=False)


def model_suggestions(model: Path, items: list[ItemContext], todo: list[ItemContext], order: str, strategy: str,
                      evidence: bool, device: str) -> tuple[list[ItemContext], Any]:
    """(items in the order to show, the model's suggestions for the items still to label)."""
    from transformers.utils import logging as hf_logging

    from pipeline.annotation.suggestions import ModelSuggestions
    from pipeline.inference.predict import Predictor

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    predictor = Predictor(model, device=device, batch_size=32, max_batch_tokens=8192, precision="auto")
    err_console.print(f"[dim]classifying {len(todo)} item(s) with model {predictor.model_version}…[/]",
                      highlight=False)
    if order == "store":
        return items, ModelSuggestions(predictor, todo, with_evidence=evidence)
    from pipeline.inference.suggest import rank_items

    ranked = rank_items(predictor, todo, strategy=strategy)
    by_id = {c.item_id: c for c in items}
    first = [by_id[r.item_id] for r in ranked]
    rest = [c for c in items if c.item_id not in {r.item_id for r in ranked}]  # already labelled
    return first + rest, ModelSuggestions(predictor, first, with_evidence=evidence,
                                          predictions={r.item_id: r.prediction for r in ranked})


@contextmanager
def key_reader() -> Iterator[Callable[[str], str]]:
    """``ask(prompt) -> key``. On a terminal: single key presses, the terminal in cbreak mode (no echo, no
    line buffering, Ctrl-C still interrupts) for the whole session, so keys typed while the screen is
    being drawn are kept, and restored at the end. Otherwise one character at a time from stdin lines
    (an empty line is Enter), so input can be piped."""
    pending: list[str] = []
    if not sys.stdin.isatty():
        def ask_line(prompt: str) -> str:
            console.print(prompt, highlight=False, markup=False, soft_wrap=True)
            if not pending:
                line = sys.stdin.readline()
                if not line:
                    raise EOFError
                line = line.rstrip("\r\n")
                pending.extend(list(line) if line else ["\r"])
            return pending.pop(0)

        yield ask_line
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)

    def ask_key(prompt: str) -> str:
        console.print(prompt, highlight=False, markup=False, soft_wrap=True)
        if not pending:
            chars = os.read(fd, 64).decode("utf-8", "replace")
            if not chars or chars == "\x04":  # end of input, Ctrl-D
                raise EOFError
            # keys typed fast arrive together; an escape sequence (arrow keys …) is one key
            pending.extend([chars] if chars.startswith("\x1b") else list(chars))
        return pending.pop(0)

    tty.setcbreak(fd, termios.TCSANOW)
    try:
        yield ask_key
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _login() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "annotator"


def progress_title(progress: Progress, started: float | None = None) -> str:
    """``item 3 of 40 · 1 skipped · 2 saved this session · 14 s/item``."""
    parts = [f"item {progress.done + 1} of {progress.total}"]
    if progress.skipped:
        parts.append(f"{progress.skipped} skipped")
    if progress.saved:
        parts.append(f"{progress.saved} saved this session")
        if started is not None:
            parts.append(f"{(time.monotonic() - started) / progress.saved:.0f} s/item")
    return " · ".join(parts)


def render_item(view: View, schema: LabelSchema, started: float | None = None) -> Panel:
    """The thread title, the parent comment for replies, the item text with the evidence sentences marked,
    the model's suggestion and the target statements."""
    draft = view.draft
    ctx, sug = draft.ctx, draft.suggestion
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
    text = Text(ctx.text)
    for span in {s for s in draft.evidence.values() if s is not None}:
        text.stylize(EVIDENCE_STYLE, span.start, span.end)
    body.append_text(text)
    if sug is not None:
        body.append("\n\nmodel suggests:", style="italic")
        body.append(f"\n  sentiment: {sug.sentiment} {sug.sentiment_prob:.2f}")
        for t in schema.target_names:
            body.append(f"\n  {t}: {sug.stance[t]} {sug.stance_prob[t]:.2f}",
                        style=None if sug.stance[t] != schema.none_class else "dim")
            ev = sug.evidence.get(t)
            if ev is not None:
                body.append(f"  «{ev.text}»", style=EVIDENCE_STYLE)
        body.append("\n  Enter accepts all; a label key changes the field under the cursor", style="dim")
    body.append("\n\ntargets:", style="italic")
    for name, target in schema.targets.items():
        body.append(f"\n  {name}: ", style="bold")
        body.append(target.statement, style="dim")
    return Panel(body, title=progress_title(view.progress, started), title_align="left")
