#!/usr/bin/env python
"""Recipe study on domain_real (version 3, 1,425 passages): out-of-fold scores over the fixed url-grouped 5 folds (folds.json).

Every recipe is trained five times, each time on four folds (plus, if the recipe says so, the written
corpus) and scored on the fifth, so each of the 1,425 real passages is predicted by a model that never saw
it. Nothing is selected on the scored fold: epochs and learning rates are fixed per recipe in advance.

    .venv/bin/python scripts/recipe_study.py cache              # mpnet lower-layer states, once (~4 min)
    .venv/bin/python scripts/recipe_study.py run top2_corpus    # one recipe, all folds
    .venv/bin/python scripts/recipe_study.py table              # reports/recipes.md from reports/recipes/*.json

Results: ``reports/recipes/<recipe>.json`` (per-fold and pooled scores, timings, out-of-fold logits by id).
MiniLM fine-tuning (recipe a) runs through the product trainer: ``scripts/domain_real_cv.py``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from recipe_posthoc import cross_fitted_bias, ensemble  # noqa: E402

from pipeline.config.schema import load_schema  # noqa: E402
from pipeline.data.corpus import load_corpus  # noqa: E402
from pipeline.data.public_data import load_domain_real, load_domain_real_folds  # noqa: E402
from pipeline.modeling.base_models import resolve_base_model  # noqa: E402
from pipeline.modeling.encoding import InputSpec, encode_texts  # noqa: E402

CACHE = REPO / "work" / "study" / "mpnet_states.pt"
OUT = REPO / "reports" / "recipes"
MODELS = REPO / "work" / "study" / "models"
SPEC = InputSpec(max_length=256, truncation="head_tail", tail_tokens=32)
STARTS = (6, 8, 10)  # cached inputs of layers 6, 8 and 10 (top-6, top-4 and top-2 recipes)

# Fixed in advance; nothing here is tuned on the scored fold.
RECIPES: dict[str, dict] = {
    "frozen_lr": {"kind": "lr", "corpus": False, "C": 4.0},
    "frozen_lr_corpus": {"kind": "lr", "corpus": True, "C": 4.0},
    "top2": {"kind": "top", "start": 10, "corpus": False, "real_repeat": 1, "epochs": 8, "lr": 1e-4},
    "top2_corpus": {"kind": "top", "start": 10, "corpus": True, "real_repeat": 2, "epochs": 3, "lr": 1e-4},
    "top2_corpus_real3_sw": {"kind": "top", "start": 10, "corpus": True, "real_repeat": 3, "epochs": 3, "lr": 1e-4,
                             "corpus_sentiment_weight": 0.5},
    "top4_corpus": {"kind": "top", "start": 8, "corpus": True, "real_repeat": 2, "epochs": 3, "lr": 6e-5},
    "top6_corpus": {"kind": "top", "start": 6, "corpus": True, "real_repeat": 2, "epochs": 3, "lr": 5e-5},
    "top2_corpus_real1": {"kind": "top", "start": 10, "corpus": True, "real_repeat": 1, "epochs": 3, "lr": 1e-4},
    "top2_corpus_real3": {"kind": "top", "start": 10, "corpus": True, "real_repeat": 3, "epochs": 3, "lr": 1e-4},
    # reader comments (kind == comment) seen twice more per epoch than the other real passages
    "top2_corpus_cmt": {"kind": "top", "start": 10, "corpus": True, "real_repeat": 2, "comment_extra": 2,
                        "epochs": 3, "lr": 1e-4},
    # target-aware stance: each stance head also reads the codebook's target statement (a shared bilinear
    # scorer over the text encoding and the frozen statement embedding, added to the per-target head)
    "top2_corpus_tgt": {"kind": "top", "start": 10, "corpus": True, "real_repeat": 2, "epochs": 3, "lr": 1e-4,
                        "target_cond": True},
    "top4_corpus_tgt": {"kind": "top", "start": 8, "corpus": True, "real_repeat": 2, "epochs": 3, "lr": 6e-5,
                        "target_cond": True},
    "top4_corpus_real3": {"kind": "top", "start": 8, "corpus": True, "real_repeat": 3, "epochs": 3, "lr": 6e-5},
    # Trained by the product trainer (pipeline.training.train) on configs/default.yaml with these overrides.
    "full_corpus": {"kind": "product", "corpus": True, "set": [
        "training.trainable_layers=null", "training.checkpoint=last", "training.epochs=2", "training.lr=3e-5",
        "training.head_lr=1e-3", "data.domain_real.repeat=2"]},
}


def load_data(shared: str | None) -> tuple[list[dict], list[dict], dict[str, int]]:
    schema = load_schema(REPO / "configs" / "labels.yaml")
    real = load_domain_real(shared)
    folds = load_domain_real_folds(shared)
    corpus = load_corpus([str(REPO / "data/train/parts/*.jsonl")], schema)
    return real, corpus, folds


def cmd_cache(args: argparse.Namespace) -> None:
    from transformers import AutoModel, AutoTokenizer

    from pipeline.modeling.layerwise import lower_states, pad_states, run_top
    from pipeline.modeling.model import mean_pool

    real, corpus, _ = load_data(args.shared)
    path = resolve_base_model("mpnet")
    tok = AutoTokenizer.from_pretrained(path)
    enc = AutoModel.from_pretrained(path).eval()
    texts = [r["text"] for r in real] + [r["text"] for r in corpus]
    ids = encode_texts(tok, texts, SPEC)
    t0 = time.time()
    s6 = lower_states(enc, ids, 6, batch_size=32, bf16=True, pad_id=tok.pad_token_id,
                      progress=lambda d, n: print(f"\rlayers 0-5: {d}/{n}", end="", file=sys.stderr))
    print(f"\nlower layers: {time.time() - t0:.0f}s", file=sys.stderr)
    from pipeline.modeling.layerwise import _run_layers

    s8: list = [None] * len(ids)
    s10: list = [None] * len(ids)
    pooled = np.zeros((len(ids), enc.config.hidden_size), dtype=np.float32)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        order = np.argsort([len(x) for x in ids])
        for i in range(0, len(ids), 32):
            idx = order[i: i + 32]
            h, m = pad_states([s6[j] for j in idx])
            h8 = _run_layers(enc, h, m, 6, 8)
            h10 = _run_layers(enc, h8, m, 8, 10)
            top = run_top(enc, h10, m, 10)
            p = mean_pool(top.float(), m).numpy()
            for row, j in enumerate(idx):
                s8[j] = h8[row, : len(ids[j])].to(torch.bfloat16).clone()
                s10[j] = h10[row, : len(ids[j])].to(torch.bfloat16).clone()
                pooled[j] = p[row]
    print(f"all layers: {time.time() - t0:.0f}s for {len(ids)} texts", file=sys.stderr)
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"ids": [r["id"] for r in real] + [r["id"] for r in corpus], "n_real": len(real),
                "s6": s6, "s8": s8, "s10": s10, "pooled": torch.from_numpy(pooled), "seconds": time.time() - t0}, CACHE)


def labels_of(records: list[dict], schema) -> dict[str, np.ndarray]:  # noqa: ANN001
    out = {"sentiment": np.array([schema.sentiment_classes.index(r["sentiment"]) for r in records])}
    for t in schema.target_names:
        out[f"stance_{t}"] = np.array([schema.stance_classes.index(r["stance"][t]) for r in records])
    return out


def run_fold_lr(recipe: dict, X: np.ndarray, y: dict[str, np.ndarray], train_idx: np.ndarray, test_idx: np.ndarray,
                schema, seed: int) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    from sklearn.linear_model import LogisticRegression

    def fit(yy: np.ndarray) -> np.ndarray:
        clf = LogisticRegression(C=recipe["C"], class_weight="balanced", max_iter=3000, random_state=seed)
        clf.fit(X[train_idx], yy[train_idx])
        full = np.full((len(test_idx), max(3, yy.max() + 1)), -1e4, dtype=np.float32)
        full[:, clf.classes_] = clf.decision_function(X[test_idx])
        return full

    sent = fit(y["sentiment"])
    stance = np.stack([fit(y[f"stance_{t}"]) for t in schema.target_names], 1)
    return sent, stance


def run_fold_top(recipe: dict, states: list, y: dict[str, np.ndarray], train_idx: np.ndarray, test_idx: np.ndarray,
                 schema, seed: int, bf16: bool, n_real: int) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    from pipeline.config.run import load_config
    from pipeline.modeling.layerwise import fit_top, logits_top
    from pipeline.modeling.model import MultiTaskModel
    from pipeline.training.run import task_class_weights

    weighting = load_config(REPO / "configs" / "default.yaml")  # balanced class weights, capped at 5
    torch.manual_seed(seed)
    statements = schema.target_statements if recipe.get("target_cond") else None
    model, _ = MultiTaskModel.from_base("mpnet", schema.sentiment_classes, schema.stance_classes,
                                        schema.target_names, 0.1, "mean", statements)
    labels = {k: v[train_idx] for k, v in y.items()}
    train_states = [states[i] for i in train_idx]
    sw = None
    if "corpus_sentiment_weight" in recipe:
        sw = np.where(train_idx >= n_real, recipe["corpus_sentiment_weight"], 1.0)
    fit_top(model, train_states, labels, recipe["start"], sent_weight=sw, epochs=recipe["epochs"], batch_size=16, lr=recipe["lr"],
            head_lr=1e-3, weight_decay=0.01, warmup_ratio=0.1, class_weights=task_class_weights(labels, schema, weighting),
            loss_weights={"sentiment": 1.0, "stance": 1.0}, bf16=bf16, seed=seed,
            progress=lambda s, n, loss: print(f"\r  step {s}/{n} loss {loss:.3f}", end="", file=sys.stderr))
    print(file=sys.stderr)
    return logits_top(model, [states[i] for i in test_idx], recipe["start"], bf16=bf16)


def run_fold_product(name: str, recipe: dict, fold: int, test: list[dict], args: argparse.Namespace
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Train one fold with the product trainer (fold ``fold`` of folds.json held out, never selected on) and
    return log-probabilities on it, without temperature (the study fits temperatures out of fold)."""
    from pipeline.config.run import load_config
    from pipeline.inference.predict import Predictor
    from pipeline.training.train import train

    overrides = [*recipe["set"], "data.domain_real.use=kfold", "data.domain_real.folds=5",
                 f"data.domain_real.fold={fold}", f"run_name={name}-f{fold}", f"paths.models={MODELS}",
                 f"training.num_threads={args.threads}", "calibration.temperature=null", f"seed={args.seed}"]
    if args.shared:
        overrides.append(f"paths.shared={args.shared}")
    cfg = load_config(REPO / "configs" / "default.yaml", overrides)
    if not recipe["corpus"]:
        cfg = load_config(REPO / "configs" / "default.yaml", [*overrides, "data.corpus=[]"])
    result = train(cfg, progress=False)
    probs = Predictor(result.output_dir, device="cpu", batch_size=32).predict_proba([r["text"] for r in test])
    stance = np.stack([probs.stance[t] for t in cfg.schema().target_names], 1)
    return np.log(np.clip(probs.sentiment, 1e-8, 1)), np.log(np.clip(stance, 1e-8, 1))


