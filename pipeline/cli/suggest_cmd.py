"""``threadstance suggest``: the unlabelled store items that labelling would teach the model most."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from pipeline.cli.common import OptionalDbOption, SafeConsole, check_device, console, err_console
from pipeline.config.run import EvaluationConfig
from pipeline.config.settings import DEFAULT_MODELS
from pipeline.errors import UserError

FORMATS = ("table", "jsonl", "csv")
NONE_LABEL = "none"  # the stance class the table leaves out
DEFAULT_GOLD = Path(EvaluationConfig().gold)


def suggest(
    n: Annotated[int, typer.Option("-n", "--n", min=1, help="How many items to suggest.")] = 20,
    model: Annotated[Path, typer.Option("--model", help="Model directory (models/RUN_NAME).")] = DEFAULT_MODELS / "default",
    db: str | None = OptionalDbOption,
    strategy: Annotated[str, typer.Option("--strategy", help="uncertainty | diverse | random")] = "uncertainty",
    labels: Annotated[list[Path] | None, typer.Option("--labels", help="Label file whose items are already labelled "
                                                      "(repeatable).", show_default=False)] = None,
    gold: Annotated[Path | None, typer.Option("--gold", help="Gold label file; its items are never suggested "
                                              f"(default {DEFAULT_GOLD} when it exists).", show_default=False)] = None,
    filters: Annotated[list[str] | None, typer.Option("--filter", help="KEY=VALUE: kind=comment|reply|paragraph, "
                                                      "thread=ID, item=ID (repeatable).", show_default=False)] = None,
    fmt: Annotated[str, typer.Option("--format", help="table | jsonl | csv")] = "table",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write here instead of stdout.",
                                             show_default=False)] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of random and of the k-means of diverse.")] = 0,
    pool_factor: Annotated[int, typer.Option("--pool-factor", min=1, help="diverse clusters this many × N of the "
                                             "most uncertain items.")] = 4,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda | mps")] = "auto",
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="CPU threads for the model.",
                                                show_default=False)] = None,
) -> None:
    """Rank the store's unlabelled items, most informative first: each with its score (1 − the smallest
    margin between a head's top two calibrated probabilities), the head that is least sure and the model's
    labels. Items in --labels files and in the gold set are left out."""
    from pipeline.cli.predict_cmd import load_predictor
    from pipeline.data.selection import open_existing_store, parse_filters
    from pipeline.inference.suggest import STRATEGIES, labelled_item_ids, rank_items, unlabelled_items

    if strategy not in STRATEGIES:
        raise UserError(f"--strategy {strategy!r}: choose {', '.join(STRATEGIES)}")
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: choose {', '.join(FORMATS)}")
    check_device(device)
    label_files = list(labels or [])
    if gold is not None or DEFAULT_GOLD.is_file():
        label_files.append(gold or DEFAULT_GOLD)
    else:  # run outside the repository: say so, since suggesting gold items for labelling would leak them
        err_console.print(f"[yellow]warning:[/] no gold file at {escape(str(DEFAULT_GOLD))} (relative to "
                          f"{escape(str(Path.cwd()))}): gold items are not left out; pass --gold", highlight=False,
                          soft_wrap=True)
    labelled = labelled_item_ids(label_files, warn=lambda msg: err_console.print(
        f"[yellow]warning:[/] {escape(msg)}", highlight=False, soft_wrap=True))
    with open_existing_store(db) as store:
        items = unlabelled_items(store, labelled, parse_filters(filters))
        left_out = len(labelled & set(store.item_ids()))  # labelled items of this store, not of the label files
    if not items:
        err_console.print("no unlabelled items in the store (items in the gold set and --labels files are left out)",
                          highlight=False)
        if fmt != "table" or out:  # an empty file or header for scripts; no empty table on screen
            _write([], fmt, out, "", strategy)
        return
    predictor = load_predictor(model, device, 32, "torch", threads, 8192, "auto")
    progress = _progress(len(items))
    suggestions = rank_items(predictor, items, n, strategy, seed, pool_factor, progress)
    records = [s.to_dict(strategy, predictor.model_version) for s in suggestions]
    _write(records, fmt, out, predictor.model_version, strategy)
    err_console.print(f"[dim]{len(records)} of {len(items)} unlabelled items ({left_out} labelled left out) · "
                      f"strategy {escape(strategy)} · model {predictor.model_version}[/]", highlight=False)


def _progress(total: int, min_items: int = 500) -> Any:
    """Plain progress lines without a terminal, for stores big enough to take a while."""
    from pipeline.progress import PlainProgress, is_terminal

    if total < min_items or is_terminal(err_console.file):
        return None
    bar = PlainProgress(total, "classify", "items", stream=err_console.file)
    return lambda done, _total: bar.advance(done - bar.done)


def _write(records: list[dict[str, Any]], fmt: str, out: Path | None, model_version: str, strategy: str) -> None:
    import json
    import sys

    from pipeline.store.outfile import atomic_output

    if fmt == "table":
        if out is None:
            render_table(records, console, model_version, strategy)
        else:
            with atomic_output(out) as tmp, open(tmp, "w", encoding="utf-8") as fh:
                render_table(records, SafeConsole(file=fh, width=160, no_color=True), model_version, strategy)
        return
    if fmt == "jsonl":
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    else:
        from pipeline.csvsafe import safe_frame
        from pipeline.store.records import records_frame

        text = safe_frame(records_frame(records)).to_csv(index=False) if records else ""
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        with atomic_output(out) as tmp:  # whole or not at all; a full disk names the file
            tmp.write_text(text, encoding="utf-8")


def render_table(records: list[dict[str, Any]], con: Any, model_version: str, strategy: str) -> None:
    """Rank, item, score, the unsure head, the model's sentiment and non-none stances, the text."""
    from rich.table import Table

    from pipeline.reporting.report import excerpt

    table = Table(title=escape(f"label next · {strategy} · model {model_version}"), title_justify="left")
    # the text wraps in whatever width the other columns leave; it never pushes them off the screen
    for name, kw in (("#", {"justify": "right", "no_wrap": True}), ("item", {"overflow": "fold", "min_width": 12}),
                     ("score", {"justify": "right", "no_wrap": True}), ("least sure", {"no_wrap": True}),
                     ("model says", {"no_wrap": True}), ("text", {"ratio": 1, "overflow": "fold", "min_width": 20})):
        table.add_column(name, **kw)
    for r in records:
        said = [f"{r['sentiment']['label']} {r['sentiment']['prob']:.2f}"]
        said += [f"{t}: {h['label']} {h['prob']:.2f}" for t, h in r["stance"].items() if h["label"] != NONE_LABEL]
        table.add_row(str(r["rank"]), escape(r["item_id"]), f"{r['score']:.3f}", escape(r["reason"]),
                      escape("\n".join(said)), escape(excerpt(str(r.get("text") or ""), 200)))
    con.print(table)
