"""Headline metrics, shared by model selection during training and by the evaluation report.

Stance uses the SemEval-2016 measure: F1avg = mean of the F1 of ``favor`` and ``against`` (``none``
is predicted and scored as a class, but only the two polar F1s enter the average); the overall stance
score is the mean F1avg over targets.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support


def per_class(y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support for each class (zero_division=0)."""
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=list(classes), zero_division=0)
    return {c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, c in enumerate(classes)}


def macro_f1(y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str]) -> float:
    return float(f1_score(y_true, y_pred, labels=list(classes), average="macro", zero_division=0))


def f1_avg(y_true: Sequence[str], y_pred: Sequence[str], polar: Sequence[str] = ("favor", "against")) -> float:
    """Mean F1 of the polar classes (SemEval-2016 stance measure)."""
    return float(np.mean(f1_score(y_true, y_pred, labels=list(polar), average=None, zero_division=0)))


def sentiment_scores(y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str]) -> dict:
    return {"accuracy": float(accuracy_score(y_true, y_pred)), "macro_f1": macro_f1(y_true, y_pred, classes),
            "per_class": per_class(y_true, y_pred, classes)}


def stance_target_scores(y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str],
                         polar: Sequence[str]) -> dict:
    return {"f1_avg": f1_avg(y_true, y_pred, polar), "macro_f1": macro_f1(y_true, y_pred, classes),
            "per_class": per_class(y_true, y_pred, classes)}


def headline_scores(gold: dict[str, Sequence[str]], pred: dict[str, Sequence[str]], sentiment_classes: Sequence[str],
                    stance_classes: Sequence[str], targets: Sequence[str], polar: Sequence[str]) -> dict:
    """All scores for label columns ``sentiment`` and one per target (lists aligned by item).

    Returns ``{"sentiment": {...}, "stance": {target: {...}}, "stance_score": float,
    "sentiment_macro_f1": float}``.
    """
    sent = sentiment_scores(gold["sentiment"], pred["sentiment"], sentiment_classes)
    stance = {t: stance_target_scores(gold[t], pred[t], stance_classes, polar) for t in targets}
    return {"sentiment": sent, "stance": stance,
            "sentiment_macro_f1": sent["macro_f1"],
            "stance_score": float(np.mean([stance[t]["f1_avg"] for t in targets]))}


def score_labelled(records: Sequence[dict], labels: Sequence[Any], schema: Any) -> dict:
    """:func:`headline_scores` of predicted labels (objects with ``.sentiment`` and ``.stance[target]``, e.g.
    :class:`pipeline.modeling.outputs.Prediction`) against labelled records (``sentiment``, ``stance``)."""
    targets = schema.target_names
    gold: dict[str, list[str]] = {"sentiment": [r["sentiment"] for r in records]}
    pred: dict[str, list[str]] = {"sentiment": [p.sentiment for p in labels]}
    for t in targets:
        gold[t] = [r["stance"][t] for r in records]
        pred[t] = [p.stance[t] for p in labels]
    return headline_scores(gold, pred, schema.sentiment_classes, schema.stance_classes, targets, schema.polar_classes)


# ---- evaluation extras: flat headline keys, confusion, calibration, bootstrap ----------------------------

def headline_flat(scores: dict, targets: Sequence[str]) -> dict[str, float]:
    """The headline numbers of :func:`headline_scores` under flat keys (the keys of ``evaluation.min_scores``):
    ``sentiment_accuracy``, ``sentiment_macro_f1``, ``f1_avg.<target>`` and ``stance_score``."""
    out = {"sentiment_accuracy": scores["sentiment"]["accuracy"], "sentiment_macro_f1": scores["sentiment_macro_f1"]}
    for t in targets:
        out[f"f1_avg.{t}"] = scores["stance"][t]["f1_avg"]
    out["stance_score"] = scores["stance_score"]
    return out


def headline_keys(targets: Sequence[str]) -> list[str]:
    return ["sentiment_accuracy", "sentiment_macro_f1", *(f"f1_avg.{t}" for t in targets), "stance_score"]


def confusion(y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str]) -> list[list[int]]:
    """Confusion counts, rows = gold class, columns = predicted class (both in ``classes`` order)."""
    from sklearn.metrics import confusion_matrix

    if len(y_true) == 0:
        return [[0] * len(classes) for _ in classes]
    return confusion_matrix(list(y_true), list(y_pred), labels=list(classes)).tolist()


