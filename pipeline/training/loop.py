"""Training: an optional intermediate stage on VAST stance pairs, then multi-task fine-tuning.

Built on ``transformers.Trainer`` (dynamic padding, length-grouped batches, gradient accumulation,
checkpoints, ``--resume``, early stopping on a dev set, bf16 on capable GPUs). Model selection uses the
dev set named by ``data.selection`` — the corpus dev split or the real in-domain set — never gold.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset, concatenate_datasets
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from sklearn.utils.class_weight import compute_class_weight
from transformers import EarlyStoppingCallback, Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from transformers.utils import logging as hf_logging

from pipeline.config.run import RunConfig
from pipeline.config.schema import LabelSchema
from pipeline.data.public_data import load_tweeteval_sentiment, load_vast
from pipeline.data.splits import make_splits
from pipeline.errors import ConfigError
from pipeline.hardware import cpu_name
from pipeline.inference.predict import Probabilities, resolve_device, to_predictions
from pipeline.metrics import headline_scores
from pipeline.modeling.encoding import InputSpec
from pipeline.modeling.model import HEADS_FILE, MODEL_META, MultiTaskModel, multitask_loss
from pipeline.training.features import IGNORE, Collator, label_columns, pair_features, record_features

console = Console(stderr=True)


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


class RichProgress(TrainerCallback):
    """A rich progress bar with ETA and the latest loss, in place of tqdm."""

    def __init__(self, label: str, enabled: bool = True) -> None:
        self.label, self.enabled = label, enabled
        self.progress: Progress | None = None

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001
        if self.enabled:
            self.progress = Progress(TextColumn(f"[bold]{self.label}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                     console=console)
            self.progress.start()
            self.task = self.progress.add_task(self.label, total=state.max_steps, info="",
                                               completed=state.global_step)

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
        if self.progress:
            self.progress.update(self.task, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
        if self.progress and logs:
            info = " ".join(f"{k.removeprefix('eval_')}={v:.3f}" for k, v in logs.items()
                            if k in ("loss", "eval_selection") and isinstance(v, float))
            self.progress.update(self.task, info=info)

    def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001
        if self.progress:
            self.progress.stop()
            self.progress = None


def predict_features(model: MultiTaskModel, features: Dataset, collator: Collator, batch_size: int,
                     device: torch.device) -> Probabilities:
    """Probabilities for a feature set, batches sorted by length (input order restored)."""
    n = len(features)
    order = np.argsort(features["length"], kind="stable")
    sent = np.zeros((n, len(model.sentiment_classes)), dtype=np.float32)
    stance = {t: np.zeros((n, len(model.stance_classes)), dtype=np.float32) for t in model.targets}
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            idx = order[start: start + batch_size]
            batch = collator([features[int(i)] for i in idx])
            out = model(batch["input_ids"].to(device), batch["attention_mask"].to(device),
                        batch["token_type_ids"].to(device))
            sent[idx] = torch.softmax(out["sentiment"].float(), -1).cpu().numpy()
            for t in model.targets:
                stance[t][idx] = torch.softmax(out["stance"][t].float(), -1).cpu().numpy()
    model.train(was_training)
    return Probabilities(sent, stance)


def score_dev(model: MultiTaskModel, dev: DevSet, schema: LabelSchema, collator: Collator, device: torch.device,
              batch_size: int = 64) -> dict[str, Any]:
    probs = predict_features(model, dev.features, collator, batch_size, device)
    preds = to_predictions(probs, model.sentiment_classes, model.stance_classes, model.targets, schema.none_class)
    gold = {"sentiment": [r["sentiment"] for r in dev.records]}
    pred = {"sentiment": [p.sentiment for p in preds]}
    for t in schema.target_names:
        gold[t] = [r["stance"][t] for r in dev.records]
        pred[t] = [p.stance[t] for p in preds]
    scores = headline_scores(gold, pred, schema.sentiment_classes, schema.stance_classes, schema.target_names,
                             schema.polar_classes)
    scores["selection"] = (scores["sentiment_macro_f1"] + scores["stance_score"]) / 2
    scores["n"] = len(dev.records)
    return scores


class MultiTaskTrainer(Trainer):
    """Trainer with the multi-task loss, two learning rates and dev-set scoring by the project metrics."""

    def __init__(self, *args: Any, schema: LabelSchema, class_weights: dict[str, torch.Tensor | None],
                 loss_weights: dict[str, float], dev_sets: list[DevSet], selection: str | None,
                 head_lr: float, collator: Collator, **kwargs: Any) -> None:
        super().__init__(*args, data_collator=collator, **kwargs)
        self.remove_callback(PrinterCallback)
        self.remove_callback(ProgressCallback)
        self.schema, self.class_weights, self.loss_weights = schema, class_weights, loss_weights
        self.dev_sets, self.selection, self.head_lr, self.collator = dev_sets, selection, head_lr, collator
        self.dev_history: list[dict[str, Any]] = []

    def create_optimizer(self, model: Any = None) -> torch.optim.Optimizer:  # noqa: ARG002
        if self.optimizer is None:
            decay, no_decay, heads = [], [], []
            for name, param in self.model.named_parameters():
                if not param.requires_grad:
                    continue
                if not name.startswith("encoder."):
                    heads.append(param)
                elif param.ndim < 2:
                    no_decay.append(param)
                else:
                    decay.append(param)
            self.optimizer = torch.optim.AdamW([
                {"params": decay, "lr": self.args.learning_rate, "weight_decay": self.args.weight_decay},
                {"params": no_decay, "lr": self.args.learning_rate, "weight_decay": 0.0},
                {"params": heads, "lr": self.head_lr, "weight_decay": self.args.weight_decay}])
        return self.optimizer

    def compute_loss(self, model: Any, inputs: dict[str, torch.Tensor], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:  # noqa: ARG002
        out = model(inputs["input_ids"], inputs["attention_mask"], inputs.get("token_type_ids"))
        loss = multitask_loss(out, inputs, self.schema.target_names, self.class_weights, self.loss_weights,
                              inputs["sent_weight"])
        return (loss, out) if return_outputs else loss

    def evaluate(self, eval_dataset: Any = None, ignore_keys: Any = None, metric_key_prefix: str = "eval"
                 ) -> dict[str, float]:
        metrics: dict[str, float] = {}
        entry: dict[str, Any] = {"step": self.state.global_step, "epoch": self.state.epoch}
        for dev in self.dev_sets:
            scores = score_dev(self.model, dev, self.schema, self.collator, self.args.device)
            entry[dev.name] = {k: scores[k] for k in ("sentiment_macro_f1", "stance_score", "selection")}
            for k in ("sentiment_macro_f1", "stance_score", "selection"):
                metrics[f"{metric_key_prefix}_{dev.name}_{k}"] = scores[k]
            if dev.name == self.selection:
                metrics[f"{metric_key_prefix}_selection"] = scores["selection"]
        self.dev_history.append(entry)
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


def _class_weights(labels: list[int], n_classes: int, cap: float) -> torch.Tensor | None:
    present = sorted({y for y in labels if y != IGNORE})
    if len(present) < 2:
        return None
    y = np.array([v for v in labels if v != IGNORE])
    weights = np.ones(n_classes, dtype=np.float32)
    weights[present] = compute_class_weight("balanced", classes=np.array(present), y=y)
    return torch.tensor(np.clip(weights, 1.0 / cap, cap), dtype=torch.float)


def _device_args(cfg: RunConfig) -> dict[str, Any]:
    device = resolve_device(cfg.training.device)
    bf16 = cfg.training.bf16 == "on" or (cfg.training.bf16 == "auto" and device.type == "cuda"
                                         and torch.cuda.is_bf16_supported())
    return {"use_cpu": device.type == "cpu", "bf16": bf16}


def _training_args(cfg: RunConfig, out: Path, n_train: int, epochs: float, lr: float, evaluate: bool,
                   seed: int) -> TrainingArguments:
    t = cfg.training
    steps_per_epoch = max(1, math.ceil(n_train / (t.batch_size * t.grad_accum)))
    total = t.max_steps if t.max_steps > 0 else math.ceil(steps_per_epoch * epochs)
    eval_steps = max(1, steps_per_epoch // t.evals_per_epoch)
    return TrainingArguments(
        output_dir=str(out), num_train_epochs=epochs, max_steps=t.max_steps if t.max_steps > 0 else -1,
        per_device_train_batch_size=t.batch_size, gradient_accumulation_steps=t.grad_accum,
        learning_rate=lr, weight_decay=t.weight_decay, warmup_steps=int(t.warmup_ratio * total),
        lr_scheduler_type="linear", seed=seed, data_seed=seed,
        train_sampling_strategy="group_by_length", length_column_name="length",
        eval_strategy="steps" if evaluate else "no", eval_steps=eval_steps,
        save_strategy="steps" if evaluate else "no", save_steps=eval_steps, save_total_limit=2,
        save_only_model=False, load_best_model_at_end=evaluate, metric_for_best_model="selection",
        greater_is_better=True, logging_steps=max(1, min(50, steps_per_epoch // 4)), report_to="none",
        disable_tqdm=True, remove_unused_columns=False, dataloader_num_workers=0, **_device_args(cfg))


def model_version(model_dir: Path, schema: LabelSchema) -> str:
    """Content hash of the weights, the decision biases and the label schema (first 12 hex digits)."""
    h = hashlib.sha256()
    meta = json.loads((model_dir / MODEL_META).read_text(encoding="utf-8"))
    h.update(json.dumps(meta.get("decision_bias"), sort_keys=True).encode())
    for path in sorted([model_dir / HEADS_FILE, *(model_dir / "encoder").glob("*.safetensors")]):
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    h.update(schema.model_dump_json().encode())
    return h.hexdigest()[:12]


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
    counts["train_label_counts"] = label_counts(sp.train, schema)
    return train, devs, pairs, counts


def label_counts(records: list[dict], schema: LabelSchema) -> dict[str, dict[str, int]]:
    out = {"sentiment": {c: 0 for c in schema.sentiment_classes}}
    for t in schema.target_names:
        out[t] = {c: 0 for c in schema.stance_classes}
    for r in records:
        out["sentiment"][r["sentiment"]] += 1
        for t in schema.target_names:
            out[t][r["stance"][t]] += 1
    return out


def train(cfg: RunConfig, resume: bool = False, progress: bool = True) -> RunResult:
    """Run the configured training and write the model directory ``models/<run_name>/``."""
    if cfg.training.trainable_layers is not None:
        from pipeline.training.layerwise import train_layerwise

        return train_layerwise(cfg, progress)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if cfg.training.num_threads:
        torch.set_num_threads(cfg.training.num_threads)
    set_seed(cfg.seed, deterministic=True)
    schema = cfg.schema()
    out = cfg.output_dir
    ckpt = out / "checkpoints"
    spec = InputSpec(**cfg.input.model_dump())
    started = time.time()
    model, tokenizer = MultiTaskModel.from_base(cfg.model.base, schema.sentiment_classes, schema.stance_classes,
                                                schema.target_names, cfg.model.dropout, cfg.model.pooling)
    train_ds, devs, pairs, counts = build_data(cfg, schema, tokenizer, spec)
    collator = Collator(tokenizer, label_columns(schema))
    loss_weights = {"sentiment": cfg.training.sentiment_loss_weight, "stance": cfg.training.stance_loss_weight}
    common = {"schema": schema, "loss_weights": loss_weights, "head_lr": cfg.training.head_lr, "collator": collator}

    stage1_done = ckpt / "stage1" / "encoder.safetensors"
    if pairs is not None:
        if resume and stage1_done.exists():
            from safetensors.torch import load_file

            model.load_state_dict(load_file(str(stage1_done)), strict=False)
            console.print("[dim]resume: intermediate VAST stage already done[/]")
        else:
            v = cfg.data.aux.vast
            args = _training_args(cfg, ckpt / "stage1", len(pairs), v.epochs, v.lr, False, cfg.seed)
            args.max_steps = -1
            t1 = MultiTaskTrainer(model=model, args=args, train_dataset=pairs, class_weights={}, dev_sets=[],
                                  selection=None, callbacks=[RichProgress("stage 1: VAST pairs", progress)],
                                  **common)
            t1.train()
            from safetensors.torch import save_file

            stage1_done.parent.mkdir(parents=True, exist_ok=True)
            save_file({k: v.contiguous() for k, v in model.state_dict().items() if k.startswith("encoder.")},
                      str(stage1_done))

    class_weights: dict[str, torch.Tensor | None] = {}
    if cfg.training.class_weights == "balanced":
        cap = cfg.training.class_weight_cap
        class_weights["sentiment"] = _class_weights(train_ds["sentiment"], len(schema.sentiment_classes), cap)
        for t in schema.target_names:
            class_weights[t] = _class_weights(train_ds[f"stance_{t}"], len(schema.stance_classes), cap)
    selection = cfg.data.selection if any(d.name == cfg.data.selection for d in devs) else devs[0].name
    args = _training_args(cfg, ckpt / "main", len(train_ds), cfg.training.epochs, cfg.training.lr, True, cfg.seed)
    callbacks: list[TrainerCallback] = [RichProgress("training", progress)]
    if cfg.training.early_stopping_patience > 0:
        callbacks.append(EarlyStoppingCallback(cfg.training.early_stopping_patience))
    # eval_dataset is only there to satisfy Trainer's checks: evaluate() scores the dev sets itself.
    trainer = MultiTaskTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=devs[0].features,
                               class_weights=class_weights, dev_sets=devs, selection=selection, callbacks=callbacks, **common)
    has_ckpt = resume and any((ckpt / "main").glob("checkpoint-*"))
    trainer.train(resume_from_checkpoint=True if has_ckpt else None)
    train_seconds = time.time() - started

    dev_metrics = {d.name: score_dev(model, d, schema, collator, trainer.args.device) for d in devs}
    version = save_run(cfg, model, tokenizer, spec, schema, devs, counts, dev_metrics, train_seconds,
                       trainer.args.device, {"selection_dev_set": selection,
                                             "best_step": trainer.state.best_global_step,
                                             "dev_history": trainer.dev_history},
                       trainer.state.log_history)
    shutil.rmtree(ckpt, ignore_errors=True)  # checkpoints only serve --resume of an unfinished run
    return RunResult(out, version, dev_metrics, train_seconds, counts)


def save_run(cfg: RunConfig, model: MultiTaskModel, tokenizer: Any, spec: InputSpec, schema: LabelSchema,
             devs: list[DevSet], counts: dict[str, Any], dev_metrics: dict[str, Any], train_seconds: float,
             device: torch.device, extra: dict[str, Any], log_history: list[dict]) -> str:
    """Write the model directory (weights, tokenizer, meta, config, metrics, card); returns model_version."""
    out = cfg.output_dir
    model.save(out, tokenizer)
    meta = json.loads((out / MODEL_META).read_text(encoding="utf-8"))
    meta.update({"input": spec.__dict__, "none_class": schema.none_class, "schema_name": schema.name,
                 "run_name": cfg.run_name})
    if cfg.calibration.temperature:
        meta["temperature"] = {**cfg.calibration.temperature, "fitted_on": cfg.calibration.fitted_on}
    (out / MODEL_META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    calibration = None
    cal_set = next((d for d in devs if d.name == cfg.training.calibrate), None)
    if cal_set is not None:
        from pipeline.training.calibration import calibrate_model_dir

        calibration = calibrate_model_dir(out, cal_set.records, schema, cal_set.name)
    version = model_version(out, schema)
    meta = json.loads((out / MODEL_META).read_text(encoding="utf-8"))
    meta["model_version"] = version
    (out / MODEL_META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    (out / "labels.yaml").write_text(schema_yaml(schema), encoding="utf-8")
    (out / "config.yaml").write_text(cfg.to_yaml(), encoding="utf-8")
    hardware = {"device": str(device), "cpu": cpu_name(), "torch_threads": torch.get_num_threads(),
                "cpu_count": os.cpu_count(),
                "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                "torch": torch.__version__}
    if device.type == "cuda":
        hardware["gpu"] = torch.cuda.get_device_name(0)
    summary = {"run_name": cfg.run_name, "model_version": version, "seed": cfg.seed, "base_model": cfg.model.base,
               "train_seconds": round(train_seconds, 1), "hardware": hardware, "counts": counts,
               "selection_dev_set": None, "best_step": None, "dev": dev_metrics, "dev_history": [],
               **extra, "calibration": calibration, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (out / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    with open(out / "train_log.jsonl", "w", encoding="utf-8") as fh:
        for entry in log_history:
            fh.write(json.dumps(entry) + "\n")
    from pipeline.modeling.card import write_model_card

    write_model_card(out)
    return version


def schema_yaml(schema: LabelSchema) -> str:
    import yaml

    return yaml.safe_dump(schema.model_dump(), sort_keys=False, allow_unicode=True)
