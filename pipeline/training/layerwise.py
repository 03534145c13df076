"""Training with a frozen lower encoder: top-k layers on cached states, or linear heads on a frozen encoder.

``training.trainable_layers: k`` (k > 0) runs the frozen lower layers once over every training text
(:func:`pipeline.modeling.layerwise.lower_states`) and then trains the top ``k`` layers and the heads on those cached
states for a fixed number of epochs: no dev-set checkpoint selection, so it can train on all the real data.
``trainable_layers: 0`` keeps the whole encoder frozen and fits each head as a logistic regression on the
pooled embeddings (the weights go into the same linear heads). Either way the result is an ordinary
:class:`~pipeline.modeling.model.MultiTaskModel` folder: predict, evaluate, reclassify and ONNX export treat it
like any other model.
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np
import torch
from transformers import set_seed

from pipeline.config.run import RunConfig
from pipeline.modeling.encoding import InputSpec
from pipeline.modeling.layerwise import fit_top, lower_states, n_layers, pad_states, run_top
from pipeline.modeling.model import MultiTaskModel
from pipeline.progress import PlainProgress
from pipeline.training.features import IGNORE, Collator, label_columns
from pipeline.training.run import (
    RunResult,
    build_data,
    save_run,
    score_dev,
    target_statements,
    task_class_weights,
    use_bf16,
)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _progress(label: str, unit: str):  # noqa: ANN202
    """A ``progress(done, total, loss=None)`` callback printing plain lines (:class:`PlainProgress`)."""
    bar: PlainProgress | None = None

    def report(done: int, total: int, loss: float | None = None) -> None:  # noqa: ARG001
        nonlocal bar
        if bar is None:
            bar = PlainProgress(total, label, unit)
        bar.advance(done - bar.done)

    return report


@torch.inference_mode()
def pooled_embeddings(model: MultiTaskModel, states: list[torch.Tensor], start: int, bf16: bool,
                      batch_size: int = 64) -> np.ndarray:
    """Mean-pooled last hidden states (dropout off) for cached inputs of layer ``start``."""
    model.eval()
    order = np.argsort([s.shape[0] for s in states], kind="stable")
    out = np.zeros((len(states), model.encoder.config.hidden_size), dtype=np.float32)
    for i in range(0, len(states), batch_size):
        idx = order[i: i + batch_size]
        hidden, mask = pad_states([states[j] for j in idx])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            top = run_top(model.encoder, hidden, mask, start)
        out[idx] = model.pool(top.float(), mask).numpy()
    return out


def fit_linear_heads(model: MultiTaskModel, X: np.ndarray, labels: dict[str, np.ndarray], C: float,
                     balanced: bool, seed: int) -> None:
    """One multinomial logistic regression per task on ``X``; its weights become the head's weights."""
    from sklearn.linear_model import LogisticRegression

    def fit(head: torch.nn.Linear, y: np.ndarray) -> None:
        keep = y != IGNORE
        clf = LogisticRegression(C=C, class_weight="balanced" if balanced else None, max_iter=3000,
                                 random_state=seed)
        clf.fit(X[keep], y[keep])
        weight = np.zeros(tuple(head.weight.shape), dtype=np.float32)
        bias = np.full(head.out_features, -30.0, dtype=np.float32)  # classes never seen: never predicted
        classes = clf.classes_
        if len(classes) == 2:  # sklearn keeps one row for binary problems: logit difference
            weight[classes[1]], bias[classes[1]] = clf.coef_[0], clf.intercept_[0]
            bias[classes[0]] = 0.0
        else:
            weight[classes], bias[classes] = clf.coef_, clf.intercept_
        with torch.no_grad():
            head.weight.copy_(torch.from_numpy(weight))
            head.bias.copy_(torch.from_numpy(bias))

    fit(model.sentiment_head, labels["sentiment"])
    for t in model.targets:
        fit(model.stance_heads[t], labels[f"stance_{t}"])


