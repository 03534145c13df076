"""Scoring one system on the gold set: point scores, thread-level bootstrap intervals, confusion matrices,
calibration, the per-kind breakdown and paired model − baseline differences.

Intervals come from a cluster bootstrap: the gold items of one thread (an article with its comments) are
not independent, so each resample draws whole threads with replacement (:func:`cluster_weights`) and every
item enters with its thread's multiplicity. The resamples are shared by all systems, so model − baseline
differences get paired intervals, and :func:`verdict` words a difference from its interval alone.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
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
    sentiment_scores,
    stance_target_scores,
)

POOLED_STANCE = "stance_pooled"

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


# ---- the thread-level bootstrap ---------------------------------------------------------------------------

def cluster_weights(clusters: Sequence[str], resamples: int, seed: int) -> np.ndarray:
    """``[resamples, n_items]`` bootstrap weights that keep clusters (threads) together.

    Each resample draws as many clusters as there are, with replacement; an item's weight is the number of
    times its cluster was drawn (0 when it was not), so all items of a cluster always share one weight.
    """
    if len(clusters) == 0:
        return np.zeros((resamples, 0), dtype=int)
    uniq, inverse = np.unique(np.asarray(clusters, dtype=str), return_inverse=True)
    g = len(uniq)
    counts = np.random.default_rng(seed).multinomial(g, np.full(g, 1.0 / g), size=resamples)
    return counts[:, inverse.ravel()]


def _weighted_confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int, weights: np.ndarray) -> np.ndarray:
    """Confusion counts ``[B, k, k]`` (rows gold, columns predicted) of each weighted resample."""
    onehot = np.zeros((len(y_true), k * k))
    onehot[np.arange(len(y_true)), y_true * k + y_pred] = 1.0
    return (weights @ onehot).reshape(-1, k, k)


def _f1_per_class(conf: np.ndarray) -> np.ndarray:
    """Per-class F1 ``[B, k]`` from confusion counts (0 where a class is neither gold nor predicted, as sklearn's
    zero_division=0)."""
    tp = np.einsum("bii->bi", conf)
    denom = 2 * tp + (conf.sum(axis=1) - tp) + (conf.sum(axis=2) - tp)  # 2TP + FP + FN
    return np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)


def resampled_scores(gold: dict[str, Sequence[str]], pred: dict[str, Sequence[str]], schema: LabelSchema,
                     weights: np.ndarray) -> dict[str, np.ndarray]:
    """Headline numbers (flat keys) on each weighted resample (rows of ``weights``, one column per item).

    Only the fields present in ``pred`` are scored; the stance score needs every target.
    """
    out: dict[str, np.ndarray] = {}
    if "sentiment" in pred:
        pos = {c: i for i, c in enumerate(schema.sentiment_classes)}
        conf = _weighted_confusion(np.array([pos[v] for v in gold["sentiment"]], dtype=int),
                                   np.array([pos[v] for v in pred["sentiment"]], dtype=int), len(pos), weights)
        out["sentiment_accuracy"] = np.einsum("bii->b", conf) / conf.sum(axis=(1, 2))
        out["sentiment_macro_f1"] = _f1_per_class(conf).mean(axis=1)
    pos = {c: i for i, c in enumerate(schema.stance_classes)}
    polar = [pos[c] for c in schema.polar_classes]
    for t in schema.target_names:
        if t in pred:
            conf = _weighted_confusion(np.array([pos[v] for v in gold[t]], dtype=int),
                                       np.array([pos[v] for v in pred[t]], dtype=int), len(pos), weights)
            out[f"f1_avg.{t}"] = _f1_per_class(conf)[:, polar].mean(axis=1)
    if schema.target_names and all(f"f1_avg.{t}" in out for t in schema.target_names):
        out["stance_score"] = np.mean([out[f"f1_avg.{t}"] for t in schema.target_names], axis=0)
    return out


def _ci_block(samples: dict[str, np.ndarray]) -> dict[str, list[float]]:
    return {k: [round(x, 6) for x in percentile_ci(v, CI_LEVEL)] for k, v in samples.items()}


def verdict(lo: float, hi: float) -> str:
    """The words a paired difference's interval allows: only an interval that excludes 0 says better or worse."""
    if lo > 0:
        return "better (interval excludes 0)"
    if hi < 0:
        return "worse (interval excludes 0)"
    return "not significantly different (interval includes 0)"


