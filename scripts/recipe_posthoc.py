"""Rows of the recipe table made from other rows' out-of-fold logits, with no training: an ensemble (mean of
probabilities) and a recipe with decision biases cross-fitted over the folds."""
from __future__ import annotations

import numpy as np
from scipy.special import log_softmax, softmax


def ensemble(name: str, parts: list[dict]) -> dict:
    """The members' mean probabilities, stored as log-probabilities (the argmax is what is scored)."""
    ids = set.intersection(*(set(p["oof"]) for p in parts))
    oof = {}
    for i in ids:
        sent = np.mean([softmax(np.array(p["oof"][i]["sentiment"]), -1) for p in parts], 0)
        stance = np.mean([softmax(np.array(p["oof"][i]["stance"]), -1) for p in parts], 0)
        oof[i] = {"sentiment": np.log(sent).tolist(), "stance": np.log(stance).tolist()}
    return {"name": name, "oof": oof, "folds": parts[0]["folds"],
            "fold_seconds": {f: sum(p["fold_seconds"][f] for p in parts) for f in parts[0]["fold_seconds"]}}


def cross_fitted_bias(res: dict, real: list[dict], folds: dict[str, int], schema, by_kind: bool = False,  # noqa: ANN001
                      sentiment: bool = True) -> dict:
    """``res`` with decision biases (``pipeline.training.calibration``: a ``none`` offset per target, offsets
    on the sentiment classes) fitted, for each fold, on the other four folds' out-of-fold predictions and
    labels, and added to that fold's log-probabilities. Each fold's biases never see its labels; the other
    folds' predictions come from models that were trained on it, as for the fitted temperatures.

    ``by_kind``: one set of biases for reader comments and one for the other passages (an item's kind is
    known at inference: comment or reply, or article paragraph). ``sentiment=False``: stance biases only.
    """
    if by_kind:
        parts = [[r for r in real if (r.get("kind") == "comment") == is_comment and r["id"] in res["oof"]]
                 for is_comment in (True, False)]
        done = [cross_fitted_bias({**res, "oof": {r["id"]: res["oof"][r["id"]] for r in part}}, part, folds, schema,
                                  sentiment=sentiment) for part in parts]
        return {**done[0], "name": res["name"] + ("+kindbias" if sentiment else "+kindbias_stance"),
                "oof": {**done[0]["oof"], **done[1]["oof"]},
                "fold_biases": {"comment": done[0]["fold_biases"], "other": done[1]["fold_biases"]}}
    from pipeline.training.calibration import fit_sentiment_bias, fit_stance_bias

    recs = [r for r in real if r["id"] in res["oof"]]
    fold_of = np.array([folds[r["id"]] for r in recs])
    sent = log_softmax(np.array([res["oof"][r["id"]]["sentiment"] for r in recs]), -1)
    stance = log_softmax(np.array([res["oof"][r["id"]]["stance"] for r in recs]), -1)
    out_s, out_t, biases = sent.copy(), stance.copy(), {}
    for f in sorted(set(fold_of.tolist())):
        test, train = np.where(fold_of == f)[0], np.where(fold_of != f)[0]
        b = fit_sentiment_bias(np.exp(sent[train]), [recs[i]["sentiment"] for i in train], schema.sentiment_classes) \
            if sentiment else np.zeros(sent.shape[1])
        out_s[test] += b
        fold_bias = {"sentiment": b.tolist()}
        for j, t in enumerate(schema.target_names):
            bt = fit_stance_bias(np.exp(stance[train, j]), [recs[i]["stance"][t] for i in train],
                                 schema.stance_classes, schema.none_class, schema.polar_classes)
            out_t[test, j] += bt
            fold_bias[t] = bt.tolist()
        biases[int(f)] = fold_bias
    oof = {r["id"]: {"sentiment": out_s[i].tolist(), "stance": out_t[i].tolist()} for i, r in enumerate(recs)}
    return {"name": res["name"] + ("+bias" if sentiment else "+bias_stance"), "oof": oof, "folds": res["folds"],
            "fold_seconds": res["fold_seconds"], "fold_biases": biases}
