"""The evaluation report folder: metrics.json, errors.csv, PNG figures, report.md and report.html.

Both documents are rendered from one list of blocks (headings, paragraphs, lists, tables, images), so
they always say the same thing; the HTML is a single self-contained page that links the PNGs.
"""
from __future__ import annotations

import csv
import functools
import html
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from jinja2 import Environment, PackageLoader, Template
from markupsafe import Markup

from pipeline.config.schema import LabelSchema
from pipeline.csvsafe import neutralise
from pipeline.reporting.sections import (
    POOLED,
    calibration_blocks,
    ci_cell,
    comparison_blocks,
    fmt,
    gold_set_blocks,
    group_heading,
    oof_blocks,
    seed_blocks,
)

if TYPE_CHECKING:
    from pipeline.evaluation.goldset import EvalSet
    from pipeline.evaluation.scoring import SystemOutput

ERROR_COLUMNS = ["item_id", "kind", "field", "gold", "predicted", "probability", "gold_probability", "evidence",
                 "text"]
TEXT_IN_REPORT = 400

# ---- data ------------------------------------------------------------------------------------------------


def model_errors(es: EvalSet, model: SystemOutput, schema: LabelSchema,
                 evidence: dict[tuple[str, str], str] | None = None) -> list[dict[str, Any]]:
    """Every misclassified (item, field), most confident first (probability of the predicted class);
    ``evidence[(item_id, target)]`` is the model's evidence sentence for a wrong non-none stance."""
    rows = []
    for f, preds in model.pred.items():
        classes = schema.sentiment_classes if f == "sentiment" else schema.stance_classes
        proba = model.proba[f] if model.proba else None
        for i, (g, p) in enumerate(zip(es.gold[f], preds)):
            if g == p:
                continue
            rows.append({"item_id": es.ids[i], "kind": es.kinds[i], "field": f, "gold": g, "predicted": p,
                         "probability": round(float(proba[i, classes.index(p)]), 4) if proba is not None else None,
                         "gold_probability": round(float(proba[i, classes.index(g)]), 4)
                         if proba is not None else None,
                         "evidence": (evidence or {}).get((es.ids[i], f)), "text": es.texts[i]})
    rows.sort(key=lambda r: (-(r["probability"] or 0), r["item_id"], r["field"]))
    return rows


def error_evidence(predictor: Any, es: EvalSet, model: SystemOutput, schema: LabelSchema) -> dict[tuple[str, str], str]:
    """The model's evidence sentence (:func:`pipeline.inference.evidence.find_evidence`) for every stance error
    whose predicted label is not none, keyed by (item id, target); one batched model call."""
    from pipeline.inference.evidence import find_evidence
    from pipeline.modeling.outputs import Prediction

    if not model.proba:
        return {}
    none = schema.none_class
    wrong = {i: [t for t in schema.target_names if model.pred[t][i] != es.gold[t][i] and model.pred[t][i] != none]
             for i in range(len(es))}
    rows = [i for i, targets in wrong.items() if targets]
    preds = [Prediction("", {}, {t: model.pred[t][i] if t in wrong[i] else none for t in schema.target_names},
                        {t: {c: float(model.proba[t][i, k]) for k, c in enumerate(schema.stance_classes)}
                         for t in schema.target_names}) for i in rows]
    found = find_evidence(predictor, [es.texts[i] for i in rows], preds, [es.parents[i] for i in rows])
    return {(es.ids[i], t): ev.text for i, evs in zip(rows, found) for t, ev in evs.items()}


def write_errors_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """errors.csv; text cells a spreadsheet would run as a formula are neutralised (:mod:`pipeline.csvsafe`)."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=ERROR_COLUMNS)
        writer.writeheader()
        writer.writerows({k: neutralise(v) for k, v in row.items()} for row in rows)


# ---- figures ---------------------------------------------------------------------------------------------

def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(path: Path, matrix: list[list[int]], classes: list[str], title: str) -> None:
    plt = _pyplot()
    m = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(3.6, 3.2), dpi=100)
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(title, fontsize=10)
    top = m.max() if m.size else 0
    for (r, c), v in np.ndenumerate(m):
        ax.text(c, r, str(v), ha="center", va="center", color="white" if top and v > top / 2 else "black")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_reliability(path: Path, calibration: dict[str, dict[str, Any]], fields: list[str]) -> None:
    """One panel per field: accuracy per confidence bin against the diagonal, bin counts on the bars."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(fields), figsize=(2.8 * len(fields), 3.0), dpi=100, sharey=True)
    axes = np.atleast_1d(axes)
    for ax, f in zip(axes, fields):
        bins = calibration[f]["bins"]
        width = bins[0]["hi"] - bins[0]["lo"]
        for b in bins:
            if not b["count"]:
                continue
            ax.bar(b["lo"], b["accuracy"], width=width, align="edge", color="#4c72b0", edgecolor="white")
            ax.text(b["lo"] + width / 2, min(b["accuracy"] + 0.02, 0.95), str(b["count"]), ha="center", fontsize=7)
        ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=1)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        label = "stance (pooled)" if f == POOLED else f
        ax.set_title(f"{label}\nECE {calibration[f]['ece']:.3f}", fontsize=9)
        ax.set_xlabel("confidence (max prob.)")
    axes[0].set_ylabel("accuracy")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ---- blocks → markdown / html ----------------------------------------------------------------------------

