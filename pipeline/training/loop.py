"""Training: an optional intermediate stage on VAST stance pairs, then multi-task fine-tuning.

Built on ``transformers.Trainer`` (dynamic padding, length-grouped batches, gradient accumulation,
checkpoints, ``--resume``, early stopping on a dev set, bf16 on capable GPUs). Model selection uses the
dev set named by ``data.selection`` — the corpus dev split or the real in-domain set — never gold.
"""
from __future__ import annotations

import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from transformers import EarlyStoppingCallback, Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from transformers.utils import logging as hf_logging

from pipeline.config.run import RunConfig
from pipeline.config.schema import LabelSchema
from pipeline.hardware import resolve_device
from pipeline.modeling.encoding import InputSpec
from pipeline.modeling.model import MultiTaskModel, multitask_loss
from pipeline.progress import PlainProgress, is_terminal
from pipeline.training.features import Collator, label_columns
from pipeline.training.run import (
    DevSet,
    RunResult,
    build_data,
    save_run,
    score_dev,
    target_statements,
    task_class_weights,
    use_bf16,
)

console = Console(stderr=True)


class RichProgress(TrainerCallback):
    """A rich progress bar with ETA and the latest loss, in place of tqdm; without a terminal (cron, CI,
    ``| tee``) plain progress lines (steps done, rate, ETA) instead, so training is never silent."""

    def __init__(self, label: str, enabled: bool = True) -> None:
        self.label, self.enabled = label, enabled
        self.progress: Progress | None = None
        self.plain: PlainProgress | None = None

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001
        if self.enabled and not is_terminal(console.file):
            self.plain = PlainProgress(state.max_steps, self.label, unit="steps", stream=console.file)
            self.plain.done = self.plain.last_done = state.global_step
        elif self.enabled:
            self.progress = Progress(TextColumn(f"[bold]{self.label}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                     console=console)
            self.progress.start()
            self.task = self.progress.add_task(self.label, total=state.max_steps, info="",
                                               completed=state.global_step)

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
        if self.progress:
            self.progress.update(self.task, completed=state.global_step)
        if self.plain and state.global_step > self.plain.done:
            self.plain.advance(state.global_step - self.plain.done)

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
        if self.progress and logs:
            info = " ".join(f"{k.removeprefix('eval_')}={v:.3f}" for k, v in logs.items()
                            if k in ("loss", "eval_selection") and isinstance(v, float))
            self.progress.update(self.task, info=info)

    def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001
        self.plain = None
        if self.progress:
            self.progress.stop()
            self.progress = None


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


def _device_args(cfg: RunConfig) -> dict[str, Any]:
    device = resolve_device(cfg.training.device)
    if device.type == "cpu":
        bf16 = use_bf16(cfg)
    else:
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


def train_finetune(cfg: RunConfig, resume: bool = False, progress: bool = True) -> RunResult:
    """Fine-tune the whole model with ``transformers.Trainer`` and write the model directory."""
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
                                                schema.target_names, cfg.model.dropout, cfg.model.pooling,
                                                target_statements(cfg, schema))
    select = cfg.training.checkpoint == "best"
    train_ds, devs, pairs, counts = build_data(cfg, schema, tokenizer, spec, require_dev=select)
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

    class_weights = task_class_weights(train_ds, schema, cfg)
    selection = None
    if select:
        selection = cfg.data.selection if any(d.name == cfg.data.selection for d in devs) else devs[0].name
    args = _training_args(cfg, ckpt / "main", len(train_ds), cfg.training.epochs, cfg.training.lr, select, cfg.seed)
    if not select:  # fixed epochs: a checkpoint per epoch only serves --resume
        args.save_strategy, args.save_total_limit = "epoch", 1
    callbacks: list[TrainerCallback] = [RichProgress("training", progress)]
    if select and cfg.training.early_stopping_patience > 0:
        callbacks.append(EarlyStoppingCallback(cfg.training.early_stopping_patience))
    # eval_dataset is only there to satisfy Trainer's checks: evaluate() scores the dev sets itself.
    trainer = MultiTaskTrainer(model=model, args=args, train_dataset=train_ds,
                               eval_dataset=devs[0].features if select else None,
                               class_weights=class_weights, dev_sets=devs, selection=selection, callbacks=callbacks, **common)
    has_ckpt = resume and any((ckpt / "main").glob("checkpoint-*"))
    trainer.train(resume_from_checkpoint=True if has_ckpt else None)
    train_seconds = time.time() - started

    dev_metrics = {d.name: score_dev(model, d, schema, collator, trainer.args.device) for d in devs}
    version = save_run(cfg, model, tokenizer, spec, schema, devs, counts, dev_metrics, train_seconds,
                       trainer.args.device, {"selection_dev_set": selection, "checkpoint": cfg.training.checkpoint,
                                             "bf16": trainer.args.bf16,
                                             "best_step": trainer.state.best_global_step,
                                             "dev_history": trainer.dev_history},
                       trainer.state.log_history)
    shutil.rmtree(ckpt, ignore_errors=True)  # checkpoints only serve --resume of an unfinished run
    return RunResult(out, version, dev_metrics, train_seconds, counts)


