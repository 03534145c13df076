"""``evaluate``: score a model on the gold set, then write the report folder, ``gold_metrics.json`` and the
model card. What ``threadstance evaluate`` and the main job call."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.evaluation.evaluate import EvalResult, score_model
from pipeline.evaluation.scoring import jsonable
from pipeline.modeling.folder import GOLD_METRICS_FILE, METRICS_FILE, ModelFolder
from pipeline.reporting.report import error_evidence, write_report


def evaluate(model_dir: str | Path, **kwargs: Any) -> EvalResult:
    """Evaluate a trained model on the gold set and write the report (arguments: see
    :func:`pipeline.evaluation.evaluate.score_model`)."""
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
    folder.write_json(GOLD_METRICS_FILE, jsonable({**result.metrics, "report_dir": str(result.out_dir)}))
    if folder.has(METRICS_FILE):
        folder.write_card()
    return result
