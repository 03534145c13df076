"""What to label next: rank unlabelled items by how much labelling them would teach the model.

Uncertainty is measured per head on the calibrated probabilities (the Predictor applies the model folder's
temperatures and decision biases). For each head (sentiment, and the stance head of every target) the
*margin* is the top probability minus the runner-up; an item's **score** is ``1 - smallest margin over
its heads``, so an item is as uncertain as its least sure head, and the reason names that head
(``stance:ofsted margin 0.04``). Scores lie in [0, 1]; higher = more informative.

Strategies (:data:`STRATEGIES`):

- ``uncertainty``: the N highest scores.
- ``diverse``: k-means (k = N) over the pooled embeddings of the ``pool_factor × N`` most uncertain items;
  the most uncertain item of each cluster is picked, so near-duplicates do not crowd the batch.
- ``random``: N items drawn uniformly with the seed (the baseline).

Whatever the strategy, the chosen items come back most informative first (score descending, ties by
item id). :func:`rank_items` is the plain function (the annotator orders its items with it);
:func:`suggest_from_store` adds reading the store and the label files.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import UserError
from pipeline.modeling.outputs import Prediction, Probabilities, to_predictions
from pipeline.store.records import prediction_record

STRATEGIES = ("uncertainty", "diverse", "random")
POOL_FACTOR = 4


# ---- scoring and selection on arrays (shared by the product and scripts/active_learning_study.py) ---------

def head_margins(sentiment: np.ndarray, stance: np.ndarray) -> np.ndarray:
    """``[N, 1 + T]`` top-1 minus top-2 probability of the sentiment head then each stance head.

    Args:
        sentiment: ``[N, S]`` probabilities.
        stance: ``[N, T, C]`` probabilities (targets in model order).
    """
    sentiment = np.asarray(sentiment, dtype=float)
    stance = np.asarray(stance, dtype=float)
    return np.column_stack([_margin(sentiment)] + [_margin(stance[:, j]) for j in range(stance.shape[1])])


def _margin(p: np.ndarray) -> np.ndarray:
    top2 = np.sort(p, axis=-1)[..., -2:]
    return top2[..., 1] - top2[..., 0]


def uncertainty_scores(sentiment: np.ndarray, stance: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(score ``[N]`` = 1 − smallest head margin, index of that head ``[N]``, all margins ``[N, 1 + T]``)."""
    margins = head_margins(sentiment, stance)
    if len(margins) == 0:
        return np.zeros(0), np.zeros(0, dtype=int), margins
    worst = margins.argmin(axis=1)
    return 1.0 - margins[np.arange(len(margins)), worst], worst, margins


def order_by_score(index: Iterable[int], scores: np.ndarray, keys: Sequence[str]) -> list[int]:
    """``index`` sorted by score descending, ties broken by ``keys`` (item ids) ascending."""
    return sorted((int(i) for i in index), key=lambda i: (-float(scores[i]), keys[i]))


def select(strategy: str, scores: np.ndarray, n: int, keys: Sequence[str], seed: int = 0,
           embed: Callable[[np.ndarray], np.ndarray] | None = None, pool_factor: int = POOL_FACTOR) -> list[int]:
    """Indices of the ``n`` items a strategy picks, most informative first.

    Args:
        strategy: One of :data:`STRATEGIES`.
        scores: Uncertainty score per item (:func:`uncertainty_scores`).
        n: How many to pick (all items when ``n`` ≥ their number).
        keys: Item ids, for deterministic tie-breaking.
        seed: Seeds ``random`` and the k-means of ``diverse``.
        embed: For ``diverse``: item indices → their embeddings ``[len(index), D]``.
        pool_factor: ``diverse`` clusters the ``pool_factor × n`` most uncertain items.
    """
    if strategy not in STRATEGIES:
        raise UserError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    total = len(scores)
    n = min(int(n), total)
    if n <= 0:
        return []
    if strategy == "random":
        rng = np.random.default_rng(seed)
        return order_by_score(rng.choice(total, size=n, replace=False), scores, keys)
    ranked = order_by_score(range(total), scores, keys)
    if strategy == "uncertainty":
        return ranked[:n]
    pool = np.array(ranked[: min(total, max(pool_factor, 1) * n)])
    if len(pool) <= n:
        return [int(i) for i in pool]
    if embed is None:
        raise ValueError("the diverse strategy needs an embed function")
    return order_by_score(diverse_pick(pool, scores, embed(pool), n, seed), scores, keys)