Block = tuple


def _md_html(text: str) -> str:
    """``&``, ``<`` and ``>`` as entities: Markdown renderers pass raw HTML through (item text may hold
    ``<script>``); report.html is escaped by its template."""
    return html.escape(text, quote=False)


def _md_text(text: Any) -> str:
    """Report prose: HTML escaped outside `code` spans (a code span shows its text literally)."""
    parts = re.split(r"(`[^`]+`)", str(text))
    return "".join(part if i % 2 else _md_html(part) for i, part in enumerate(parts))


def _md_cell(x: Any) -> str:
    return _md_html(str(x)).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render_markdown(blocks: list[Block]) -> str:
    out: list[str] = []
    for b in blocks:
        kind = b[0]
        if kind == "h":
            out += ["#" * b[1] + " " + _md_text(b[2]), ""]
        elif kind == "p":
            out += [_md_text(b[1]), ""]
        elif kind == "ul":
            out += [f"- {_md_text(x)}" for x in b[1]] + [""]
        elif kind == "table":
            headers, rows = b[1], b[2]
            out.append("| " + " | ".join(_md_cell(h) for h in headers) + " |")
            out.append("|" + "|".join("---" for _ in headers) + "|")
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            out.append("")
        elif kind == "img":
            out += [" ".join(f"![{alt}]({src})" for alt, src in b[1]), ""]
    return "\n".join(out)


