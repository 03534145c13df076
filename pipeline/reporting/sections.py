"""Report sections built from the evaluation metrics: the gold set, paired differences with the words their
intervals allow, training seeds, the out-of-fold domain_real scores and calibration.

Each function returns report blocks (see :mod:`pipeline.reporting.report`). Every count shown is read from
the metrics, and every "better"/"worse" comes from an interval (:func:`pipeline.evaluation.scoring.verdict`),
never from the text of this module.
"""
from __future__ import annotations

from typing import Any

from pipeline.evaluation.goldset import GROUPS, KINDS

Block = tuple
POOLED = "stance_pooled"
PLURALS = {"comment": "comments", "reply": "replies", "paragraph": "paragraphs", "thread": "threads",
           "field": "fields"}


def fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def ci_cell(res: dict[str, Any], key: str, with_ci: bool = True) -> str:
    """``0.650 [0.55, 0.74]``: a headline score with its interval (``–`` when the system has no such score)."""
    if key not in res.get("headline", {}):
        return "–"
    v = res["headline"][key]
    if not with_ci or key not in res.get("ci", {}):
        return fmt(v)
    lo, hi = res["ci"][key]
    return f"{v:.3f} [{lo:.2f}, {hi:.2f}]"


def diff_cell(d: dict[str, Any]) -> str:
    return f"{d['diff']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]"


def _plural(n: int, word: str) -> str:
    return f"{n} {word if n == 1 else PLURALS.get(word, word + 's')}"


def kinds_phrase(by_kind: dict[str, int], kinds: tuple[str, ...] = KINDS) -> str:
    """``19 comments, 1 reply`` (kinds with no item left out)."""
    return ", ".join(_plural(by_kind.get(k, 0), k) for k in kinds if by_kind.get(k))


# ---- the gold set ----------------------------------------------------------------------------------------

def gold_set_blocks(m: dict[str, Any]) -> list[Block]:
    g = m["gold_set"]
    targets = m["classes"]["targets"]
    by_kind = g["by_kind"]
    blocks: list[Block] = [
        ("h", 2, "The gold set"),
        ("p", f"`{g['path']}` (SHA-256 `{g['sha256'][:12]}`): {g['records_in_file']} labelled items in the file, "
              f"{g['n_items']} evaluated here; labels by "
              + ", ".join(f"`{a}` ({n})" for a, n in g["annotators"].items())
              + ". The gold set is never used for training or model selection."),
        ("table", ["kind", "items"], [[k, by_kind[k]] for k in KINDS] + [["**total**", sum(by_kind.values())]]),
        ("table", ["thread", "date", "source file", *(PLURALS[k] for k in KINDS), "items"],
         [[f"{t['title'] or t['thread_id']}", t["article_date"] or "–", f"`{t['source']}`" if t["source"] else "–",
           *(t["by_kind"][k] for k in KINDS), t["n"]] for t in g["threads"]]
         + [["**total**", "", "", *(sum(t["by_kind"][k] for t in g["threads"]) for k in KINDS),
             sum(t["n"] for t in g["threads"])]]),
    ]
    sent = g["labels"]["sentiment"]
    blocks.append(("p", "Gold sentiment: " + " / ".join(f"{n} {c}" for c, n in sent.items())
                   + f" (total {sum(sent.values())})."))
    classes = m["classes"]["stance"]
    blocks.append(("table", ["stance target", *classes, "total"],
                   [[t, *(g["labels"][t][c] for c in classes), sum(g["labels"][t].values())] for t in targets]))
    if not g["agreement"]:
        blocks.append(("p", "No annotation passes (`pass_a.jsonl` + `pass_b.jsonl`) were found beside the gold file, "
                            "so no agreement is reported."))
    for a in g["agreement"]:
        adj = a["adjudication"]
        text = (f"Two-pass agreement, `{a['files'][0]}` (annotator {', '.join(a['annotators'][0])}) vs "
                f"`{a['files'][1]}` (annotator {', '.join(a['annotators'][1])}): {a['common']} items labelled in both; "
                f"{a['items_fully_agreed']} agree on every field, {a['items_disputed']} differ on "
                f"{_plural(a['fields_disputed'], 'field')}")
        text += (f"; `{adj['file']}` adjudicates {_plural(adj['fields'], 'field')}." if adj else
                 "; no adjudication file beside them.")
        if a["revises_earlier_labels"]:
            text += (" These passes revised earlier labels (their changes are listed beside them) rather than "
                     "labelling from scratch, so their agreement is helped by the shared starting labels.")
        blocks += [("p", text),
                   ("table", ["field", "n", "agreed", "raw agreement", "Cohen's κ"],
                    [[f, x["n"], x["agreed"], fmt(x["raw_agreement"]), fmt(x["kappa"])]
                     for f, x in a["fields"].items()])]
    return blocks


# ---- paired differences ----------------------------------------------------------------------------------

def comparison_blocks(m: dict[str, Any], keys: list[str], short: dict[str, str]) -> list[Block]:
    rows, words = [], []
    for name, comp in m["comparisons"].items():
        rows.append([name, *(diff_cell(comp[k]) if k in comp else "–" for k in keys)])
        by_verdict: dict[str, list[str]] = {}
        for k in keys:
            if k in comp:
                by_verdict.setdefault(comp[k]["verdict"], []).append(short[k])
        words.append(f"**model vs {name}**: " + "; ".join(f"{v} on {', '.join(ks)}" for v, ks in by_verdict.items()))
    return [("h", 2, "Model minus baseline (paired thread bootstrap)"),
            ("p", "Model score − baseline score on the same resamples of threads, with its 95% interval. Only an "
                  "interval that excludes 0 supports \"better\" or \"worse\"; one that contains 0 means the gold set "
                  "cannot tell the two apart."),
            ("table", ["baseline", *(f"Δ {short[k]}" for k in keys)], rows),
            ("ul", words)]


