#!/usr/bin/env python
"""K-fold estimate on the real in-domain set (not a test): what a training recipe is worth on real text.

The only real in-domain labels besides the gold set are the 145 passages of
``<shared>/datasets/domain_real``. This script trains the recipe of CONFIG once per fold with
``data.domain_real.use=kfold`` — fold *i* is the dev set (checkpoint selection) and, unless
``data.domain_real.repeat=0``, the other folds are trained on next to the corpus — then pools the
out-of-fold predictions so every real item is scored by a model that never trained on it. The same
folds score the TF-IDF + LR and lexicon baselines (TF-IDF trained on the same records as the model).

    .venv/bin/python scripts/domain_real_cv.py configs/default.yaml --name corpus_only --folds 2 \\
        --set data.domain_real.repeat=0
    .venv/bin/python scripts/domain_real_cv.py configs/default.yaml --name corpus+real --folds 2 --jobs 2
    .venv/bin/python scripts/domain_real_cv.py configs/default.yaml --name real_only --folds 2 \\
        --set 'data.corpus=[]' --set data.domain_real.repeat=1

``--fixed-model models/default --set data.domain_real.repeat=0`` scores an already trained model that
never saw domain_real on the same folds (no training).

Writes ``<out>/<name>.json`` (pooled and per-fold scores, timings, per-item predictions by id) and
rebuilds ``<out>/README.md``, a table over every variant in ``<out>``. Fold models go to
``models/cv/`` and are reused when their resolved config is unchanged.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline.config.run import load_config  # noqa: E402
from pipeline.data.splits import make_splits  # noqa: E402
from pipeline.evaluation.baselines import (  # noqa: E402
    LexiconBaseline,
    TfidfLogRegBaseline,
    record_labels,
    training_records,
)
from pipeline.metrics import headline_scores  # noqa: E402
from pipeline.modeling.folder import CONFIG_FILE, METRICS_FILE, ModelFolder  # noqa: E402


def fold_threads(args: argparse.Namespace) -> int:
    """torch threads per fold model, so that ``--jobs`` folds share the CPUs."""
    return max(1, (os.cpu_count() or 2) // args.jobs)


def fold_overrides(args: argparse.Namespace, fold: int, threads: int) -> list[str]:
    return [*args.set, "data.domain_real.use=kfold", f"data.domain_real.folds={args.folds}",
            f"data.domain_real.fold={fold}", f"run_name={args.name.replace('+', '_')}-f{fold}of{args.folds}",
            f"paths.models={args.models}", f"training.num_threads={threads}"]


def train_folds(args: argparse.Namespace) -> dict[int, float | None]:
    """Train the fold models that are missing (``--jobs`` at a time); returns train seconds per fold."""
    threads = fold_threads(args)
    todo, seconds = [], {}
    for fold in range(args.folds):
        cfg = load_config(args.config, fold_overrides(args, fold, threads))
        folder = ModelFolder(cfg.output_dir)
        if (folder.has(CONFIG_FILE) and folder.read_text(CONFIG_FILE, verify=False) == cfg.to_yaml()
                and not args.retrain):
            seconds[fold] = folder.read_json(METRICS_FILE, verify=False)["train_seconds"]
            print(f"fold {fold}: reusing {cfg.output_dir}", file=sys.stderr)
        else:
            todo.append(fold)
    running: list[tuple[int, subprocess.Popen, float]] = []
    while todo or running:
        while todo and len(running) < args.jobs:
            fold = todo.pop(0)
            cmd = [sys.executable, "-c", "from pipeline.cli.main import main; main()", "train", str(args.config),
                   "--no-progress", *[x for o in fold_overrides(args, fold, threads) for x in ("--set", o)]]
            log = open(Path(args.models) / f"{args.name}-f{fold}.log", "w")  # noqa: SIM115
            print(f"fold {fold}: training ({threads} thread(s))", file=sys.stderr)
            running.append((fold, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO), time.time()))
        time.sleep(2)
        for item in list(running):
            fold, proc, started = item
            if proc.poll() is not None:
                running.remove(item)
                if proc.returncode != 0:
                    raise SystemExit(f"fold {fold} failed (exit {proc.returncode}); see {args.models}/{args.name}-f{fold}.log")
                seconds[fold] = round(time.time() - started, 1)
                print(f"fold {fold}: done in {seconds[fold]:.0f} s", file=sys.stderr)
    return seconds


def score(records: list[dict], pred: dict[str, list[str]], schema) -> dict:  # noqa: ANN001
    gold = record_labels(records, schema)
    s = headline_scores(gold, pred, schema.sentiment_classes, schema.stance_classes, schema.target_names,
                        schema.polar_classes)
    return {"n": len(records), "sentiment_accuracy": round(s["sentiment"]["accuracy"], 4),
            "sentiment_macro_f1": round(s["sentiment_macro_f1"], 4), "stance_score": round(s["stance_score"], 4),
            **{f"f1_avg.{t}": round(s["stance"][t]["f1_avg"], 4) for t in schema.target_names}}


def evaluate(args: argparse.Namespace, seconds: dict[int, float | None]) -> dict:
    from pipeline.inference.predict import Predictor

    threads = fold_threads(args)
    systems = ("model", "tfidf_lr", "lexicon")
    oof: dict[str, list[tuple[dict, dict]]] = {k: [] for k in systems}  # (record, predicted labels)
    folds = []
    for fold in range(args.folds):
        cfg = load_config(args.config, fold_overrides(args, fold, threads))
        schema = cfg.schema()
        sp = make_splits(cfg, schema)
        dev = sp.real_dev
        texts = [r["text"] for r in dev]
        model_dir = args.fixed_model or cfg.output_dir
        preds = Predictor(model_dir, device="cpu", batch_size=32).predict(texts)
        by_system = {"model": [{"sentiment": p.sentiment, **p.stance} for p in preds]}
        train_recs, _ = training_records(cfg, schema)
        texts_train, labels_train = [r["text"] for r in train_recs], record_labels(train_recs, schema)
        for name, base in (("tfidf_lr", TfidfLogRegBaseline(schema, seed=cfg.seed)), ("lexicon", LexiconBaseline(schema))):
            p = base.fit(texts_train, labels_train).predict(texts)
            by_system[name] = [{k: p[k][i] for k in p} for i in range(len(texts))]
        meta = ModelFolder(model_dir).read_json(METRICS_FILE)
        fold_scores = {}
        for name, rows in by_system.items():
            oof[name].extend(zip(dev, rows))
            fold_scores[name] = score(dev, {k: [r[k] for r in rows] for k in rows[0]}, schema)
        folds.append({"fold": fold, "n_dev": len(dev), "n_real_train": len(sp.real_train), "n_train": len(sp.train),
                      "train_seconds": seconds.get(fold), "best_step": meta.get("best_step"),
                      "model_version": meta.get("model_version"), "scores": fold_scores})
    pooled = {}
    for name, pairs in oof.items():
        recs = [r for r, _ in pairs]
        pred = {k: [p[k] for _, p in pairs] for k in pairs[0][1]}
        pooled[name] = score(recs, pred, schema)
        by_kind = {}
        for kind in sorted({r.get("kind") or "?" for r in recs}):
            idx = [i for i, r in enumerate(recs) if (r.get("kind") or "?") == kind]
            by_kind[kind] = score([recs[i] for i in idx], {k: [v[i] for i in idx] for k, v in pred.items()}, schema)
        pooled[name]["by_kind"] = by_kind
    items = {r["id"]: p for r, p in oof["model"]}
    return {"name": args.name, "config": str(args.config), "overrides": args.set, "folds": args.folds,
            "fixed_model": args.fixed_model,
            "jobs": args.jobs, "seed": load_config(args.config, args.set).seed, "pooled": pooled,
            "per_fold": folds, "predictions": items, "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def write_index(out: Path) -> None:
    rows = []
    for path in sorted(out.glob("*.json")):
        r = json.loads(path.read_text())
        m, t = r["pooled"]["model"], r["pooled"]["tfidf_lr"]
        secs = [f["train_seconds"] for f in r["per_fold"] if f["train_seconds"]]
        rows.append(f"| {r['name']} | {r['folds']} | {' '.join(r['overrides']) or '—'} | {m['sentiment_accuracy']:.3f} | "
                    f"**{m['sentiment_macro_f1']:.3f}** | **{m['stance_score']:.3f}** | "
                    + " | ".join(f"{m[k]:.3f}" for k in m if k.startswith("f1_avg."))
                    + f" | {t['sentiment_macro_f1']:.3f} / {t['stance_score']:.3f} | "
                    f"{(sum(secs) / len(secs) / 60 if secs else float('nan')):.1f} |")
    head = ["# Out-of-fold scores on the real in-domain set (domain_real, 145 items)", "",
            "Written by `scripts/domain_real_cv.py`; one row per recipe. Each real item is predicted by the fold "
            "model that did not train on it (its fold was that model's dev set, used for checkpoint selection), "
            "and the pooled predictions are scored with the project metrics. TF-IDF+LR is trained on the same "
            "records as each fold's model. Minutes = mean wall-clock training time per fold (folds run "
            "`jobs` at a time on this machine, so they shared the CPU).", "",
            "| recipe | K | overrides | sent. acc | sent. macro-F1 | stance score | F1avg blame | F1avg funding | "
            "F1avg nqsw | F1avg ofsted | TF-IDF+LR (sent / stance) | min / fold |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    (out / "README.md").write_text("\n".join(head + rows) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--name", required=True, help="Name of this recipe in the report.")
    parser.add_argument("--folds", type=int, default=5, help="5 = the url-grouped folds of folds.json")
    parser.add_argument("--jobs", type=int, default=1, help="Folds trained at once (CPU threads are split).")
    parser.add_argument("--set", action="append", default=[], help="Config override key.path=value (repeatable).")
    parser.add_argument("--models", default="models/cv", help="Where fold models go.")
    parser.add_argument("--out", default="reports/domain_real_cv")
    parser.add_argument("--retrain", action="store_true", help="Retrain fold models even if they exist.")
    parser.add_argument("--fixed-model", default=None, help="Score this trained model on every fold instead of "
                        "training fold models (for a model that never saw domain_real; pair it with "
                        "--set data.domain_real.repeat=0 so the baselines train on the same records).")
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    Path(args.models).mkdir(parents=True, exist_ok=True)
    seconds = {} if args.fixed_model else train_folds(args)
    result = evaluate(args, seconds)
    path = Path(args.out) / f"{args.name}.json"
    path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    write_index(Path(args.out))
    m = result["pooled"]["model"]
    print(f"{args.name}: sentiment macro-F1 {m['sentiment_macro_f1']:.3f}, stance score {m['stance_score']:.3f} "
          f"(out-of-fold, n={m['n']}); wrote {path}")


if __name__ == "__main__":
    main()
