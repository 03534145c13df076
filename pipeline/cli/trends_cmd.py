"""``threadstance trends``: label shares per month from the stored predictions, as a table and a PNG."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import DbOption, console
from pipeline.errors import UserError


def trends(
    model: Annotated[str | None, typer.Option("--model", help="Model directory or model_version (default: the "
                                              "model of the latest reclassify run).")] = None,
    by: Annotated[str, typer.Option("--by", help="month | year")] = "month",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the plot here (PNG).")] = None,
    kind: Annotated[list[str] | None, typer.Option("--kind", help="Only these item kinds (repeatable): comment, "
                                                   "reply, paragraph.")] = None,
    db: Path = DbOption,
) -> None:
    """Sentiment and stance shares per month (items dated by posted_at, else by their thread's date)."""
    from rich.table import Table

    from pipeline.modeling.folder import ModelFolder
    from pipeline.reporting.trends import PERIODS, label_shares, plot_shares
    from pipeline.store.db import Store

    if by not in PERIODS:
        raise UserError(f"--by {by!r}: choose {' or '.join(PERIODS)}")
    if not Path(db).is_file():
        raise UserError("no store here yet (run `threadstance reclassify` first)", db)
    none_class = "none"
    store = Store.open_readonly(db)
    try:
        version = model
        if model and ModelFolder(model).is_model():
            meta = ModelFolder(model).read_meta()
            version, none_class = meta.get("model_version"), meta.get("none_class", "none")
        version = version or store.latest_model_version()
        if not version:
            raise UserError("no predictions in the store yet (run `threadstance reclassify`)", db)
        rows = store.items_with_predictions(version, predicted_only=True)
    finally:
        store.close()
    if not rows:
        raise UserError(f"no predictions from model version {version} in the store", db)
    shares = label_shares(rows, by, none_class, kind)
    table = Table(title=f"label shares per {by} (%) · model {version} · {int(shares['n'].sum())} items",
                  title_justify="left", caption="sentiment: share of items per class; per target: favor / against",
                  caption_justify="left")
    table.add_column(by, no_wrap=True)
    table.add_column("n", justify="right")
    sent_cols = [c for c in shares.columns if c.startswith("sentiment:")]
    for col in sent_cols:
        table.add_column(col.split(":", 1)[1][:3], justify="right")
    targets = list(dict.fromkeys(c.split(":", 1)[0] for c in shares.columns
                                 if ":" in c and not c.startswith("sentiment:")))
    for t in targets:
        table.add_column(t, justify="right", overflow="fold", min_width=7)
    for _, row in shares.iterrows():
        cells = [str(row["period"]), str(int(row["n"]))]
        cells += [f"{100 * row[c]:.0f}" for c in sent_cols]
        for t in targets:
            cells.append(f"[green]{100 * row.get(f'{t}:favor', 0):.0f}[/]/[red]{100 * row.get(f'{t}:against', 0):.0f}[/]")
        table.add_row(*cells)
    console.print(table)
    if out is not None:
        path = plot_shares(shares, out, f"threadstance label shares per {by} · model {version}")
        console.print(f"wrote {path}", markup=False, highlight=False)