# ---- training seeds --------------------------------------------------------------------------------------

def seed_blocks(m: dict[str, Any], keys: list[str], short: dict[str, str]) -> list[Block]:
    s = m["seeds"]
    main = s["runs"][0]
    blocks: list[Block] = [("h", 2, "Training seeds")]
    if s["n_seeds"] == 1:
        blocks.append(("p", f"One training seed was evaluated (seed {main['seed']}). The intervals above cover the "
                            "sampling of gold threads only, not how much the scores move when the same recipe is "
                            "trained with another seed; `threadstance evaluate --seed-models DIR ...` adds models of "
                            "this recipe trained with other seeds."))
        return blocks
    blocks += [
        ("p", f"{s['n_seeds']} models of the same recipe (configs checked equal apart from seed, names, paths and "
              f"evaluation settings), trained with seeds {', '.join(str(x) for x in s['seeds'])} and each scored on "
              f"the same {m['n_items']} gold items. SD: sample standard deviation over the seeds. The interval is "
              f"the thread bootstrap of the main model (seed {main['seed']})."),
        ("table", ["score", f"main model (seed {main['seed']}) [95% CI]", f"mean ± SD over {s['n_seeds']} seeds",
                   *(f"seed {r['seed']}" for r in s["runs"])],
         [[short[k], ci_cell(m["model"], k), f"{s['mean'][k]:.3f} ± {s['sd'][k]:.3f}",
           *(fmt(r["headline"][k]) for r in s["runs"])] for k in keys]),
    ]
    return blocks


# ---- domain_real out of fold -----------------------------------------------------------------------------

def oof_blocks(m: dict[str, Any], short: dict[str, str]) -> list[Block]:
    o = m["domain_real_oof"]
    blocks: list[Block] = [("h", 2, "Real in-domain text: domain_real out-of-fold beside gold")]
    if not o["available"]:
        return blocks + [("p", f"Not shown: {o['reason']}.")]
    keys = list(o["scores"])
    model = m["model"]
    ece = o["ece_sentiment"]
    blocks += [
        ("p", f"Recipe `{o['recipe']}` (named by `{o['recipe_from']}`), pooled out-of-fold predictions of the recipe "
              f"study's cross-validation on {o['n']} domain_real passages (`{o['summary']}`). Those models were "
              "trained without the passages they score, so this column estimates the recipe on real reader text; "
              f"the gold column is this model on the {m['n_items']} gold items, with thread-bootstrap intervals."),
        ("table", ["score", f"gold, this model (n = {m['n_items']}) [95% CI]",
                   f"domain_real out-of-fold, `{o['recipe']}` (n = {o['n']})"],
         [[short[k], ci_cell(model, k), fmt(o["scores"][k])] for k in keys]
         + [["sent. ECE", fmt(model.get("ece", {}).get("sentiment")),
             f"{fmt(ece['raw'])} raw, {fmt(ece['temperature'])} temperature-scaled"]]),
    ]
    if o["paired"]:
        blocks.append(("p", "Paired out-of-fold differences from the same summary (first − second, cluster "
                            "bootstrap by page):"))
        blocks.append(("ul", [f"`{p['pair']}`: " + "; ".join(
            f"{key} {diff_cell(p[key])}, {p[key]['verdict']}" for key in ("sentiment", "stance") if key in p)
            for p in o["paired"]]))
    return blocks


# ---- by kind, calibration --------------------------------------------------------------------------------

def group_heading(m: dict[str, Any], group: str) -> str:
    gm = m["model"]["by_kind"][group]
    return (f"{group} (n = {gm['n']}: {kinds_phrase(m['gold_set']['by_kind'], GROUPS[group])}; "
            f"{_plural(gm['threads'], 'thread')})")


def calibration_blocks(m: dict[str, Any], systems: dict[str, Any], figure: str) -> list[Block]:
    targets = m["classes"]["targets"]
    cal_systems = [(n, r) for n, r in systems.items() if "ece" in r]
    cal = m["model"]["calibration"]
    rows = [[f"sentiment (n = {cal['sentiment']['n']})", *(fmt(r["ece"]["sentiment"]) for _, r in cal_systems)]]
    if POOLED in cal:
        rows.append([f"stance, pooled over the {len(cal[POOLED]['targets'])} targets (n = {cal[POOLED]['n']})",
                     *(fmt(r["ece"].get("stance_pooled")) for _, r in cal_systems)])
    rows += [[f"stance {t} (n = {cal[t]['n']})", *(fmt(r["ece"]["stance"].get(t)) for _, r in cal_systems)]
             for t in targets]
    return [("h", 2, "Calibration"),
            ("p", f"Expected calibration error over {m['ece_bins']} equal-width bins of the max-probability "
                  "confidence (0 = confidence matches accuracy); n = predictions scored. The pooled stance row takes "
                  "every (item, target) prediction together. Systems without probabilities are left out."),
            ("table", ["field", *(n for n, _ in cal_systems)], rows),
            ("p", "Reliability diagram of the model (bar = accuracy in the bin, number = predictions in the bin, "
                  "dashed = perfect calibration):"),
            ("img", [("reliability diagram", figure)])]
