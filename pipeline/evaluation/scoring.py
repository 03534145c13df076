"""Scoring one system on the gold set: point scores, bootstrap intervals, confusion matrices, calibration,
the per-kind breakdown and paired model − baseline differences.

Every headline number gets a 95% percentile bootstrap interval from resampling items with replacement; the
resamples are shared by all systems, so model − baseline differences get paired intervals too.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.config.schema import LabelSchema
from pipeline.evaluation.goldset import CI_LEVEL, ECE_BINS, EvalSet
from pipeline.metrics import (
    confusion,
    expected_calibration_error,
    percentile_ci,
    reliability_bins,
    resampled_headline,
    sentiment_scores,
    stance_target_scores,
)

# ---- scoring ---------------------------------------------------------------------------------------------

def fields_of(schema: LabelSchema) -> list[str]:
    return ["sentiment", *schema.target_names]


def classes_of(schema: LabelSchema, field_name: str) -> list[str]:
    return schema.sentiment_classes if field_name == "sentiment" else schema.stance_classes


def point_scores(gold: dict[str, list[str]], pred: dict[str, list[str]], schema: LabelSchema) -> dict[str, Any]:
    """Scores for the fields present in ``pred`` (same definitions as :func:`pipeline.metrics.headline_scores`)."""
    out: dict[str, Any] = {}
    headline: dict[str, float] = {}
    if "sentiment" in pred:
        out["sentiment"] = sentiment_scores(gold["sentiment"], pred["sentiment"], schema.sentiment_classes)
        headline["sentiment_accuracy"] = out["sentiment"]["accuracy"]
        headline["sentiment_macro_f1"] = out["sentiment"]["macro_f1"]
        out["sentiment_macro_f1"] = out["sentiment"]["macro_f1"]
    targets = [t for t in schema.target_names if t in pred]
    if targets:
        out["stance"] = {t: stance_target_scores(gold[t], pred[t], schema.stance_classes, schema.polar_classes)
                         for t in targets}
        for t in targets:
            headline[f"f1_avg.{t}"] = out["stance"][t]["f1_avg"]
    if targets == schema.target_names:
        out["stance_score"] = float(np.mean([out["stance"][t]["f1_avg"] for t in targets]))
        headline["stance_score"] = out["stance_score"]
    out["headline"] = headline
    return out


def _ci_block(samples: dict[str, np.ndarray]) -> dict[str, list[float]]:
    return {k: [round(x, 6) for x in percentile_ci(v, CI_LEVEL)] for k, v in samples.items()}


def calibration(gold: list[str], proba: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """ECE (10 equal-width bins on the max probability) and the reliability bins."""
    pos = {c: i for i, c in enumerate(classes)}
    conf = proba.max(axis=1)
    correct = proba.argmax(axis=1) == np.array([pos[g] for g in gold])
    return {"ece": expected_calibration_error(conf, correct, ECE_BINS),
            "bins": reliability_bins(conf, correct, ECE_BINS)}


@dataclass
class SystemOutput:
    """One system's predictions on the eval set (and probabilities, when it has them)."""

    name: str
    description: str
    pred: dict[str, list[str]]
    proba: dict[str, np.ndarray] | None = None
    info: dict[str, Any] = field(default_factory=dict)


def score_system(es: EvalSet, out: SystemOutput, schema: LabelSchema, idx: np.ndarray,
                 groups: dict[str, tuple[np.ndarray, np.ndarray]]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Point scores, bootstrap CIs, confusion matrices, calibration and the per-kind breakdown.

    ``idx`` holds the bootstrap resamples of the whole set, ``groups`` each kind group's item positions and
    its own resamples (positions within the group); both are shared by all systems. Returns the JSON-ready result and the bootstrap samples of the headline numbers (for paired comparisons).
    """
    res = {"description": out.description, **out.info, **point_scores(es.gold, out.pred, schema)}
    samples = resampled_headline(es.gold, out.pred, schema.sentiment_classes, schema.stance_classes,
                                 schema.target_names, schema.polar_classes, idx)
    res["ci"] = _ci_block(samples)
    res["confusion"] = {f: confusion(es.gold[f], out.pred[f], classes_of(schema, f)) for f in out.pred}
    if out.proba is not None:
        cal = {f: calibration(es.gold[f], out.proba[f], classes_of(schema, f)) for f in out.proba}
        res["calibration"] = cal
        res["ece"] = {"sentiment": cal["sentiment"]["ece"] if "sentiment" in cal else None,
                      "stance": {t: cal[t]["ece"] for t in schema.target_names if t in cal}}
    by_kind = {}
    for g, (gidx, g_idx) in groups.items():
        if len(gidx) == 0:
            continue
        sub = es.subset(gidx)
        sub_pred = {f: [v[i] for i in gidx] for f, v in out.pred.items()}
        entry = {"n": len(gidx), **point_scores(sub.gold, sub_pred, schema)}
        entry["ci"] = _ci_block(resampled_headline(sub.gold, sub_pred, schema.sentiment_classes,
                                                   schema.stance_classes, schema.target_names,
                                                   schema.polar_classes, g_idx))
        by_kind[g] = entry
    res["by_kind"] = by_kind
    return res, samples


def paired_differences(model: dict[str, np.ndarray], base: dict[str, np.ndarray], model_point: dict[str, float],
                       base_point: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Model − baseline on each shared headline key, with a paired percentile bootstrap interval."""
    out = {}
    for k in model:
        if k in base:
            lo, hi = percentile_ci(model[k] - base[k], CI_LEVEL)
            out[k] = {"diff": model_point[k] - base_point[k], "ci": [round(lo, 6), round(hi, 6)]}
    return out


def label_support(es: EvalSet, schema: LabelSchema) -> dict[str, dict[str, int]]:
    return {f: {c: Counter(es.gold[f])[c] for c in classes_of(schema, f)} for f in fields_of(schema)}


def probs_to_labels(proba: dict[str, np.ndarray], schema: LabelSchema) -> dict[str, list[str]]:
    return {f: [classes_of(schema, f)[int(i)] for i in p.argmax(axis=1)] for f, p in proba.items()}


def jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
