"""``threadstance run``: the main job — ingest the seeds, train, evaluate on the gold set, summarise."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from pipeline.cli.common import check_device, console, err_console


def run(
    config: Annotated[Path, typer.Argument(help="Run config YAML, e.g. configs/default.yaml.")],
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Override: key.path=value (repeatable).")] = None,
    reports: Annotated[Path, typer.Option("--reports", help="Folder that receives reports/RUN_NAME/.")] = Path(
        "reports"),
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")] = True,
) -> None:
    """Ingest the seed threads into paths.store, train CONFIG, evaluate on the gold set, print a summary.

    Exits with code 3 (after writing everything) when a gold score is below evaluation.min_scores.
    """
    from pipeline.cli.evaluate_cmd import exit_on_min_scores, print_gold_summary
    from pipeline.cli.ingest_cmd import print_report
    from pipeline.config.run import load_config
    from pipeline.config.settings import shared_dir
    from pipeline.errors import UserError
    from pipeline.evaluation.evaluate import validate_min_scores
    from pipeline.evaluation.goldset import load_eval_set, read_gold
    from pipeline.reporting.evaluate import evaluate
    from pipeline.store.db import Store
    from pipeline.store.load import ingest_paths
    from pipeline.training import train as trainer

    cfg = load_config(config, overrides)
    check_device(cfg.training.device, f"{config} [training.device]")
    schema = cfg.schema()
    # Everything that can be checked before the (long) training is checked first.
    validate_min_scores(cfg.evaluation.min_scores, schema, config)
    gold = read_gold(cfg.evaluation.gold, schema)
    seeds = shared_dir(cfg.paths.shared) / "seeds"
    if not seeds.is_dir():
        raise UserError("seed threads not found (set paths.shared or $THREADSTANCE_SHARED)", seeds)
    db = Path(cfg.paths.store)

    console.rule(f"[bold]1/3 ingest[/] {escape(str(seeds))} → {escape(str(db))}")
    with Store(db) as store:
        report = ingest_paths(store, [seeds])
    print_report(report, db)
    if report.failed:
        err_console.print(f"[bold red]error:[/] {len(report.failed)} seed file(s) failed to ingest; stopping")
        raise typer.Exit(1)
    load_eval_set(gold, schema, db, gold_path=cfg.evaluation.gold)  # every gold item has its text

    console.rule(f"[bold]2/3 train[/] {escape(cfg.run_name)} → {escape(str(cfg.output_dir))}")
    result = trainer.train(cfg, progress=progress)
    dev = Table(title=f"dev metrics · model_version {result.model_version} · {result.train_seconds:.0f} s")
    for col in ("dev set", "n", "sentiment macro-F1", "stance score"):
        dev.add_column(col)
    for name, s in result.dev_metrics.items():
        dev.add_row(name, str(s["n"]), f"{s['sentiment_macro_f1']:.3f}", f"{s['stance_score']:.3f}")

    out = reports / cfg.run_name
    console.rule(f"[bold]3/3 evaluate[/] on {escape(str(cfg.evaluation.gold))} → {escape(str(out))}")
    ev = evaluate(result.output_dir, out_dir=out, db=db, config=cfg, config_source=config,
                  log=lambda msg: err_console.print(f"[dim]{escape(str(msg))}[/]", highlight=False))

    console.rule("[bold]summary")
    console.print(f"ingest: {len(report.files)} files, {report.total('threads')} threads, "
                  f"{report.total('paragraph')} paragraphs, {report.total('comment')} comments, "
                  f"{report.total('reply')} replies ({sum(f.counts.new for f in report.files if f.ok)} new)")
    if result.dev_metrics:
        console.print(dev)
    else:  # fixed epochs on all the data: nothing held out to score here
        console.print(f"train: model_version {result.model_version} · {result.train_seconds:.0f} s · no dev set "
                      f"(out-of-fold scores of the recipe: the report)", markup=False)
    print_gold_summary(ev.metrics)
    console.print(f"model: {result.output_dir} · report: {ev.out_dir / 'report.md'}", markup=False)
    exit_on_min_scores(ev.failures)
