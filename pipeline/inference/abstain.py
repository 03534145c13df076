"""Abstaining: a head whose top calibrated probability is below a minimum confidence says ``abstain``.

``--min-confidence P`` (predict, reclassify, trends) keeps a head's label only when the probability of its
top class (calibrated: the Predictor applies the model folder's temperatures) is at least ``P``; otherwise
the label becomes :data:`ABSTAIN`. ``P = 0`` (or None) changes nothing, ``P = 1`` abstains on every
head (no model probability is certain). The class probabilities stay in the record, so the model's own
guess is still there; stored predictions always keep the model's labels, and abstaining is applied to
what is shown or exported, so a different threshold never needs a new run.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np

from pipeline.config.schema import ABSTAIN_LABEL
from pipeline.errors import UserError

ABSTAIN = ABSTAIN_LABEL


def check_min_confidence(value: float | None, where: str = "--min-confidence") -> float | None:
    """``value`` if it is None or in [0, 1]; a one-line UserError otherwise."""
    if value is None:
        return None
    if not 0.0 <= float(value) <= 1.0:
        raise UserError(f"{where} {value:g}: a probability between 0 and 1")
    return float(value)


def confident(top_probability: float | np.ndarray, min_confidence: float | None) -> bool | np.ndarray:
    """Whether a label with this top probability is kept (vectorised over arrays)."""
    top = np.asarray(top_probability, dtype=float)
    if min_confidence is None or min_confidence <= 0:
        keep = np.ones(top.shape, dtype=bool)
    elif min_confidence >= 1:
        keep = np.zeros(top.shape, dtype=bool)
    else:
        keep = top >= min_confidence
    return bool(keep) if keep.ndim == 0 else keep


def _head(head: dict[str, Any], min_confidence: float) -> None:
    top = max(head["probs"].values()) if head.get("probs") else head.get("prob", 0.0)
    if not confident(top, min_confidence):
        head["label"] = ABSTAIN
        head["prob"] = float(top)


def apply_min_confidence(record: Mapping[str, Any], min_confidence: float | None) -> dict[str, Any]:
    """A copy of a prediction record (:func:`pipeline.store.records.prediction_record`) in which every head
    (``sentiment`` and each ``stance[target]``) whose top probability is below ``min_confidence`` has the
    label :data:`ABSTAIN`; ``prob`` is then that top probability, ``probs`` are unchanged. The input is
    not modified; None or 0 returns an equal copy."""
    out = copy.deepcopy(dict(record))
    if min_confidence is None or min_confidence <= 0:
        return out
    _head(out["sentiment"], min_confidence)
    for head in out["stance"].values():
        _head(head, min_confidence)
    return out
