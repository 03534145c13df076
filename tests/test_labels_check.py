"""`labels check` and the label-file validator: every error kind with its line; the gold files are clean."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pipeline.config.schema import load_schema
from pipeline.data.labels import check_label_file, read_labels
from pipeline.errors import UserError
from pipeline.evaluation.agreement import disputed_fields
from pipeline.store.db import Store
from pipeline.store.load import ingest_paths

REPO = Path(__file__).resolve().parents[1]
SCHEMA_PATH = REPO / "configs" / "labels.yaml"
SCHEMA = load_schema(SCHEMA_PATH)
GOLD = REPO / "data" / "gold"
STAMP = "2026-01-05T10:12:00Z"
KNOWN_IDS = {"t/c1", "t/c2", "t/c3", "t/p0"}


def _line(item_id="t/c1", **overrides):
    obj = {"item_id": item_id, "sentiment": "neutral",
           "stance": {t: "none" for t in SCHEMA.target_names}, "annotator": "a", "labelled_at": STAMP}
    for key, value in overrides.items():
        if value is ...:
            obj.pop(key, None)
        else:
            obj[key] = value
    return json.dumps(obj)


def _stance(**changes):
    out = {t: "none" for t in SCHEMA.target_names}
    for key, value in changes.items():
        if value is ...:
            out.pop(key)
        else:
            out[key] = value
    return out


# Each case: (bad line written at line 3, after two good lines; expected problem kind)
ERROR_CASES = {
    "unknown_item": (_line("t/c99"), "unknown_item"),
    "unknown_sentiment": (_line("t/c3", sentiment="cheerful"), "unknown_label"),
    "unknown_stance_label": (_line("t/c3", stance=_stance(funding="pro")), "unknown_label"),
    "missing_target": (_line("t/c3", stance=_stance(ofsted=...)), "missing_target"),
    "unknown_target": (_line("t/c3", stance=_stance(housing="favor")), "unknown_target"),
    "duplicate_id": (_line("t/c1"), "duplicate_id"),
    "bad_json": ('{"item_id": "t/c3", "sentiment": "neutral",', "bad_json"),
    "not_an_object": ('["t/c3", "neutral"]', "not_object"),
    "missing_annotator": (_line("t/c3", annotator=...), "missing_annotator"),
    "empty_annotator": (_line("t/c3", annotator="  "), "missing_annotator"),
    "missing_timestamp": (_line("t/c3", labelled_at=...), "missing_timestamp"),
    "bad_timestamp": (_line("t/c3", labelled_at="last Tuesday"), "bad_timestamp"),
    "copied_text": (_line("t/c3", text="the comment itself"), "unknown_key"),
    "missing_sentiment": (_line("t/c3", sentiment=...), "missing_sentiment"),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_check_reports_each_error_kind_on_its_line(tmp_path, case):
    bad, kind = ERROR_CASES[case]
    path = tmp_path / "labels.jsonl"
    path.write_text("\n".join([_line("t/c1"), _line("t/c2", sentiment="negative"), bad, _line("t/p0")]) + "\n")
    result = check_label_file(path, SCHEMA, KNOWN_IDS)
    assert [(p.kind, p.line) for p in result.problems] == [(kind, 3)]
    assert str(result.problems[0]).startswith(f"{path}:3: ")
    assert [r.item_id for r in result.records] == ["t/c1", "t/c2", "t/p0"]


def test_check_collects_every_problem_not_just_the_first(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text("\n".join([_line("t/c1", sentiment="meh"), "", "not json", _line("t/c1", annotator=...),
                               _line("t/zz")]) + "\n")
    result = check_label_file(path, SCHEMA, KNOWN_IDS)
    assert [(p.kind, p.line) for p in result.problems] == [
        ("unknown_label", 1), ("bad_json", 3), ("missing_annotator", 4), ("duplicate_id", 4),
        ("unknown_item", 5)]


def test_duplicate_problem_names_the_first_line(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text("\n".join([_line("t/c1"), _line("t/c2"), _line("t/c1")]) + "\n")
    (problem,) = check_label_file(path, SCHEMA).problems
    assert problem.line == 3 and "first labelled at line 1" in problem.message


def test_without_store_ids_unknown_item_ids_are_not_reported(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text(_line("anything/c1") + "\n")
    assert check_label_file(path, SCHEMA, item_ids=None).ok


def test_iso_timestamps_with_offsets_and_fractions_are_accepted(tmp_path):
    path = tmp_path / "labels.jsonl"
    stamps = ["2026-01-05T10:12:00Z", "2026-01-05T10:12:00.123456+01:00", "2026-01-05 10:12", "2026-01-05"]
    path.write_text("\n".join(_line(f"t/c{i}", labelled_at=s) for i, s in enumerate(stamps)) + "\n")
    assert check_label_file(path, SCHEMA).ok


def test_read_labels_raises_user_error_naming_file_and_line(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text(_line("t/c1") + "\n" + _line("t/c2", sentiment="meh") + "\n")
    with pytest.raises(UserError) as exc:
        read_labels(path, SCHEMA)
    assert exc.value.line == 2 and str(exc.value).startswith(f"{path}:2: ")


def test_missing_file_is_a_problem_not_a_crash(tmp_path):
    result = check_label_file(tmp_path / "nope.jsonl", SCHEMA)
    assert [p.kind for p in result.problems] == ["unreadable"]


# ---- the command ----------------------------------------------------------------------------------
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


@pytest.fixture
def small_store(tmp_path):
    db = tmp_path / "store.sqlite"
    with Store(db) as store:
        ingest_paths(store, [REPO / "tests" / "fixtures" / "labelstudio" / "threads.jsonl"])
    return db


def test_check_command_lists_problems_with_file_and_line_and_exits_1(tmp_path, small_store, monkeypatch,
                                                                    capsys):
    path = tmp_path / "labels.jsonl"
    path.write_text(_line("ts-fixture-agency/c1") + "\n" + _line("t/c404") + "\n" + "{oops\n")
    rc, out, err = _run_cli(["labels", "check", str(path), "--db", str(small_store),
                             "--schema", str(SCHEMA_PATH)], monkeypatch, capsys)
    assert rc == 1
    assert f"{path}:2: unknown item id 't/c404'" in out
    assert f"{path}:3: invalid JSON" in out
    assert "2 problem(s)" in err


def test_check_command_prints_label_counts_when_clean(tmp_path, small_store, monkeypatch, capsys):
    path = tmp_path / "labels.jsonl"
    path.write_text(_line("ts-fixture-agency/c1", sentiment="negative") + "\n" +
                    _line("ts-fixture-agency/c2", stance=_stance(funding="favor")) + "\n")
    rc, out, err = _run_cli(["labels", "check", str(path), "--db", str(small_store),
                             "--schema", str(SCHEMA_PATH)], monkeypatch, capsys)
    assert rc == 0
    assert "item ids checked against" in err
    assert "funding" in out and "no problems" in out
    row = next(line for line in out.splitlines() if "sentiment" in line)
    assert [cell.strip() for cell in row.split("│")[2:5]] == ["1", "1", "0"]  # negative, neutral, positive


def test_check_command_without_db_and_no_default_store_checks_labels_only(tmp_path, monkeypatch, capsys):
    import pipeline.cli.labels_cmd as labels_cmd

    monkeypatch.setattr(labels_cmd, "DEFAULT_STORE", str(tmp_path / "missing" / "store.sqlite"))
    path = tmp_path / "labels.jsonl"
    path.write_text(_line("not/in/any/store") + "\n")
    rc, _, err = _run_cli(["labels", "check", str(path), "--schema", str(SCHEMA_PATH)], monkeypatch, capsys)
    assert rc == 0
    assert "schema only" in err and "item ids not checked" in err
    assert not (tmp_path / "missing").exists()  # no empty store was created


def test_check_command_with_missing_db_is_a_user_error(tmp_path, monkeypatch, capsys):
    path = tmp_path / "labels.jsonl"
    path.write_text(_line("t/c1") + "\n")
    rc, _, err = _run_cli(["labels", "check", str(path), "--db", str(tmp_path / "nope.sqlite"),
                           "--schema", str(SCHEMA_PATH)], monkeypatch, capsys)
    assert rc == 2 and "no store here" in err and "Traceback" not in err


# ---- the gold set ---------------------------------------------------------------------------------
GOLD_LABEL_FILES = ["pass_a.jsonl", "pass_b.jsonl", "gold_v1.jsonl", "audit_v1.1/pass_a.jsonl",
                    "audit_v1.1/pass_b.jsonl", "gold.jsonl"]


@pytest.fixture(scope="module")
def seed_item_ids(tmp_path_factory, seeds_dir):
    db = tmp_path_factory.mktemp("seedstore") / "seeds.sqlite"
    with Store(db) as store:
        report = ingest_paths(store, [seeds_dir])
        assert not report.failed
        return store.item_ids()


@pytest.mark.parametrize("name", GOLD_LABEL_FILES)
def test_gold_label_files_pass_check_against_the_seed_store(name, seed_item_ids):
    result = check_label_file(GOLD / name, SCHEMA, seed_item_ids)
    assert result.problems == []
    assert len(result.records) == 144 == len(seed_item_ids)
    assert {r.item_id for r in result.records} == seed_item_ids


@pytest.mark.parametrize(("passes", "gold_file", "disputes_file"), [
    (("pass_a.jsonl", "pass_b.jsonl"), "gold_v1.jsonl", "disputes.jsonl"),
    (("audit_v1.1/pass_a.jsonl", "audit_v1.1/pass_b.jsonl"), "gold.jsonl", "audit_v1.1/adjudication.jsonl"),
])
def test_gold_is_the_agreed_labels_plus_the_adjudicated_disputes(passes, gold_file, disputes_file):
    a = {r.item_id: r for r in read_labels(GOLD / passes[0], SCHEMA)}
    b = {r.item_id: r for r in read_labels(GOLD / passes[1], SCHEMA)}
    gold = {r.item_id: r for r in read_labels(GOLD / gold_file, SCHEMA)}
    disputes = [json.loads(line) for line in (GOLD / disputes_file).read_text().splitlines() if line.strip()]
    assert {r.annotator for r in gold.values()} == {"adjudicated"}
    assert set(gold) == set(a) == set(b)
    by_key = {(d["item_id"], d["field"]): d for d in disputes}
    assert len(by_key) == len(disputes)
    expected_keys = {(i, f) for i in a for f in disputed_fields(a[i], b[i], SCHEMA)}
    assert set(by_key) == expected_keys
    for item_id, rec in gold.items():
        for field in ("sentiment", *SCHEMA.target_names):
            d = by_key.get((item_id, field))
            if d is None:
                assert rec.value(field) == a[item_id].value(field) == b[item_id].value(field)
            else:
                assert (d["label_a"], d["label_b"]) == (a[item_id].value(field), b[item_id].value(field))
                assert rec.value(field) == d["final"] and d["reason"].strip()
