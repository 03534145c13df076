"""Gold-set evaluation: the model and the baselines on the same items, with bootstrap CIs and calibration.

:func:`evaluate` is what ``threadstance evaluate`` and the main job call. It reads the gold labels
(:func:`pipeline.data.labels.read_labels`), takes the items' text from the store, scores the model and the
baselines (:mod:`pipeline.evaluation.baselines`), optionally cross-validates the training recipe on the gold set
itself (:func:`cross_validate`), writes the report folder (:mod:`pipeline.reporting.report`) and
``gold_metrics.json`` into the model directory, and refreshes the model card.

Every headline number (sentiment accuracy and macro-F1, each target's F1avg, the stance score) gets a
95% percentile bootstrap interval from resampling items with replacement; the resamples are shared by
all systems, so model − baseline differences get paired intervals too.
"""
from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config.run import RunConfig, load_config
from pipeline.config.schema import LabelSchema, load_schema
from pipeline.errors import ConfigError, UserError
from pipeline.metrics import (
    bootstrap_indices,
    confusion,
    expected_calibration_error,
    headline_keys,
    percentile_ci,
    reliability_bins,
    resampled_headline,
    sentiment_scores,
    stance_target_scores,
)

MIN_BOOTSTRAP = 1000
CI_LEVEL = 0.95
ECE_BINS = 10
N_CONFIDENT_ERRORS = 20
# Item kinds are reported in two groups: reader comments (with replies) read very differently from
# article paragraphs, and the gold set is mostly paragraphs.
GROUPS: dict[str, tuple[str, ...]] = {"comments": ("comment", "reply"), "paragraphs": ("paragraph",)}
MAX_IDS_IN_MESSAGE = 20


def _id_list(ids: list[str]) -> str:
    shown = ", ".join(ids[:MAX_IDS_IN_MESSAGE])
    return shown + (f", … (+{len(ids) - MAX_IDS_IN_MESSAGE} more)" if len(ids) > MAX_IDS_IN_MESSAGE else "")


# ---- inputs ----------------------------------------------------------------------------------------------

@dataclass
class EvalSet:
    """The items under evaluation, aligned lists: ids, kinds, texts, parent texts and gold label columns."""

    ids: list[str]
    kinds: list[str]
    texts: list[str]
    parents: list[str | None]
    gold: dict[str, list[str]]

    def __len__(self) -> int:
        return len(self.ids)

    def group_index(self, group: str) -> np.ndarray:
        return np.array([i for i, k in enumerate(self.kinds) if k in GROUPS[group]], dtype=int)

    def subset(self, index: np.ndarray | list[int]) -> EvalSet:
        ix = [int(i) for i in index]
        return EvalSet([self.ids[i] for i in ix], [self.kinds[i] for i in ix], [self.texts[i] for i in ix],
                       [self.parents[i] for i in ix], {f: [v[i] for i in ix] for f, v in self.gold.items()})

    def records(self, schema: LabelSchema) -> list[dict]:
        """Corpus-style records (``id``, ``text``, ``sentiment``, ``stance``, ``kind``, ``parent_text``)."""
        return [{"id": self.ids[i], "text": self.texts[i], "sentiment": self.gold["sentiment"][i],
                 "stance": {t: self.gold[t][i] for t in schema.target_names}, "kind": self.kinds[i],
                 "parent_text": self.parents[i], "source": "gold"} for i in range(len(self))]


def read_gold(path: str | Path, schema: LabelSchema) -> dict[str, Any]:
    """Gold labels by item id (strict: the first problem in the file is a UserError with its line)."""
    from pipeline.data.labels import read_labels

    p = Path(path)
    if not p.is_file():
        raise UserError("gold label file not found (pass --gold FILE or set evaluation.gold)", p)
    records = read_labels(p, schema)
    if not records:
        raise UserError("gold label file has no labels", p)
    return {r.item_id: r for r in records}


