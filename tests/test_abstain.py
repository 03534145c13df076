"""Abstaining below --min-confidence, and the report's coverage-against-accuracy table."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import cli  # the console entry point as a test helper

from pipeline.config.schema import LabelSchema, load_schema
from pipeline.errors import UserError
from pipeline.evaluation.coverage import coverage_table
from pipeline.inference import ABSTAIN, apply_min_confidence, check_min_confidence
from pipeline.reporting.report import coverage_blocks, render_markdown


def _record() -> dict:
    def head(label: str, probs: dict[str, float]) -> dict:
        return {"label": label, "prob": probs[label], "probs": probs}

    return {"item_id": "t/c1", "thread_id": "t", "kind": "comment", "parent_id": None, "author": None,
            "posted_at": None, "model_version": "abc",
            "sentiment": head("negative", {"negative": 0.55, "neutral": 0.3, "positive": 0.15}),
            "stance": {"funding": head("against", {"favor": 0.1, "against": 0.72, "none": 0.18}),
                       "ofsted": head("none", {"favor": 0.02, "against": 0.01, "none": 0.97})},
            "text": "Cuts again."}


def test_zero_or_no_threshold_changes_nothing() -> None:
    rec = _record()
    assert apply_min_confidence(rec, 0) == rec
    assert apply_min_confidence(rec, None) == rec


def test_threshold_one_abstains_on_every_head_even_a_certain_one() -> None:
    rec = _record()
    rec["stance"]["ofsted"]["probs"] = {"favor": 0.0, "against": 0.0, "none": 1.0}
    out = apply_min_confidence(rec, 1.0)
    assert out["sentiment"]["label"] == ABSTAIN
    assert all(h["label"] == ABSTAIN for h in out["stance"].values())


def test_only_heads_below_the_threshold_abstain_and_probabilities_are_kept() -> None:
    rec = _record()
    before = copy.deepcopy(rec)
    out = apply_min_confidence(rec, 0.6)
    assert rec == before  # the input is not modified
    assert out["sentiment"] == {"label": ABSTAIN, "prob": 0.55, "probs": before["sentiment"]["probs"]}
    assert out["stance"]["funding"]["label"] == "against"  # 0.72 ≥ 0.6
    assert out["stance"]["ofsted"]["label"] == "none"
    assert apply_min_confidence(rec, 0.72)["stance"]["funding"]["label"] == "against"  # at the threshold: kept
    assert apply_min_confidence(rec, 0.73)["stance"]["funding"]["label"] == ABSTAIN


def test_a_threshold_outside_0_1_is_a_one_line_error() -> None:
    assert check_min_confidence(0.5) == 0.5 and check_min_confidence(None) is None
    with pytest.raises(UserError, match="between 0 and 1"):
        check_min_confidence(1.5)


def test_abstain_is_reserved_and_never_a_schema_class(repo_root) -> None:  # noqa: ANN001
    data = load_schema(repo_root / "configs" / "labels.yaml").model_dump()
    assert ABSTAIN not in data["sentiment_classes"] + data["stance_classes"]
    data["stance_classes"] = [*data["stance_classes"], ABSTAIN]
    with pytest.raises(ValueError, match="reserved"):
        LabelSchema.model_validate(data)


def test_an_abstained_record_is_stored_and_read_back(tmp_path) -> None:  # noqa: ANN001
    from pipeline.ingest.model import Item, Thread
    from pipeline.store.db import Store

    thread = Thread(thread_id="t", title="T", source="test")
    thread.items.append(Item(item_id="t/c1", thread_id="t", kind="comment", position=0, depth=0, text="Cuts again."))
    rec = apply_min_confidence(_record(), 1.0)
    rec.pop("text")
    with Store(tmp_path / "s.sqlite") as store:
        with store.transaction():
            store.write_thread(thread)
            item = store.items()[0]
            store.add_predictions([("t/c1", "abc", 1, item["text_sha256"], ABSTAIN, json.dumps(rec), None)])
        [row] = store.items_with_predictions("abc", predicted_only=True)
    assert row["sentiment"] == ABSTAIN
    assert row["record"]["sentiment"]["label"] == ABSTAIN and row["record"]["stance"]["funding"]["label"] == ABSTAIN


# ---- coverage against accuracy -------------------------------------------------------------------------

def test_coverage_falls_with_the_threshold_and_accuracy_is_scored_on_the_kept_items(repo_root) -> None:  # noqa: ANN001
    schema = load_schema(repo_root / "configs" / "labels.yaml")
    # sentiment classes: negative, neutral, positive
    proba = {"sentiment": np.array([[0.95, 0.03, 0.02], [0.55, 0.40, 0.05], [0.2, 0.7, 0.1], [0.1, 0.3, 0.6]])}
    gold = {"sentiment": ["negative", "neutral", "neutral", "negative"]}
    table = coverage_table(gold, proba, schema, thresholds=(0.0, 0.6, 0.9, 1.0))["sentiment"]
    assert [r["n"] for r in table] == [4, 3, 1, 0]
    assert [r["coverage"] for r in table] == [1.0, 0.75, 0.25, 0.0]
    assert table[0]["accuracy"] == 0.5  # items 0 and 2 right
    assert table[1]["accuracy"] == pytest.approx(2 / 3)  # item 1 (0.55) abstains
    assert table[2]["accuracy"] == 1.0 and table[2]["score"] is not None
    assert table[3]["accuracy"] is None and table[3]["score"] is None


def test_the_report_renders_one_row_per_head_and_a_column_per_threshold() -> None:
    coverage = {"sentiment": [{"threshold": 0.0, "n": 4, "coverage": 1.0, "accuracy": 0.5, "score": 0.4},
                              {"threshold": 0.9, "n": 1, "coverage": 0.25, "accuracy": 1.0, "score": 1.0}],
                "funding": [{"threshold": 0.0, "n": 4, "coverage": 1.0, "accuracy": 0.75, "score": 0.5},
                            {"threshold": 0.9, "n": 0, "coverage": 0.0, "accuracy": None, "score": None}]}
    md = render_markdown(coverage_blocks(coverage))
    assert "| head | P = 0 | P = 0.9 |" in md
    assert "| sentiment | 100% · 0.500 · 0.400 | 25% · 1.000 · 1.000 |" in md
    assert "| funding | 100% · 0.750 · 0.500 | 0% · – · – |" in md
    assert coverage_blocks(None) == []


# ---- predict and reclassify ----------------------------------------------------------------------------

FIXTURE = Path(__file__).parent / "fixtures" / "jsonl" / "comments.jsonl"


def _predict(model: Path, monkeypatch, capsys, *args: str) -> list[dict]:  # noqa: ANN001
    code, out, err = cli(["predict", FIXTURE, "--model", model, "--format", "jsonl", "--device", "cpu", *args],
                         monkeypatch, capsys)
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


def test_predict_min_confidence_zero_changes_nothing_and_one_abstains_everything(
        smoke_model: Path, monkeypatch, capsys) -> None:  # noqa: ANN001
    plain = _predict(smoke_model, monkeypatch, capsys)
    assert plain and _predict(smoke_model, monkeypatch, capsys, "--min-confidence", "0") == plain
    every = _predict(smoke_model, monkeypatch, capsys, "--min-confidence", "1")
    assert [r["item_id"] for r in every] == [r["item_id"] for r in plain]
    assert all(r["sentiment"]["label"] == ABSTAIN and all(h["label"] == ABSTAIN for h in r["stance"].values())
               for r in every)
    assert [r["sentiment"]["probs"] for r in every] == [r["sentiment"]["probs"] for r in plain]
    half = _predict(smoke_model, monkeypatch, capsys, "--min-confidence", "0.5")
    for a, b in zip(plain, half):
        keep = max(a["sentiment"]["probs"].values()) >= 0.5
        assert b["sentiment"]["label"] == (a["sentiment"]["label"] if keep else ABSTAIN)
    code, _, err = cli(["predict", FIXTURE, "--model", smoke_model, "--min-confidence", "1.5"], monkeypatch, capsys)
    assert code == 2 and "between 0 and 1" in err


def test_predict_table_shows_abstain(smoke_model: Path, monkeypatch, capsys) -> None:  # noqa: ANN001
    code, out, err = cli(["predict", FIXTURE, "--model", smoke_model, "--device", "cpu", "--min-confidence", "1"],
                         monkeypatch, capsys)
    assert code == 0, err
    assert "abstain" in out


def test_reclassify_exports_abstain_but_stores_the_model_labels(tmp_path: Path, smoke_model: Path) -> None:
    import pandas as pd
    from test_reclassify import invoke, make_schedule

    from pipeline.store.db import Store

    config = make_schedule(tmp_path, smoke_model, [FIXTURE])
    result = invoke("reclassify", str(config), "--min-confidence", "1")
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(tmp_path / "export" / "predictions.csv")
    assert len(frame) and (frame["sentiment.label"] == ABSTAIN).all()
    assert (frame[[c for c in frame.columns if c.startswith("stance.") and c.endswith(".label")]] == ABSTAIN).all().all()
    with Store(tmp_path / "store.sqlite") as store:
        run = store.runs()[0]
        rows = store.items_with_predictions(run["model_version"], predicted_only=True)
    assert rows and all(r["record"]["sentiment"]["label"] != ABSTAIN for r in rows)
    assert run["counts"]["exported_abstain_labels"] == len(frame) * 5  # sentiment + 4 targets per item


def test_the_evaluation_report_shows_coverage_against_accuracy(smoke_model: Path, seeds_dir: Path, tmp_path: Path,
                                                               monkeypatch, capsys) -> None:  # noqa: ANN001
    import shutil

    from pipeline.store.db import Store
    from pipeline.store.load import ingest_paths

    repo = Path(__file__).resolve().parent.parent
    monkeypatch.chdir(repo)  # configs/ and data/ are relative to the project root
    db = tmp_path / "ts.sqlite"
    with Store(db) as store:
        assert not ingest_paths(store, [seeds_dir]).failed
    model = tmp_path / "smoke"
    shutil.copytree(smoke_model, model)  # evaluate writes into the model folder
    out = tmp_path / "report"
    code, _, err = cli(["evaluate", "--model", model, "--db", db, "--out", out], monkeypatch, capsys)
    assert code in (0, 3), err
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    coverage = metrics["model"]["coverage"]
    assert list(coverage) == ["sentiment", "blame_management", "funding", "nqsw_access", "ofsted"]
    first = coverage["sentiment"][0]
    assert first["threshold"] == 0 and first["coverage"] == 1.0
    assert first["accuracy"] == pytest.approx(metrics["model"]["headline"]["sentiment_accuracy"])
    assert [r["coverage"] for r in coverage["sentiment"]] == sorted((r["coverage"] for r in coverage["sentiment"]),
                                                                    reverse=True)
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "## Coverage against accuracy" in md and "| sentiment | 100% · " in md