def diverse_pick(pool: np.ndarray, scores: np.ndarray, embeddings: np.ndarray, n: int, seed: int) -> list[int]:
    """One item per k-means cluster (k = n) of the pool's L2-normalised embeddings: the cluster's most
    uncertain item (``pool`` is ordered most uncertain first, so the first member found wins)."""
    from sklearn.cluster import KMeans

    X = np.asarray(embeddings, dtype=np.float64)
    X = X / np.clip(np.linalg.norm(X, axis=1, keepdims=True), 1e-12, None)
    clusters = KMeans(n_clusters=n, n_init=4, random_state=seed).fit_predict(X)
    picked: dict[int, int] = {}
    for pos, cluster in enumerate(clusters):
        picked.setdefault(int(cluster), int(pool[pos]))
    out = list(picked.values())
    if len(out) < n:  # k-means may leave a cluster empty on duplicate points: top up by uncertainty
        chosen = set(out)
        out += [int(i) for i in pool if int(i) not in chosen][: n - len(out)]
    return out


# ---- the product: a Predictor over items ------------------------------------------------------------------

@dataclass
class Suggestion:
    """One item to label: its rank, score, the least sure head and the model's prediction."""

    rank: int
    item_id: str
    score: float
    head: str
    margin: float
    prediction: Prediction
    item: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def reason(self) -> str:
        return f"{self.head} margin {self.margin:.2f}"

    def to_dict(self, strategy: str, model_version: str, with_text: bool = True) -> dict[str, Any]:
        """The suggestion fields, then the prediction record (:func:`pipeline.store.records.prediction_record`)."""
        out: dict[str, Any] = {"rank": self.rank, "score": round(self.score, 4), "reason": self.reason,
                               "head": self.head, "margin": round(self.margin, 4), "strategy": strategy}
        out.update(prediction_record(self.item, self.prediction, model_version, with_text=with_text))
        return out


def _fields(item: Any) -> dict[str, Any]:
    """An item dict (``item_id``, ``text``, optional ``parent_text``) from a dict or an annotation ItemContext."""
    if isinstance(item, dict):
        return item
    return {**item.item, "parent_text": getattr(item, "parent_text", None)}


