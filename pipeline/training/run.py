"""What both training recipes share: the data they train and select on, dev scoring, and saving the run.

:func:`build_data` turns the config's splits into features; :func:`score_dev` scores a model on a dev
set; :func:`save_run` writes the model folder through :class:`~pipeline.modeling.folder.ModelFolder`
(weights, meta, decision biases, config, metrics, card, manifest).
"""
from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset, concatenate_datasets
from sklearn.utils.class_weight import compute_class_weight

from pipeline.config.run import RunConfig
from pipeline.config.schema import LabelSchema
from pipeline.data.corpus import record_label_counts
from pipeline.data.public_data import load_tweeteval_sentiment, load_vast
from pipeline.data.splits import make_splits
from pipeline.errors import ConfigError
from pipeline.hardware import cpu_has_native_bf16, cpu_name
from pipeline.metrics import score_labelled
from pipeline.modeling.encoding import InputSpec
from pipeline.modeling.folder import METRICS_FILE, OOF_TABLE_FILE, ModelFolder
from pipeline.modeling.model import MultiTaskModel
from pipeline.modeling.outputs import Probabilities, collect, iter_proba, to_predictions, torch_forward
from pipeline.training.features import IGNORE, Collator, pair_features, record_features
from pipeline.training.oof_table import build_oof_table, oof_summary


@dataclass
class DevSet:
    """A dev set: its records (with gold labels) and their features."""

    name: str
    records: list[dict]
    features: Dataset


@dataclass
class RunResult:
    output_dir: Path
    model_version: str
    dev_metrics: dict[str, Any]
    train_seconds: float
    counts: dict[str, Any] = field(default_factory=dict)


def predict_features(model: MultiTaskModel, features: Dataset, collator: Collator, batch_size: int,
                     device: torch.device) -> Probabilities:
    """Probabilities for a feature set through the one inference loop (batches sorted by length, input
    order restored)."""
    was_training = model.training
    model.eval()
    batches = iter_proba(features["input_ids"], torch_forward(model, device), collator.pad_id, collator.sep_id,
                         batch_size)
    probs = collect(batches, len(features), len(model.sentiment_classes), model.targets, len(model.stance_classes))
    model.train(was_training)
    return probs


def score_dev(model: MultiTaskModel, dev: DevSet, schema: LabelSchema, collator: Collator, device: torch.device,
              batch_size: int = 64) -> dict[str, Any]:
    probs = predict_features(model, dev.features, collator, batch_size, device)
    preds = to_predictions(probs, model.sentiment_classes, model.stance_classes, model.targets, schema.none_class)
    scores = score_labelled(dev.records, preds, schema)
    scores["selection"] = (scores["sentiment_macro_f1"] + scores["stance_score"]) / 2
    scores["n"] = len(dev.records)
    return scores


def balanced_class_weights(labels: list[int], n_classes: int, cap: float) -> torch.Tensor | None:
    present = sorted({y for y in labels if y != IGNORE})
    if len(present) < 2:
        return None
    y = np.array([v for v in labels if v != IGNORE])
    weights = np.ones(n_classes, dtype=np.float32)
    weights[present] = compute_class_weight("balanced", classes=np.array(present), y=y)
    return torch.tensor(np.clip(weights, 1.0 / cap, cap), dtype=torch.float)


def task_class_weights(labels: Any, schema: LabelSchema, cfg: RunConfig) -> dict[str, torch.Tensor | None]:
    """Per-task balanced class weights (``training.class_weights``), from label columns ``sentiment`` and
    ``stance_<target>`` of a dataset or a dict of arrays; empty when weighting is off."""
    if cfg.training.class_weights != "balanced":
        return {}
    cap = cfg.training.class_weight_cap
    out = {"sentiment": balanced_class_weights(list(labels["sentiment"]), len(schema.sentiment_classes), cap)}
    for t in schema.target_names:
        out[t] = balanced_class_weights(list(labels[f"stance_{t}"]), len(schema.stance_classes), cap)
    return out


def target_statements(cfg: RunConfig, schema: LabelSchema) -> list[str] | None:
    """The codebook statement of every target, in head order, when the config asks for target-aware heads."""
    return schema.target_statements if cfg.model.target_aware else None


def use_bf16(cfg: RunConfig) -> bool:
    """bf16 autocast on CPU when asked, or with ``auto`` when the CPU has native bf16."""
    return cfg.training.bf16 == "on" or (cfg.training.bf16 == "auto" and cpu_has_native_bf16())


def model_version(model_dir: Path, schema: LabelSchema) -> str:
    """Content hash of the weights, the decision biases and the label schema (first 12 hex digits)."""
    return ModelFolder(model_dir).content_version(schema)


