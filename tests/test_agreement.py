"""Agreement maths (Cohen's kappa, raw agreement, disagreement tables) and the `agreement` command."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pipeline.config.schema import load_schema
from pipeline.data.labels import LabelRecord, write_labels
from pipeline.evaluation.agreement import compare_labels, disputed_fields, expected_agreement, field_agreement

REPO = Path(__file__).resolve().parents[1]
SCHEMA = load_schema(REPO / "configs" / "labels.yaml")
SENTIMENT = ["negative", "neutral", "positive"]


def test_kappa_and_raw_agreement_match_hand_computed_example():
    # Ten items, two annotators:
    #   A: neg neg neg neg neu neu neu neu pos pos      counts A: neg 4, neu 4, pos 2
    #   B: neg neg neg neu neu neu neu pos pos pos      counts B: neg 3, neu 4, pos 3
    # Same label on items 1-3, 5-7, 9-10 -> 8 of 10:   p_o = 8 / 10 = 0.80
    # Chance agreement from the marginals:              p_e = (4*3 + 4*4 + 2*3) / 10**2 = 34 / 100 = 0.34
    # Cohen's kappa = (p_o - p_e) / (1 - p_e) = 0.46 / 0.66 = 0.696969...
    a = ["negative"] * 4 + ["neutral"] * 4 + ["positive"] * 2
    b = ["negative"] * 3 + ["neutral"] * 4 + ["positive"] * 3
    fa = field_agreement("sentiment", a, b, SENTIMENT)
    assert fa.n == 10 and fa.agreed == 8
    assert fa.observed == pytest.approx(0.80)
    assert fa.expected == pytest.approx(0.34)
    assert fa.kappa == pytest.approx(0.46 / 0.66)
    assert fa.kappa == pytest.approx(0.69697, abs=1e-5)
    # The two disagreements: item 4 (neg vs neu) and item 8 (neu vs pos).
    assert fa.disagreements == {("negative", "neutral"): 1, ("neutral", "positive"): 1}
    assert fa.counts_a == {"negative": 4, "neutral": 4, "positive": 2}
    assert fa.counts_b == {"negative": 3, "neutral": 4, "positive": 3}


def test_expected_agreement_is_product_of_marginals():
    assert expected_agreement(["x", "y"], ["x", "x"], ["x", "y"]) == pytest.approx(0.5)


def test_kappa_is_undefined_when_both_annotators_use_one_label():
    # p_o = 1 and p_e = 1 -> (1 - 1) / (1 - 1): undefined, reported as None rather than nan.
    fa = field_agreement("ofsted", ["none"] * 5, ["none"] * 5, ["favor", "against", "none"])
    assert fa.observed == 1.0 and fa.expected == 1.0 and fa.kappa is None
    assert fa.to_dict()["kappa"] is None


def test_perfect_agreement_with_several_labels_has_kappa_one():
    labels = ["favor", "none", "against", "none"]
    assert field_agreement("funding", labels, labels, ["favor", "against", "none"]).kappa == pytest.approx(1.0)


def test_kappa_is_zero_when_agreement_is_at_chance_level():
    # A: x x y y, B: x y x y -> p_o = 2/4 = 0.5, p_e = (2*2 + 2*2)/16 = 0.5 -> kappa 0.
    fa = field_agreement("f", ["x", "x", "y", "y"], ["x", "y", "x", "y"], ["x", "y"])
    assert fa.kappa == pytest.approx(0.0)


def _rec(item_id, sentiment="neutral", annotator="a", **stance):
    full = {t: "none" for t in SCHEMA.target_names}
    full.update(stance)
    return LabelRecord(item_id=item_id, sentiment=sentiment, stance=full, annotator=annotator,
                       labelled_at="2026-01-01T00:00:00Z")


def test_compare_labels_uses_items_both_files_label_and_counts_disputed_items():
    a = [_rec("t/c1", "negative", funding="favor"), _rec("t/c2"), _rec("t/c3", "positive"), _rec("t/c9")]
    b = [_rec("t/c2", annotator="b"), _rec("t/c1", "negative", annotator="b"),
         _rec("t/c3", "neutral", annotator="b", ofsted="against"), _rec("t/c7", annotator="b")]
    report = compare_labels(a, b, SCHEMA)
    assert report.common == ["t/c1", "t/c2", "t/c3"]
    assert report.only_a == ["t/c9"] and report.only_b == ["t/c7"]
    assert report.items_fully_agreed == 1 and report.disputed_items == 2
    assert report.get("sentiment").disagreements == {("positive", "neutral"): 1}
    assert report.get("funding").disagreements == {("favor", "none"): 1}
    assert report.get("ofsted").disagreements == {("none", "against"): 1}
    assert [f.field for f in report.fields] == ["sentiment", *SCHEMA.target_names]
    assert disputed_fields(a[2], b[2], SCHEMA) == ["sentiment", "ofsted"]


def _run_cli(args, monkeypatch, capsys):
    from pipeline.cli import common
    from pipeline.cli.main import main

    for con in (common.console, common.err_console):  # no wrapping of long tmp paths in messages
        monkeypatch.setattr(con, "_width", 400)
    monkeypatch.setattr(sys, "argv", ["threadstance", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_agreement_command_prints_tables_and_writes_json(tmp_path, monkeypatch, capsys):
    a = [_rec("t/c1", "negative"), _rec("t/c2"), _rec("t/c3", "positive", funding="favor")]
    b = [_rec("t/c1", "negative", annotator="b"), _rec("t/c2", "negative", annotator="b"),
         _rec("t/c3", "positive", annotator="b")]
    write_labels(tmp_path / "a.jsonl", a)
    write_labels(tmp_path / "b.jsonl", b)
    out_json = tmp_path / "out" / "agreement.json"
    rc, out, _ = _run_cli(["agreement", str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"),
                           "--schema", str(REPO / "configs/labels.yaml"), "--json", str(out_json)],
                          monkeypatch, capsys)
    assert rc == 0
    assert "kappa" in out and "disagreements" in out
    data = json.loads(out_json.read_text())
    assert data["common"] == 3 and data["items_disputed"] == 2
    assert data["fields"]["sentiment"]["raw_agreement"] == pytest.approx(2 / 3, abs=1e-4)
    assert data["fields"]["sentiment"]["disagreements"] == [{"label_a": "neutral", "label_b": "negative",
                                                             "count": 1}]
    assert data["fields"]["funding"]["disagreements"] == [{"label_a": "favor", "label_b": "none", "count": 1}]


def test_agreement_command_rejects_invalid_label_file_with_line(tmp_path, monkeypatch, capsys):
    write_labels(tmp_path / "a.jsonl", [_rec("t/c1")])
    (tmp_path / "b.jsonl").write_text('{"item_id": "t/c1", "sentiment": "cheerful"}\n')
    rc, _, err = _run_cli(["agreement", str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"),
                           "--schema", str(REPO / "configs/labels.yaml")], monkeypatch, capsys)
    assert rc == 2
    assert "b.jsonl:1" in err and "cheerful" in err