def _bin_index(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    # Equal-width bins [0, 1/n), [1/n, 2/n), ..., [(n-1)/n, 1]: the last bin also holds confidence 1.0.
    return np.clip(np.floor(confidence * n_bins).astype(int), 0, n_bins - 1)


def reliability_bins(confidence: Sequence[float], correct: Sequence[bool], n_bins: int = 10) -> list[dict]:
    """Per equal-width confidence bin: range, count, mean confidence and accuracy (None when empty)."""
    conf = np.asarray(confidence, dtype=float)
    corr = np.asarray(correct, dtype=float)
    b = _bin_index(conf, n_bins)
    out = []
    for i in range(n_bins):
        mask = b == i
        n = int(mask.sum())
        out.append({"lo": i / n_bins, "hi": (i + 1) / n_bins, "count": n,
                    "confidence": float(conf[mask].mean()) if n else None,
                    "accuracy": float(corr[mask].mean()) if n else None})
    return out


def expected_calibration_error(confidence: Sequence[float], correct: Sequence[bool], n_bins: int = 10) -> float:
    """ECE = sum over bins of (bin count / N) * |accuracy(bin) - mean confidence(bin)|.

    ``confidence`` is the probability of the predicted class (max probability); ``correct`` whether the
    prediction equals the gold label.
    """
    n = len(confidence)
    if n == 0:
        return float("nan")
    return float(sum(b["count"] / n * abs(b["accuracy"] - b["confidence"])
                     for b in reliability_bins(confidence, correct, n_bins) if b["count"]))


def bootstrap_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """``[resamples, n]`` item indices drawn with replacement (deterministic for a seed)."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _resampled_f1(y_true: np.ndarray, y_pred: np.ndarray, k: int, idx: np.ndarray) -> np.ndarray:
    """Per-class F1 ``[B, k]`` for each row of resample indices (same zero_division=0 rule as sklearn)."""
    b = idx.shape[0]
    flat = (np.arange(b)[:, None] * k * k + y_true[idx] * k + y_pred[idx]).ravel()
    conf = np.bincount(flat, minlength=b * k * k).reshape(b, k, k)
    tp = np.einsum("bii->bi", conf)
    denom = 2 * tp + (conf.sum(axis=1) - tp) + (conf.sum(axis=2) - tp)  # 2TP + FP + FN
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)


def resampled_headline(gold: dict[str, Sequence[str]], pred: dict[str, Sequence[str]],
                       sentiment_classes: Sequence[str], stance_classes: Sequence[str], targets: Sequence[str],
                       polar: Sequence[str], idx: np.ndarray) -> dict[str, np.ndarray]:
    """Headline numbers (flat keys) on each resample ``idx[b]``; vectorised, so 1,000s of resamples are cheap.

    Only the fields present in ``pred`` are scored (a sentiment-only system gets no stance keys); the stance
    score needs every target.
    """
    out: dict[str, np.ndarray] = {}
    if "sentiment" in pred:
        pos = {c: i for i, c in enumerate(sentiment_classes)}
        yt = np.array([pos[v] for v in gold["sentiment"]])
        yp = np.array([pos[v] for v in pred["sentiment"]])
        out["sentiment_accuracy"] = (yt[idx] == yp[idx]).mean(axis=1)
        out["sentiment_macro_f1"] = _resampled_f1(yt, yp, len(pos), idx).mean(axis=1)
    pos = {c: i for i, c in enumerate(stance_classes)}
    polar_idx = [pos[c] for c in polar]
    for t in targets:
        if t in pred:
            yt = np.array([pos[v] for v in gold[t]])
            yp = np.array([pos[v] for v in pred[t]])
            out[f"f1_avg.{t}"] = _resampled_f1(yt, yp, len(pos), idx)[:, polar_idx].mean(axis=1)
    if targets and all(f"f1_avg.{t}" in out for t in targets):
        out["stance_score"] = np.mean([out[f"f1_avg.{t}"] for t in targets], axis=0)
    return out


def percentile_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval."""
    alpha = (1 - level) / 2
    lo, hi = np.quantile(np.asarray(values, dtype=float), [alpha, 1 - alpha])
    return float(lo), float(hi)