# ---- calibration -----------------------------------------------------------------------------------------

def _confidence_and_correct(gold: Sequence[str], proba: np.ndarray, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    pos = {c: i for i, c in enumerate(classes)}
    return proba.max(axis=1), proba.argmax(axis=1) == np.array([pos[g] for g in gold])


def calibration(gold: Sequence[str], proba: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """ECE (equal-width bins on the max probability), the reliability bins and the number of predictions."""
    conf, correct = _confidence_and_correct(gold, proba, classes)
    return {"ece": expected_calibration_error(conf, correct, ECE_BINS),
            "bins": reliability_bins(conf, correct, ECE_BINS), "n": len(conf)}


def pooled_calibration(gold: dict[str, list[str]], proba: dict[str, np.ndarray], targets: list[str],
                       classes: list[str]) -> dict[str, Any]:
    """Calibration of all stance predictions together: one (item, target) pair per prediction."""
    pairs = [_confidence_and_correct(gold[t], proba[t], classes) for t in targets]
    conf = np.concatenate([c for c, _ in pairs])
    correct = np.concatenate([k for _, k in pairs])
    return {"ece": expected_calibration_error(conf, correct, ECE_BINS),
            "bins": reliability_bins(conf, correct, ECE_BINS), "n": len(conf), "targets": list(targets)}


@dataclass
class SystemOutput:
    """One system's predictions on the eval set (and probabilities, when it has them)."""

    name: str
    description: str
    pred: dict[str, list[str]]
    proba: dict[str, np.ndarray] | None = None
    info: dict[str, Any] = field(default_factory=dict)


def score_system(es: EvalSet, out: SystemOutput, schema: LabelSchema, weights: np.ndarray,
                 groups: dict[str, tuple[np.ndarray, np.ndarray]]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Point scores, bootstrap CIs, confusion matrices, calibration and the per-kind breakdown.

    ``weights`` holds the thread-level bootstrap weights of the whole set, ``groups`` each kind group's item
    positions and its own weights (columns = the group's items); both are shared by all systems. Returns the
    JSON-ready result and the bootstrap samples of the headline numbers (for paired comparisons).
    """
    res = {"description": out.description, **out.info, **point_scores(es.gold, out.pred, schema)}
    samples = resampled_scores(es.gold, out.pred, schema, weights)
    res["ci"] = _ci_block(samples)
    res["confusion"] = {f: confusion(es.gold[f], out.pred[f], classes_of(schema, f)) for f in out.pred}
    if out.proba is not None:
        cal = {f: calibration(es.gold[f], out.proba[f], classes_of(schema, f)) for f in out.proba}
        targets = [t for t in schema.target_names if t in cal]
        if targets:
            cal[POOLED_STANCE] = pooled_calibration(es.gold, out.proba, targets, schema.stance_classes)
        res["calibration"] = cal
        res["ece"] = {"sentiment": cal["sentiment"]["ece"] if "sentiment" in cal else None,
                      "stance_pooled": cal[POOLED_STANCE]["ece"] if targets else None,
                      "stance": {t: cal[t]["ece"] for t in targets}}
    by_kind = {}
    for g, (gidx, g_weights) in groups.items():
        if len(gidx) == 0:
            continue
        sub = es.subset(gidx)
        sub_pred = {f: [v[i] for i in gidx] for f, v in out.pred.items()}
        entry = {"n": len(gidx), "threads": len(set(sub.threads)), **point_scores(sub.gold, sub_pred, schema)}
        entry["ci"] = _ci_block(resampled_scores(sub.gold, sub_pred, schema, g_weights))
        by_kind[g] = entry
    res["by_kind"] = by_kind
    return res, samples


def paired_differences(model: dict[str, np.ndarray], base: dict[str, np.ndarray], model_point: dict[str, float],
                       base_point: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Model − baseline on each shared headline key: point difference, paired percentile interval, verdict."""
    out = {}
    for k in model:
        if k in base:
            lo, hi = percentile_ci(model[k] - base[k], CI_LEVEL)
            out[k] = {"diff": model_point[k] - base_point[k], "ci": [round(lo, 6), round(hi, 6)],
                      "verdict": verdict(round(lo, 6), round(hi, 6))}
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
