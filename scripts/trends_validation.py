#!/usr/bin/env python
"""Does the corrected share beat the raw share? A simulation on the real out-of-fold predictions.

The out-of-fold predictions of the default recipe on domain_real (``calibration.oof_predictions`` of
CONFIG, built into a table exactly as training stores it in the model folder) are split by the fixed
url-grouped folds: 3 folds give the misclassification rates (the role of the model folder's table), the
other 2 are the pool that sets are drawn from, over all 10 ways to choose the 2. Each repeat draws
a target share vector uniformly from the simplex, a set size, the class counts from that share
(multinomial), and then that many distinct held-out items of each class (without replacement; a draw the
pool cannot supply is redrawn). Every item in a set is a real held-out passage with its real out-of-fold
prediction, so the only thing the simulation controls is the class shares; the truth is the set's own
shares (its counts over its size).

Per set: the raw share (classify and count) with its bootstrap interval (urls, then items), and the
corrected shares (ACC with rates pooled over kinds; ACC and PACC with rates per kind, comments apart from
the other passages, as ``threadstance trends`` does) with intervals that also redraw the rate table.
Against the known shares: bias, RMSE, 95 % interval coverage and mean width, per task and class. Two
scenarios: sets drawn from every held-out passage, and sets of reader comments only (what a thread is).

    .venv/bin/python scripts/trends_validation.py            # writes reports/trends_validation.md/.json
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline.config.run import load_config  # noqa: E402
from pipeline.data.public_data import load_domain_real, load_domain_real_folds  # noqa: E402
from pipeline.evaluation.prevalence import (  # noqa: E402
    ErrorTable,
    cluster_weights,
    error_tables,
    estimate_shares,
    estimate_stratified,
    rates_by_stratum,
    table_rates,
)
from pipeline.training.oof_table import build_oof_table  # noqa: E402

# name -> (estimator, rates per kind?); "ACC, rates by kind" is what `threadstance trends` does by default
METHODS = {"raw (classify and count)": (None, False), "ACC, pooled rates": ("acc", False),
           "ACC, rates by kind": ("acc", True), "PACC, rates by kind": ("pacc", True)}
SCENARIOS = {"all": "sets drawn from every held-out passage (comments, opinion, report)",
             "comments": "sets of reader comments only"}


def draw_set(pool_true: np.ndarray, k: int, size: tuple[int, int], rng: np.random.Generator,
             tries: int = 20000) -> tuple[np.ndarray, np.ndarray]:
    """(the set's class shares, indices into the pool): shares uniform on the simplex, counts multinomial, items
    of each class drawn without replacement; redrawn until the pool can supply the counts."""
    available = np.bincount(pool_true, minlength=k)
    for _ in range(tries):
        share = rng.dirichlet(np.ones(k))
        counts = rng.multinomial(int(rng.integers(size[0], size[1] + 1)), share)
        if np.all(counts <= available):
            picks = [rng.choice(np.flatnonzero(pool_true == j), counts[j], replace=False) for j in range(k)]
            return counts / counts.sum(), np.concatenate(picks)  # the truth: the set's own class shares
    raise RuntimeError("the pool cannot supply a set; lower --size")


def simulate(table: ErrorTable, folds: np.ndarray, repeats: int, n_boot: int, size: tuple[int, int],
             seed: int, comments_only: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """Per method: truth, estimate, ci_low, ci_high arrays (repeats, k)."""
    rng = np.random.default_rng(seed)
    k = len(table.classes)
    splits = list(itertools.combinations(sorted(set(folds.tolist())), 2))
    out: dict[str, dict[str, list]] = {m: {"truth": [], "est": [], "lo": [], "hi": []} for m in METHODS}
    for r in range(repeats):
        held = np.isin(folds, splits[r % len(splits)])
        rates_table = table.subset(~held)
        pool = table.subset(held & (table.strata == "comment") if comments_only else held)
        share, idx = draw_set(pool.true, k, size, rng)
        probs, urls, strata = pool.probs[idx], pool.groups[idx], pool.strata[idx]
        draws = cluster_weights(rates_table.groups, n_boot, rng)  # one draw of the table, shared by the strata
        for name, (method, by_kind) in METHODS.items():
            if method is None:
                est = estimate_shares(probs, urls, None, n_boot, rng)
            elif by_kind:
                rates = rates_by_stratum(rates_table, method, n_boot, rng, draws)
                est = estimate_stratified(probs, urls, strata, rates, n_boot, rng)
            else:
                est = estimate_shares(probs, urls, table_rates(rates_table, method, n_boot, rng, draws), n_boot, rng)
            point, ci = (est.share_raw, est.raw_ci) if method is None else (est.share, est.ci)
            for key, value in (("truth", share), ("est", point), ("lo", ci[0]), ("hi", ci[1])):
                out[name][key].append(value)
    return {m: {key: np.array(v) for key, v in d.items()} for m, d in out.items()}


def summarise(result: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    err = result["est"] - result["truth"]
    return {"bias": err.mean(0), "bias_se": err.std(0, ddof=1) / np.sqrt(len(err)), "rmse": np.sqrt((err ** 2).mean(0)),
            "coverage": ((result["lo"] <= result["truth"]) & (result["truth"] <= result["hi"])).mean(0),
            "width": (result["hi"] - result["lo"]).mean(0),
            "truth_min": result["truth"].min(0), "truth_max": result["truth"].max(0)}


def pct(x: float, signed: bool = False) -> str:
    return f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}"


def render(summary: dict, meta: dict) -> str:
    lines = [
        "# Corrected label shares on real data: bias and interval coverage",
        "",
        f"Written by `scripts/trends_validation.py` (seed {meta['seed']}, {meta['repeats']} sets per task, "
        f"{meta['n_boot']} bootstrap replicates per interval, {meta['seconds']:.0f} s on one core). Numbers are "
        "percentage points of share.",
        "",
        "## What was simulated",
        "",
        f"- Predictions: the out-of-fold predictions of recipe `{meta['recipe']}` on the {meta['n']} real "
        f"domain_real passages (`{meta['source']}`), probabilities after the model's temperature, i.e. the "
        "table training stores in the model folder and `threadstance trends` corrects with.",
        "- Each set: 3 of the 5 fixed url-grouped folds give the misclassification rates, the other 2 are the "
        "pool (all 10 choices in turn). A target share vector is drawn uniformly from the simplex, a set size "
        f"from {meta['size'][0]}–{meta['size'][1]}, the class counts from the shares (multinomial), and that many "
        "distinct pool items per class (without replacement, so every item is a real held-out passage with its "
        "real prediction; a draw the pool cannot supply is redrawn, which limits how large rare classes get: "
        "the range of true shares tested is in the tables).",
        "- Raw: classify and count, interval from a bootstrap of the set (urls, then items within them). "
        "ACC / PACC: the corrections of `threadstance trends` (`--method acc|pacc`), intervals that also "
        "redraw the rate table (urls, then items) in every replicate. *Pooled rates*: one rate table over all "
        "kinds of passage (what `trends` did before 2026-12-06, and still does for a model folder whose table "
        "records no kinds). *Rates by kind*: comments are corrected with the rates measured on comments, the "
        "other passages with theirs, and the corrected shares combined by item counts (what `trends` does "
        "now); a class with fewer than 20 labelled items of a kind in the rate table keeps the rates pooled "
        "over all kinds for that class. Truth: the set's own class shares (its class counts over its size; a draw from the simplex "
        "that the pool cannot supply is redrawn, so the drawn vector itself is not the truth). The intervals "
        "also allow for the sampling of items, so against the set's own shares they cover somewhat more often "
        "than nominal; coverages here are not comparable with reports before 2026-12-06, which scored against "
        "the drawn vector.",
        "- Scenarios: " + "; ".join(f"*{k}*: {v}" + (f" (set sizes {meta['sizes'][k][0]}–{meta['sizes'][k][1]})")
                                     for k, v in SCENARIOS.items()) + ".",
        "- Bias: mean(estimate − truth); RMSE; coverage: share of sets whose 95 % interval holds the truth "
        f"(0.95 is nominal; with {meta['repeats']} sets a coverage is known to about ±"
        f"{1.96 * np.sqrt(0.95 * 0.05 / meta['repeats']):.2f}); width: mean interval width. The bias interval is "
        "mean ± 1.96 standard errors over the sets (sets drawn from the same pool are not fully independent).",
        "",
        "## Per task (mean over classes)",
        "",
        "| scenario | task | method | mean abs. bias | RMSE | coverage | width |",
        "|---|---|---|---|---|---|---|",
    ]
    for scenario, per_task in summary.items():
        for task, per_method in per_task.items():
            for method, s in per_method.items():
                lines.append(f"| {scenario} | {task} | {method} | {pct(np.abs(s['bias']).mean())} | "
                             f"{pct(s['rmse'].mean())} | {s['coverage'].mean():.2f} | {pct(s['width'].mean())} |")
    lines += ["", "## Per class", "",
              "| scenario | task | class | true share tested | method | bias [95 % CI] | RMSE | coverage | width |",
              "|---|---|---|---|---|---|---|---|---|"]
    for scenario, per_task in summary.items():
        for task, per_method in per_task.items():
            for j, c in enumerate(meta["classes"][task]):
                for method, s in per_method.items():
                    lines.append(
                        f"| {scenario} | {task} | {c} | {pct(s['truth_min'][j])}–{pct(s['truth_max'][j])} | {method} | "
                        f"{pct(s['bias'][j], True)} [{pct(s['bias'][j] - 1.96 * s['bias_se'][j], True)}, "
                        f"{pct(s['bias'][j] + 1.96 * s['bias_se'][j], True)}] | {pct(s['rmse'][j])} | "
                        f"{s['coverage'][j]:.2f} | {pct(s['width'][j])} |")
    lines += ["", "## Reading it", "", *meta["reading"], "",
              "## What this does not show", "",
              "- The rates and the sets come from the same kind of text (domain_real passages: comments, opinion "
              "pieces, reports). The correction assumes the rates hold for the items being counted; news-comment "
              "threads differ in length and style, and a shift in how the model errs on them is not covered by "
              "the intervals.",
              f"- The rate tables here hold 3 of 5 folds (about {round(0.6 * meta['n'])} items, "
              f"{round(0.6 * meta['n_comments'])} of them comments); the model folder's table holds all "
              f"{meta['n']}, so intervals from `threadstance trends` are somewhat narrower than the widths above.",
              "- The rates are those of the recipe's five fold models, each trained on 4 of the 5 folds; the model "
              f"trained on all {meta['n']} passages may err a little less, and the correction then uses rates of "
              "slightly weaker models than the one that labelled the items.",
              "- Both bootstraps are two-stage (urls, then items within them), which errs on the wide side when "
              "urls hold several items.", ""]
    return "\n".join(lines)


def reading(summary: dict) -> list[str]:
    """Plain statements from the numbers (no judgement the table does not show)."""
    out = []
    for scenario, per_task in summary.items():
        for task, per_method in per_task.items():
            out.append(f"- {scenario}, {task}: RMSE " + ", ".join(
                f"{m} {pct(s['rmse'].mean())}" for m, s in per_method.items()) + "; coverage " + ", ".join(
                f"{m} {s['coverage'].mean():.2f} (lowest class {s['coverage'].min():.2f})"
                for m, s in per_method.items()) + ".")
        lowest = {m: min(per_method[m]["coverage"].min() for per_method in per_task.values()) for m in METHODS}
        out.append(f"- {scenario}: lowest per-class coverage over all tasks: "
                   + ", ".join(f"{m} {v:.2f}" for m, v in lowest.items()) + ".")
    out.append("- `threadstance trends` corrects with ACC and rates by kind unless `--method pacc` is given.")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--shared", default=None)
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--bootstrap", type=int, default=500)
    parser.add_argument("--size", type=int, nargs=2, default=(100, 200))
    parser.add_argument("--comment-size", type=int, nargs=2, default=(30, 60),
                        help="Set sizes of the comments-only scenario (the pool holds about 120 comments).")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", default="reports/trends_validation")
    args = parser.parse_args()
    overrides = [f"paths.shared={args.shared}"] if args.shared else []
    cfg = load_config(args.config, overrides)
    schema = cfg.schema()
    oof = build_oof_table(cfg, schema)
    if oof is None:
        sys.exit(f"{args.config}: calibration.oof_predictions is not set")
    tables = error_tables(oof, {"targets": schema.target_names})
    fold_of = load_domain_real_folds(cfg.paths.shared, cfg.data.domain_real.folds_file or "")
    if fold_of is None:
        sys.exit("no folds.json for domain_real")
    folds = np.array([fold_of[i] for i in oof["ids"]])
    assert len(load_domain_real(cfg.paths.shared)) >= len(folds)
    start = time.time()
    summary: dict[str, dict] = {}
    sizes = {"all": tuple(args.size), "comments": tuple(args.comment_size)}
    for scenario in SCENARIOS:
        summary[scenario] = {}
        for t, (task, table) in enumerate(tables.items()):
            result = simulate(table, folds, args.repeats, args.bootstrap, sizes[scenario], args.seed + t,
                              comments_only=scenario == "comments")
            summary[scenario][task] = {m: summarise(r) for m, r in result.items()}
            print(f"{scenario} {task}: {args.repeats} sets in {time.time() - start:.0f} s", flush=True)
    meta = {"seed": args.seed, "repeats": args.repeats, "n_boot": args.bootstrap, "size": list(args.size),
            "sizes": {k: list(v) for k, v in sizes.items()},
            "seconds": time.time() - start, "recipe": oof.get("recipe"), "source": oof["source"], "n": oof["n"],
            "n_comments": oof["kinds"].count("comment"),
            "classes": {task: table.classes for task, table in tables.items()}}
    meta["reading"] = reading(summary)
    out = Path(args.out)
    out.with_suffix(".md").write_text(render(summary, meta), encoding="utf-8")
    json_summary = {sc: {task: {m: {k: v.tolist() for k, v in s.items()} for m, s in per.items()}
                         for task, per in per_task.items()} for sc, per_task in summary.items()}
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "summary": json_summary}, indent=1) + "\n",
                                        encoding="utf-8")
    print(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
