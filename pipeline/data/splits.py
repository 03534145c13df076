"""Which labelled records a run trains on and which it scores: one place, so the model and the baselines agree.

The corpus is split into train and a stratified dev part (``data.dev_fraction``, seeded); the real
in-domain set enters as configured by ``data.domain_real`` (dev, a K-fold split, training, or not at all).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.config.run import RunConfig
from pipeline.config.schema import LabelSchema
from pipeline.data.corpus import fixed_fold_split, kfold_split, load_corpus, split_corpus
from pipeline.data.public_data import load_domain_real, load_domain_real_folds
from pipeline.errors import ConfigError


@dataclass
class Splits:
    """Records of one run. ``train`` already holds the real training items, repeated as configured."""

    train: list[dict]
    corpus_dev: list[dict]
    real_dev: list[dict] = field(default_factory=list)
    real_train: list[dict] = field(default_factory=list)
    corpus_total: int = 0
    real_repeat: int = 0


def corpus_subset(records: list[dict], fraction: float, seed: int) -> list[dict]:
    """The first ``round(fraction * n)`` records of a permutation seeded with ``seed``, kept in file order.

    The recipe study (``scripts/recipe_study.py``, ``corpus_fraction``) draws its subset the same way, so a
    config with the same seed trains on the items its out-of-fold scores were measured with.
    """
    if fraction >= 1 or not records:
        return list(records)
    keep = np.random.default_rng(seed).permutation(len(records))[:round(fraction * len(records))]
    return [records[i] for i in np.sort(keep)]


def corpus_parts(cfg: RunConfig, schema: LabelSchema, corpus: list[dict]) -> tuple[list[dict], list[dict]]:
    """The corpus items a run trains on and its corpus dev split: the seeded dev split, then the kept
    fraction (``data.corpus_fraction``) and the smoke-run cap (``data.max_train_examples``)."""
    if not corpus:
        return [], []
    train, dev = split_corpus(corpus, schema, cfg.data.dev_fraction, cfg.seed)
    train = corpus_subset(train, cfg.data.corpus_fraction, cfg.seed)
    if cfg.data.max_train_examples:
        train = train[: cfg.data.max_train_examples]
        dev = dev[: max(8, cfg.data.max_train_examples // 4)]
    return train, dev


def make_splits(cfg: RunConfig, schema: LabelSchema) -> Splits:
    corpus = load_corpus(cfg.data.corpus, schema) if cfg.data.corpus else []
    train, dev = corpus_parts(cfg, schema, corpus)
    dr = cfg.data.domain_real
    real_train: list[dict] = []
    real_dev: list[dict] = []
    if dr.use != "none":
        real = load_domain_real(cfg.paths.shared)
        if dr.use == "dev":
            real_dev = real
        elif dr.use == "train":
            real_train = real
        else:
            fixed = load_domain_real_folds(cfg.paths.shared, dr.folds_file) if dr.folds_file else None
            if fixed is not None:
                try:
                    real_train, real_dev = fixed_fold_split(real, fixed, dr.folds, dr.fold)
                except ValueError as exc:
                    raise ConfigError(f"{exc} (set data.domain_real.folds_file: null for a seeded split)",
                                      key="data.domain_real.folds") from exc
            else:
                real_train, real_dev = kfold_split(real, dr.folds, dr.fold, cfg.seed)
    if dr.repeat == 0:
        real_train = []
    return Splits(train=train + real_train * dr.repeat, corpus_dev=dev, real_dev=real_dev, real_train=real_train,
                  corpus_total=len(corpus), real_repeat=dr.repeat if real_train else 0)