def train_layerwise(cfg: RunConfig, progress: bool = True) -> RunResult:
    """Train per ``training.trainable_layers`` (0 or k > 0) and write the model directory."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if cfg.training.num_threads:
        torch.set_num_threads(cfg.training.num_threads)
    set_seed(cfg.seed, deterministic=True)
    schema = cfg.schema()
    spec = InputSpec(**cfg.input.model_dump())
    started = time.time()
    model, tokenizer = MultiTaskModel.from_base(cfg.model.base, schema.sentiment_classes, schema.stance_classes,
                                                schema.target_names, cfg.model.dropout, cfg.model.pooling,
                                                target_statements(cfg, schema))
    if cfg.data.aux.vast.enabled:
        from pipeline.errors import ConfigError

        raise ConfigError("the VAST intermediate stage needs full fine-tuning (training.trainable_layers: null)",
                          key="data.aux.vast.enabled")
    train_ds, devs, _, counts = build_data(cfg, schema, tokenizer, spec, require_dev=False)
    total_layers = n_layers(model.encoder)
    k = cfg.training.trainable_layers or 0
    if k > total_layers:
        from pipeline.errors import ConfigError

        raise ConfigError(f"trainable_layers {k} > the encoder's {total_layers} layers",
                          key="training.trainable_layers")
    start = total_layers - k
    bf16 = use_bf16(cfg)
    ids = train_ds["input_ids"]
    labels = {c: np.array(train_ds[c]) for c in label_columns(schema) if c != "pair_stance"}
    # Each distinct text is run through the frozen layers once, however often it is repeated.
    unique: dict[tuple[int, ...], int] = {}
    slot = [unique.setdefault(tuple(x), len(unique)) for x in ids]
    distinct = [list(x) for x in unique]
    report = _progress("frozen layers", "texts") if progress else None
    t0 = time.time()
    cached = lower_states(model.encoder, distinct, start, batch_size=32, bf16=bf16,
                          pad_id=tokenizer.pad_token_id or 0, progress=report)
    states = [cached[i] for i in slot]
    counts["cache_seconds"] = round(time.time() - t0, 1)
    counts["bf16"] = bf16
    if k == 0:
        _log(f"fitting logistic-regression heads on {len(distinct)} pooled embeddings")
        X = pooled_embeddings(model, cached, start, bf16)
        first = {}
        for i, s in enumerate(slot):  # repeats add nothing to a convex fit: one row per distinct text
            first.setdefault(s, i)
        rows = np.array([first[s] for s in range(len(distinct))])
        fit_linear_heads(model, X, {key: v[rows] for key, v in labels.items()}, cfg.training.heads_C,
                         cfg.training.class_weights == "balanced", cfg.seed)
        losses: list[float] = []
    else:
        t = cfg.training
        losses = fit_top(model, states, labels, start, epochs=t.epochs, batch_size=t.batch_size, lr=t.lr,
                         head_lr=t.head_lr, weight_decay=t.weight_decay, warmup_ratio=t.warmup_ratio,
                         class_weights=task_class_weights(labels, schema, cfg),
                         loss_weights={"sentiment": t.sentiment_loss_weight, "stance": t.stance_loss_weight},
                         bf16=bf16, seed=cfg.seed, progress=_progress("training", "steps") if progress else None)
    model.eval()
    train_seconds = time.time() - started
    collator = Collator(tokenizer, label_columns(schema))
    device = torch.device("cpu")
    dev_metrics = {d.name: score_dev(model, d, schema, collator, device) for d in devs}
    log_history = [{"step": i + 1, "loss": round(v, 5)} for i, v in enumerate(losses)]
    version = save_run(cfg, model, tokenizer, spec, schema, devs, counts, dev_metrics, train_seconds, device,
                       {"trainable_layers": k}, log_history)
    return RunResult(cfg.output_dir, version, dev_metrics, train_seconds, counts)
