#!/usr/bin/env python
"""Recipe study on domain_real (version 3, 1,425 passages): out-of-fold scores over the fixed url-grouped 5 folds (folds.json).

Every recipe is trained five times, each time on four folds (plus, if the recipe says so, the written
corpus) and scored on the fifth, so each of the 1,425 real passages is predicted by a model that never saw
it. Nothing is selected on the scored fold: epochs and learning rates are fixed per recipe in advance.

    .venv/bin/python scripts/recipe_study.py cache              # mpnet lower-layer states, once (~4 min)
    .venv/bin/python scripts/recipe_study.py run top2_corpus    # one recipe, all folds
    .venv/bin/python scripts/recipe_study.py table              # reports/recipes.md from reports/recipes/*.json

Scoring, paired differences and the Markdown table: ``scripts/recipe_table.py`` (the ``table`` command).
Results: ``reports/recipes/<recipe>.json`` (per-fold and pooled scores, timings, out-of-fold logits by id).
Recipes of kind ``product`` (full fine-tuning, and ``minilm_fast``: the fast MiniLM profile of
``configs/fast.yaml``) train each fold with the product trainer on the config with the recipe's overrides.
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


from pipeline.config.schema import load_schema  # noqa: E402
from pipeline.data.corpus import load_corpus  # noqa: E402
from pipeline.data.public_data import load_domain_real, load_domain_real_folds  # noqa: E402
from pipeline.data.splits import corpus_subset  # noqa: E402
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
    # top6_corpus in two epochs instead of three: two thirds of the steps, to fit the 20-minute main job
    "top6_corpus_2ep": {"kind": "top", "start": 6, "corpus": True, "real_repeat": 2, "epochs": 2, "lr": 5e-5},
    # top6_corpus on two thirds of the written corpus (3 epochs kept): about the default's training cost
    "top6_corpus_c67": {"kind": "top", "start": 6, "corpus": True, "corpus_fraction": 2 / 3, "real_repeat": 2,
                        "epochs": 3, "lr": 5e-5},
    # longer training with the corpus down-weighted: a seeded quarter of the corpus and 4 epochs instead of 3,
    # so each real passage is seen 8 times instead of 6 at about the same number of steps as top6_corpus_c67
    "top6_corpus_c25_4ep": {"kind": "top", "start": 6, "corpus": True, "corpus_fraction": 0.25, "real_repeat": 2,
                            "epochs": 4, "lr": 5e-5},
    # the default recipe with label smoothing 0.1 on the sentiment and stance cross-entropies
    "top6_corpus_c67_ls": {"kind": "top", "start": 6, "corpus": True, "corpus_fraction": 2 / 3, "real_repeat": 2,
                           "epochs": 3, "lr": 5e-5, "label_smoothing": 0.1},
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
    # The fast profile as shipped (configs/fast.yaml: MiniLM-L6 fully fine-tuned, checkpoint chosen on the
    # corpus dev split), with the held-out fold of folds.json in place of "every real passage".
    "minilm_fast": {"kind": "product", "corpus": True, "config": "fast.yaml", "set": ["data.selection=corpus_dev"]},
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
            label_smoothing=recipe.get("label_smoothing", 0.0),
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
    config = REPO / "configs" / recipe.get("config", "default.yaml")
    cfg = load_config(config, overrides if recipe["corpus"] else [*overrides, "data.corpus=[]"])
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
            corpus_idx = np.arange(n_real, len(records))
            if "corpus_fraction" in recipe:  # one seeded subset of the written corpus, the same in every fold
                corpus_idx = np.array(corpus_subset(list(corpus_idx), recipe["corpus_fraction"], args.seed))
            parts.append(corpus_idx)
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
    if args.cmd == "table":
        from recipe_table import cmd_table  # the scoring and reporting half of the study

        cmd_table(args)
    else:
        {"cache": cmd_cache, "run": cmd_run, "steptime": cmd_steptime}[args.cmd](args)


if __name__ == "__main__":
    main()