def pooled_embeddings(predictor: Any, texts: Sequence[str], parents: Sequence[str | None] | None = None,
                      batch_size: int = 32) -> np.ndarray:
    """The model's mean-pooled encodings (what its heads read) of ``texts``, fp32, through the shared
    inference loop (:func:`pipeline.modeling.outputs.iter_proba`)."""
    import torch

    from pipeline.modeling.encoding import special_ids
    from pipeline.modeling.outputs import iter_proba

    model = getattr(predictor, "model", None)
    if model is None:
        raise UserError("the diverse strategy needs the torch backend (it reads the model's pooled embeddings)")
    device = predictor.device

    def forward(batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        tensors = {k: torch.from_numpy(v).to(device) for k, v in batch.items()}
        with torch.inference_mode(), predictor.autocast():
            pooled = model.encode(**tensors).float().cpu().numpy()
        return pooled, pooled[:, :0]

    ids = predictor.encode(texts, parents)
    out = np.zeros((len(texts), model.encoder.config.hidden_size), dtype=np.float32)
    for idx, pooled, _ in iter_proba(ids, forward, predictor.tokenizer.pad_token_id or 0,
                                     special_ids(predictor.tokenizer)[1], batch_size):
        out[idx] = pooled
    return out


def rank_items(predictor: Any, items: Sequence[Any], n: int | None = None, strategy: str = "uncertainty",
               seed: int = 0, pool_factor: int = POOL_FACTOR,
               progress: Callable[[int, int], None] | None = None) -> list[Suggestion]:
    """The ``n`` items (all when None) that ``strategy`` would have labelled next, most informative first.

    Args:
        predictor: A :class:`pipeline.inference.predict.Predictor`.
        items: Item dicts with ``item_id``, ``text`` and optionally ``parent_text``, or
            :class:`pipeline.data.selection.ItemContext` objects. Pass only unlabelled items.
        n, strategy, seed, pool_factor: See :func:`select`.
        progress: Called with (items classified so far, total) after every batch.
    """
    if strategy not in STRATEGIES:
        raise UserError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    rows = [_fields(i) for i in items]
    if not rows:
        return []
    texts = [r["text"] for r in rows]
    parents = [r.get("parent_text") for r in rows] if predictor.spec.include_parent else None
    sent = np.zeros((len(rows), len(predictor.sentiment_classes)), dtype=np.float64)
    stance = np.zeros((len(rows), len(predictor.targets), len(predictor.stance_classes)), dtype=np.float64)
    done = 0
    for idx, s, st in predictor.iter_proba(texts, parents):
        sent[idx], stance[idx] = s, st
        done += len(idx)
        if progress:
            progress(done, len(rows))
    scores, worst, margins = uncertainty_scores(sent, stance)
    keys = [str(r["item_id"]) for r in rows]

    def embed(index: np.ndarray) -> np.ndarray:
        return pooled_embeddings(predictor, [texts[i] for i in index],
                                 [parents[i] for i in index] if parents else None)

    chosen = select(strategy, scores, len(rows) if n is None else n, keys, seed, embed, pool_factor)
    heads = ["sentiment", *(f"stance:{t}" for t in predictor.targets)]
    picked = np.array(chosen, dtype=int)
    preds = to_predictions(Probabilities(sent[picked], {t: stance[picked, j] for j, t in enumerate(predictor.targets)}),
                           predictor.sentiment_classes, predictor.stance_classes, predictor.targets,
                           predictor.none_class)
    return [Suggestion(rank=rank, item_id=keys[i], score=float(scores[i]), head=heads[int(worst[i])],
                       margin=float(margins[i, worst[i]]), prediction=pred, item=rows[i])
            for rank, (i, pred) in enumerate(zip(chosen, preds), start=1)]


def ranked_ids(predictor: Any, items: Sequence[Any], n: int | None = None, strategy: str = "uncertainty",
               seed: int = 0) -> list[tuple[str, float]]:
    """``[(item_id, score), …]`` most informative first: :func:`rank_items` without the labels."""
    return [(s.item_id, s.score) for s in rank_items(predictor, items, n, strategy, seed)]


# ---- store + label files ---------------------------------------------------------------------------------

def labelled_item_ids(label_files: Iterable[str | Path], warn: Callable[[str], None] | None = None) -> set[str]:
    """Item ids with a line in any of the label files (each must exist; a malformed line is a UserError
    naming file:line, a cut-short last line goes to ``warn``: :func:`pipeline.data.labels.read_labelled_ids`)."""
    from pipeline.data.labels import read_labelled_ids

    out: set[str] = set()
    for path in label_files:
        if not Path(path).is_file():
            raise UserError("label file not found", path)
        out |= read_labelled_ids(path, warn)
    return out


def unlabelled_items(store: Any, labelled: set[str], filters: dict[str, set[str]] | None = None) -> list[Any]:
    """Store items (as :class:`~pipeline.data.selection.ItemContext`, in thread order) without a label."""
    from pipeline.data.selection import select_items

    return [c for c in select_items(store, filters) if c.item_id not in labelled]
