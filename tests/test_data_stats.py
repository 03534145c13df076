"""`data stats` validates the data a config names and finds duplicates and gold leakage."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pipeline.config.run import load_config
from pipeline.data.stats import describe, near_duplicates
from pipeline.errors import UserError

REPO = Path(__file__).resolve().parent.parent


def test_near_duplicates_finds_pairs_above_the_threshold_only() -> None:
    texts = ["Managers pile cases on us and then blame us when it goes wrong.",
             "Managers pile cases on us and then blame us when it goes wrong!",
             "Ofsted were fair with us this time."]
    pairs = near_duplicates(texts, ["a", "b", "c"], threshold=0.9)
    assert [(a, b) for a, b, _ in pairs] == [("a", "b")]


def test_shipped_corpus_meets_coverage_and_has_no_near_duplicates(shared_dir: Path) -> None:
    os.chdir(REPO)
    cfg = load_config(REPO / "configs/default.yaml", [f"paths.shared={shared_dir}"])
    report = describe(cfg, db=None)
    assert report.coverage_problems == []
    assert report.near_duplicates == []
    assert report.overlaps["train∩corpus_dev"] == 0
    assert report.sizes["corpus"] >= 2000


def test_corpus_text_that_also_appears_in_gold_is_reported(tmp_path: Path, shared_dir: Path) -> None:
    from pipeline.store.db import Store
    from pipeline.store.load import ingest_paths

    db = tmp_path / "s.sqlite"
    with Store(db) as store:
        ingest_paths(store, [shared_dir / "seeds"])
        gold_item = store.items(kinds=["comment"])[0]
    corpus = tmp_path / "corpus.jsonl"
    rec = {"id": "leak-1", "text": gold_item["text"], "sentiment": "negative",
           "stance": {t: "none" for t in ("blame_management", "funding", "nqsw_access", "ofsted")}}
    other = dict(rec, id="ok-1", text="A different, project-written comment about supervision.")
    corpus.write_text("\n".join(json.dumps(r) for r in [rec, other] * 1 + [dict(other, id=f"ok-{i}", text=f"text number {i} about caseloads") for i in range(2, 12)]) + "\n")
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps({"item_id": gold_item["item_id"]}) + "\n")
    os.chdir(REPO)
    cfg = load_config(REPO / "configs/smoke.yaml", [f"data.corpus=[{corpus}]", f"evaluation.gold={gold}",
                                                    "data.domain_real.use=none"])
    report = describe(cfg, db=db)
    assert report.gold_overlap and "leak-1" in report.gold_overlap[0]


def test_invalid_corpus_label_names_file_and_line(tmp_path: Path) -> None:
    corpus = tmp_path / "bad.jsonl"
    corpus.write_text('{"id": "x", "text": "hi", "sentiment": "angry", "stance": {}}\n')
    os.chdir(REPO)
    cfg = load_config(REPO / "configs/smoke.yaml", [f"data.corpus=[{corpus}]", "data.domain_real.use=none"])
    with pytest.raises(UserError) as exc:
        describe(cfg)
    assert "bad.jsonl:1" in str(exc.value) and "angry" in str(exc.value)
