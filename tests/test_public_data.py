"""Loaders for the real shared data sets map them into the project's label space."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.data.public_data import (
    load_domain_real,
    load_tweeteval_sentiment,
    load_tweeteval_stance,
    load_vast,
)
from pipeline.errors import UserError


def test_vast_rows_are_topic_text_pairs_with_project_stance_labels(shared_dir: Path) -> None:
    ds = load_vast(shared_dir, "test", max_examples=50, seed=1)
    assert len(ds) == 50
    assert set(ds.column_names) == {"topic", "text", "stance"}
    assert set(ds["stance"]) <= {"favor", "against", "none"}


def test_vast_none_pairs_pair_a_post_with_a_topic_from_another_article(shared_dir: Path) -> None:
    ds = load_vast(shared_dir, "test", max_examples=60, none_fraction=0.5, seed=1)
    assert len(ds) == 120
    assert ds["stance"].count("none") >= 60


def test_vast_loading_is_deterministic_for_a_seed(shared_dir: Path) -> None:
    a = load_vast(shared_dir, "test", max_examples=20, none_fraction=0.3, seed=5)
    b = load_vast(shared_dir, "test", max_examples=20, none_fraction=0.3, seed=5)
    assert a["text"] == b["text"] and a["stance"] == b["stance"]


def test_tweeteval_sentiment_maps_0_1_2_to_negative_neutral_positive(shared_dir: Path) -> None:
    ds = load_tweeteval_sentiment(shared_dir, "val", max_examples=200)
    assert len(ds) == 200
    assert set(ds["sentiment"]) == {"negative", "neutral", "positive"}
    raw_first = (shared_dir / "datasets/tweeteval/sentiment/val_labels.txt").read_text().split()[0]
    full = load_tweeteval_sentiment(shared_dir, "val")
    first_text = (shared_dir / "datasets/tweeteval/sentiment/val_text.txt").read_text(encoding="utf-8").splitlines()[0]
    idx = full["text"].index(first_text.strip())
    assert full["sentiment"][idx] == {"0": "negative", "1": "neutral", "2": "positive"}[raw_first]


def test_tweeteval_stance_uses_the_folder_as_topic(shared_dir: Path) -> None:
    ds = load_tweeteval_stance(shared_dir, "val", targets=("climate",))
    assert set(ds["topic"]) == {"climate"}
    assert set(ds["stance"]) <= {"favor", "against", "none"}


def test_domain_real_v3_has_1425_records_with_codebook_labels_kinds_and_urls(shared_dir: Path) -> None:
    rows = load_domain_real(shared_dir)
    assert len(rows) == 1425 == len({r["id"] for r in rows})
    assert sum(r["id"].startswith("hv3") for r in rows) == 862  # the version-3 additions
    assert sum(r["kind"] == "comment" for r in rows) == 305
    assert {r["kind"] for r in rows} == {"comment", "opinion", "report"}
    assert all(r["url"] for r in rows)
    assert {r["sentiment"] for r in rows} == {"negative", "neutral", "positive"}
    assert set(rows[0]["stance"]) == {"blame_management", "funding", "nqsw_access", "ofsted"}


def test_missing_shared_path_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(UserError) as exc:
        load_vast(tmp_path / "nowhere")
    assert "nowhere" in str(exc.value)
