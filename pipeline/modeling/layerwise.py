"""Running an encoder in two halves: frozen lower layers once, trainable top layers many times.

Fine-tuning only the top ``k`` transformer layers needs the lower layers' output for every training text
exactly once: :func:`lower_states` computes and caches it, :func:`run_top` runs the remaining layers on a
padded batch of cached states. Together they give the same hidden states as one full forward pass (a test
checks this), so a model trained this way is an ordinary :class:`~pipeline.modeling.model.MultiTaskModel`.
Works for BERT-style encoders (MiniLM) and MPNet (which adds a relative position bias per layer).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from transformers.masking_utils import create_bidirectional_mask


def n_layers(encoder: nn.Module) -> int:
    return len(encoder.encoder.layer)


def _run_layers(encoder: nn.Module, hidden: torch.Tensor, mask: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    ext = create_bidirectional_mask(config=encoder.config, inputs_embeds=hidden, attention_mask=mask)
    enc = encoder.encoder
    extra = {}
    if hasattr(enc, "compute_position_bias"):  # MPNet: relative position bias shared by all layers
        extra["position_bias"] = enc.compute_position_bias(hidden)
    for layer in enc.layer[start:stop]:
        out = layer(hidden, ext, **extra)
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden


def run_top(encoder: nn.Module, hidden: torch.Tensor, mask: torch.Tensor, start: int) -> torch.Tensor:
    """Last hidden states from layer ``start`` onward, given the output of layer ``start`` - 1."""
    return _run_layers(encoder, hidden, mask, start, n_layers(encoder))


def run_lower(encoder: nn.Module, input_ids: torch.Tensor, mask: torch.Tensor, stop: int) -> torch.Tensor:
    """Embeddings and layers ``0 .. stop-1``: the input of layer ``stop``."""
    hidden = encoder.embeddings(input_ids=input_ids)
    return _run_layers(encoder, hidden, mask, 0, stop)


def pad_states(states: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad per-text states ``[len_i, H]`` to ``[B, max_len, H]`` with an attention mask."""
    width = max(s.shape[0] for s in states)
    out = states[0].new_zeros((len(states), width, states[0].shape[1]))
    mask = torch.zeros((len(states), width), dtype=torch.long)
    for i, s in enumerate(states):
        out[i, : s.shape[0]] = s
        mask[i, : s.shape[0]] = 1
    return out, mask


@torch.inference_mode()
def lower_states(encoder: nn.Module, ids: Sequence[list[int]], stop: int, batch_size: int = 32,
                 bf16: bool = False, pad_id: int = 0, progress=None) -> list[torch.Tensor]:  # noqa: ANN001
    """Cached input of layer ``stop`` for each text, ``[len_i, H]`` (bf16 when ``bf16``, else fp32).

    Texts are run in length-sorted batches; ``progress(done, total)`` is called after each batch.
    """
    was_training = encoder.training
    encoder.eval()
    order = np.argsort([len(x) for x in ids], kind="stable")
    out: list[torch.Tensor | None] = [None] * len(ids)
    dtype = torch.bfloat16 if bf16 else torch.float32
    for start in range(0, len(ids), batch_size):
        idx = order[start: start + batch_size]
        width = max(len(ids[i]) for i in idx)
        input_ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            input_ids[row, : len(ids[i])] = torch.tensor(ids[i])
            mask[row, : len(ids[i])] = 1
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            hidden = run_lower(encoder, input_ids, mask, stop)
        for row, i in enumerate(idx):
            out[i] = hidden[row, : len(ids[i])].to(dtype).clone()
        if progress:
            progress(min(start + batch_size, len(ids)), len(ids))
    encoder.train(was_training)
    return out  # type: ignore[return-value]


def _labels_tensor(labels: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(v[idx], dtype=torch.long) for k, v in labels.items()}


def forward_top(model, states: Sequence[torch.Tensor], start: int) -> dict:  # noqa: ANN001
    """MultiTaskModel logits for a batch of cached states (input of layer ``start``)."""
    hidden, mask = pad_states(states)
    top = run_top(model.encoder, hidden, mask, start)
    return model.heads(model.pool(top, mask))


