"""Scoring half of the recipe study (``scripts/recipe_study.py table``): out-of-fold scores of every finished
recipe, temperatures fitted out of fold, paired url-cluster bootstrap differences, and reports/recipes.md."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from recipe_posthoc import cross_fitted_bias, ensemble
from recipe_study import OUT, REPO, labels_of, load_data

from pipeline.config.schema import load_schema


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
    "top6_corpus_c67": "top 6 layers on cached layer-6 states; real x2 + a seeded two thirds of the corpus "
                       "(1,533 of 2,300, the same in every fold), 3 epochs, lr 5e-5",
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
    "minilm_fast": "the fast profile as shipped (`configs/fast.yaml`): MiniLM-L6 (6 layers, 384 wide) fully "
                   "fine-tuned, corpus + real x3, 4 epochs, max 128 word pieces, checkpoint chosen on the corpus "
                   "dev split",
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
