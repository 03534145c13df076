"""Validate and describe the data a run config names (in the spirit of spaCy's ``debug data``)."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics.pairwise import linear_kernel

from pipeline.config.run import RunConfig
from pipeline.data.corpus import load_corpus
from pipeline.data.corpus import record_label_counts as label_counts
from pipeline.data.public_data import load_domain_real, load_tweeteval_sentiment, load_vast
from pipeline.data.splits import corpus_parts
from pipeline.ingest.jsonl import jsonl_lines
from pipeline.ingest.normalize import normalize_text

COVERAGE = {"polar_per_target": 120, "positive": 350, "neutral": 350}


@dataclass
class DataReport:
    label_counts: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    lengths: dict[str, dict[str, float]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    overlaps: dict[str, int] = field(default_factory=dict)
    near_duplicates: list[tuple[str, str, float]] = field(default_factory=list)
    gold_overlap: list[str] = field(default_factory=list)
    coverage_problems: list[str] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__


def _key(text: str) -> str:
    return " ".join(normalize_text(text).lower().split())


def near_duplicates(texts: list[str], ids: list[str], threshold: float = 0.9,
                    block: int = 512) -> list[tuple[str, str, float]]:
    """Pairs with TF-IDF (word 1-2 grams) cosine above ``threshold``."""
    if len(texts) < 2:
        return []
    matrix = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1).fit_transform(texts)
    pairs = []
    for start in range(0, len(texts), block):
        sims = linear_kernel(matrix[start: start + block], matrix)
        for i, j in zip(*np.nonzero(sims > threshold)):
            a = start + i
            if a < j:
                pairs.append((ids[a], ids[j], float(sims[i, j])))
    return sorted(pairs, key=lambda p: -p[2])


def max_similarity(texts: list[str]) -> float:
    matrix = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit_transform(texts)
    best = 0.0
    for start in range(0, len(texts), 512):
        sims = linear_kernel(matrix[start: start + 512], matrix)
        for i in range(sims.shape[0]):
            sims[i, start + i] = 0.0
        best = max(best, float(sims.max()))
    return best


def gold_texts(gold_path: Path, db: str | Path | None) -> dict[str, str]:
    """item_id -> text for gold items found in the store (empty when there is no store)."""
    from pipeline.store.backend import store_exists
    from pipeline.store.db import Store

    if db is None or not store_exists(db) or not gold_path.exists():
        return {}

    ids = [json.loads(line)["item_id"] for line in jsonl_lines(gold_path.read_text(encoding="utf-8")) if line.strip()]
    with Store.open_readonly(db) as store:
        return {r["item_id"]: r["text"] for r in store.items(item_ids=ids)}


def describe(cfg: RunConfig, db: str | Path | None = None, threshold: float = 0.9) -> DataReport:
    """Load (and so validate) every data set the config names and describe it."""
    schema = cfg.schema()
    report = DataReport()
    corpus = load_corpus(cfg.data.corpus, schema)
    train, dev = corpus_parts(cfg, schema, corpus)  # what training uses (kept fraction and cap included)
    sets: dict[str, list[dict]] = {"corpus": corpus, "train": train}
    if dev:  # dev_fraction 0: the whole corpus is trained on
        sets["corpus_dev"] = dev
    if cfg.data.domain_real.use != "none":
        sets["domain_real"] = load_domain_real(cfg.paths.shared)
    for name, recs in sets.items():
        report.sizes[name] = len(recs)
        report.label_counts[name] = label_counts(recs, schema)
        words = [len(r["text"].split()) for r in recs]
        report.lengths[name] = {"min": int(np.min(words)), "median": round(float(np.median(words)), 1),
                                "p95": round(float(np.percentile(words, 95)), 1), "max": int(np.max(words)),
                                "n_300_plus": int(sum(w >= 300 for w in words)),
                                "n_under_12": int(sum(w < 12 for w in words))}
    report.kinds = dict(Counter(r.get("kind", "comment") for r in corpus))
    if cfg.data.aux.vast.enabled:
        v = cfg.data.aux.vast
        report.sizes["vast_pairs"] = len(load_vast(cfg.paths.shared, "train", v.max_examples, v.none_fraction, cfg.seed))
    if cfg.data.aux.tweeteval_sentiment.enabled:
        tw = cfg.data.aux.tweeteval_sentiment
        report.sizes["tweeteval_sentiment"] = len(load_tweeteval_sentiment(cfg.paths.shared, tw.split, tw.max_examples))
    train_keys = {_key(r["text"]) for r in train}
    report.overlaps["train∩corpus_dev"] = sum(_key(r["text"]) in train_keys for r in dev)
    if "domain_real" in sets:
        report.overlaps["corpus∩domain_real"] = len({_key(r["text"]) for r in corpus}
                                                    & {_key(r["text"]) for r in sets["domain_real"]})
    gold = gold_texts(Path(cfg.evaluation.gold), db)
    corpus_keys = {_key(r["text"]): r["id"] for r in corpus}
    report.gold_overlap = [f"{corpus_keys[_key(t)]} = gold {gid}" for gid, t in gold.items() if _key(t) in corpus_keys]
    report.overlaps["corpus∩gold"] = len(report.gold_overlap)
    report.near_duplicates = near_duplicates([r["text"] for r in corpus], [r["id"] for r in corpus], threshold)
    counts = report.label_counts["corpus"]
    for t in schema.target_names:
        for c in schema.polar_classes:
            if counts[t][c] < COVERAGE["polar_per_target"]:
                report.coverage_problems.append(f"{t}/{c}: {counts[t][c]} < {COVERAGE['polar_per_target']}")
    for c in ("positive", "neutral"):
        if c in counts["sentiment"] and counts["sentiment"][c] < COVERAGE[c]:
            report.coverage_problems.append(f"sentiment/{c}: {counts['sentiment'][c]} < {COVERAGE[c]}")
    return report
