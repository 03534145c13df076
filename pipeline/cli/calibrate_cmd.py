"""``threadstance calibrate``: fit per-class decision biases of a trained model on a dev set."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import console
from pipeline.errors import UserError


def calibrate(
    model: Annotated[Path, typer.Option("--model", help="Model directory written by `threadstance train`.")],
    dev: Annotated[str, typer.Option("--dev", help="domain_real (real in-domain set) or a corpus-style JSONL file.")] = "domain_real",
    shared: Annotated[Path | None, typer.Option("--shared", help="Shared data folder (default ../shared).")] = None,
) -> None:
    """Fit decision biases (none-class offset per target, sentiment offsets) on a dev set; never on gold."""
    from pipeline.config.schema import load_schema
    from pipeline.data.corpus import load_corpus
    from pipeline.data.public_data import load_domain_real
    from pipeline.modeling.folder import METRICS_FILE, ModelFolder
    from pipeline.training.calibration import calibrate_model_dir

    folder = ModelFolder(model)
    folder.require()
    schema = folder.read_schema() or load_schema()
    if dev == "domain_real":
        records, name = load_domain_real(shared), "domain_real"
    else:
        if "gold" in Path(dev).name:
            raise UserError("calibrating on the gold set would leak it into the model; use a dev set", dev)
        records, name = load_corpus([dev], schema), Path(dev).name
    records = _not_trained_on(folder, records, name, shared, schema)
    result = calibrate_model_dir(model, records, schema, name)
    version = folder.content_version(schema)
    folder.update_meta(model_version=version)
    if folder.has(METRICS_FILE):
        metrics = folder.read_json(METRICS_FILE)
        metrics["calibration"], metrics["model_version"] = result, version
        folder.write_json(METRICS_FILE, metrics)
        folder.write_card()
    b, a = result["before"], result["after_fitted_on_same_items"]
    console.print(f"decision biases fitted on {name} ({len(records)} items) → model_version {version}", markup=False)
    console.print(f"  sentiment macro-F1 {b['sentiment_macro_f1']:.3f} → {a['sentiment_macro_f1']:.3f}; "
                  f"stance score {b['stance_score']:.3f} → {a['stance_score']:.3f} (on the fitting set: optimistic)")


def _not_trained_on(folder, records: list[dict], name: str, shared: Path | None, schema) -> list[dict]:  # noqa: ANN001
    """The dev records whose text the model was not trained on (its saved config says what it trained on).

    Biases fitted on training items would be fitted to what the model already memorised; the default
    model, for one, trains on all of domain_real.
    """
    from pipeline.config.run import load_config
    from pipeline.data.splits import make_splits
    from pipeline.modeling.folder import CONFIG_FILE

    folder.read_text(CONFIG_FILE)  # presence and manifest check, one-line errors
    try:
        cfg = load_config(folder.file(CONFIG_FILE), [f"paths.shared={shared}"] if shared else [])
        splits = make_splits(cfg, schema)
    except UserError as exc:
        raise UserError(f"cannot tell which items the model was trained on, so it cannot be calibrated safely "
                        f"(paths in its config.yaml are relative to the folder it was trained from: run there): "
                        f"{exc}", folder.path) from exc
    trained = {r["text"] for r in splits.train}
    held_out = [r for r in records if r["text"] not in trained]
    if not held_out:
        raise UserError(f"the model was trained on all {len(records)} items of {name}; fit decision biases on "
                        "items it has not seen (--dev FILE with held-out labelled items, never gold)", folder.path)
    if len(held_out) < len(records):
        console.print(f"left out {len(records) - len(held_out)} of {len(records)} {name} items the model was "
                      "trained on", markup=False)
    return held_out
