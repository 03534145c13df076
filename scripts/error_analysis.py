#!/usr/bin/env python
"""Error analysis of a recipe's out-of-fold predictions on domain_real (reports/errors.md).

Reads the recipe study's out-of-fold logits (``reports/recipes/<recipe>.json``), applies the temperatures of
``configs/default.yaml`` and writes, from them:

- error rates and confusion by kind (comment / opinion / report), by target and by class;
- the most confident errors (sentiment and stance pooled), cited by item id, never by text, with a reason
  read against the codebook (``reports/errors_reasons.tsv``: ``id<TAB>task<TAB>verdict<TAB>reason<TAB>label we
  would give``; verdict is one of label-noise, codebook-ambiguity, model).

    .venv/bin/python scripts/error_analysis.py                   # the default's recipe, 30 worst errors
    .venv/bin/python scripts/error_analysis.py --list 40         # print the worst errors with text, to read
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import yaml
from scipy.special import softmax

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline.config.schema import load_schema  # noqa: E402
from pipeline.data.public_data import load_domain_real  # noqa: E402
from pipeline.metrics import per_class  # noqa: E402

REASONS = REPO / "reports" / "errors_reasons.tsv"
MARKER = "<!-- everything below is written by scripts/error_analysis.py -->"


def load(recipe: str, shared: str | None) -> tuple[list[dict], dict, dict]:
    res = json.loads((REPO / "reports" / "recipes" / f"{recipe}.json").read_text(encoding="utf-8"))
    real = [r for r in load_domain_real(shared) if r["id"] in res["oof"]]
    temps = yaml.safe_load((REPO / "configs" / "default.yaml").read_text())["calibration"]["temperature"]
    return real, res, temps


def predictions(real: list[dict], res: dict, temps: dict, schema) -> list[dict]:  # noqa: ANN001
    """One row per (item, task): gold, predicted, probability of the prediction and of the gold label."""
    rows = []
    for r in real:
        o = res["oof"][r["id"]]
        p = softmax(np.array(o["sentiment"]) / temps["sentiment"])
        tasks = [("sentiment", schema.sentiment_classes, r["sentiment"], p)]
        st = softmax(np.array(o["stance"]) / temps["stance"], axis=-1)
        tasks += [(t, schema.stance_classes, r["stance"][t], st[j]) for j, t in enumerate(schema.target_names)]
        for task, classes, gold, probs in tasks:
            k = int(np.argmax(probs))
            rows.append({"id": r["id"], "kind": r["kind"], "task": task, "gold": gold, "pred": classes[k],
                         "conf": float(probs[k]), "p_gold": float(probs[classes.index(gold)]),
                         "version": "v3-new" if r["id"].startswith("hv3") else "v2"})
    return rows


def table(headers: list[str], body: list[list]) -> list[str]:
    return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)] + \
        ["| " + " | ".join(str(c) for c in row) + " |" for row in body]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default=None, help="default: the recipe of configs/default.yaml (evaluation.oof_recipe)")
    ap.add_argument("--shared", default=None)
    ap.add_argument("--worst", type=int, default=30)
    ap.add_argument("--list", type=int, default=0, help="print the N worst errors with their text (not saved)")
    ap.add_argument("--out", default=str(REPO / "reports" / "errors.md"))
    args = ap.parse_args()
    schema = load_schema(REPO / "configs" / "labels.yaml")
    if args.recipe is None:
        args.recipe = yaml.safe_load((REPO / "configs" / "default.yaml").read_text())["evaluation"]["oof_recipe"]
    real, res, temps = load(args.recipe, args.shared)
    rows = predictions(real, res, temps, schema)
    errors = [r for r in rows if r["gold"] != r["pred"]]
    errors.sort(key=lambda r: -r["conf"])
    if args.list:
        text = {r["id"]: r["text"] for r in real}
        for e in errors[: args.list]:
            print(f"{e['id']}\t{e['task']}\tgold={e['gold']}\tpred={e['pred']}\t{e['conf']:.2f}\t{e['kind']}\n  "
                  f"{text[e['id']][:700]}\n")
        return

    lines = [f"# Error analysis: `{args.recipe}` out of fold on domain_real v3", "",
             f"Every one of the {len(real)} passages was predicted by the fold model that never saw it "
             f"(`reports/recipes/{args.recipe}.json`, `scripts/recipe_study.py`), probabilities after the default's "
             f"temperatures (sentiment {temps['sentiment']}, stance {temps['stance']}). Made by "
             "`scripts/error_analysis.py`; items are cited by id (the texts stay in `../shared`).", "",
             "## Error rate by kind and task", ""]
    kinds = ["comment", "opinion", "report"]
    tasks = ["sentiment", *schema.target_names]
    body = []
    for task in tasks:
        cells = [f"`{task}`"]
        for k in kinds:
            sub = [r for r in rows if r["task"] == task and r["kind"] == k]
            wrong = sum(r["gold"] != r["pred"] for r in sub)
            cells.append(f"{wrong / len(sub):.1%} ({wrong}/{len(sub)})")
        body.append(cells)
    lines += table(["task", *[f"{k} (n={sum(r['kind'] == k for r in real)})" for k in kinds]], body)

    lines += ["", "## Per class (F1, support) by kind", ""]
    body = []
    for task in tasks:
        classes = schema.sentiment_classes if task == "sentiment" else schema.stance_classes
        for k in [*kinds, "all"]:
            sub = [r for r in rows if r["task"] == task and (k == "all" or r["kind"] == k)]
            pc = per_class([r["gold"] for r in sub], [r["pred"] for r in sub], classes)
            body.append([f"`{task}`", k] + [f"{pc[c]['f1']:.2f} ({pc[c]['support']})" for c in classes])
    lines += table(["task", "kind", "negative / favor", "neutral / against", "positive / none"], body)
    lines += ["", "(Columns are the label schema's class order: sentiment negative, neutral, positive; stance favor, "
              "against, none.)"]

    lines += ["", "## Confusions (gold → predicted), all kinds", ""]
    conf = Counter((r["task"], r["gold"], r["pred"]) for r in errors)
    lines += table(["task", "gold → predicted", "count", "of which comments"],
                   [[f"`{t}`", f"{g} → {p}", n, sum(1 for e in errors if (e["task"], e["gold"], e["pred"]) == (t, g, p)
                                                    and e["kind"] == "comment")]
                    for (t, g, p), n in conf.most_common(16)])

    reasons = {}
    if REASONS.is_file():
        with REASONS.open(encoding="utf-8") as fh:
            for rec in csv.DictReader(fh, delimiter="\t"):
                reasons[(rec["id"], rec["task"])] = rec
    worst = errors[: args.worst]
    lines += ["", f"## The {len(worst)} most confident errors, read against the codebook", "",
              "Verdict: **label-noise** (the dataset label breaks a codebook rule; the label we would give is shown), "
              "**ambiguity** (the codebook allows both), **model** (the label is right and the model is wrong).", ""]
    body = []
    for e in worst:
        why = reasons.get((e["id"], e["task"]), {})
        body.append([e["id"], e["kind"], f"`{e['task']}`", e["gold"], e["pred"], f"{e['conf']:.2f}",
                     why.get("verdict", "–"), why.get("reason", "–"), why.get("label", "") or ""])
    lines += table(["id", "kind", "task", "gold", "predicted", "p(pred)", "verdict", "reason (codebook)",
                    "label we would give"], body)
    verdicts = Counter(reasons.get((e["id"], e["task"]), {}).get("verdict", "unread") for e in worst)
    lines += ["", "Verdicts: " + ", ".join(f"{v} {n}" for v, n in verdicts.most_common()) + "."]
    out = Path(args.out)
    old = out.read_text(encoding="utf-8") if out.is_file() else ""
    head = old.split(MARKER)[0] if MARKER in old else ""  # the hand-written findings above the marker are kept
    out.write_text(head + MARKER + "\n" + "\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: {len(errors)} errors in {len(rows)} (item, task) pairs")


if __name__ == "__main__":
    main()
