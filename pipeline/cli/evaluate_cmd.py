"""``threadstance evaluate``: score a trained model and the baselines on the gold set, write the report."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from pipeline.cli.common import DbOption, check_device, console, err_console

MIN_SCORES_EXIT = 3


def evaluate(
    model: Annotated[Path, typer.Option("--model", help="Model directory written by `threadstance train`.")],
    gold: Annotated[Path | None, typer.Option("--gold", help="Gold label JSONL (default: evaluation.gold).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Report folder (default: reports/MODEL_FOLDER_NAME); "
                                             "with --out, or a --gold other than the config's, the model "
                                             "folder's gold metrics and card are left alone.")] = None,
    db: Path = DbOption,
    cv: Annotated[int | None, typer.Option("--cv", min=2, help="Also K-fold cross-validate the training recipe "
                                                                 "on the gold set itself.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Run config whose `evaluation` section (and, "
                                                                 "for --cv, training recipe) replaces the model's "
                                                                 "config.yaml.")] = None,
    items: Annotated[Path | None, typer.Option("--items", help="Only these item ids (one per line); each must "
                                                               "have a gold label.")] = None,
    lexicon: Annotated[Path | None, typer.Option("--lexicon", help="Cue file of the lexicon baseline "
                                                                   "(default configs/lexicon.yaml).")] = None,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda | mps")] = "auto",
    backend: Annotated[str, typer.Option("--backend", help="torch | onnx | onnx-int8: measure what a faster "
                                                           "inference path changes (default: the torch reference)")] = "torch",
    precision: Annotated[str, typer.Option("--precision", help="fp32 (reference) | bf16 | auto")] = "fp32",
    seed_models: Annotated[list[str] | None, typer.Option(
        "--seed-models", help="Model folders of the same recipe trained with other seeds (repeat the option or "
                              "separate with commas); the report gives each score's mean and SD over seeds.")] = None,
) -> None:
    """Evaluate MODEL on the gold set against the baselines: metrics.json, report.md/.html, errors.csv.

    Exits with code 3 (after writing the report) when a headline score is below evaluation.min_scores.
    """
    from pipeline.config.run import load_config
    from pipeline.evaluation.goldset import read_item_ids
    from pipeline.reporting.evaluate import evaluate as run_evaluation

    cfg = load_config(config) if config else None
    check_device(device)
    ids = read_item_ids(items) if items else None
    seed_dirs = [Path(p.strip()) for value in seed_models or [] for p in value.split(",") if p.strip()]
    result = run_evaluation(model, gold_path=gold, out_dir=out, db=db, config=cfg, config_source=config,
                            item_ids=ids, cv=cv, lexicon=lexicon, device=device, backend=backend, precision=precision,
                            seed_models=seed_dirs, update_model=out is None,
                            log=lambda msg: err_console.print(f"[dim]{escape(str(msg))}[/]", highlight=False))
    print_gold_summary(result.metrics)
    console.print(f"report: {result.out_dir / 'report.md'} (and report.html, metrics.json, errors.csv)", markup=False)
    exit_on_min_scores(result.failures)


def print_gold_summary(m: dict[str, Any]) -> None:
    """Model and baselines side by side: headline numbers with the model's 95% thread-bootstrap intervals, the
    verdict of each paired difference and, with several seeds, the mean ± SD over seeds."""
    targets = m["classes"]["targets"]
    threads = m["bootstrap"].get("clusters")
    table = Table(title=escape(f"gold set {m['gold_path']} · {m['n_items']} items, {threads} threads · "
                               f"model_version {m['model_version']}"))
    keys = ["sentiment_accuracy", "sentiment_macro_f1", *(f"f1_avg.{t}" for t in targets), "stance_score"]
    table.add_column("system", no_wrap=True)
    for k in keys:
        table.add_column(k.replace("f1_avg.", "F1avg ").replace("sentiment_", "sent. ").replace("_", " "),
                         justify="right")
    for name, res in {"model": m["model"], **m["baselines"]}.items():
        cells = []
        for k in keys:
            v = res["headline"].get(k)
            if v is None:
                cells.append("–")
            elif name == "model":
                lo, hi = res["ci"][k]
                cells.append(f"{v:.3f}\n[{lo:.2f}, {hi:.2f}]")
            else:
                cells.append(f"{v:.3f}")
        table.add_row(name, *cells)
    console.print(table)
    for name, comp in m.get("comparisons", {}).items():
        if "stance_score" in comp or "sentiment_macro_f1" in comp:
            console.print(f"model vs {name}: " + "; ".join(
                f"{k} {comp[k]['diff']:+.3f} [{comp[k]['ci'][0]:+.3f}, {comp[k]['ci'][1]:+.3f}] {comp[k]['verdict']}"
                for k in ("sentiment_macro_f1", "stance_score") if k in comp), markup=False, highlight=False)
    seeds = m.get("seeds", {})
    if seeds.get("n_seeds", 1) > 1:
        console.print(f"{seeds['n_seeds']} seeds ({', '.join(map(str, seeds['seeds']))}): "
                      + ", ".join(f"{k} {seeds['mean'][k]:.3f} ± {seeds['sd'][k]:.3f}"
                                  for k in ("sentiment_macro_f1", "stance_score")), markup=False)
    elif seeds:
        console.print(f"one training seed evaluated ({seeds['seeds'][0]})", markup=False)
    if "cv" in m:
        cv = m["cv"]
        console.print(f"{cv['k']}-fold CV on the gold set: "
                      + ", ".join(f"{k} {cv['mean'][k]:.3f} ± {cv['sd'][k]:.3f}"
                                  for k in ("sentiment_macro_f1", "stance_score")))
    for note in m.get("notes", []):
        err_console.print(f"[yellow]note:[/] {escape(str(note))}", highlight=False)


def exit_on_min_scores(failures: list[str]) -> None:
    if failures:
        err_console.print("[bold red]below evaluation.min_scores:[/] " + "; ".join(failures), highlight=False)
        raise typer.Exit(MIN_SCORES_EXIT)
