"""Label shares corrected for classifier error: adjusted classify-and-count with bootstrap intervals.

A classifier that over-predicts a class inflates its share. With ``M[i, j] = P(predicted i | true j)``,
the expected share of predictions is ``q = M p``; the adjusted estimate solves that for the true shares
``p`` (ACC, Forman 2008; with mean predicted probabilities instead of counts PACC, Bella et al. 2010).
``M`` comes from out-of-fold predictions on labelled real items (:class:`ErrorTable`, carried by the
model folder as its out-of-fold table). quapy does the estimation (``ACC`` / ``PACC`` class-conditional
rates, ``ACC.solve_adjustment``, the ``clip`` normalisation onto the simplex).

Intervals are percentile bootstraps that redraw both sources of error in every replicate: the items
(clusters, i.e. threads, drawn with replacement, then items within each drawn thread) and the
out-of-fold table (url clusters, likewise), so they cover the uncertainty of the misclassification
rates as well as the sampling of items. The correction assumes the rates measured on the labelled
items hold for the items being counted (prior shift only). Error rates differ by kind of text (reader
comments against article paragraphs), so when the table records each passage's kind the shares are
corrected per stratum (:func:`estimate_stratified`) with that stratum's rates and then combined by the
strata's item counts.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

METHODS = ("acc", "pacc")  # corrected estimators; "cc" (classify and count) is the raw share
STRATA = ("comment", "other")  # reader comments and replies; article, opinion and report passages
# A stratum's column of M (how true class j is predicted) needs this many labelled items of class j there;
# with fewer (reader comments hold 3 nqsw_access favor passages) the column measured on all kinds is used.
MIN_PER_CLASS = 20


def stratum_of(kind: str | None) -> str:
    """The error-rate stratum of a passage kind (domain_real: comment / opinion / report) or a store item
    kind (comment / reply / paragraph)."""
    return "comment" if kind in ("comment", "reply") else "other"


@dataclass(frozen=True)
class ErrorTable:
    """Out-of-fold predictions of one task on labelled items: true class index, predicted probabilities
    (in ``classes`` order), the cluster (url) and, when known, the stratum (:data:`STRATA`) of every item."""

    classes: list[str]
    true: np.ndarray  # (m,) int
    probs: np.ndarray  # (m, k)
    groups: np.ndarray  # (m,) int
    strata: np.ndarray | None = None  # (m,) str

    def subset(self, keep: np.ndarray) -> ErrorTable:
        strata = self.strata[keep] if self.strata is not None else None
        return ErrorTable(self.classes, self.true[keep], self.probs[keep], self.groups[keep], strata)


def abstains(probs: np.ndarray, min_confidence: float | None) -> np.ndarray:
    """True where the item abstains for this task: its top probability is below ``min_confidence`` (the
    shared rule of ``--min-confidence``, :func:`pipeline.inference.abstain.confident`)."""
    from pipeline.inference.abstain import confident

    probs = np.asarray(probs, dtype=float)
    if len(probs) == 0:
        return np.zeros(0, dtype=bool)
    return ~np.asarray(confident(probs.max(axis=-1), min_confidence), dtype=bool).reshape(len(probs))


def predicted(probs: np.ndarray, method: str) -> np.ndarray:
    """What is counted per item: one-hot of the top class (``cc`` / ``acc``) or the probabilities (``pacc``)."""
    probs = np.asarray(probs, dtype=float)
    if method == "pacc":
        return probs
    return np.eye(probs.shape[1])[probs.argmax(axis=1)]


def observed_shares(counted: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Mean of ``counted`` rows: (k,), or (B, k) for bootstrap ``weights`` (B, n)."""
    if weights is None:
        return counted.mean(axis=0)
    return (weights @ counted) / weights.sum(axis=1, keepdims=True)


def misclassification_rates(table: ErrorTable, method: str, weights: np.ndarray | None = None) -> np.ndarray:
    """``M[i, j] = P(predicted i | true j)`` estimated on the table: quapy's ACC (counts) or PACC (mean
    probabilities) estimate, (k, k); with bootstrap ``weights`` (B, m) the same per replicate, (B, k, k).
    A class with no labelled item gets the identity column (no correction for it), as in quapy."""
    k = len(table.classes)
    if weights is None:
        from quapy.method.aggregative import ACC, PACC

        classes = np.arange(k)
        if method == "acc":
            return ACC.getPteCondEstim(classes, table.true, table.probs.argmax(axis=1))
        return PACC.getPteCondEstim(classes, table.true, np.asarray(table.probs, dtype=float))
    counted = predicted(table.probs, method)  # (m, k)
    onehot_true = np.eye(k)[table.true]  # (m, k)
    joint = np.stack([weights[:, table.true == j] @ counted[table.true == j] for j in range(k)], axis=2)  # (B, i, j)
    per_class = weights @ onehot_true  # (B, k)
    rates = joint / np.where(per_class > 0, per_class, 1.0)[:, None, :]
    empty = per_class == 0
    if empty.any():
        b_idx, j_idx = np.nonzero(empty)
        rates[b_idx, :, j_idx] = 0.0
        rates[b_idx, j_idx, j_idx] = 1.0
    return rates