def read_item_ids(path: str | Path) -> list[str]:
    """Item ids to evaluate: one per line (``#`` comments and blank lines ignored), or JSONL with ``item_id``."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise UserError(f"cannot read the item id file: {exc.strerror or exc}", p) from exc
    ids: list[str] = []
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("{"):
            try:
                line = json.loads(line)["item_id"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise UserError("expected an item id or a JSON object with 'item_id'", p, lineno) from exc
        if line not in ids:
            ids.append(line)
    if not ids:
        raise UserError("no item ids in the file", p)
    return ids


def require_gold(item_ids: list[str], gold: dict[str, Any], gold_path: str | Path) -> None:
    """Evaluating an item without a gold label is an error that names the items, never a silent skip."""
    missing = [i for i in item_ids if i not in gold]
    if missing:
        raise UserError(f"{len(missing)} item(s) asked for evaluation have no gold label in this file: "
                        f"{_id_list(missing)}", gold_path)


def ensure_seeds_ingested(ids: list[str], db: str | Path, seeds: str | Path | None,
                          log: Any = None) -> bool:
    """Ingest the seed threads into ``db`` when some of ``ids`` are not there yet (a fresh checkout runs
    ``evaluate`` before any ``run``). Returns True when it ingested. Nothing happens without a seeds folder."""
    from pipeline.store.db import Store

    if seeds is None or not Path(seeds).is_dir():
        return False
    if Path(db).is_file():
        with Store(db) as store:
            present = {r["item_id"] for r in store.items(item_ids=ids)}
        if all(i in present for i in ids):
            return False
    from pipeline.store.load import ingest_paths

    if log:
        log(f"gold items are not in {db} yet: ingesting the seed threads from {seeds}")
    with Store(db) as store:
        report = ingest_paths(store, [seeds])
    if report.failed:
        raise UserError(f"{len(report.failed)} seed file(s) failed to ingest: {report.failed[0].error}", seeds)
    return True


def load_eval_set(gold: dict[str, Any], schema: LabelSchema, db: str | Path,
                  item_ids: list[str] | None = None, gold_path: str | Path = "gold",
                  seeds: str | Path | None = None, log: Any = None) -> EvalSet:
    """The gold items (or ``item_ids``, which must all have gold) with their text from the store; with
    ``seeds``, missing gold items are first ingested from that folder."""
    from pipeline.store.db import Store

    ids = list(item_ids) if item_ids is not None else list(gold)
    if item_ids is not None:
        require_gold(ids, gold, gold_path)
    ensure_seeds_ingested(ids, db, seeds, log)
    hint = f"ingest the seed threads first: `threadstance ingest ../shared/seeds --db {db}`"
    if not Path(db).is_file():
        raise UserError(f"no store here; {hint}", db)
    with Store(db) as store:
        rows = {r["item_id"]: r for r in store.items(item_ids=ids)}
        parent_ids = sorted({r["parent_id"] for r in rows.values() if r.get("parent_id")})
        parents = {r["item_id"]: r["text"] for r in store.items(item_ids=parent_ids)} if parent_ids else {}
    missing = [i for i in ids if i not in rows]
    if missing:
        raise UserError(f"{len(missing)} gold item(s) are not in the store: {_id_list(missing)}; {hint}", db)
    gold_cols: dict[str, list[str]] = {"sentiment": [gold[i].sentiment for i in ids]}
    for t in schema.target_names:
        gold_cols[t] = [gold[i].stance[t] for i in ids]
    return EvalSet(ids, [rows[i]["kind"] for i in ids], [rows[i]["text"] for i in ids],
                   [parents.get(rows[i].get("parent_id") or "") for i in ids], gold_cols)


# ---- scoring ---------------------------------------------------------------------------------------------

def fields_of(schema: LabelSchema) -> list[str]:
    return ["sentiment", *schema.target_names]


def classes_of(schema: LabelSchema, field_name: str) -> list[str]:
    return schema.sentiment_classes if field_name == "sentiment" else schema.stance_classes


def point_scores(gold: dict[str, list[str]], pred: dict[str, list[str]], schema: LabelSchema) -> dict[str, Any]:
    """Scores for the fields present in ``pred`` (same definitions as :func:`pipeline.metrics.headline_scores`)."""
    out: dict[str, Any] = {}
    headline: dict[str, float] = {}
    if "sentiment" in pred:
        out["sentiment"] = sentiment_scores(gold["sentiment"], pred["sentiment"], schema.sentiment_classes)
        headline["sentiment_accuracy"] = out["sentiment"]["accuracy"]
        headline["sentiment_macro_f1"] = out["sentiment"]["macro_f1"]
        out["sentiment_macro_f1"] = out["sentiment"]["macro_f1"]
    targets = [t for t in schema.target_names if t in pred]
    if targets:
        out["stance"] = {t: stance_target_scores(gold[t], pred[t], schema.stance_classes, schema.polar_classes)
                         for t in targets}
        for t in targets:
            headline[f"f1_avg.{t}"] = out["stance"][t]["f1_avg"]
    if targets == schema.target_names:
        out["stance_score"] = float(np.mean([out["stance"][t]["f1_avg"] for t in targets]))
        headline["stance_score"] = out["stance_score"]
    out["headline"] = headline
    return out


def _ci_block(samples: dict[str, np.ndarray]) -> dict[str, list[float]]:
    return {k: [round(x, 6) for x in percentile_ci(v, CI_LEVEL)] for k, v in samples.items()}


def calibration(gold: list[str], proba: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """ECE (10 equal-width bins on the max probability) and the reliability bins."""
    pos = {c: i for i, c in enumerate(classes)}
    conf = proba.max(axis=1)
    correct = proba.argmax(axis=1) == np.array([pos[g] for g in gold])
    return {"ece": expected_calibration_error(conf, correct, ECE_BINS),
            "bins": reliability_bins(conf, correct, ECE_BINS)}


@dataclass
class SystemOutput:
    """One system's predictions on the eval set (and probabilities, when it has them)."""

    name: str
    description: str
    pred: dict[str, list[str]]
    proba: dict[str, np.ndarray] | None = None
    info: dict[str, Any] = field(default_factory=dict)


