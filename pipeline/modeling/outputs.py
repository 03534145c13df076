"""What the model outputs and how texts are batched for it: the one inference loop.

:class:`Probabilities` / :class:`Prediction` are the model's outputs; :func:`apply_bias` applies fitted
decision biases; :func:`iter_proba` is the batching loop every caller shares (the Predictor with either
backend, decision-bias calibration): tokenised texts sorted by length, padded per batch, one forward
call per batch.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch


@dataclass
class Prediction:
    """Labels and probabilities for one text."""

    sentiment: str
    sentiment_probs: dict[str, float]
    stance: dict[str, str]
    stance_probs: dict[str, dict[str, float]]
    targets: list[str] = field(default_factory=list)  # targets with a non-none stance

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Probabilities:
    """Class probabilities for N texts, in the model's class order."""

    sentiment: np.ndarray  # [N, n_sentiment]
    stance: dict[str, np.ndarray]  # target -> [N, n_stance]


def to_predictions(probs: Probabilities, sentiment_classes: list[str], stance_classes: list[str],
                   targets: list[str], none_class: str = "none") -> list[Prediction]:
    out = []
    for i in range(len(probs.sentiment)):
        s = probs.sentiment[i]
        stance, stance_probs = {}, {}
        for t in targets:
            p = probs.stance[t][i]
            stance[t] = stance_classes[int(p.argmax())]
            stance_probs[t] = {c: round(float(v), 4) for c, v in zip(stance_classes, p)}
        out.append(Prediction(
            sentiment=sentiment_classes[int(s.argmax())],
            sentiment_probs={c: round(float(v), 4) for c, v in zip(sentiment_classes, s)},
            stance=stance, stance_probs=stance_probs,
            targets=[t for t in targets if stance[t] != none_class]))
    return out


def apply_bias(probs: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """Shift log-probabilities by ``bias`` (last axis) and renormalise."""
    if bias is None:
        return probs
    logits = np.log(np.clip(probs, 1e-12, 1.0)) + bias
    logits -= logits.max(axis=-1, keepdims=True)
    out = np.exp(logits)
    return (out / out.sum(axis=-1, keepdims=True)).astype(np.float32)


def softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


def pad_numpy(batch: Sequence[list[int]], pad_id: int, sep_id: int) -> dict[str, np.ndarray]:
    """Right-pad to the longest member: int64 input_ids, attention_mask, token_type_ids.

    Segment ids are BERT-style: 0 up to and including the first [SEP], 1 after it. Training batches
    (:class:`pipeline.training.features.Collator`) and inference batches are padded by this one function.
    """
    lengths = np.fromiter((len(ids) for ids in batch), dtype=np.int64, count=len(batch))
    width = int(lengths.max())
    input_ids = np.full((len(batch), width), pad_id, dtype=np.int64)
    for row, ids in enumerate(batch):
        input_ids[row, : len(ids)] = ids
    positions = np.arange(width)[None, :]
    mask = positions < lengths[:, None]
    is_sep = (input_ids == sep_id) & mask
    first_sep = np.where(is_sep.any(1), is_sep.argmax(1), width)
    types = (positions > first_sep[:, None]) & mask
    return {"input_ids": input_ids, "attention_mask": mask.astype(np.int64),
            "token_type_ids": types.astype(np.int64)}


def batch_bounds(sorted_lengths: np.ndarray, batch_size: int, max_tokens: int | None = None) -> list[tuple[int, int]]:
    """(start, end) of consecutive batches over ascending lengths: at most ``batch_size`` texts, and with
    ``max_tokens`` at most that many padded word pieces (always at least one text)."""
    bounds, start, n = [], 0, len(sorted_lengths)
    while start < n:
        end = min(start + batch_size, n)
        if max_tokens:
            # ascending lengths: the batch start..end-1 is padded to sorted_lengths[end - 1]
            while end - start > 1 and (end - start) * int(sorted_lengths[end - 1]) > max_tokens:
                end = start + max(1, min(end - start - 1, max_tokens // max(int(sorted_lengths[end - 1]), 1)))
        bounds.append((start, end))
        start = end
    return bounds


Forward = Callable[[dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray]]


def iter_proba(ids: Sequence[list[int]], forward: Forward, pad_id: int, sep_id: int, batch_size: int,
               max_tokens: int | None = None) -> Iterator[tuple[np.ndarray, ...]]:
    """Per batch, shortest texts first: (input indices, then each output of ``forward`` for them, e.g.
    sentiment probs [B, S] and stance probs [B, T, C]).

    ``ids`` are the token ids of each text (one batched tokeniser call); they are sorted by length and
    padded per batch, so each batch is about as long as its own texts. Identical inputs (the same token
    ids: a comment posted twice, a page ingested under two URLs, the same sentence in two items' evidence)
    go through the model once; every copy gets its outputs, in the batch of the first.
    """
    if len(ids) == 0:
        return
    first: dict[bytes, int] = {}  # token ids as int32 bytes: half the memory of a tuple of ints
    rep = np.fromiter((first.setdefault(np.asarray(x, dtype=np.int32).tobytes(), i) for i, x in enumerate(ids)),
                      dtype=np.int64, count=len(ids))
    del first
    unique = np.flatnonzero(rep == np.arange(len(ids)))
    copies: dict[int, list[int]] = {}
    if len(unique) < len(ids):
        for i in np.flatnonzero(rep != np.arange(len(ids))):
            copies.setdefault(int(rep[i]), []).append(int(i))
    lengths = np.fromiter((len(ids[i]) for i in unique), dtype=np.int64, count=len(unique))
    order = unique[np.argsort(lengths, kind="stable")]
    with torch.inference_mode():
        for start, end in batch_bounds(np.sort(lengths, kind="stable"), batch_size, max_tokens):
            idx = order[start:end]
            outputs = forward(pad_numpy([ids[i] for i in idx], pad_id, sep_id))
            if not copies:
                yield (idx, *outputs)
                continue
            rows = np.array([k for k, i in enumerate(idx) for _ in range(1 + len(copies.get(int(i), ())))])
            idx = np.array([j for i in idx for j in (int(i), *copies.get(int(i), ()))], dtype=np.int64)
            # a text repeated 100,000 times must not make one 100,000-item batch for the caller to commit
            for k in range(0, len(idx), batch_size):
                yield (idx[k:k + batch_size], *(o[rows[k:k + batch_size]] for o in outputs))


def torch_forward(model: torch.nn.Module, device: torch.device, autocast: bool = False,
                  sentiment_temperature: float = 1.0, stance_temperature: float = 1.0) -> Forward:
    """The forward of a :class:`~pipeline.modeling.model.MultiTaskModel`: probabilities ``softmax(logits / T)``."""

    def forward(batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        tensors = {k: torch.from_numpy(v).to(device) for k, v in batch.items()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            out = model(**tensors)
        sent = torch.softmax(out["sentiment"].float() / sentiment_temperature, -1).cpu().numpy()
        stance = torch.softmax(torch.stack([out["stance"][t] for t in model.targets], 1).float()
                               / stance_temperature, -1).cpu().numpy()
        return sent, stance

    return forward


def collect(batches: Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]], n: int, n_sentiment: int,
            targets: list[str], n_stance: int) -> Probabilities:
    """Gather :func:`iter_proba` batches back into input order."""
    sent = np.zeros((n, n_sentiment), dtype=np.float32)
    stance = np.zeros((n, len(targets), n_stance), dtype=np.float32)
    for idx, s, st in batches:
        sent[idx] = s
        stance[idx] = st
    return Probabilities(sent, {t: stance[:, j] for j, t in enumerate(targets)})