def adjust(q: np.ndarray, rates: np.ndarray) -> np.ndarray:
    """True shares from observed shares ``q`` and rates ``M``: quapy's ACC adjustment (solve ``q = M p``
    exactly, falling back to ``q`` for a singular ``M``), then clipped to [0, 1] and renormalised. ``q`` (B, k)
    with ``rates`` (B, k, k) solves every bootstrap replicate at once (the same exact solve)."""
    import quapy.functional as F
    from quapy.method.aggregative import ACC

    q, rates = np.asarray(q, dtype=float), np.asarray(rates, dtype=float)
    if q.ndim == 1:
        p = ACC.solve_adjustment(rates, q, method="inversion", solver="exact-cc")
    else:
        try:
            p = np.linalg.solve(rates, q[..., None])[..., 0]
        except np.linalg.LinAlgError:
            p = np.array([ACC.solve_adjustment(r, x, method="inversion", solver="exact-cc") for r, x in zip(rates, q)])
    return F.normalize_prevalence(np.asarray(p, dtype=float), method="clip")


def cluster_weights(groups: Sequence[Any], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Two-stage cluster bootstrap as item counts (n_boot, n): clusters drawn with replacement, then the
    items of each drawn cluster drawn with replacement (so a single cluster still varies)."""
    _, codes = np.unique(np.asarray(groups), return_inverse=True)
    n_clusters = int(codes.max()) + 1 if len(codes) else 0
    if not n_clusters:
        return np.zeros((n_boot, 0))
    n = len(codes)
    order = np.argsort(codes, kind="stable")  # items of cluster c: order[starts[c]:starts[c] + sizes[c]]
    sizes = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    chosen = rng.integers(0, n_clusters, size=(n_boot, n_clusters)).ravel()  # stage 1: clusters
    per_draw = sizes[chosen]
    cluster = np.repeat(chosen, per_draw)  # stage 2: as many item draws as the cluster has items
    item = order[starts[cluster] + (rng.random(len(cluster)) * sizes[cluster]).astype(int)]
    replicate = np.repeat(np.repeat(np.arange(n_boot), n_clusters), per_draw)
    return np.bincount(replicate * n + item, minlength=n_boot * n).reshape(n_boot, n).astype(float)


@dataclass(frozen=True)
class Rates:
    """Misclassification rates of one table for one method: the estimate (k, k) and bootstrap draws (B, k, k)."""

    method: str
    point: np.ndarray
    draws: np.ndarray


def table_rates(table: ErrorTable, method: str, n_boot: int, rng: np.random.Generator,
                weights: np.ndarray | None = None) -> Rates:
    """Rates of ``table`` and their cluster-bootstrap draws (``weights`` (B, m) to reuse a draw of the table)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}")
    weights = cluster_weights(table.groups, n_boot, rng) if weights is None else weights
    return Rates(method, misclassification_rates(table, method), misclassification_rates(table, method, weights))


def rates_by_stratum(table: ErrorTable, method: str, n_boot: int, rng: np.random.Generator,
                     weights: np.ndarray | None = None, min_per_class: int = MIN_PER_CLASS,
                     names: Sequence[str] | None = None) -> dict[str, Rates]:
    """Rates of every stratum of ``table``, or of ``names`` (one shared bootstrap draw of the table,
    ``weights`` (B, m)); a class with fewer than ``min_per_class`` labelled items in a stratum keeps the
    column pooled over all, so a stratum the table lacks gets the pooled rates."""
    weights = cluster_weights(table.groups, n_boot, rng) if weights is None else weights
    pooled = table_rates(table, method, n_boot, rng, weights)
    out: dict[str, Rates] = {}
    for name in names if names is not None else dict.fromkeys(table.strata.tolist()):
        sel = table.strata == name
        if not sel.any():
            out[name] = pooled
            continue
        own = table_rates(table.subset(sel), method, n_boot, rng, weights[:, sel])
        few = np.bincount(table.true[sel], minlength=len(table.classes)) < min_per_class
        point, draws = own.point.copy(), own.draws.copy()
        point[:, few], draws[:, :, few] = pooled.point[:, few], pooled.draws[:, :, few]
        out[name] = Rates(method, point, draws)
    return out


@dataclass
class Estimate:
    """Shares of one task in one sample (a period): raw (classify and count) and corrected, with 95 %
    intervals (rows: low, high); ``share`` and ``ci`` are None without misclassification rates."""

    n: int
    n_clusters: int
    share_raw: np.ndarray
    raw_ci: np.ndarray  # (2, k)
    share: np.ndarray | None = None
    ci: np.ndarray | None = None  # (2, k)