def build_data(cfg: RunConfig, schema: LabelSchema, tokenizer: Any, spec: InputSpec, require_dev: bool = True
               ) -> tuple[Dataset, list[DevSet], Dataset | None, dict[str, Any]]:
    """Train features, dev sets, optional VAST pair features and the counts for the model card."""
    sp = make_splits(cfg, schema)
    if not sp.train:
        raise ConfigError("no training items: data.corpus is empty and data.domain_real trains on nothing",
                          key="data.corpus")
    parts = [record_features(sp.train, schema, tokenizer, spec)]
    n_corpus_train = len(sp.train) - len(sp.real_train) * sp.real_repeat
    counts: dict[str, Any] = {"corpus_total": sp.corpus_total, "train": n_corpus_train, "corpus_dev": len(sp.corpus_dev)}
    if sp.real_train:
        counts["domain_real_train"] = len(sp.real_train)
        counts["domain_real_repeat"] = sp.real_repeat
    tw = cfg.data.aux.tweeteval_sentiment
    if tw.enabled:
        rows = load_tweeteval_sentiment(cfg.paths.shared, tw.split, tw.max_examples, cfg.seed)
        recs = [{"text": r["text"], "sentiment": r["sentiment"], "stance": None} for r in rows]
        parts.append(record_features(recs, schema, tokenizer, spec, sentiment_weight=tw.loss_weight))
        counts["tweeteval_sentiment"] = len(recs)
    train = concatenate_datasets(parts).shuffle(seed=cfg.seed)
    devs = [DevSet("corpus_dev", sp.corpus_dev, record_features(sp.corpus_dev, schema, tokenizer, spec))] \
        if sp.corpus_dev else []
    if sp.real_dev:
        devs.append(DevSet("domain_real", sp.real_dev, record_features(sp.real_dev, schema, tokenizer, spec)))
        counts["domain_real"] = len(sp.real_dev)
    if not devs and require_dev:
        raise ConfigError("no dev set for model selection: give a corpus or set data.domain_real.use to dev or kfold",
                          key="data.domain_real.use")
    pairs = None
    if cfg.data.aux.vast.enabled:
        v = cfg.data.aux.vast
        rows = load_vast(cfg.paths.shared, "train", v.max_examples, v.none_fraction, cfg.seed)
        pairs = pair_features(rows, schema, tokenizer, spec).shuffle(seed=cfg.seed)
        counts["vast_pairs"] = len(pairs)
    counts["train_label_counts"] = record_label_counts(sp.train, schema)
    return train, devs, pairs, counts


def save_run(cfg: RunConfig, model: MultiTaskModel, tokenizer: Any, spec: InputSpec, schema: LabelSchema,
             devs: list[DevSet], counts: dict[str, Any], dev_metrics: dict[str, Any], train_seconds: float,
             device: torch.device, extra: dict[str, Any], log_history: list[dict]) -> str:
    """Write the model directory (weights, tokenizer, meta, config, metrics, card); returns model_version."""
    # written beside the old model and renamed into place whole (issue 24): a save that dies half way
    # leaves the previous model as it was
    with ModelFolder(cfg.output_dir).saving() as folder:
        folder.save_model(model, tokenizer)
        meta = folder.read_meta()
        meta.update({"input": spec.__dict__, "none_class": schema.none_class, "schema_name": schema.name,
                     "run_name": cfg.run_name})
        if cfg.calibration.temperature:
            meta["temperature"] = {**cfg.calibration.temperature, "fitted_on": cfg.calibration.fitted_on}
        folder.write_meta(meta)
        calibration = None
        cal_set = next((d for d in devs if d.name == cfg.training.calibrate), None)
        if cal_set is not None:
            from pipeline.training.calibration import calibrate_model_dir

            folder.write_manifest()  # the weights are final: calibration loads them through the checked path
            calibration = calibrate_model_dir(folder.path, cal_set.records, schema, cal_set.name)
        version = folder.content_version(schema)
        folder.update_meta(model_version=version)
        folder.write_schema(schema)
        folder.write_config(cfg)
        oof_table = build_oof_table(cfg, schema)  # misclassification rates for `trends` (calibration.oof_predictions)
        if oof_table is not None:
            folder.write_oof_table(oof_table)
        hardware = {"device": str(device), "cpu": cpu_name(), "torch_threads": torch.get_num_threads(),
                    "cpu_count": os.cpu_count(),
                    "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "torch": torch.__version__}
        if device.type == "cuda":
            hardware["gpu"] = torch.cuda.get_device_name(0)
        summary = {"run_name": cfg.run_name, "model_version": version, "seed": cfg.seed, "base_model": cfg.model.base,
                   "train_seconds": round(train_seconds, 1), "hardware": hardware, "counts": counts,
                   "selection_dev_set": None, "best_step": None, "dev": dev_metrics, "dev_history": [],
                   **extra, "calibration": calibration, "oof_table": oof_summary(oof_table, OOF_TABLE_FILE),
                   "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        folder.write_json(METRICS_FILE, summary)
        folder.write_train_log(log_history)
        folder.write_card()
        folder.write_manifest()
    return version