def cmd_run(args: argparse.Namespace) -> None:
    schema = load_schema(REPO / "configs" / "labels.yaml")
    recipe = RECIPES[args.recipe]
    real, corpus, folds = load_data(args.shared)
    cache = torch.load(CACHE) if recipe["kind"] != "product" else {"seconds": 0.0}
    assert recipe["kind"] == "product" or cache["n_real"] == len(real)
    records = real + corpus
    y = labels_of(records, schema)
    n_real = len(real)
    fold_of = np.array([folds[r["id"]] for r in real])
    sent_oof = np.zeros((n_real, len(schema.sentiment_classes)), dtype=np.float32)
    stance_oof = np.zeros((n_real, len(schema.target_names), len(schema.stance_classes)), dtype=np.float32)
    fold_seconds = {}
    torch.set_num_threads(args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    name = args.recipe + ("_fp32" if args.fp32 else "") + (f"_s{args.seed}" if args.seed != 13 else "")
    # Folds already finished by an interrupted run of the same recipe and seed are kept, not retrained.
    partial = OUT / f"{name}.partial.json"
    done = json.loads(partial.read_text()) if partial.exists() else {"seed": args.seed, "folds": {}}
    if done["seed"] != args.seed:
        done = {"seed": args.seed, "folds": {}}
    for fold in args.folds:
        test_idx = np.where(fold_of == fold)[0]
        if str(fold) in done["folds"]:
            d = done["folds"][str(fold)]
            sent_oof[test_idx], stance_oof[test_idx] = np.array(d["sentiment"]), np.array(d["stance"])
            fold_seconds[fold] = d["seconds"]
            print(f"{args.recipe} fold {fold}: kept from {partial.name}", file=sys.stderr)
            continue
        train_real = np.where(fold_of != fold)[0]
        parts = [train_real] * recipe.get("real_repeat", 1)
        comments = np.array([i for i in train_real if real[i].get("kind") == "comment"], dtype=int)
        parts += [comments] * recipe.get("comment_extra", 0)
        if recipe["corpus"]:
            parts.append(np.arange(n_real, len(records)))
        train_idx = np.concatenate(parts)
        t0 = time.time()
        if recipe["kind"] == "product":
            s, st = run_fold_product(args.recipe, recipe, fold, [real[i] for i in test_idx], args)
        elif recipe["kind"] == "lr":
            s, st = run_fold_lr(recipe, cache["pooled"].numpy(), y, train_idx, test_idx, schema, args.seed)
        else:
            states = cache[f"s{recipe['start']}"]
            s, st = run_fold_top(recipe, states, y, train_idx, test_idx, schema, args.seed, not args.fp32, n_real)
        fold_seconds[fold] = round(time.time() - t0, 1)
        sent_oof[test_idx], stance_oof[test_idx] = s, st
        print(f"{args.recipe} fold {fold}: {fold_seconds[fold]}s", file=sys.stderr)
        done["folds"][str(fold)] = {"sentiment": s.tolist(), "stance": st.tolist(), "seconds": fold_seconds[fold]}
        partial.write_text(json.dumps(done) + "\n", encoding="utf-8")
    result = {"recipe": args.recipe, "params": recipe, "precision": "fp32" if args.fp32 else "bf16",
              "seed": args.seed, "folds": args.folds, "fold_seconds": fold_seconds,
              "cache_seconds": round(cache["seconds"], 1),
              "oof": {real[i]["id"]: {"sentiment": sent_oof[i].round(4).tolist(),
                                      "stance": stance_oof[i].round(4).tolist()}
                      for i in range(n_real) if fold_of[i] in args.folds}}
    (OUT / f"{name}.json").write_text(json.dumps(result) + "\n", encoding="utf-8")
    partial.unlink(missing_ok=True)


def softmax(x: np.ndarray, t: float = 1.0) -> np.ndarray:
    from scipy.special import softmax as sm

    return sm(x / t, axis=-1)


def score(result: dict, real: list[dict], folds: dict[str, int], schema) -> dict:  # noqa: ANN001
    """Pooled and per-fold scores of one recipe's out-of-fold logits; sentiment ECE before and after a
    temperature fitted out of fold (for each fold, on the other four folds' out-of-fold logits)."""
    from pipeline.metrics import expected_calibration_error, headline_scores
    from pipeline.training.calibration import fit_temperature

    recs = [r for r in real if r["id"] in result["oof"]]
    sent = np.array([result["oof"][r["id"]]["sentiment"] for r in recs])
    stance = np.array([result["oof"][r["id"]]["stance"] for r in recs])
    fold_of = np.array([folds[r["id"]] for r in recs])
    y = labels_of(recs, schema)

    def scores(idx: np.ndarray) -> dict:
        gold = {"sentiment": [recs[i]["sentiment"] for i in idx]}
        pred = {"sentiment": [schema.sentiment_classes[k] for k in sent[idx].argmax(-1)]}
        for j, t in enumerate(schema.target_names):
            gold[t] = [recs[i]["stance"][t] for i in idx]
            pred[t] = [schema.stance_classes[k] for k in stance[idx, j].argmax(-1)]
        h = headline_scores(gold, pred, schema.sentiment_classes, schema.stance_classes, schema.target_names,
                            schema.polar_classes)
        return {"sentiment_macro_f1": h["sentiment_macro_f1"], "stance_score": h["stance_score"],
                "neutral_f1": h["sentiment"]["per_class"]["neutral"]["f1"], "n": int(len(idx)),
                "f1_avg": {t: h["stance"][t]["f1_avg"] for t in schema.target_names}}

    pooled = scores(np.arange(len(recs)))
    kinds = np.array([r.get("kind") for r in recs])
    by_kind = {k: scores(np.where(kinds == k)[0]) for k in ("comment", "opinion", "report") if (kinds == k).any()}
    v2 = np.array([not r["id"].startswith("hv3") for r in recs])
    subsets = {"v2_items": scores(np.where(v2)[0]), "new_items": scores(np.where(~v2)[0])} if (~v2).any() and v2.any() \
        else {}
    per_fold = {int(f): scores(np.where(fold_of == f)[0]) for f in sorted(set(fold_of))}
    probs_raw = softmax(sent)
    cal = np.zeros_like(probs_raw)
    temps = {}
    for f in sorted(set(fold_of)):
        test, train = fold_of == f, fold_of != f
        t = fit_temperature(sent[train], y["sentiment"][train]) if train.any() else 1.0
        temps[int(f)] = round(t, 3)
        cal[test] = softmax(sent[test], t)

    def ece(p: np.ndarray, y_true: np.ndarray) -> float:
        return expected_calibration_error(p.max(-1), p.argmax(-1) == y_true)

    # stance: every (item, target) pair pooled, temperature fitted on the other folds as for sentiment
    y_st = np.stack([y[f"stance_{t}"] for t in schema.target_names], 1)
    st_cal = np.zeros_like(softmax(stance))
    for f in sorted(set(fold_of)):
        test, train = fold_of == f, fold_of != f
        t = fit_temperature(stance[train].reshape(-1, stance.shape[-1]), y_st[train].reshape(-1)) if train.any() else 1.0
        st_cal[test] = softmax(stance[test], t)
    st_raw = softmax(stance).reshape(-1, stance.shape[-1])
    return {"pooled": pooled, "per_fold": per_fold, "by_kind": by_kind, **subsets, "n": len(recs),
            "ece_raw": ece(probs_raw, y["sentiment"]), "ece_temp": ece(cal, y["sentiment"]),
            "stance_ece_raw": ece(st_raw, y_st.reshape(-1)),
            "stance_ece_temp": ece(st_cal.reshape(-1, stance.shape[-1]), y_st.reshape(-1)),
            "fold_temperatures": temps,
            "temperature_all": round(fit_temperature(sent, y["sentiment"]), 3),
            "stance_temperature_all": round(fit_temperature(stance.reshape(-1, stance.shape[-1]),
                                                            np.stack([y[f"stance_{t}"] for t in schema.target_names], 1).reshape(-1)), 3)}


def paired_diff(a: dict, b: dict, real: list[dict], schema, resamples: int = 2000, seed: int = 0) -> dict:  # noqa: ANN001
    """Cluster (url) bootstrap of the pooled score differences a - b on the items both scored."""
    from pipeline.metrics import f1_avg, macro_f1

    ids = [r for r in real if r["id"] in a["oof"] and r["id"] in b["oof"]]
    urls = sorted({r["url"] for r in ids})
    by_url = {u: [i for i, r in enumerate(ids) if r["url"] == u] for u in urls}
    gold_s = np.array([schema.sentiment_classes.index(r["sentiment"]) for r in ids])
    gold_t = np.array([[schema.stance_classes.index(r["stance"][t]) for t in schema.target_names] for r in ids])
    preds = []
    for res in (a, b):
        preds.append((np.array([np.argmax(res["oof"][r["id"]]["sentiment"]) for r in ids]),
                      np.array([np.argmax(res["oof"][r["id"]]["stance"], -1) for r in ids])))
    polar = [schema.stance_classes.index(c) for c in schema.polar_classes]
    classes = list(range(len(schema.sentiment_classes)))

    def both(idx: np.ndarray) -> tuple[float, float]:
        out = []
        for ps, pt in preds:
            s = macro_f1(gold_s[idx], ps[idx], classes)
            st = np.mean([f1_avg(gold_t[idx, j], pt[idx, j], polar) for j in range(gold_t.shape[1])])
            out.append((s, st))
        return out[0][0] - out[1][0], out[0][1] - out[1][1]

    point = both(np.arange(len(ids)))
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        pick = rng.choice(len(urls), len(urls), replace=True)
        draws.append(both(np.concatenate([by_url[urls[k]] for k in pick])))
    draws = np.array(draws)
    lo, hi = np.percentile(draws, [2.5, 97.5], axis=0)
    return {"sentiment": [point[0], lo[0], hi[0]], "stance": [point[1], lo[1], hi[1]]}


DESCRIBE = {
    "frozen_lr": "(b) frozen mpnet, mean-pooled, + logistic regression (C=4, balanced) per task; real only",
    "frozen_lr_corpus": "(b, e) the same + the written corpus",
    "top2": "(c) mpnet top 2 layers + heads fine-tuned on cached layer-10 states; real only, 8 epochs",
    "top2_corpus": "(c, e) top 2 layers; real x2 + written corpus, 3 epochs, lr 1e-4",
    "top2_corpus_real3_sw": "(f) top 2 layers; real x3 + corpus, corpus sentiment loss x0.5, 3 epochs",
    "top4_corpus": "(c, e) top 4 layers on cached layer-8 states; real x2 + corpus, 3 epochs, lr 6e-5",
    "top6_corpus": "top 6 layers on cached layer-6 states; real x2 + corpus, 3 epochs, lr 5e-5",
    "top2_corpus_real1": "top 2 layers; real x1 + corpus, 3 epochs",
    "top2_corpus_real3": "top 2 layers; real x3 + corpus, 3 epochs",
    "top2_corpus_cmt": "top 2 layers; real x2 + corpus, reader comments twice more per epoch (x4), 3 epochs",
    "top2_corpus_tgt": "target-aware stance: as top2_corpus, plus a scorer shared by all targets that reads the "
                       "frozen embedding of the codebook's target statement (bilinear, added to each stance head)",
    "top4_corpus_tgt": "target-aware stance on the top-4 recipe: as top4_corpus, plus the shared statement scorer "
                       "of top2_corpus_tgt",
    "top4_corpus_real3": "top 4 layers on cached layer-8 states; real x3 + corpus, 3 epochs, lr 6e-5",
    "full_corpus": "(d, e) full mpnet fine-tuning (product trainer), bf16 autocast; real x2 + corpus, 2 epochs, "
                   "encoder lr 3e-5, heads 1e-3, end state kept",
    "minilm_ft": "(a, e) the previous default, now `configs/fast.yaml`: MiniLM-L6 fully fine-tuned, corpus + real "
                 "x3, 4 epochs, checkpoint chosen on the corpus dev split",
}


BIAS_ROWS = {
    "bias": "decision biases fitted on the other four folds' out-of-fold predictions",
    "bias_stance": "stance decision biases (a `none` offset per target) fitted on the other four folds",
    "kindbias": "decision biases fitted on the other four folds, one set for reader comments, one for the rest",
    "kindbias_stance": "stance decision biases fitted on the other four folds, one set for reader comments, one "
                       "for the rest",
}


def write_markdown(rows: list[dict], diffs: dict, path: Path, n_urls: int) -> None:
    targets = list(rows[0]["scores"]["pooled"]["f1_avg"])
    lines = ["| recipe | what | sentiment macro-F1 | (fold mean ± sd) | stance score | (fold mean ± sd) | "
             + " | ".join(f"F1avg {t}" for t in targets) + " | neutral F1 | sent. ECE raw → T | stance ECE raw → T "
             "| train s / fold (median) |",
             "|---|---|---|---|---|---|" + "---|" * len(targets) + "---|---|---|---|"]
    for r in rows:
        sc = r["scores"]
        pf = sc["per_fold"].values()
        sm = [v["sentiment_macro_f1"] for v in pf]
        st = [v["stance_score"] for v in pf]
        secs = list(r["fold_seconds"].values())
        name = r["name"]
        what = DESCRIBE.get(name, "ensemble: mean of the members' probabilities" if name.startswith("ens:") else
                            BIAS_ROWS.get(name.rpartition("+")[2], ""))
        ece = f"{sc['ece_raw']:.3f} → {sc['ece_temp']:.3f}" if sc.get("ece_raw") is not None else "–"
        st_ece = f"{sc['stance_ece_raw']:.3f} → {sc['stance_ece_temp']:.3f}" if sc.get("stance_ece_raw") is not None \
            else "–"
        lines.append(f"| `{name}` | {what} | **{sc['pooled']['sentiment_macro_f1']:.3f}** | {np.mean(sm):.3f} ± "
                     f"{np.std(sm, ddof=1):.3f} | **{sc['pooled']['stance_score']:.3f}** | {np.mean(st):.3f} ± "
                     f"{np.std(st, ddof=1):.3f} | " + " | ".join(f"{sc['pooled']['f1_avg'][t]:.3f}" for t in targets)
                     + f" | {sc['pooled']['neutral_f1']:.3f} | {ece} | {st_ece} | {np.median(secs):.0f} |")
    subsets = [("comment", "by_kind"), ("opinion", "by_kind"), ("report", "by_kind"), ("v2_items", None),
               ("new_items", None)]
    first = rows[0]["scores"]
    lines += ["", "By kind and by dataset version (sentiment macro-F1 / stance score, out of fold; n items):", "",
              "| recipe | " + " | ".join(f"{k} (n={(first['by_kind'].get(k) if g else first.get(k) or {}).get('n', 0)})"
                                       for k, g in subsets) + " |",
              "|---|" + "---|" * len(subsets)]
    for r in rows:
        sc = r["scores"]
        cells = []
        for k, g in subsets:
            v = sc["by_kind"].get(k) if g else sc.get(k)
            cells.append(f"{v['sentiment_macro_f1']:.3f} / {v['stance_score']:.3f}" if v else "–")
        lines.append(f"| `{r['name']}` | " + " | ".join(cells) + " |")
    lines += ["", "Paired differences (first − second), pooled out-of-fold scores, 95 % url-cluster bootstrap "
              f"(2,000 resamples of the {n_urls} pages, i.e. urls):", "", "| pair | Δ sentiment macro-F1 [95 % CI] | "
              "Δ stance score [95 % CI] |", "|---|---|---|"]
    for k, d in diffs.items():
        lines.append(f"| {k} | {d['sentiment'][0]:+.3f} [{d['sentiment'][1]:+.3f}, {d['sentiment'][2]:+.3f}] | "
                     f"{d['stance'][0]:+.3f} [{d['stance'][1]:+.3f}, {d['stance'][2]:+.3f}] |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def import_cv(path: Path, real: list[dict], schema) -> dict:  # noqa: ANN001
    """A ``scripts/domain_real_cv.py`` result (labels, no logits) as a recipe row: one-hot log-probabilities."""
    cv = json.loads(path.read_text(encoding="utf-8"))
    oof = {}
    for i, p in cv["predictions"].items():
        sent = np.full(len(schema.sentiment_classes), -20.0)
        sent[schema.sentiment_classes.index(p["sentiment"])] = 0.0
        stance = np.full((len(schema.target_names), len(schema.stance_classes)), -20.0)
        for j, t in enumerate(schema.target_names):
            stance[j, schema.stance_classes.index(p[t])] = 0.0
        oof[i] = {"sentiment": sent.tolist(), "stance": stance.tolist()}
    return {"name": cv["name"], "oof": oof, "folds": list(range(cv["folds"])), "labels_only": True,
            "fold_seconds": {str(f["fold"]): f["train_seconds"] or 0 for f in cv["per_fold"]}}


def cmd_table(args: argparse.Namespace) -> None:
    schema = load_schema(REPO / "configs" / "labels.yaml")
    real, _, folds = load_data(args.shared)
    rows = []
    for path in sorted(OUT.glob("*.json")):
        res = json.loads(path.read_text(encoding="utf-8"))
        if res.get("folds") != [0, 1, 2, 3, 4] or "oof" not in res:
            continue
        res["scores"] = score(res, real, folds, schema)
        res["name"] = path.stem
        rows.append(res)
    for cv_path in args.cv:
        res = import_cv(Path(cv_path), real, schema)
        res["scores"] = score(res, real, folds, schema)
        res["scores"]["ece_raw"] = res["scores"]["ece_temp"] = None  # labels only: no probabilities
        rows.append(res)
    by_name = {r["name"]: r for r in rows}
    for combo in args.ensemble:
        parts = [by_name[n] for n in combo.split("+") if n in by_name]
        if len(parts) < 2:
            continue
        ens = ensemble("ens:" + combo, parts)
        ens["scores"] = score(ens, real, folds, schema)
        rows.append(ens)
    for spec in args.biased:
        name, _, how = spec.partition(":")
        if name in by_name:
            biased = cross_fitted_bias(by_name[name], real, folds, schema, by_kind="kind" in how,
                                       sentiment="stance" not in how)
            biased["scores"] = score(biased, real, folds, schema)
            rows.append(biased)
    rows.sort(key=lambda r: -(r["scores"]["pooled"]["sentiment_macro_f1"] + r["scores"]["pooled"]["stance_score"]))
    summary = {r["name"]: {k: r["scores"].get(k) for k in ("pooled", "by_kind", "v2_items", "new_items", "n", "ece_raw",
                                                            "ece_temp", "stance_ece_raw", "stance_ece_temp",
                                                            "temperature_all", "stance_temperature_all")} |
               {"fold_seconds": r["fold_seconds"], "items_per_s": r.get("items_per_s")} for r in rows}
    diffs = {}
    for i in range(min(len(rows) - 1, args.pairs)):
        diffs[f"{rows[0]['name']} - {rows[i + 1]['name']}"] = paired_diff(rows[0], rows[i + 1], real, schema)
    named = {r["name"]: r for r in rows}
    for pair in args.pair:
        a, b = pair.rsplit(":", 1)  # ensemble names ("ens:a+b") hold a colon themselves
        if a in named and b in named:
            diffs[f"{a} - {b}"] = paired_diff(named[a], named[b], real, schema)
    (OUT / "summary.json.txt").write_text(json.dumps({"recipes": summary, "paired": diffs}, indent=1) + "\n",
                                          encoding="utf-8")
    if args.markdown:
        write_markdown(rows, diffs, Path(args.markdown), len({r['url'] for r in real}))
    for name, r in summary.items():
        p = r["pooled"]
        print(f"{name:28s} {p['sentiment_macro_f1']:.3f} / {p['stance_score']:.3f}  "
              + " ".join(f"{t[:5]}={v:.2f}" for t, v in p["f1_avg"].items())
              + (f"  ece {r['ece_raw']:.3f}->{r['ece_temp']:.3f}" if r["ece_raw"] is not None else "")
              + f"  s/fold {np.median(list(r['fold_seconds'].values())):.0f}")
    for k, d in diffs.items():
        print(k, {t: [round(x, 3) for x in v] for t, v in d.items()})


def cmd_steptime(args: argparse.Namespace) -> None:
    """Seconds per training step (batch 16, real passages) for full and top-k fine-tuning, bf16 vs fp32."""
    import os

    from pipeline.modeling.model import MultiTaskModel, multitask_loss

    schema = load_schema(REPO / "configs" / "labels.yaml")
    real, _, _ = load_data(args.shared)
    torch.set_num_threads(2)
    model, tok = MultiTaskModel.from_base("mpnet", schema.sentiment_classes, schema.stance_classes,
                                          schema.target_names)
    ids = encode_texts(tok, [r["text"] for r in real], SPEC)
    y = labels_of(real, schema)
    rng = np.random.default_rng(0)
    from pipeline.modeling.layerwise import forward_top, run_lower

    out = {}
    for mode in ("full", "top2"):
        for precision in ("bf16", "fp32"):
            params = [p for p in model.parameters()] if mode == "full" else \
                [p for layer in model.encoder.encoder.layer[10:] for p in layer.parameters()]
            opt = torch.optim.AdamW(params, lr=1e-6)
            times = []
            for step in range(args.steps + 1):
                idx = rng.choice(len(real), 16, replace=False)
                width = max(len(ids[i]) for i in idx)
                x = torch.zeros((16, width), dtype=torch.long)
                m = torch.zeros((16, width), dtype=torch.long)
                for r, i in enumerate(idx):
                    x[r, : len(ids[i])] = torch.tensor(ids[i])
                    m[r, : len(ids[i])] = 1
                if mode == "top2":
                    with torch.no_grad():
                        states = run_lower(model.encoder, x, m, 10)
                    states = [states[r, : len(ids[i])].detach() for r, i in enumerate(idx)]
                t0 = time.time()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                    o = model(x, m) if mode == "full" else forward_top(model, states, 10)
                loss = multitask_loss(o, {k: torch.as_tensor(v[idx]) for k, v in y.items()}, schema.target_names,
                                      {}, {"sentiment": 1.0, "stance": 1.0})
                loss.backward()
                opt.step()
                opt.zero_grad()
                model.zero_grad(set_to_none=True)
                if step:  # the first step warms up
                    times.append(time.time() - t0)
            out[f"{mode}_{precision}"] = round(float(np.median(times)), 3)
            print(out, "load", os.getloadavg(), file=sys.stderr)
    (OUT / "steptime.json").write_text(json.dumps({"seconds_per_step_batch16": out, "steps": args.steps,
                                                    "loadavg": os.getloadavg()}) + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=None)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("cache")
    run = sub.add_parser("run")
    run.add_argument("recipe", choices=sorted(RECIPES))
    run.add_argument("--folds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 2, 3, 4])
    run.add_argument("--seed", type=int, default=13)
    run.add_argument("--threads", type=int, default=2)
    run.add_argument("--fp32", action="store_true", help="train in fp32 instead of bf16 autocast")
    st = sub.add_parser("steptime")
    st.add_argument("--steps", type=int, default=6)
    table = sub.add_parser("table")
    table.add_argument("--ensemble", action="append", default=[], help="a+b: average of two recipes' probabilities")
    table.add_argument("--biased", action="append", default=[],
                       help="NAME[:kind][,stance]: a recipe again, with decision biases cross-fitted over the "
                       "folds (NAME+bias), one set per kind (comment / other) with 'kind', stance only with 'stance'")
    table.add_argument("--cv", action="append", default=[], help="a scripts/domain_real_cv.py result to include")
    table.add_argument("--markdown", default=None, help="write the table (and paired differences) here")
    table.add_argument("--pair", action="append", default=[], help="a:b, an extra paired difference")
    table.add_argument("--pairs", type=int, default=3, help="paired differences: best vs the next N")
    args = ap.parse_args()
    {"cache": cmd_cache, "run": cmd_run, "table": cmd_table, "steptime": cmd_steptime}[args.cmd](args)


if __name__ == "__main__":
    main()
