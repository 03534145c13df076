"""Decision biases fitted on a dev set: additive log-probability offsets per class.

Stance: for each target one offset on the ``none`` class, chosen to maximise F1avg (mean F1 of
favor/against) on the dev set; sentiment: offsets on every class but the first, chosen to maximise
macro-F1. Offsets are searched on a grid, ties broken toward zero, so an uninformative dev set leaves
the model unchanged. ``softmax(log p + b)`` keeps the outputs proper probabilities.
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from pipeline.metrics import f1_avg, macro_f1, score_labelled
from pipeline.modeling.outputs import Probabilities, apply_bias, to_predictions

GRID = np.round(np.arange(-2.0, 2.01, 0.25), 2)


def fit_stance_bias(probs: np.ndarray, gold: Sequence[str], classes: Sequence[str], none_class: str,
                    polar: Sequence[str]) -> np.ndarray:
    """One offset on the ``none`` column maximising F1avg on ``gold``."""
    none_idx = list(classes).index(none_class)
    best, best_key = np.zeros(len(classes)), None
    for b in GRID:
        bias = np.zeros(len(classes))
        bias[none_idx] = b
        pred = [classes[i] for i in apply_bias(probs, bias).argmax(-1)]
        key = (round(f1_avg(gold, pred, polar), 6), -abs(b))
        if best_key is None or key > best_key:
            best, best_key = bias, key
    return best


def fit_sentiment_bias(probs: np.ndarray, gold: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """Offsets on classes 1.. (class 0 fixed at 0) maximising macro-F1 on ``gold``."""
    best, best_key = np.zeros(len(classes)), None
    for combo in itertools.product(GRID, repeat=len(classes) - 1):
        bias = np.array([0.0, *combo])
        pred = [classes[i] for i in apply_bias(probs, bias).argmax(-1)]
        key = (round(macro_f1(gold, pred, classes), 6), -float(np.abs(bias).sum()))
        if best_key is None or key > best_key:
            best, best_key = bias, key
    return best


def raw_probabilities(model_dir, records: list[dict], batch_size: int = 64) -> Probabilities:  # noqa: ANN001
    """The saved model's probabilities on CPU in fp32, without decision biases (temperature applied)."""
    import torch

    from pipeline.modeling.encoding import InputSpec, encode_texts, special_ids
    from pipeline.modeling.folder import ModelFolder
    from pipeline.modeling.outputs import collect, iter_proba, torch_forward

    folder = ModelFolder(model_dir)
    meta = folder.read_meta()
    model, tokenizer = folder.load_model("cpu")
    spec = InputSpec(**meta.get("input", {}))
    temps = meta.get("temperature") or {}
    parents = [r.get("parent_text") for r in records]
    ids = encode_texts(tokenizer, [r["text"] for r in records], spec, parents if spec.include_parent else None)
    forward = torch_forward(model, torch.device("cpu"), False, float(temps.get("sentiment", 1.0)),
                            float(temps.get("stance", 1.0)))
    batches = iter_proba(ids, forward, tokenizer.pad_token_id or 0, special_ids(tokenizer)[1], batch_size)
    return collect(batches, len(records), len(model.sentiment_classes), model.targets, len(model.stance_classes))


def calibrate_model_dir(model_dir, records: list[dict], schema, set_name: str) -> dict:  # noqa: ANN001
    """Fit decision biases of a saved model on ``records`` (dev items with labels) and store them.

    Writes ``decision_bias`` into the model's ``threadstance.json`` and returns the dev scores before and
    after (the latter are optimistic: fitted on the same items).
    """
    from pipeline.modeling.folder import ModelFolder

    folder = ModelFolder(model_dir)
    raw = raw_probabilities(folder.path, records)
    gold = {"sentiment": [r["sentiment"] for r in records]}
    gold.update({t: [r["stance"][t] for r in records] for t in schema.target_names})
    sent_bias = fit_sentiment_bias(raw.sentiment, gold["sentiment"], schema.sentiment_classes)
    stance_bias = np.stack([fit_stance_bias(raw.stance[t], gold[t], schema.stance_classes, schema.none_class,
                                            schema.polar_classes) for t in schema.target_names])

    def scores(probs: Probabilities) -> dict:
        preds = to_predictions(probs, schema.sentiment_classes, schema.stance_classes, schema.target_names,
                               schema.none_class)
        s = score_labelled(records, preds, schema)
        return {"sentiment_macro_f1": s["sentiment_macro_f1"], "stance_score": s["stance_score"],
                "f1_avg": {t: s["stance"][t]["f1_avg"] for t in schema.target_names}}

    adjusted = Probabilities(apply_bias(raw.sentiment, sent_bias),
                             {t: apply_bias(raw.stance[t], stance_bias[j]) for j, t in enumerate(schema.target_names)})
    folder.update_meta(decision_bias={"fitted_on": set_name, "n": len(records), "sentiment": sent_bias.tolist(),
                                      "stance": stance_bias.tolist()})
    return {"set": set_name, "n": len(records), "before": scores(raw), "after_fitted_on_same_items": scores(adjusted),
            "sentiment_bias": sent_bias.tolist(), "stance_bias": dict(zip(schema.target_names, stance_bias.tolist()))}


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """Temperature T minimising the negative log-likelihood of ``softmax(logits / T)`` (bounded search)."""
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    labels = np.asarray(labels)

    def nll(log_t: float) -> float:
        lp = log_softmax(logits / np.exp(log_t), axis=-1)
        return float(-lp[np.arange(len(labels)), labels].mean())

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(res.x))
