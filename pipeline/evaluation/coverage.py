"""Coverage against accuracy: what ``--min-confidence`` trades on the gold set.

At each threshold P a head keeps its label only where its top calibrated probability is at least P (the
rule of :func:`pipeline.inference.abstain.confident`); the rest abstain. Per head and threshold: the
share of gold items still labelled (coverage) and, on those items, accuracy and the head's headline score
(sentiment macro-F1; stance F1avg of the polar classes).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.config.schema import LabelSchema
from pipeline.inference.abstain import confident
from pipeline.metrics import f1_avg, macro_f1

THRESHOLDS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9)


def coverage_table(gold: dict[str, Sequence[str]], proba: dict[str, np.ndarray], schema: LabelSchema,
                   thresholds: Sequence[float] = THRESHOLDS) -> dict[str, list[dict[str, Any]]]:
    """``{head: [{"threshold", "n", "coverage", "accuracy", "score"}, …]}`` for ``sentiment`` and each target.

    Labels are the argmax of ``proba[head]`` (``[N, classes]``, the schema's class order); ``accuracy`` and
    ``score`` are None where no item is kept.
    """
    out: dict[str, list[dict[str, Any]]] = {}
    for head in ["sentiment", *schema.target_names]:
        if head not in proba:
            continue
        p = np.asarray(proba[head], dtype=float)
        classes = schema.sentiment_classes if head == "sentiment" else schema.stance_classes
        pred = np.array(classes)[p.argmax(axis=1)]
        truth = np.asarray(gold[head])
        rows = []
        for threshold in thresholds:
            keep = np.asarray(confident(p.max(axis=1), threshold), dtype=bool)
            n = int(keep.sum())
            yt, yp = truth[keep].tolist(), pred[keep].tolist()
            score = None
            if n:
                score = macro_f1(yt, yp, classes) if head == "sentiment" else f1_avg(yt, yp, schema.polar_classes)
            rows.append({"threshold": float(threshold), "n": n, "coverage": n / len(truth) if len(truth) else 0.0,
                         "accuracy": float(np.mean(truth[keep] == pred[keep])) if n else None, "score": score})
        out[head] = rows
    return out