def _percentiles(draws: np.ndarray, level: float) -> np.ndarray:
    alpha = (1 - level) / 2
    return np.quantile(draws, [alpha, 1 - alpha], axis=0)


def _raw_estimate(probs: np.ndarray, clusters: Sequence[Any], weights: np.ndarray, level: float) -> Estimate:
    """The classify-and-count share of ``probs`` and its interval over the bootstrap ``weights``."""
    crisp = predicted(probs, "cc")
    return Estimate(len(probs), len(set(clusters)), observed_shares(crisp),
                    _percentiles(observed_shares(crisp, weights), level))


def estimate_shares(probs: np.ndarray, clusters: Sequence[Any], rates: Rates | None, n_boot: int = 1000,
                    rng: np.random.Generator | None = None, level: float = 0.95) -> Estimate:
    """Raw and corrected shares of the classes for items with predicted ``probs`` (n, k) in ``clusters``
    (threads). Replicate ``b`` pairs the ``b``-th redraw of the items with ``rates.draws[b]``, so the
    interval covers both; ``rates`` None gives the raw share and its interval only."""
    rng = rng if rng is not None else np.random.default_rng(0)
    probs = np.asarray(probs, dtype=float)
    k = probs.shape[1]
    if len(probs) == 0:
        nan = np.full(k, np.nan)
        empty = Estimate(0, 0, nan, np.vstack([nan, nan]))
        if rates is not None:
            empty.share, empty.ci = nan.copy(), np.vstack([nan, nan])
        return empty
    weights = cluster_weights(clusters, n_boot, rng)
    est = _raw_estimate(probs, clusters, weights, level)
    if rates is None:
        return est
    counted = predicted(probs, rates.method)
    est.share = adjust(observed_shares(counted), rates.point)
    est.ci = _percentiles(adjust(observed_shares(counted, weights), rates.draws[:n_boot]), level)
    return est


def estimate_stratified(probs: np.ndarray, clusters: Sequence[Any], strata: Sequence[str],
                        rates: dict[str, Rates], n_boot: int = 1000, rng: np.random.Generator | None = None,
                        level: float = 0.95) -> Estimate:
    """As :func:`estimate_shares`, but each stratum's share is corrected with its own ``rates[stratum]`` and
    the corrected shares are combined weighted by the strata's item counts (in every bootstrap replicate,
    the replicate's counts: threads hold both article paragraphs and comments, so one thread draw moves
    both strata)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    probs = np.asarray(probs, dtype=float)
    strata = np.asarray(strata)
    if len(probs) == 0:
        return estimate_shares(probs, clusters, next(iter(rates.values())), n_boot, rng, level)
    weights = cluster_weights(clusters, n_boot, rng)
    est = _raw_estimate(probs, clusters, weights, level)
    k = probs.shape[1]
    point, draws = np.zeros(k), np.zeros((n_boot, k))
    total = weights.sum(axis=1)
    for name in dict.fromkeys(strata.tolist()):
        r = rates[name]
        idx = strata == name
        counted = predicted(probs[idx], r.method)
        point += idx.mean() * adjust(observed_shares(counted), r.point)
        w = weights[:, idx]
        n_w = w.sum(axis=1)
        drawn = n_w > 0  # a replicate may draw no item of this stratum: it then weighs nothing
        part = np.zeros((n_boot, k))
        part[drawn] = adjust(observed_shares(counted, w[drawn]), r.draws[:n_boot][drawn])
        draws += (n_w / total)[:, None] * part
    est.share, est.ci = point, _percentiles(draws, level)
    return est


def error_tables(oof: dict[str, Any], meta: dict[str, Any]) -> dict[str, ErrorTable]:
    """Error tables per task (``sentiment`` and each target) from a model folder's out-of-fold table, with
    the model's current decision biases applied (the table holds probabilities after temperature)."""
    from pipeline.modeling.outputs import apply_bias

    bias = meta.get("decision_bias") or {}
    groups = np.asarray(oof["groups"], dtype=int)
    kinds = oof.get("kinds")  # tables written before kinds were recorded have none: rates pooled over kinds
    strata = np.array([stratum_of(k) for k in kinds]) if kinds else None
    out: dict[str, ErrorTable] = {}
    sent = oof["sentiment"]
    probs = np.asarray(sent["probs"], dtype=float)
    if "sentiment" in bias:
        probs = apply_bias(probs, np.asarray(bias["sentiment"], dtype=float))
    out["sentiment"] = ErrorTable(list(sent["classes"]), np.asarray(sent["true"], dtype=int), probs, groups, strata)
    targets = list(meta.get("targets") or oof["stance"])
    for t, task in oof["stance"].items():
        probs = np.asarray(task["probs"], dtype=float)
        if "stance" in bias and t in targets:
            probs = apply_bias(probs, np.asarray(bias["stance"][targets.index(t)], dtype=float))
        out[t] = ErrorTable(list(task["classes"]), np.asarray(task["true"], dtype=int), probs, groups, strata)
    return out