def score_system(es: EvalSet, out: SystemOutput, schema: LabelSchema, idx: np.ndarray,
                 groups: dict[str, tuple[np.ndarray, np.ndarray]]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Point scores, bootstrap CIs, confusion matrices, calibration and the per-kind breakdown.

    ``idx`` holds the bootstrap resamples of the whole set, ``groups`` each kind group's item positions and
    its own resamples (positions within the group); both are shared by all systems. Returns the JSON-ready result and the bootstrap samples of the headline numbers (for paired comparisons).
    """
    res = {"description": out.description, **out.info, **point_scores(es.gold, out.pred, schema)}
    samples = resampled_headline(es.gold, out.pred, schema.sentiment_classes, schema.stance_classes,
                                 schema.target_names, schema.polar_classes, idx)
    res["ci"] = _ci_block(samples)
    res["confusion"] = {f: confusion(es.gold[f], out.pred[f], classes_of(schema, f)) for f in out.pred}
    if out.proba is not None:
        cal = {f: calibration(es.gold[f], out.proba[f], classes_of(schema, f)) for f in out.proba}
        res["calibration"] = cal
        res["ece"] = {"sentiment": cal["sentiment"]["ece"] if "sentiment" in cal else None,
                      "stance": {t: cal[t]["ece"] for t in schema.target_names if t in cal}}
    by_kind = {}
    for g, (gidx, g_idx) in groups.items():
        if len(gidx) == 0:
            continue
        sub = es.subset(gidx)
        sub_pred = {f: [v[i] for i in gidx] for f, v in out.pred.items()}
        entry = {"n": len(gidx), **point_scores(sub.gold, sub_pred, schema)}
        entry["ci"] = _ci_block(resampled_headline(sub.gold, sub_pred, schema.sentiment_classes,
                                                   schema.stance_classes, schema.target_names,
                                                   schema.polar_classes, g_idx))
        by_kind[g] = entry
    res["by_kind"] = by_kind
    return res, samples


def paired_differences(model: dict[str, np.ndarray], base: dict[str, np.ndarray], model_point: dict[str, float],
                       base_point: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Model − baseline on each shared headline key, with a paired percentile bootstrap interval."""
    out = {}
    for k in model:
        if k in base:
            lo, hi = percentile_ci(model[k] - base[k], CI_LEVEL)
            out[k] = {"diff": model_point[k] - base_point[k], "ci": [round(lo, 6), round(hi, 6)]}
    return out


def label_support(es: EvalSet, schema: LabelSchema) -> dict[str, dict[str, int]]:
    return {f: {c: Counter(es.gold[f])[c] for c in classes_of(schema, f)} for f in fields_of(schema)}


def probs_to_labels(proba: dict[str, np.ndarray], schema: LabelSchema) -> dict[str, list[str]]:
    return {f: [classes_of(schema, f)[int(i)] for i in p.argmax(axis=1)] for f, p in proba.items()}


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
    """Fit the baselines on the model's training split and predict the eval set."""
    from pipeline.evaluation.baselines import DEFAULT_LEXICON, make_baselines, record_labels, training_records

    train_recs, corpus_total = training_records(cfg, schema)
    info: dict[str, Any] = {"train_records": len(train_recs), "corpus_total": corpus_total,
                            "corpus": cfg.data.corpus, "seed": cfg.seed, "dev_fraction": cfg.data.dev_fraction,
                            "max_train_examples": cfg.data.max_train_examples, "warnings": []}
    if trained_counts:
        # the model's training records: corpus train split + real in-domain items × repeat
        trained = (trained_counts.get("train") or 0) + \
            (trained_counts.get("domain_real_train") or 0) * (trained_counts.get("domain_real_repeat") or 0)
        if (trained_counts.get("corpus_total"), trained) != (corpus_total, len(train_recs)):
            info["warnings"].append(
                f"the training data changed since the model was trained (model: {trained_counts.get('corpus_total')} "
                f"corpus items, {trained} training records; now: {corpus_total}, {len(train_recs)}): the trained "
                "baselines may not see exactly the model's training records")
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
    :func:`pipeline.training.loop.train` (temporary models folder, removed afterwards); the held-out fold is
    scored. Returns per-fold headline numbers and their mean and sample standard deviation.
    """
    from sklearn.model_selection import StratifiedKFold

    from pipeline.inference.predict import Predictor
    from pipeline.training import loop as trainer

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


def model_run_config(model_dir: Path) -> RunConfig:
    path = model_dir / "config.yaml"
    if not path.is_file():
        raise UserError("no config.yaml in the model directory; is this a folder written by `threadstance train`?",
                        model_dir)
    return load_config(path)


def default_report_dir(model_dir: str | Path, root: str | Path = "reports") -> Path:
    """``reports/<model folder name>``: never a path read from a file inside the model folder."""
    from pipeline.config.safepaths import child_dir

    return child_dir(root, Path(model_dir).resolve().name, "model folder name")


def evaluate(model_dir: str | Path, *, gold_path: str | Path | None = None, out_dir: str | Path | None = None,
             db: str | Path = "work/threadstance.sqlite", config: RunConfig | None = None,
             config_source: str | Path | None = None, item_ids: list[str] | None = None, cv: int | None = None,
             lexicon: str | Path | None = None, device: str = "auto", backend: str = "torch",
             precision: str = "fp32", log: Any = None) -> EvalResult:
    """Evaluate a trained model on the gold set and write the report.

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
    """
    log = log or (lambda _msg: None)
    model_dir = Path(model_dir)
    model_cfg = model_run_config(model_dir)
    cfg = config or model_cfg
    source = config_source or (model_dir / "config.yaml")
    schema = load_schema(model_dir / "labels.yaml") if (model_dir / "labels.yaml").is_file() else cfg.schema()
    ev = cfg.evaluation
    validate_min_scores(ev.min_scores, schema, source)
    gold_path = Path(gold_path or ev.gold)
    gold = read_gold(gold_path, schema)
    from pipeline.config.settings import shared_dir

    try:
        seeds: Path | None = shared_dir(cfg.paths.shared) / "seeds"
    except UserError:
        seeds = None
    es = load_eval_set(gold, schema, db, item_ids, gold_path, seeds=seeds, log=log)
    train_metrics = json.loads((model_dir / "metrics.json").read_text(encoding="utf-8")) \
        if (model_dir / "metrics.json").is_file() else {}
    run_name = str(train_metrics.get("run_name", model_cfg.run_name))  # a label only, never a path
    out = Path(out_dir) if out_dir else default_report_dir(model_dir)  # explicit --out: the user's choice

    resamples = max(ev.bootstrap, MIN_BOOTSTRAP)
    notes = []
    if ev.bootstrap < MIN_BOOTSTRAP:
        notes.append(f"evaluation.bootstrap = {ev.bootstrap} is below the minimum of {MIN_BOOTSTRAP} resamples "
                     f"for the confidence intervals; used {MIN_BOOTSTRAP}")
    idx = bootstrap_indices(len(es), resamples, cfg.seed)
    groups = {}
    for n, g in enumerate(GROUPS, start=1):
        gix = es.group_index(g)
        groups[g] = (gix, bootstrap_indices(len(gix), resamples, cfg.seed + n) if len(gix) else idx[:, :0])

    log(f"predicting {len(es)} gold items with {model_dir}")
    model_out = model_output(model_dir, es, schema, device, backend, precision)
    log("fitting baselines on the model's training split")
    base_outs, base_info = baseline_outputs(model_cfg, schema, es, lexicon, train_metrics.get("counts"))

    model_res, model_samples = score_system(es, model_out, schema, idx, groups)
    model_res.update({"run_name": run_name, "model_dir": str(model_dir)})
    baselines, comparisons = {}, {}
    for b in base_outs:
        res, samples = score_system(es, b, schema, idx, groups)
        baselines[b.name] = res
        comparisons[b.name] = paired_differences(model_samples, samples, model_res["headline"], res["headline"])

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
        "bootstrap": {"resamples": resamples, "configured": ev.bootstrap, "seed": cfg.seed, "level": CI_LEVEL,
                      "method": "percentile, items resampled with replacement; same resamples for every system"},
        "ece_bins": ECE_BINS,
        "model": model_res, "baselines": baselines, "comparisons": comparisons,
        "baseline_training": base_info,
        "min_scores": {"thresholds": dict(ev.min_scores), "failed": failures},
        "notes": notes + base_info["warnings"],
    }
    if cv:
        log(f"cross-validating the training recipe on the gold set ({cv} folds)")
        metrics["cv"] = cross_validate(cfg, es, schema, cv, log=log)

    from pipeline.reporting.report import write_report

    log(f"writing the report to {out}")
    write_report(out, metrics, es, model_out, schema)
    gold_metrics = {**metrics, "report_dir": str(out)}
    (model_dir / "gold_metrics.json").write_text(json.dumps(_jsonable(gold_metrics), indent=2) + "\n",
                                                 encoding="utf-8")
    if (model_dir / "metrics.json").is_file():
        from pipeline.modeling.card import write_model_card

        write_model_card(model_dir)
    return EvalResult(out, metrics, failures)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