def fit_top(model, states: Sequence[torch.Tensor], labels: dict[str, np.ndarray], start: int, *,  # noqa: ANN001
            epochs: float, batch_size: int, lr: float, head_lr: float, weight_decay: float, warmup_ratio: float,
            class_weights: dict[str, torch.Tensor | None], loss_weights: dict[str, float], bf16: bool, seed: int,
            progress=None, sent_weight: np.ndarray | None = None,  # noqa: ANN001
            label_smoothing: float = 0.0) -> list[float]:
    """Train the layers from ``start`` up and the heads on cached states; returns the loss per step.

    ``labels`` maps ``sentiment`` and ``stance_<target>`` to int arrays (-100 = no label); ``sent_weight``
    optionally weights each example's sentiment loss; ``label_smoothing`` goes to the
    cross-entropies (recipe studies; the product trains with 0). Length-bucketed
    shuffled batches (similar lengths share a batch, so padding stays small), AdamW with separate learning
    rates for the encoder layers and the heads, linear warm-up and decay.
    """
    from transformers import get_linear_schedule_with_warmup

    from pipeline.modeling.model import multitask_loss

    for p in model.encoder.parameters():
        p.requires_grad_(False)
    top_params = [p for layer in model.encoder.encoder.layer[start:] for p in layer.parameters()]
    # MPNet's relative position bias is shared with the frozen lower layers, so it stays frozen too.
    for p in top_params:
        p.requires_grad_(True)
    head_params = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    decay = [p for p in top_params if p.ndim >= 2]
    no_decay = [p for p in top_params if p.ndim < 2]
    groups = [{"params": head_params, "lr": head_lr, "weight_decay": weight_decay}]
    if decay:
        groups += [{"params": decay, "lr": lr, "weight_decay": weight_decay},
                   {"params": no_decay, "lr": lr, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups)
    n = len(states)
    steps_per_epoch = max(1, -(-n // batch_size))
    total = max(1, int(round(steps_per_epoch * epochs)))
    scheduler = get_linear_schedule_with_warmup(optimizer, int(warmup_ratio * total), total)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    lengths = np.array([s.shape[0] for s in states])
    losses: list[float] = []
    model.train()
    step = 0
    while step < total:
        # shuffle, then sort within chunks of 50 batches by length, then shuffle the batches
        perm = rng.permutation(n)
        chunk = batch_size * 50
        perm = np.concatenate([c[np.argsort(lengths[c], kind="stable")] for c in np.array_split(perm, max(1, -(-n // chunk)))])
        batches = [perm[i: i + batch_size] for i in range(0, n, batch_size)]
        for b in rng.permutation(len(batches)):
            if step >= total:
                break
            idx = batches[b]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = forward_top(model, [states[i] for i in idx], start)
            weight = torch.as_tensor(sent_weight[idx], dtype=torch.float) if sent_weight is not None else None
            loss = multitask_loss(out, _labels_tensor(labels, idx), model.targets, class_weights, loss_weights, weight,
                                  label_smoothing)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            step += 1
            if progress:
                progress(step, total, losses[-1])
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    return losses


@torch.inference_mode()
def logits_top(model, states: Sequence[torch.Tensor], start: int, batch_size: int = 64,  # noqa: ANN001
               bf16: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Sentiment logits ``[N, S]`` and stance logits ``[N, T, C]`` for cached states, input order kept."""
    was_training = model.training
    model.eval()
    order = np.argsort([s.shape[0] for s in states], kind="stable")
    sent = np.zeros((len(states), len(model.sentiment_classes)), dtype=np.float32)
    stance = np.zeros((len(states), len(model.targets), len(model.stance_classes)), dtype=np.float32)
    for i in range(0, len(states), batch_size):
        idx = order[i: i + batch_size]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = forward_top(model, [states[j] for j in idx], start)
        sent[idx] = out["sentiment"].float().numpy()
        stance[idx] = torch.stack([out["stance"][t] for t in model.targets], 1).float().numpy()
    model.train(was_training)
    return sent, stance
