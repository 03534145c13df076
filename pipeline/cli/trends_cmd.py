"""``threadstance trends``: label shares per period, corrected for classifier error, with 95 % intervals."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import DbOption, console, err_console
from pipeline.errors import UserError

FORMATS = ("table", "csv", "jsonl")


def trends(
    model: Annotated[str | None, typer.Option("--model", help="Model folder or model_version (default: the model of "
                                              "the latest reclassify run, its folder looked up under models/).")] = None,
    by: Annotated[str, typer.Option("--by", help="month | quarter | year")] = "month",
    fmt: Annotated[str, typer.Option("--format", help="table | csv | jsonl (one record per period, target, "
                                     "label)")] = "table",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder for trends.png and trends.csv/.jsonl; a "
                                             "path ending in .png writes only the plot, one ending in .csv or .jsonl "
                                             "only the data in that format.")] = None,
    kind: Annotated[list[str] | None, typer.Option("--kind", help="Only these item kinds (repeatable): comment, "
                                                   "reply, paragraph.")] = None,
    thread: Annotated[list[str] | None, typer.Option("--thread", help="Only these thread ids (repeatable).")] = None,
    since: Annotated[str | None, typer.Option("--since", help="First date counted, YYYY-MM-DD.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Last date counted, YYYY-MM-DD.")] = None,
    min_confidence: Annotated[float | None, typer.Option(
        "--min-confidence", help="Labels whose top probability is below this abstain: left out of the shares and "
        "counted as their own label `abstain`.")] = None,
    min_items: Annotated[int, typer.Option("--min-items", min=1, help="Periods with fewer items are flagged "
                                           "too_few and not plotted.")] = 30,
    min_threads: Annotated[int, typer.Option("--min-threads", min=1, help="Periods with fewer threads are flagged "
                                             "too_few too (the intervals resample threads).")] = 3,
    method: Annotated[str, typer.Option("--method", help="acc (counts) | pacc (mean probabilities): how the "
                                        "misclassification rates correct the shares (reports/trends_validation.md)."
                                        )] = "acc",
    n_boot: Annotated[int, typer.Option("--bootstrap", min=100, help="Bootstrap replicates for the intervals.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Bootstrap seed.")] = 13,
    db: str = DbOption,
) -> None:
    """Shares of each sentiment and stance label per period with 95 % intervals (threads and the model's
    out-of-fold error rates resampled); `share` is corrected for classifier error, `share_raw` is not."""
    from pipeline.reporting.trends import trends as compute

    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: choose {', '.join(FORMATS)}")
    targets = _out_targets(out, fmt) if out is not None else {}  # a bad --out fails before the work
    result = compute(db, model, by, kinds=kind, threads=thread, since=since, until=until,
                     min_confidence=min_confidence, min_items=min_items, min_threads=min_threads, method=method,
                     n_boot=n_boot, seed=seed)
    frame = result.frame
    for note in result.notes:
        err_console.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    if frame.empty:
        raise UserError("no dated predicted items match these filters", db)
    if fmt == "table":
        _print_table(frame, by, result.model_version, result.corrected, min_items, min_threads)
    else:
        sys.stdout.write(_serialise(frame, fmt))
        sys.stdout.flush()
    if out is not None:
        kind_note = f" · {', '.join(kind)}" if kind else ""
        title = f"threadstance label shares per {by} · model {result.model_version}{kind_note}" + (
            "" if result.corrected else " · raw shares (not corrected)")
        written = _write_out(frame, targets, title)
        err_console.print("wrote " + ", ".join(str(p) for p in written), markup=False, highlight=False)
        if frame["too_few"].all() and any(p.suffix.lower() == ".png" for p in written):
            err_console.print(f"note: every period has fewer than {min_items} items or {min_threads} threads: the "
                              "plot shows no points (lower --min-items / --min-threads, or use a longer --by)",
                              markup=False, highlight=False, soft_wrap=True)


def _out_targets(out: Path, fmt: str) -> dict:
    """What ``--out`` names: a ``.png`` path the plot, a ``.csv`` or ``.jsonl`` path the data in that format,
    any other path a folder for trends.png and the data."""
    suffix = out.suffix.lower()
    if suffix in (".csv", ".jsonl"):
        return {"data": (out, suffix[1:])}
    if suffix == ".png":
        return {"png": out}
    if out.exists() and not out.is_dir():
        raise UserError("--out is a file: give a folder (for trends.png and the data), or a path ending in "
                        ".png, .csv or .jsonl", out)
    data_fmt = "jsonl" if fmt == "jsonl" else "csv"
    return {"png": out / "trends.png", "data": (out / f"trends.{data_fmt}", data_fmt)}


def _write_out(frame, targets: dict, title: str) -> list[Path]:  # noqa: ANN001 - a pandas DataFrame
    """Write the files of :func:`_out_targets`, each whole or not at all."""
    from pipeline.reporting.trends import plot_trends
    from pipeline.store.outfile import atomic_output

    written = []
    if "png" in targets:
        with atomic_output(targets["png"]) as tmp:
            plot_trends(frame, tmp, title, file_format="png")
        written.append(targets["png"])
    if "data" in targets:
        path, data_fmt = targets["data"]
        with atomic_output(path) as tmp:
            tmp.write_text(_serialise(frame, data_fmt), encoding="utf-8")
        written.append(path)
    return written


def _serialise(frame, fmt: str) -> str:  # noqa: ANN001 - a pandas DataFrame
    from pipeline.csvsafe import safe_frame

    if fmt == "csv":
        return safe_frame(frame.round(4)).to_csv(index=False)
    lines = []
    for rec in frame.round(4).to_dict(orient="records"):
        clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in rec.items()}
        lines.append(json.dumps(clean, ensure_ascii=False, default=lambda v: v.item() if hasattr(v, "item") else str(v)))
    return "".join(line + "\n" for line in lines)


def _print_table(frame, by: str, version: str, corrected: bool, min_items: int, min_threads: int
                 ) -> None:  # noqa: ANN001
    from rich.table import Table

    table = Table(title=f"label shares per {by} (%) · model {version}", title_justify="left",
                  caption=("share: corrected for classifier error [95 % interval]; raw: classify and count"
                           if corrected else "raw: classify and count [95 % interval]; not corrected")
                  + f"; * fewer than {min_items} items or {min_threads} threads", caption_justify="left")
    for col, justify in ((by, "left"), ("target", "left"), ("label", "left"), ("n", "right"), ("raw", "right"),
                         ("share [95 % CI]" if corrected else "raw [95 % CI]", "right")):
        table.add_column(col, justify=justify, no_wrap=True)
    for _, r in frame.iterrows():
        share, lo, hi = (r["share"], r["ci_low"], r["ci_high"]) if not math.isnan(r["share"]) else (
            r["share_raw"], r["raw_ci_low"], r["raw_ci_high"])
        cells = [f"{r['period']}{'*' if r['too_few'] else ''}", r["target"], r["label"], str(int(r["n"])),
                 _pct(r["share_raw"]), f"{_pct(share)} [{_pct(lo)}, {_pct(hi)}]"]
        table.add_row(*cells, style="dim" if r["too_few"] else None)
    console.print(table)


def _pct(x: float) -> str:
    return "–" if x is None or math.isnan(x) else f"{100 * x:.0f}"
