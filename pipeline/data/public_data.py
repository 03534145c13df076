"""Loaders for the real labelled data in the shared folder, mapped into the project's label space.

===================  ===========================================  =====================================
set                  source columns                               project labels
===================  ===========================================  =====================================
VAST                 ``topic``, ``post``, ``stance``              (topic, text) pair -> favor|against|none
                     (favor/against/none)                         plus built ``none`` pairs (other topics)
TweetEval sentiment  ``*_text.txt``, ``*_labels.txt`` 0/1/2        negative / neutral / positive
TweetEval stance     ``stance/<target>/*``, labels 0/1/2           none / against / favor, target = folder
domain_real          ``text``, ``sentiment``, ``stance{target}``  as is (codebook labels)
===================  ===========================================  =====================================
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
from datasets import Dataset

from pipeline.config.settings import shared_dir
from pipeline.data.corpus import iter_jsonl
from pipeline.errors import UserError

TWEETEVAL_SENTIMENT = {0: "negative", 1: "neutral", 2: "positive"}
TWEETEVAL_STANCE = {0: "none", 1: "against", 2: "favor"}
TWEETEVAL_TARGETS = ("abortion", "atheism", "climate", "feminist", "hillary")


def datasets_dir(shared: str | Path | None = None) -> Path:
    path = shared_dir(shared) / "datasets"
    if not path.is_dir():
        raise UserError("shared datasets folder not found; set paths.shared in the config or "
                        "THREADSTANCE_SHARED", path)
    return path


def _need(path: Path) -> Path:
    if not path.exists():
        raise UserError("expected data file is missing", path)
    return path


def load_vast(shared: str | Path | None = None, split: str = "train", max_examples: int | None = None,
              none_fraction: float = 0.0, seed: int = 13) -> Dataset:
    """VAST as (topic, text, stance) rows.

    ``none_fraction`` adds that share of ``none`` pairs built the way VAST did: a post paired with the topic
    of a different article.
    """
    path = _need(datasets_dir(shared) / "vast" / f"{split}.csv")
    frame = pd.read_csv(path)
    missing = {"post", "topic", "stance", "article_id"} - set(frame.columns)
    if missing:
        raise UserError(f"VAST file lacks columns {sorted(missing)}", path)
    frame = frame[frame["stance"].isin(["favor", "against", "none"])]
    rng = random.Random(seed)
    rows = [{"topic": str(r.topic), "text": str(r.post), "stance": str(r.stance), "article_id": int(r.article_id)}
            for r in frame.itertuples()]
    rng.shuffle(rows)
    if max_examples is not None:
        rows = rows[:max_examples]
    if none_fraction > 0 and rows:
        topics = [(r["article_id"], r["topic"]) for r in rows]
        n_none = int(len(rows) * none_fraction / (1 - none_fraction))
        extra = []
        while len(extra) < n_none:
            row = rng.choice(rows)
            art, topic = rng.choice(topics)
            if art != row["article_id"]:
                extra.append({"topic": topic, "text": row["text"], "stance": "none", "article_id": row["article_id"]})
        rows.extend(extra)
        rng.shuffle(rows)
    return Dataset.from_list([{k: r[k] for k in ("topic", "text", "stance")} for r in rows])


def _read_lines(path: Path) -> list[str]:
    return _need(path).read_text(encoding="utf-8").splitlines()


def load_tweeteval_sentiment(shared: str | Path | None = None, split: str = "val",
                             max_examples: int | None = None, seed: int = 13) -> Dataset:
    """TweetEval sentiment (only ``val`` and ``test`` exist in the shared copy)."""
    base = datasets_dir(shared) / "tweeteval" / "sentiment"
    texts = _read_lines(base / f"{split}_text.txt")
    labels = _read_lines(base / f"{split}_labels.txt")
    if len(texts) != len(labels):
        raise UserError(f"{len(texts)} texts but {len(labels)} labels", base / f"{split}_labels.txt")
    rows = [{"text": t.strip(), "sentiment": TWEETEVAL_SENTIMENT[int(y)]} for t, y in zip(texts, labels)]
    random.Random(seed).shuffle(rows)
    return Dataset.from_list(rows[:max_examples] if max_examples else rows)


def load_tweeteval_stance(shared: str | Path | None = None, split: str = "train",
                          targets: tuple[str, ...] = TWEETEVAL_TARGETS) -> Dataset:
    """SemEval-2016 stance tweets as (topic, text, stance) rows."""
    rows = []
    for target in targets:
        base = datasets_dir(shared) / "tweeteval" / "stance" / target
        texts = _read_lines(base / f"{split}_text.txt")
        labels = _read_lines(base / f"{split}_labels.txt")
        rows.extend({"topic": target, "text": t.strip(), "stance": TWEETEVAL_STANCE[int(y)]}
                    for t, y in zip(texts, labels))
    return Dataset.from_list(rows)


def load_domain_real(shared: str | Path | None = None) -> list[dict]:
    """The real in-domain passages (1,425 in version 3, 563 of them from version 2), as corpus-style records with their ``url``."""
    path = _need(datasets_dir(shared) / "domain_real" / "comments.jsonl")
    rows = []
    for _, rec in iter_jsonl(path):
        rows.append({"id": rec["id"], "text": rec["text"], "sentiment": rec["sentiment"], "stance": rec["stance"],
                     "kind": rec.get("kind"), "parent_text": None, "source": rec.get("source"),
                     "url": rec.get("url")})
    return rows


def load_domain_real_folds(shared: str | Path | None = None, folds_file: str = "datasets/domain_real/folds.json"
                           ) -> dict[str, int] | None:
    """The fixed fold of every domain_real id (grouped by ``url``), or None if the file is not there."""
    path = shared_dir(shared) / folds_file
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"invalid fold file: {exc}", path) from exc
    if not isinstance(data, dict) or not all(isinstance(v, int) for v in data.values()):
        raise UserError("a fold file maps each item id to an integer fold", path)
    return data
