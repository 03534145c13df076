"""``evaluate``: score a model on the gold set, then write the report folder and, for the model's own
evaluation, ``gold_metrics.json`` and the model card. What ``threadstance evaluate`` and the main job call."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.evaluation.evaluate import EvalResult, score_model
from pipeline.evaluation.scoring import jsonable
from pipeline.modeling.folder import GOLD_METRICS_FILE, METRICS_FILE, ModelFolder
from pipeline.reporting.report import error_evidence, write_report


def evaluate(model_dir: str | Path, *, update_model: bool = True, **kwargs: Any) -> EvalResult:
    """Evaluate a trained model on the gold set and write the report (arguments: see
    :func:`pipeline.evaluation.evaluate.score_model`).

    The model folder's ``gold_metrics.json`` and model card are written only for its own evaluation:
    ``update_model`` (``threadstance evaluate`` passes False with ``--out``) and the gold file of the config.
    Any other evaluation leaves the model folder alone.
    """
    log = kwargs.get("log") or (lambda _msg: None)
    result = score_model(model_dir, **kwargs)
    assert result.eval_set is not None and result.model_output is not None and result.schema is not None
    log(f"writing the report to {result.out_dir}")
    evidence = None
    if result.model_output.proba:  # the error table shows the model's evidence for wrong favor/against labels
        from pipeline.inference.predict import Predictor

        predictor = Predictor(model_dir, device=kwargs.get("device", "auto"), backend=kwargs.get("backend", "torch"),
                              precision=kwargs.get("precision", "fp32"))
        evidence = error_evidence(predictor, result.eval_set, result.model_output, result.schema)
    write_report(result.out_dir, result.metrics, result.eval_set, result.model_output, result.schema, evidence)
    folder = ModelFolder(model_dir)
    config_gold = (kwargs.get("config") or folder.read_config()).evaluation.gold
    if not update_model or not _same_file(result.metrics["gold_path"], config_gold):
        why = "a report folder was given (--out)" if not update_model else \
            f"the gold file is not the config's evaluation.gold ({config_gold})"
        log(f"model folder {model_dir} left alone: {why}")
        return result
    folder.write_json(GOLD_METRICS_FILE, jsonable({**result.metrics, "report_dir": str(result.out_dir)}))
    if folder.has(METRICS_FILE):
        folder.write_card()
    return result


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False
