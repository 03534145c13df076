#!/usr/bin/env python
"""Active-learning study on domain_real v2: simulated learning curves of the `suggest` strategies.

For each of the five url-grouped folds (folds.json) and each repeat: start from 50 labelled passages drawn
at random (seeded) from the other four folds, then add 25 per round chosen from the rest of those folds by
each strategy (uncertainty, diverse, random: the functions behind ``threadstance suggest``), refit and
score the held-out fold (sentiment macro-F1 and the stance score, :func:`pipeline.metrics.headline_scores`).
Every strategy starts from the same 50 items in a given (fold, repeat), so the comparison is paired.

The learner is the frozen-encoder model type (``training.trainable_layers: 0``): all-mpnet-base-v2
mean-pooled embeddings, computed once, and one logistic-regression head per task fitted by the product's
:func:`pipeline.training.layerwise.fit_linear_heads`. It stands in for the deployed model, whose full
retraining per round would take far too long on a CPU.

    .venv/bin/python scripts/active_learning_study.py embed    # mpnet embeddings of the 563 passages, once
    .venv/bin/python scripts/active_learning_study.py run      # the curves -> work/active_learning/curves.json
    .venv/bin/python scripts/active_learning_study.py report   # the tables in reports/active_learning.md

Everything runs on one CPU thread (set below, before numpy and torch load).
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline.config.schema import load_schema  # noqa: E402
from pipeline.data.public_data import load_domain_real, load_domain_real_folds  # noqa: E402

WORK = REPO / "work" / "active_learning"
EMBEDDINGS = WORK / "mpnet_pooled.npz"
CURVES = WORK / "curves.json"
REPORT = REPO / "reports" / "active_learning.md"
SPEC = {"max_length": 256, "truncation": "head_tail", "tail_tokens": 32}  # configs/default.yaml input
START, STEP, BUDGET = 50, 25, 300
STRATEGY_NAMES = ("uncertainty", "diverse", "random")
C = 4.0  # training.heads_C default; balanced class weights as in configs/default.yaml
BOOTSTRAP = 2000


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---- embeddings -------------------------------------------------------------------------------------------

def cmd_embed(args: argparse.Namespace) -> None:
    """Mean-pooled last hidden states of frozen all-mpnet-base-v2 for every passage (bf16 autocast where
    the CPU has native bf16, as the product's layer-wise trainer does)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from pipeline.hardware import cpu_has_native_bf16
    from pipeline.modeling.base_models import resolve_base_model
    from pipeline.modeling.encoding import InputSpec, encode_texts, special_ids
    from pipeline.modeling.model import mean_pool
    from pipeline.modeling.outputs import batch_bounds, pad_numpy
    from pipeline.progress import PlainProgress

    torch.set_num_threads(1)
    real = load_domain_real(args.shared)
    path = resolve_base_model("mpnet")
    tok = AutoTokenizer.from_pretrained(path)
    enc = AutoModel.from_pretrained(path).eval()
    ids = encode_texts(tok, [r["text"] for r in real], InputSpec(**SPEC))
    bf16 = cpu_has_native_bf16()
    lengths = np.array([len(x) for x in ids])
    order = np.argsort(lengths, kind="stable")
    out = np.zeros((len(ids), enc.config.hidden_size), dtype=np.float32)
    progress = PlainProgress(len(ids), "embed", "texts")
    t0 = time.time()
    with torch.inference_mode():
        for start, end in batch_bounds(lengths[order], 16):
            idx = order[start:end]
            batch = pad_numpy([ids[i] for i in idx], tok.pad_token_id or 0, special_ids(tok)[1])
            mask = torch.from_numpy(batch["attention_mask"])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                hidden = enc(input_ids=torch.from_numpy(batch["input_ids"]), attention_mask=mask).last_hidden_state
            out[idx] = mean_pool(hidden.float(), mask).numpy()
            progress.advance(len(idx))
    seconds = time.time() - t0
    WORK.mkdir(parents=True, exist_ok=True)
    np.savez(EMBEDDINGS, ids=np.array([r["id"] for r in real]), X=out, seconds=seconds, bf16=bf16)
    log(f"wrote {EMBEDDINGS} ({len(ids)} passages, {seconds:.0f} s, bf16={bf16})")


# ---- the simulation ---------------------------------------------------------------------------------------

def load_embeddings(real: list[dict]) -> np.ndarray:
    if not EMBEDDINGS.is_file():
        sys.exit(f"no {EMBEDDINGS}: run `{Path(__file__).name} embed` first")
    data = np.load(EMBEDDINGS)
    assert list(data["ids"]) == [r["id"] for r in real], "embeddings were computed for other passages"
    return data["X"]


def label_arrays(real: list[dict], schema) -> dict[str, np.ndarray]:  # noqa: ANN001
    out = {"sentiment": np.array([schema.sentiment_classes.index(r["sentiment"]) for r in real])}
    for t in schema.target_names:
        out[f"stance_{t}"] = np.array([schema.stance_classes.index(r["stance"][t]) for r in real])
    return out


class Learner:
    """The frozen-encoder model's heads: ``fit_linear_heads`` (the product's trainable_layers: 0 code) on
    pooled embeddings; probabilities are the heads' softmax."""

    def __init__(self, schema, dim: int, seed: int) -> None:  # noqa: ANN001
        import torch

        self.schema, self.seed = schema, seed
        self.targets = schema.target_names
        self.sentiment_head = torch.nn.Linear(dim, len(schema.sentiment_classes))
        self.stance_heads = {t: torch.nn.Linear(dim, len(schema.stance_classes)) for t in self.targets}

    def fit(self, X: np.ndarray, y: dict[str, np.ndarray]) -> Learner:
        from pipeline.training.layerwise import fit_linear_heads

        fit_linear_heads(self, X, y, C, balanced=True, seed=self.seed)
        return self

    @staticmethod
    def _proba(head, X: np.ndarray) -> np.ndarray:  # noqa: ANN001
        from pipeline.modeling.outputs import softmax

        w, b = head.weight.detach().numpy(), head.bias.detach().numpy()
        return softmax(X @ w.T + b)

    def predict_proba(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (self._proba(self.sentiment_head, X),
                np.stack([self._proba(self.stance_heads[t], X) for t in self.targets], 1))


def scores_of(learner: Learner, X: np.ndarray, real: list[dict], index: np.ndarray, schema) -> dict:  # noqa: ANN001
    from pipeline.metrics import headline_scores

    sent, stance = learner.predict_proba(X[index])
    gold = {"sentiment": [real[i]["sentiment"] for i in index]}
    pred = {"sentiment": [schema.sentiment_classes[k] for k in sent.argmax(1)]}
    for j, t in enumerate(schema.target_names):
        gold[t] = [real[i]["stance"][t] for i in index]
        pred[t] = [schema.stance_classes[k] for k in stance[:, j].argmax(1)]
    h = headline_scores(gold, pred, schema.sentiment_classes, schema.stance_classes, schema.target_names,
                        schema.polar_classes)
    return {"sentiment_macro_f1": h["sentiment_macro_f1"], "stance_score": h["stance_score"]}


def start_set(train: np.ndarray, y: dict[str, np.ndarray], seed: int) -> tuple[np.ndarray, int]:
    """``START`` items drawn from ``train``; a draw in which some head sees a single class is redrawn
    (logistic regression needs two), with the seed + 1, + 2, …"""
    for attempt in range(100):
        rng = np.random.default_rng(seed + attempt)
        labelled = rng.choice(train, size=START, replace=False)
        if all(len(np.unique(v[labelled])) > 1 for v in y.values()):
            return labelled, attempt
    raise RuntimeError("no usable start set")


def one_run(strategy: str, fold: int, repeat: int, X: np.ndarray, y: dict[str, np.ndarray], real: list[dict],
            folds: np.ndarray, schema) -> dict:  # noqa: ANN001
    from pipeline.inference.suggest import select, uncertainty_scores

    test = np.where(folds == fold)[0]
    train = np.where(folds != fold)[0]
    base_seed = 1000 * fold + repeat
    labelled, redraws = start_set(train, y, base_seed)
    ids = [r["id"] for r in real]
    curve: dict[str, list] = {"budget": [], "sentiment_macro_f1": [], "stance_score": []}
    rnd = 0
    while True:
        learner = Learner(schema, X.shape[1], base_seed).fit(X[labelled], {k: v[labelled] for k, v in y.items()})
        s = scores_of(learner, X, real, test, schema)
        curve["budget"].append(int(len(labelled)))
        for k, v in s.items():
            curve[k].append(round(v, 5))
        if len(labelled) >= BUDGET:
            break
        pool = np.setdiff1d(train, labelled)
        sent, stance = learner.predict_proba(X[pool])
        scores, _, _ = uncertainty_scores(sent, stance)
        picked = select(strategy, scores, STEP, [ids[i] for i in pool], seed=base_seed * 100 + rnd,
                        embed=lambda index, pool=pool: X[pool[index]])
        labelled = np.concatenate([labelled, pool[picked]])
        rnd += 1
    return {"strategy": strategy, "fold": fold, "repeat": repeat, "start_redraws": redraws, **curve}


def full_pool(X: np.ndarray, y: dict[str, np.ndarray], real: list[dict], folds: np.ndarray, schema) -> list[dict]:  # noqa: ANN001
    """The ceiling: each fold scored by heads fitted on all of the other four folds."""
    out = []
    for fold in range(5):
        train, test = np.where(folds != fold)[0], np.where(folds == fold)[0]
        learner = Learner(schema, X.shape[1], 1000 * fold).fit(X[train], {k: v[train] for k, v in y.items()})
        out.append({"fold": fold, "n_train": int(len(train)), **scores_of(learner, X, real, test, schema)})
    return out


def cmd_run(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(1)
    schema = load_schema(REPO / "configs" / "labels.yaml")
    real = load_domain_real(args.shared)
    fold_of = load_domain_real_folds(args.shared)
    X = load_embeddings(real)
    y = label_arrays(real, schema)
    folds = np.array([fold_of[r["id"]] for r in real])
    runs, t0 = [], time.time()
    total = 5 * args.repeats * len(STRATEGY_NAMES)
    for fold in range(5):
        for repeat in range(args.repeats):
            for strategy in STRATEGY_NAMES:
                runs.append(one_run(strategy, fold, repeat, X, y, real, folds, schema))
                last = runs[-1]
                log(f"{len(runs)}/{total} fold {fold} repeat {repeat} {strategy}: at {last['budget'][-1]} labels "
                    f"sentiment {last['sentiment_macro_f1'][-1]:.3f} stance {last['stance_score'][-1]:.3f} "
                    f"({time.time() - t0:.0f} s)")
    result = {"start": START, "step": STEP, "budget": BUDGET, "repeats": args.repeats, "C": C,
              "n_passages": len(real), "embedding_seconds": float(np.load(EMBEDDINGS)["seconds"]),
              "seconds": round(time.time() - t0, 1), "full_pool": full_pool(X, y, real, folds, schema), "runs": runs}
    CURVES.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    log(f"wrote {CURVES} ({len(runs)} runs in {result['seconds']:.0f} s)")


# ---- the report -------------------------------------------------------------------------------------------

METRICS = {"sentiment_macro_f1": "sentiment macro-F1", "stance_score": "stance score"}


def curves_array(result: dict) -> tuple[list[int], dict[str, dict[str, np.ndarray]], np.ndarray]:
    """Budgets, ``{strategy: {metric: [runs, budgets]}}`` with runs in (fold, repeat) order, and each run's fold."""
    runs = sorted(result["runs"], key=lambda r: (r["fold"], r["repeat"]))
    budgets = runs[0]["budget"]
    out = {s: {m: np.array([r[m] for r in runs if r["strategy"] == s]) for m in METRICS} for s in STRATEGY_NAMES}
    folds = np.array([r["fold"] for r in runs if r["strategy"] == STRATEGY_NAMES[0]])
    return budgets, out, folds


def resamples(folds: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``[n, runs]`` run indices of a two-level bootstrap: draw the folds with replacement, then the repeats
    within each drawn fold (so both the held-out fold and the start set vary); the same draws serve every
    strategy, which makes the differences paired."""
    rng = np.random.default_rng(seed)
    by_fold = [np.where(folds == f)[0] for f in np.unique(folds)]
    out = []
    for _ in range(n):
        picks = [by_fold[f][rng.integers(0, len(by_fold[f]), len(by_fold[f]))]
                 for f in rng.integers(0, len(by_fold), len(by_fold))]
        out.append(np.concatenate(picks))
    return np.array(out)


def labels_to_reach(curve: np.ndarray, budgets: list[int], target: float) -> float:
    """First budget at which the mean curve reaches ``target`` (linear between measured budgets); inf if never."""
    for k, value in enumerate(curve):
        if value >= target:
            if k == 0:
                return float(budgets[0])
            lo, hi = curve[k - 1], value
            return float(budgets[k - 1] + (target - lo) / (hi - lo) * (budgets[k] - budgets[k - 1]))
    return float("inf")


def ci(values: np.ndarray) -> tuple[float, float]:
    lo, hi = np.quantile(values, [0.025, 0.975])
    return float(lo), float(hi)


def verdict(lo: float, hi: float) -> str:
    return "better" if lo > 0 else "worse" if hi < 0 else "not significantly different"


def reach_finding(strategy: str, name: str, target: float, final: float, point: float, lo: float,
                  hi: float) -> str:
    """One sentence on the labels ``strategy`` needs to reach random's final score, with its interval."""
    where = f"{fmt_labels(point)} labels [{fmt_labels(lo)}, {fmt_labels(hi)}]"
    if not np.isfinite(point):
        return (f"`{strategy}` does not reach random's final {name} ({target:.3f} at {BUDGET} labels) within the "
                f"budget (its own score at {BUDGET}: {final:.3f}; labels needed {where}).")
    sure = hi < BUDGET
    return (f"`{strategy}` reaches random's final {name} ({target:.3f} at {BUDGET} labels) at {where}: "
            f"{BUDGET - point:.0f} fewer labels, " + ("an interval below the budget." if sure else
                                                     f"but the interval reaches {BUDGET} or more, so the saving is "
                                                     "not significant."))


def fmt_labels(x: float) -> str:
    return f"> {BUDGET}" if not np.isfinite(x) else f"{x:.0f}"


def cmd_report(args: argparse.Namespace) -> None:
    result = json.loads(CURVES.read_text(encoding="utf-8"))
    budgets, curves, folds = curves_array(result)
    draws = resamples(folds, BOOTSTRAP)
    n_runs = len(folds)
    mean = {s: {m: curves[s][m].mean(0) for m in METRICS} for s in STRATEGY_NAMES}
    boot = {s: {m: curves[s][m][draws].mean(1) for m in METRICS} for s in STRATEGY_NAMES}  # [B, budgets]
    lines = [
        "# Active learning: which items to label next",
        "",
        "How fast each `threadstance suggest` strategy improves a model, simulated on the 563 labelled real "
        "passages of domain_real v2 (`../shared/datasets/domain_real`). Reproduce with "
        "`scripts/active_learning_study.py` (`embed`, `run`, `report`); the raw curves go to "
        "`work/active_learning/curves.json`.",
        "",
        "## Set-up",
        "",
        f"- **Folds**: the five url-grouped folds of `folds.json`. For each held-out fold, the other four folds "
        f"are the labelling pool (450 or 451 passages). Each (fold, repeat) draws its own {START} start items at "
        f"random (seeded); all three strategies start from the same {START}, so the comparison is paired. "
        f"{result['repeats']} repeats per fold, {n_runs} curves per strategy.",
        f"- **Rounds**: refit, score the held-out fold, then label {STEP} more items chosen from the rest of the "
        f"pool, up to {BUDGET} labels ({len(budgets)} points per curve).",
        "- **Strategies** (the functions behind `suggest`, `pipeline/inference/suggest.py`): `uncertainty` = the "
        "items whose least sure head has the smallest margin between its two most probable classes (score = 1 − "
        "smallest margin over the sentiment head and the four stance heads); `diverse` = k-means (k = 25) over "
        "the pooled embeddings of the 100 most uncertain items, the most uncertain item of each cluster; "
        "`random` = 25 items drawn uniformly (seeded).",
        "- **Learner: the frozen-encoder proxy, not the deployed model.** all-mpnet-base-v2 mean-pooled "
        "embeddings (computed once, "
        f"{result['embedding_seconds']:.0f} s) and one logistic-regression head per task (C = {C:g}, balanced "
        "class weights) fitted by the product's `fit_linear_heads` (`training.trainable_layers: 0`). The deployed "
        "default fine-tunes the top two layers and would take minutes per round on this CPU. Its probabilities "
        "are the heads' softmax, without a temperature. The proxy's ranking of strategies is evidence for the "
        "deployed model, not a measurement of it.",
        "- **Scores** on the held-out fold: sentiment macro-F1 and the stance score (mean over the four targets "
        "of F1avg(favor, against)), from `pipeline.metrics.headline_scores`.",
        f"- **Intervals**: 95 % percentile intervals from {BOOTSTRAP} two-level bootstrap resamples (draw the "
        "folds with replacement, then the repeats within each drawn fold). The same draws are used for every "
        "strategy, so the differences are paired.",
        f"- One CPU thread; the {n_runs * len(STRATEGY_NAMES)} curves took {result['seconds']:.0f} s.",
        "",
    ]
    ceiling = {m: float(np.mean([f[m] for f in result["full_pool"]])) for m in METRICS}
    sizes = sorted({f["n_train"] for f in result["full_pool"]})
    pool_sizes = "–".join(map(str, sizes))
    lines += ["![learning curves](active_learning.png)", "",
              "Mean curves with 95 % bands; dashed: every pool passage labelled.", ""]
    for m, name in METRICS.items():
        lines += [f"## Learning curves: {name}", "",
                  "Mean over the curves [95 % interval]; the last two columns are paired differences "
                  "from random.", "",
                  "| labels | " + " | ".join(STRATEGY_NAMES) + " | uncertainty − random | diverse − random |",
                  "|---|" + "---|" * (len(STRATEGY_NAMES) + 2)]
        for k, b in enumerate(budgets):
            cells = []
            for s in STRATEGY_NAMES:
                lo, hi = ci(boot[s][m][:, k])
                cells.append(f"{mean[s][m][k]:.3f} [{lo:.3f}, {hi:.3f}]")
            for s in ("uncertainty", "diverse"):
                d = mean[s][m][k] - mean["random"][m][k]
                lo, hi = ci(boot[s][m][:, k] - boot["random"][m][:, k])
                cells.append(f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]")
            lines.append(f"| {b} | " + " | ".join(cells) + " |")
        lines += ["", f"With all {pool_sizes} pool passages labelled (the ceiling of this learner): "
                  f"{ceiling[m]:.3f} (mean over the five folds).", ""]
    lines += ["## Labels needed to reach the random strategy's final score", "",
              f"The target is the random strategy's mean score at {BUDGET} labels. For each strategy: the number of "
              "labels at which its mean curve first reaches that target (linear between measured points), "
              f"with a 95 % interval from the same bootstrap (`> {BUDGET}`: not reached within the budget).", "",
              "| score | target (random at " + str(BUDGET) + ") | " + " | ".join(STRATEGY_NAMES) + " |",
              "|---|---|" + "---|" * len(STRATEGY_NAMES)]
    findings = []
    for m, name in METRICS.items():
        target = mean["random"][m][-1]
        cells = []
        for s in STRATEGY_NAMES:
            point = labels_to_reach(mean[s][m], budgets, target)
            boots = np.array([labels_to_reach(boot[s][m][i], budgets, boot["random"][m][i, -1])
                              for i in range(BOOTSTRAP)])
            lo, hi = np.quantile(boots, [0.025, 0.975], method="inverted_cdf")
            cells.append(f"{fmt_labels(point)} [{fmt_labels(lo)}, {fmt_labels(hi)}]")
            if s != "random":
                findings.append(reach_finding(s, name, target, mean[s][m][-1], point, lo, hi))
        lines.append(f"| {name} | {target:.3f} | " + " | ".join(cells) + " |")
    lines += ["", "## Averaged over the curve", "",
              f"Mean difference from random over the {len(budgets) - 1} rounds after the start (the area between "
              "the curves divided by its width), paired:", "",
              "| strategy | " + " | ".join(METRICS.values()) + " |", "|---|" + "---|" * len(METRICS)]
    for s in ("uncertainty", "diverse"):
        cells = []
        for m in METRICS:
            d = float((mean[s][m][1:] - mean["random"][m][1:]).mean())
            lo, hi = ci((boot[s][m][:, 1:] - boot["random"][m][:, 1:]).mean(1))
            cells.append(f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}] ({verdict(lo, hi)})")
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    lines += ["", "## Findings", ""]
    overall = []
    for s in ("uncertainty", "diverse"):
        for m, name in METRICS.items():
            lo, hi = ci((boot[s][m][:, 1:] - boot["random"][m][:, 1:]).mean(1))
            overall.append(f"`{s}` is {verdict(lo, hi)} on {name}")
    lines.append("- Averaged over the curve, " + "; ".join(overall) + " (compared with random, paired intervals).")
    lines += [f"- {f}" for f in findings]
    single = []
    for s in ("uncertainty", "diverse"):
        for m, name in METRICS.items():
            for k in range(1, len(budgets)):
                lo, hi = ci(boot[s][m][:, k] - boot["random"][m][:, k])
                if lo > 0 or hi < 0:
                    d = mean[s][m][k] - mean["random"][m][k]
                    single.append(f"`{s}` {name} at {budgets[k]} labels ({d:+.3f} [{lo:+.3f}, {hi:+.3f}])")
    n_tests = 2 * len(METRICS) * (len(budgets) - 1)
    lines.append(f"- Of the {n_tests} per-budget differences from random, "
                 + (f"{len(single)} {'has' if len(single) == 1 else 'have'} an interval that excludes 0: "
                    + "; ".join(single)
                    + ". With this many comparisons, about one in twenty would do so by chance."
                    if single else "none has an interval that excludes 0."))
    lines.append("")
    if all("not significantly" in o for o in overall):
        lines += ["## Reading", "",
                  "With this learner and these budgets, choosing items by uncertainty or by uncertainty plus "
                  "diversity teaches the model no more than labelling items at random: no difference from random "
                  "is distinguishable from zero over the curve. Possible reasons, not measured here: the "
                  "pool is small (about 450 passages, so by 300 labels every strategy has seen two thirds of it "
                  "and the curves converge); the most uncertain passages are often the borderline ones whose "
                  "single-pass labels are noisiest (neutral against mildly negative, favor against none on "
                  "reports); and a linear head on a frozen encoder gains less from boundary cases than a "
                  "fine-tuned encoder might. `suggest` still shows where the model is unsure, which is "
                  "what the annotator's pre-selected suggestions need; whether it saves labels for the "
                  "deployed model is not shown by this study.", ""]
        early = [f"{name} at {labels_to_reach(mean['random'][m], budgets, mean['random'][m][-1]):.0f} labels"
                 for m, name in METRICS.items()
                 if labels_to_reach(mean["random"][m], budgets, mean["random"][m][-1]) < BUDGET]
        if early:
            lines += [f"Random's own mean curve already reaches its final value of {' and '.join(early)}: "
                            "the last rounds are flat within noise, so the labels-needed numbers are coarse.", ""]
    REPORT.write_text("\n".join(lines), encoding="utf-8")
    plot(budgets, mean, boot, ceiling)
    log(f"wrote {REPORT}")


def plot(budgets: list[int], mean: dict, boot: dict, ceiling: dict) -> None:  # noqa: ANN001
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=100)
    for ax, (m, name) in zip(axes, METRICS.items()):
        for s in STRATEGY_NAMES:
            lo, hi = np.quantile(boot[s][m], [0.025, 0.975], axis=0)
            ax.plot(budgets, mean[s][m], marker="o", markersize=3, label=s)
            ax.fill_between(budgets, lo, hi, alpha=0.15)
        ax.axhline(ceiling[m], color="grey", linestyle="--", linewidth=1, label="all pool labels")
        ax.set_xlabel("labelled items")
        ax.set_title(f"{name} on the held-out fold", fontsize=10)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(REPORT.with_suffix(".png"))
    plt.close(fig)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default=None, help="shared data folder (default ../shared)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("embed")
    run = sub.add_parser("run")
    run.add_argument("--repeats", type=int, default=4, help="start sets per fold (seeds)")
    sub.add_parser("report")
    ns = parser.parse_args()
    {"embed": cmd_embed, "run": cmd_run, "report": cmd_report}[ns.cmd](ns)
