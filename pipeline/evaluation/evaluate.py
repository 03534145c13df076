"""Gold-set evaluation: the model and the baselines on the same items, with bootstrap CIs and calibration.

:func:`score_model` is the scoring half of ``threadstance evaluate`` and the main job's evaluation. It reads the gold labels
(:func:`pipeline.data.labels.read_labels`), takes the items' text from the store, scores the model and the
baselines (:mod:`pipeline.evaluation.baselines`), optionally cross-validates the training recipe on the gold set
itself (:func:`cross_validate`). Writing the report folder, ``gold_metrics.json`` and the model card is
the reporting stage's part (:func:`pipeline.reporting.evaluate.evaluate`).

Every headline number (sentiment accuracy and macro-F1, each target's F1avg, the stance score) gets a
95% percentile bootstrap interval from resampling threads with replacement (the items of one thread stay
together); the resamples are shared by all systems, so model − baseline differences get paired intervals
too. The report also describes the gold set (:mod:`pipeline.evaluation.goldinfo`), the spread over
training seeds (:mod:`pipeline.evaluation.seeds`) and the recipe's out-of-fold domain_real scores
(:mod:`pipeline.evaluation.oof`).
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config.run import RunConfig
from pipeline.config.schema import LabelSchema
from pipeline.config.settings import STORE_PATH
from pipeline.errors import ConfigError, UserError
from pipeline.evaluation.goldset import (
    CI_LEVEL,
    ECE_BINS,
    GROUPS,
    MIN_BOOTSTRAP,
    EvalSet,
    load_eval_set,
    read_gold,
)
from pipeline.evaluation.scoring import (
    SystemOutput,
    cluster_weights,
    label_support,
    paired_differences,
    point_scores,
    probs_to_labels,
    score_system,
)
from pipeline.metrics import headline_keys
from pipeline.modeling.folder import CONFIG_FILE, METRICS_FILE, ModelFolder


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def model_output(model_dir: Path, es: EvalSet, schema: LabelSchema, device: str = "auto", backend: str = "torch",
                 precision: str = "fp32") -> SystemOutput:
    from pipeline.inference.predict import Predictor

    _quiet_transformers()
    predictor = Predictor(model_dir, device=device, backend=backend, precision=precision)
    if predictor.sentiment_classes != schema.sentiment_classes or predictor.stance_classes != schema.stance_classes \
            or predictor.targets != schema.target_names:
        raise UserError("the model's label spaces do not match its labels.yaml", model_dir)
    p = predictor.predict_proba(es.texts, es.parents)
    proba = {"sentiment": p.sentiment.astype(float), **{t: p.stance[t].astype(float) for t in schema.target_names}}
    return SystemOutput("model", f"fine-tuned model `{model_dir.name}`", probs_to_labels(proba, schema), proba,
                        {"model_version": predictor.model_version, "backend": backend,
                         "precision": predictor.precision})


def baseline_outputs(cfg: RunConfig, schema: LabelSchema, es: EvalSet, lexicon: str | Path | None,
                     trained_counts: dict[str, Any] | None) -> tuple[list[SystemOutput], dict[str, Any]]:
    """Fit the baselines on the model's training split and predict the eval set.

    The returned info breaks the training records down: ``train_records`` = ``corpus_train`` (the corpus's
    train split, of ``corpus_total`` corpus items) + ``domain_real_train`` × ``domain_real_repeat``.
    """
    from pipeline.data.splits import make_splits
    from pipeline.evaluation.baselines import DEFAULT_LEXICON, make_baselines, record_labels

    sp = make_splits(cfg, schema)  # the same split as training (baselines.training_records)
    train_recs, corpus_total = sp.train, sp.corpus_total
    repeat = sp.real_repeat if sp.real_train else 0
    corpus_train = len(train_recs) - len(sp.real_train) * repeat
    info: dict[str, Any] = {"train_records": len(train_recs), "corpus_train": corpus_train,
                            "corpus_total": corpus_total, "domain_real_train": len(sp.real_train),
                            "domain_real_repeat": repeat, "corpus": cfg.data.corpus, "seed": cfg.seed,
                            "dev_fraction": cfg.data.dev_fraction, "corpus_fraction": cfg.data.corpus_fraction,
                            "max_train_examples": cfg.data.max_train_examples, "warnings": []}
    if trained_counts:
        # the model's training records: corpus train split + real in-domain items × repeat
        model_counts = (trained_counts.get("corpus_total"), trained_counts.get("train") or 0,
                        trained_counts.get("domain_real_train") or 0)
        if model_counts != (corpus_total, corpus_train, len(sp.real_train)):
            info["warnings"].append(
                f"the training data changed since the model was trained (model: {model_counts[0]} corpus items, "
                f"{model_counts[1]} in its train split, {model_counts[2]} domain_real items; now: {corpus_total}, "
                f"{corpus_train}, {len(sp.real_train)}): the trained baselines may not see exactly the model's "
                "training records")
    texts = [r["text"] for r in train_recs]
    labels = record_labels(train_recs, schema)
    outs = []
    for b in make_baselines(schema, cfg.seed, lexicon or DEFAULT_LEXICON):
        b.fit(texts, labels)
        proba = b.predict_proba(es.texts) if b.has_proba else None
        outs.append(SystemOutput(b.name, b.description, b.predict(es.texts), proba, {"fields": list(b.fields)}))
    return outs, info


# ---- cross-validation on the gold set ----------------------------------------------------------------------

def _cv_strata(records: list[dict], schema: LabelSchema, k: int) -> list[str]:
    from pipeline.data.corpus import strata

    keys = [strata(r, schema) for r in records]
    counts = Counter(keys)
    keys = [key if counts[key] >= k else key.split("|")[0] for key in keys]
    counts = Counter(keys)
    return [key if counts[key] >= k else "rare" for key in keys]


def fold_config(cfg: RunConfig, corpus_file: Path, models_dir: Path, fold: int, k: int) -> RunConfig:
    """The run config of one CV fold: same recipe, corpus = the training folds, selection on their dev split."""
    data = cfg.model_dump(by_alias=True)
    data["run_name"] = f"{cfg.run_name}-cv{fold}of{k}"
    data["paths"]["models"] = str(models_dir)
    data["data"]["corpus"] = [str(corpus_file)]
    data["data"]["domain_real"] = {"use": "none"}
    data["data"]["selection"] = "corpus_dev"
    return RunConfig.model_validate(data)


def cross_validate(cfg: RunConfig, es: EvalSet, schema: LabelSchema, k: int, progress: bool = False,
                   log: Any = None) -> dict[str, Any]:
    """Stratified K-fold CV of the training recipe ``cfg`` on the gold items themselves.

    Each fold's K-1 training folds are written as a temporary corpus JSONL and trained with
    :func:`pipeline.training.train.train` (temporary models folder, removed afterwards); the held-out fold is
    scored. Returns per-fold headline numbers and their mean and sample standard deviation.
    """
    from sklearn.model_selection import StratifiedKFold

    from pipeline.inference.predict import Predictor
    from pipeline.training import train as trainer

    if k < 2:
        raise UserError(f"--cv needs K ≥ 2, got {k}")
    if k > len(es):
        raise UserError(f"--cv {k}: only {len(es)} gold items")
    records = es.records(schema)
    keys = _cv_strata(records, schema, k)
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=cfg.seed)
    folds = []
    tmp = Path(tempfile.mkdtemp(prefix="threadstance-cv-"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            splits = list(skf.split(np.zeros(len(keys)), keys))
        for i, (train_ix, test_ix) in enumerate(splits, start=1):
            corpus = tmp / f"fold{i}.jsonl"
            corpus.write_text("".join(json.dumps(records[j], ensure_ascii=False) + "\n" for j in train_ix),
                              encoding="utf-8")
            fcfg = fold_config(cfg, corpus, tmp / "models", i, k)
            if log:
                log(f"cv fold {i}/{k}: training on {len(train_ix)} gold items, scoring {len(test_ix)}")
            started = time.time()
            try:
                result = trainer.train(fcfg, progress=progress)
            except ValueError as exc:
                raise UserError(f"cv fold {i}/{k}: training failed ({exc}); the gold set may be too small "
                                f"for {k} folds") from exc
            held = es.subset(test_ix)
            p = Predictor(result.output_dir, device=cfg.training.device).predict_proba(held.texts, held.parents)
            proba = {"sentiment": p.sentiment, **{t: p.stance[t] for t in schema.target_names}}
            scores = point_scores(held.gold, probs_to_labels(proba, schema), schema)
            folds.append({"fold": i, "n_train": len(train_ix), "n_test": len(test_ix),
                          "train_seconds": round(time.time() - started, 1), "headline": scores["headline"]})
            shutil.rmtree(result.output_dir, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    keys_h = headline_keys(schema.target_names)
    mean = {h: float(np.mean([f["headline"][h] for f in folds])) for h in keys_h}
    sd = {h: float(np.std([f["headline"][h] for f in folds], ddof=1)) for h in keys_h}
    return {"k": k, "seed": cfg.seed, "recipe": cfg.run_name, "n_items": len(es), "folds": folds,
            "mean": mean, "sd": sd,
            "note": "each fold trains the recipe on K-1 gold folds (model selection on a dev split of those "
                    "folds) and scores the held-out fold; sd is the sample standard deviation over folds"}


# ---- thresholds ------------------------------------------------------------------------------------------

def validate_min_scores(min_scores: dict[str, float], schema: LabelSchema, source: str | Path) -> None:
    valid = headline_keys(schema.target_names)
    unknown = [k for k in min_scores if k not in valid]
    if unknown:
        raise ConfigError(f"unknown evaluation.min_scores key(s) {unknown}; valid keys: {', '.join(valid)}",
                          source, key="evaluation.min_scores")


def below_min_scores(headline: dict[str, float], min_scores: dict[str, float]) -> list[str]:
    """Descriptions of the headline scores below their minimum (empty: all pass)."""
    return [f"{k} = {headline[k]:.3f} < {v:g}" for k, v in min_scores.items() if headline[k] < v]


# ---- the whole evaluation ----------------------------------------------------------------------------------

@dataclass
class EvalResult:
    out_dir: Path
    metrics: dict[str, Any]
    failures: list[str]
    eval_set: EvalSet | None = None
    model_output: SystemOutput | None = None
    schema: LabelSchema | None = None


def model_run_config(model_dir: Path) -> RunConfig:
    return ModelFolder(model_dir).read_config()


def default_report_dir(model_dir: str | Path, root: str | Path = "reports") -> Path:
    """``reports/<model folder name>``: never a path read from a file inside the model folder."""
    from pipeline.config.safepaths import child_dir

    return child_dir(root, Path(model_dir).resolve().name, "model folder name")


def score_model(model_dir: str | Path, *, gold_path: str | Path | None = None, out_dir: str | Path | None = None,
                db: str | Path = STORE_PATH, config: RunConfig | None = None,
                config_source: str | Path | None = None, item_ids: list[str] | None = None, cv: int | None = None,
                lexicon: str | Path | None = None, device: str = "auto", backend: str = "torch",
                precision: str = "fp32", seed_models: list[str | Path] | None = None,
                log: Any = None) -> EvalResult:
    """Score a trained model and the baselines on the gold set (the report is written by
    :func:`pipeline.reporting.evaluate.evaluate`, which takes the same arguments).

    Args:
        model_dir: A directory written by ``threadstance train``.
        gold_path: Gold label JSONL; default ``evaluation.gold`` of the config.
        out_dir: Report folder; default ``reports/<model folder name>``.
        db: The SQLite store holding the gold items' text.
        config: Run config whose ``evaluation`` section (and, for ``cv``, training recipe) is used; default
            the model's own ``config.yaml``. The baselines always train on the model's own training split.
        item_ids: Evaluate only these items (each must have a gold label).
        cv: If set, also K-fold cross-validate the training recipe on the evaluated gold items.
        lexicon: Cue file of the lexicon baseline (default ``configs/lexicon.yaml``).
        backend, precision: How the model runs (see :class:`pipeline.inference.predict.Predictor`); the defaults are the
            exact reference (torch, fp32), other values measure what a faster path changes.
        seed_models: Model folders of the same recipe trained with other seeds (checked); their gold scores
            give each headline score's mean and SD over seeds.
    """
    from pipeline.evaluation.goldinfo import describe_gold
    from pipeline.evaluation.oof import read_oof, recipe_name
    from pipeline.evaluation.seeds import check_seed_models, seed_summary

    log = log or (lambda _msg: None)
    model_dir = Path(model_dir)
    model_cfg = model_run_config(model_dir)
    cfg = config or model_cfg
    folder = ModelFolder(model_dir)
    source = config_source or folder.file(CONFIG_FILE)
    schema = folder.read_schema() or cfg.schema()
    ev = cfg.evaluation
    validate_min_scores(ev.min_scores, schema, source)
    seed_runs = check_seed_models(model_dir, model_cfg, [Path(d) for d in seed_models or []])
    recipe, recipe_from = recipe_name(ev.oof_recipe, model_cfg.calibration.fitted_on)
    oof = read_oof(ev.oof_summary, recipe, recipe_from, schema.target_names)
    gold_path = Path(gold_path or ev.gold)
    gold = read_gold(gold_path, schema)
    from pipeline.config.settings import shared_dir

    try:
        seeds: Path | None = shared_dir(cfg.paths.shared) / "seeds"
    except UserError:
        seeds = None
    es = load_eval_set(gold, schema, db, item_ids, gold_path, seeds=seeds, log=log)
    train_metrics = folder.read_json(METRICS_FILE, {})
    run_name = str(train_metrics.get("run_name", model_cfg.run_name))  # a label only, never a path
    out = Path(out_dir) if out_dir else default_report_dir(model_dir)  # explicit --out: the user's choice

    resamples = max(ev.bootstrap, MIN_BOOTSTRAP)
    notes = []
    if ev.bootstrap < MIN_BOOTSTRAP:
        notes.append(f"evaluation.bootstrap = {ev.bootstrap} is below the minimum of {MIN_BOOTSTRAP} resamples "
                     f"for the confidence intervals; used {MIN_BOOTSTRAP}")
    weights = cluster_weights(es.threads, resamples, cfg.seed)
    groups = {}
    for n, g in enumerate(GROUPS, start=1):
        gix = es.group_index(g)
        groups[g] = (gix, cluster_weights([es.threads[i] for i in gix], resamples, cfg.seed + n))

    log(f"predicting {len(es)} gold items with {model_dir}")
    model_out = model_output(model_dir, es, schema, device, backend, precision)
    log("fitting baselines on the model's training split")
    base_outs, base_info = baseline_outputs(model_cfg, schema, es, lexicon, train_metrics.get("counts"))

    model_res, model_samples = score_system(es, model_out, schema, weights, groups)
    model_res.update({"run_name": run_name, "model_dir": str(model_dir)})
    baselines, comparisons = {}, {}
    for b in base_outs:
        res, samples = score_system(es, b, schema, weights, groups)
        baselines[b.name] = res
        comparisons[b.name] = paired_differences(model_samples, samples, model_res["headline"], res["headline"])

    runs = [{"model_dir": str(model_dir), "seed": model_cfg.seed, "model_version": model_out.info["model_version"],
             "headline": model_res["headline"]}]
    for d, scfg in seed_runs:
        log(f"predicting {len(es)} gold items with the seed model {d} (seed {scfg.seed})")
        s_out = model_output(d, es, schema, device, backend, precision)
        runs.append({"model_dir": str(d), "seed": scfg.seed, "model_version": s_out.info["model_version"],
                     "headline": point_scores(es.gold, s_out.pred, schema)["headline"]})
        s_counts = ModelFolder(d).read_json(METRICS_FILE, {}).get("counts", {})
        if train_metrics.get("counts") and any(s_counts.get(k) != train_metrics["counts"].get(k)
                                               for k in ("corpus_total", "train", "domain_real_train")):
            notes.append(f"seed model {d} was trained on different data counts than {model_dir}")

    failures = below_min_scores(model_res["headline"], ev.min_scores)
    metrics: dict[str, Any] = {
        "run_name": run_name, "model_version": model_out.info["model_version"], "model_dir": str(model_dir),
        "gold_path": str(gold_path), "n_items": len(es),
        "n_by_kind": {g: int(len(ix)) for g, (ix, _) in groups.items()},
        "item_subset": item_ids is not None,
        "evaluated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "classes": {"sentiment": schema.sentiment_classes, "stance": schema.stance_classes,
                    "polar": schema.polar_classes, "targets": schema.target_names},
        "label_support": label_support(es, schema),
        "gold_set": describe_gold(gold_path, gold, es, schema, db),
        "bootstrap": {"resamples": resamples, "configured": ev.bootstrap, "seed": cfg.seed, "level": CI_LEVEL,
                      "unit": "thread", "clusters": len(set(es.threads)),
                      "method": "percentile; threads (an article with its comments) resampled with replacement, "
                                "each drawn thread entering with all its gold items; the same resamples for every "
                                "system, so model − baseline differences are paired"},
        "ece_bins": ECE_BINS,
        "model": model_res, "baselines": baselines, "comparisons": comparisons,
        "seeds": seed_summary(runs, headline_keys(schema.target_names)),
        "domain_real_oof": oof,
        "baseline_training": base_info,
        "training_counts": train_metrics.get("counts", {}),
        "min_scores": {"thresholds": dict(ev.min_scores), "failed": failures},
        "notes": notes + base_info["warnings"],
    }
    if cv:
        log(f"cross-validating the training recipe on the gold set ({cv} folds)")
        metrics["cv"] = cross_validate(cfg, es, schema, cv, log=log)

    return EvalResult(out, metrics, failures, es, model_out, schema)
