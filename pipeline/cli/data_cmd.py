"""``threadstance data``: validate and describe the data of a run config before training."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from pipeline.cli.common import console
from pipeline.config.run import load_config
from pipeline.config.settings import DEFAULT_STORE
from pipeline.data.labels import write_text_atomic
from pipeline.store.backend import store_exists

app = typer.Typer(help="Training data checks.", no_args_is_help=True)


@app.command("stats")
def stats(
    config: Annotated[Path, typer.Argument(help="Run config YAML.")],
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Override key.path=value.")] = None,
    db: Annotated[str, typer.Option("--db", help="Store holding the gold items (for the gold-overlap check): a SQLite "
                                    "file or a PostgreSQL URL (env THREADSTANCE_DB).")] = DEFAULT_STORE,
    threshold: Annotated[float, typer.Option(help="Near-duplicate TF-IDF cosine threshold.")] = 0.9,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the report as JSON.")] = None,
) -> None:
    """Validate all data CONFIG names; print label distributions, lengths, overlaps and duplicates."""
    from pipeline.data.stats import describe

    cfg = load_config(config, overrides)
    report = describe(cfg, db, threshold)
    sizes = Table(title="data sets")
    for col in ("set", "items", "words min", "median", "p95", "max", "300+ words", "<12 words"):
        sizes.add_column(col, justify="right")
    for name, n in report.sizes.items():
        ln = report.lengths.get(name, {})
        sizes.add_row(name, str(n), *(str(ln.get(k, "")) for k in ("min", "median", "p95", "max", "n_300_plus",
                                                                  "n_under_12")))
    console.print(sizes)
    for name, counts in report.label_counts.items():
        table = Table(title=escape(f"labels: {name}"))
        table.add_column("field")
        classes = sorted({c for v in counts.values() for c in v}, key=lambda c: list(counts["sentiment"]).index(c)
                         if c in counts["sentiment"] else 10)
        for c in classes:
            table.add_column(c, justify="right")
        for field, per in counts.items():
            table.add_row(field, *(str(per.get(c, "")) for c in classes))
        console.print(table)
    console.print(f"kinds in corpus: {report.kinds}")
    console.print("overlaps (exact, normalised text): " + ", ".join(f"{k} = {v}" for k, v in report.overlaps.items()))
    if not store_exists(db):
        console.print(f"[yellow]no store at {escape(str(db))}: gold overlap not checked (ingest the seeds first)[/]")
    console.print(f"near-duplicates above {threshold}: {len(report.near_duplicates)}")
    for a, b, s in report.near_duplicates[:20]:
        console.print(f"  {a} ~ {b}: {s:.3f}", markup=False)
    for line in report.gold_overlap:
        console.print(f"[red]gold text in corpus:[/] {escape(str(line))}")
    for line in report.coverage_problems:
        console.print(f"[yellow]coverage below target:[/] {escape(str(line))}")
    if json_out:
        write_text_atomic(json_out, json.dumps(report.to_dict(), indent=2, default=str))
    if report.near_duplicates or report.gold_overlap:
        raise typer.Exit(1)
