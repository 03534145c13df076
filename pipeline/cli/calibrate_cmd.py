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
    result = calibrate_model_dir(model, records, schema, name)
    version = folder.content_version(schema)
    folder.update_meta(model_version=version)
    if folder.has(METRICS_FILE):
        metrics = folder.read_json(METRICS_FILE)
        metrics["calibration"], metrics["model_version"] = result, version
        folder.write_json(METRICS_FILE, metrics)
        folder.write_card()
    b, a = result["before"], result["after_fitted_on_same_items"]
    console.print(f"decision biases fitted on {name} ({len(records)} items) → model_version {version}")
    console.print(f"  sentiment macro-F1 {b['sentiment_macro_f1']:.3f} → {a['sentiment_macro_f1']:.3f}; "
                  f"stance score {b['stance_score']:.3f} → {a['stance_score']:.3f} (on the fitting set: optimistic)")
