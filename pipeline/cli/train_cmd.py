"""``threadstance train``: fine-tune the multi-task model from a YAML config."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from pipeline.cli.common import check_device, console
from pipeline.config.run import load_config


def train(
    config: Annotated[Path, typer.Argument(help="Run config YAML, e.g. configs/default.yaml.")],
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Override: key.path=value (repeatable).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint of this run.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Train the sentiment + per-target stance model described by CONFIG."""
    from pipeline.training.train import train as run_training

    cfg = load_config(config, overrides)
    check_device(cfg.training.device, f"{config} [training.device]")
    console.print(f"training [bold]{escape(cfg.run_name)}[/] → {escape(str(cfg.output_dir))}")
    result = run_training(cfg, resume=resume, progress=progress)
    table = Table(title=f"{cfg.run_name} · model_version {result.model_version} · {result.train_seconds:.0f} s")
    for col in ("dev set", "n", "sentiment macro-F1", "stance score"):
        table.add_column(col)
    for name, s in result.dev_metrics.items():
        table.add_row(name, str(s["n"]), f"{s['sentiment_macro_f1']:.3f}", f"{s['stance_score']:.3f}")
    console.print(table)