def _inline_html(text: str) -> Markup:
    """Escaped text with `code` and **bold** marked up (the report's only inline Markdown)."""
    s = html.escape(str(text), quote=False)
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    return Markup(re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", s))


@functools.cache
def _html_template() -> Template:
    env = Environment(loader=PackageLoader("pipeline.reporting", "templates"), autoescape=True,
                      keep_trailing_newline=True)
    env.filters["inline"] = _inline_html
    return env.get_template("report.html.j2")


def render_html(blocks: list[Block], title: str) -> str:
    """report.html from the same blocks as report.md (template: reporting/templates/report.html.j2)."""
    return _html_template().render(blocks=blocks, title=title)


# ---- the report ------------------------------------------------------------------------------------------

_f = fmt
_ci = ci_cell


def excerpt(text: str, n: int = TEXT_IN_REPORT) -> str:
    """``text`` on one line, cut to ``n`` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def build_blocks(m: dict[str, Any], errors: list[dict[str, Any]], figures: dict[str, Any]) -> list[Block]:
    targets = m["classes"]["targets"]
    polar = m["classes"]["polar"]
    keys = ["sentiment_accuracy", "sentiment_macro_f1", *(f"f1_avg.{t}" for t in targets), "stance_score"]
    short = {"sentiment_accuracy": "sent. acc.", "sentiment_macro_f1": "sent. macro-F1",
             "stance_score": "stance score", **{f"f1_avg.{t}": f"F1avg {t}" for t in targets}}
    systems = {"model": m["model"], **m["baselines"]}
    b = m["bootstrap"]
    blocks: list[Block] = [
        ("h", 1, f"Evaluation of `{m['run_name']}` (model_version `{m['model_version']}`)"),
        ("p", f"Gold labels `{m['gold_path']}`: {m['n_items']} items ({m['n_by_kind']['comments']} comments and "
              f"replies, {m['n_by_kind']['paragraphs']} article paragraphs) from {b['clusters']} threads"
              + (", a subset chosen with --items" if m.get("item_subset") else "") + f". Evaluated {m['evaluated_at']}. "
              f"Model directory `{m['model_dir']}`."),
        ("p", f"Brackets: {int(b['level'] * 100)}% percentile intervals from a **thread-level (cluster) bootstrap**: "
              f"{b['resamples']} resamples (seed {b['seed']}) that draw the {b['clusters']} threads with replacement, "
              "each drawn thread entering with all its gold items, because the items of one thread are not "
              "independent; the same resamples for every system, so the differences are paired. With "
              f"{b['clusters']} threads the intervals are wide and coarse. Stance F1avg is the mean F1 of "
              f"{' and '.join(polar)} (SemEval-2016); the stance score is the mean F1avg over the targets."),
    ]
    if m.get("notes"):
        blocks.append(("ul", [f"**Note:** {n}" for n in m["notes"]]))
    blocks += gold_set_blocks(m)
    support = m["label_support"]
    no_polar_all = {t for t in targets if all(support[t][c] == 0 for c in polar)}
    blocks += [
        ("h", 2, "Headline scores: model and baselines"),
        ("table", ["system", *(short[k] for k in keys)],
         [[name, *("n/a" if _target_of(k) in no_polar_all and k in res["headline"] else _ci(res, k) for k in keys)]
          for name, res in systems.items()]),
        ("p", "Gold support (" + "/".join(polar) + " items per target): "
              + "; ".join(f"{t} " + "/".join(str(support[t][c]) for c in polar) for t in targets)
              + ". A target with a handful of polar items has an F1avg that one item can swing by a lot"
              + ("; `n/a`: no polar gold item, so F1avg is 0 by definition." if no_polar_all else ".")),
        ("ul", [f"**{name}**: {res['description']}" for name, res in systems.items()]),
    ]
    bt = m["baseline_training"]
    real = (f" + {bt['domain_real_train']} domain_real passages × {bt['domain_real_repeat']}"
            if bt["domain_real_train"] and bt["domain_real_repeat"] else "")
    blocks.append(("p", f"Trained baselines (majority, tfidf_lr) use the model's training records: "
                        f"{bt['train_records']} = {bt['corpus_train']} corpus items in the train split (of "
                        f"{bt['corpus_total']} in `{', '.join(bt['corpus'])}`; seed {bt['seed']}, dev fraction "
                        f"{bt['dev_fraction']}, kept fraction {bt.get('corpus_fraction', 1.0):g}, cap {bt['max_train_examples']})"
                        f"{real}; auxiliary sets are not used."))
    blocks += comparison_blocks(m, keys, short)
    blocks += seed_blocks(m, keys, short)
    blocks += oof_blocks(m, short)

    blocks.append(("h", 2, "By item kind"))
    blocks.append(("p", "Reader comments (with replies) and article paragraphs differ a lot in length, voice and "
                        "label distribution, so each group is scored on its own (the model with intervals from "
                        "resampling the group's threads). "
                        "`n/a`: the group has no gold favor/against item for that target, so its F1avg is 0 "
                        "by definition and says nothing."))
    for g, n in m["n_by_kind"].items():
        if not n:
            continue
        no_polar = {t for t in targets if all(c == 0 for c in _group_polar(m, g, t))}
        rows = []
        for name, res in systems.items():
            entry = res["by_kind"][g]
            rows.append([name, *("n/a" if _target_of(k) in no_polar and k in entry["headline"]
                                 else _ci(entry, k, with_ci=name == "model") for k in keys)])
        blocks += [("h", 3, group_heading(m, g)), ("table", ["system", *(short[k] for k in keys)], rows)]

    model = m["model"]
    blocks.append(("h", 2, "Model: per-class scores"))
    s = model["sentiment"]
    blocks.append(("table", ["sentiment class", "precision", "recall", "F1", "support"],
                   [[c, _f(v["precision"]), _f(v["recall"]), _f(v["f1"]), v["support"]]
                    for c, v in s["per_class"].items()]
                   + [["accuracy / macro-F1", "", "", f"{s['accuracy']:.3f} / {s['macro_f1']:.3f}", ""]]))
    classes = m["classes"]["stance"]
    rows = []
    for t in targets:
        st = model["stance"][t]
        rows.append([t, _f(st["f1_avg"]), _f(st["macro_f1"]),
                     *(f"{_f(st['per_class'][c]['precision'])} / {_f(st['per_class'][c]['recall'])} / "
                       f"{_f(st['per_class'][c]['f1'])} (n={st['per_class'][c]['support']})" for c in classes)])
    blocks.append(("table", ["target", "F1avg", "macro-F1 (3 classes)", *(f"{c} P / R / F1" for c in classes)], rows))

    blocks += [("h", 2, "Confusion matrices (model)"), ("p", "Rows: gold label; columns: predicted label."),
               ("img", [(f"confusion {f}", src) for f, src in figures["confusion"].items()])]

    blocks += calibration_blocks(m, systems, figures["reliability"])

    if "cv" in m:
        cv = m["cv"]
        blocks += [("h", 2, f"Cross-validation of the training recipe on the gold set ({cv['k']} folds)"),
                   ("p", f"Recipe `{cv['recipe']}`, {cv['n_items']} gold items, stratified folds (seed {cv['seed']}): "
                         f"{cv['note']}."),
                   ("table", ["score", "mean ± sd", *(f"fold {f['fold']} (n={f['n_test']})" for f in cv["folds"])],
                    [[short[k], f"{cv['mean'][k]:.3f} ± {cv['sd'][k]:.3f}",
                      *(_f(f["headline"][k]) for f in cv["folds"])] for k in keys])]

    blocks += coverage_blocks(m["model"].get("coverage"))

    ms = m["min_scores"]
    if ms["thresholds"]:
        blocks += [("h", 2, "Minimum scores"),
                   ("p", ("**FAILED**: " + "; ".join(ms["failed"])) if ms["failed"] else
                    "All headline scores reach their minimum: "
                    + ", ".join(f"{k} ≥ {v:g}" for k, v in ms["thresholds"].items()) + ".")]

    top = errors[:20]
    blocks += [("h", 2, f"The {len(top)} most confident errors"),
               ("p", f"{len(errors)} misclassified (item, field) pairs in all: `errors.csv` lists every one with "
                     "its full text. p = the model's probability of its (wrong) prediction; evidence = the "
                     "sentence that the model finds most supports a wrong favor/against (method and measured "
                     "agreement with a person: reports/evidence.md)."),
               ("table", ["#", "item", "kind", "field", "gold", "predicted", "p", "evidence", "text"],
                [[i, e["item_id"], e["kind"], e["field"], e["gold"], e["predicted"], _f(e["probability"]),
                  excerpt(e.get("evidence") or "", 200), excerpt(e["text"])] for i, e in enumerate(top, start=1)])]
    return blocks


def coverage_blocks(coverage: dict[str, list[dict[str, Any]]] | None) -> list[Block]:
    """Coverage against accuracy per head at each --min-confidence threshold (evaluation/coverage.py)."""
    if not coverage:
        return []
    thresholds = [r["threshold"] for r in next(iter(coverage.values()))]
    rows = [[head, *(f"{r['coverage']:.0%} · {_f(r['accuracy'])} · {_f(r['score'])}" for r in cells)]
            for head, cells in coverage.items()]
    return [("h", 2, "Coverage against accuracy (`--min-confidence`)"),
            ("p", "Each cell: share of gold items the head still labels when it abstains below that top "
                  "probability · accuracy on them · macro-F1 (sentiment) or F1avg (targets) on them."),
            ("table", ["head", *(f"P = {t:g}" for t in thresholds)], rows)]


def _target_of(key: str) -> str | None:
    return key.removeprefix("f1_avg.") if key.startswith("f1_avg.") else None


def _group_polar(m: dict[str, Any], group: str, target: str) -> list[int]:
    per_class = m["model"]["by_kind"][group]["stance"][target]["per_class"]
    return [per_class[c]["support"] for c in m["classes"]["polar"]]


def write_report(out: Path, metrics: dict[str, Any], es: EvalSet, model: SystemOutput,
                 schema: LabelSchema, evidence: dict[tuple[str, str], str] | None = None) -> dict[str, Path]:
    """Write every report file into ``out``; returns their paths by name (``evidence``: :func:`error_evidence`)."""
    from pipeline.evaluation.scoring import jsonable

    out.mkdir(parents=True, exist_ok=True)
    errors = model_errors(es, model, schema, evidence)
    write_errors_csv(out / "errors.csv", errors)
    figures: dict[str, Any] = {"confusion": {}}
    for f, matrix in metrics["model"]["confusion"].items():
        name = f"confusion_{f}.png"
        classes = schema.sentiment_classes if f == "sentiment" else schema.stance_classes
        plot_confusion(out / name, matrix, classes, f"{f} (model)")
        figures["confusion"][f] = name
    cal = metrics["model"]["calibration"]
    plot_reliability(out / "reliability.png", cal, [f for f in ("sentiment", POOLED, *schema.target_names) if f in cal])
    figures["reliability"] = "reliability.png"
    if model.proba:
        from pipeline.evaluation.coverage import coverage_table

        metrics["model"]["coverage"] = coverage_table(es.gold, model.proba, schema)
    metrics["files"] = {"errors": "errors.csv", "figures": figures, "report": ["report.md", "report.html"]}
    (out / "metrics.json").write_text(json.dumps(jsonable(metrics), indent=2) + "\n", encoding="utf-8")
    blocks = build_blocks(metrics, errors, figures)
    (out / "report.md").write_text(render_markdown(blocks), encoding="utf-8")
    title = f"threadstance evaluation: {metrics['run_name']}"
    (out / "report.html").write_text(render_html(blocks, title), encoding="utf-8")
    return {"metrics": out / "metrics.json", "errors": out / "errors.csv", "report_md": out / "report.md",
            "report_html": out / "report.html"}
