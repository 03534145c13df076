"""Label Studio interchange: export tasks + config from the store, import a JSON export, round trip."""
from __future__ import annotations

import copy
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pipeline.annotation.labelstudio import import_export, make_config, make_tasks, read_export
from pipeline.config.schema import load_schema
from pipeline.data.labels import LabelRecord, check_label_file, read_labels
from pipeline.data.selection import select_items
from pipeline.errors import UserError
from pipeline.store.db import Store
from pipeline.store.load import ingest_paths

REPO = Path(__file__).resolve().parents[1]
SCHEMA_PATH = REPO / "configs" / "labels.yaml"
SCHEMA = load_schema(SCHEMA_PATH)
FIXTURES = REPO / "tests" / "fixtures" / "labelstudio"
EXPORT = FIXTURES / "export.json"


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "store.sqlite"
    with Store(path) as store:
        ingest_paths(store, [FIXTURES / "threads.jsonl"])
    return path


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


def _export_data():
    return json.loads(EXPORT.read_text())


# ---- export -------------------------------------------------------------------------------------
def test_export_command_writes_tasks_with_context_and_config(db, tmp_path, monkeypatch, capsys):
    out = tmp_path / "ls"
    rc, stdout, _ = _run_cli(["labelstudio", "export", "--out", str(out), "--db", str(db),
                              "--filter", "thread=ts-fixture-caseloads", "--schema", str(SCHEMA_PATH)],
                             monkeypatch, capsys)
    assert rc == 0 and "wrote 4 tasks" in stdout
    tasks = json.loads((out / "tasks.json").read_text())
    assert [t["data"]["item_id"] for t in tasks] == ["ts-fixture-caseloads/c1", "ts-fixture-caseloads/c1.r1",
                                                     "ts-fixture-caseloads/c2", "ts-fixture-caseloads/c3"]
    reply = tasks[1]["data"]
    assert reply["thread_title"] == "Council pledges to cut caseloads after critical inspection"
    assert reply["parent_text"] == tasks[0]["data"]["text"]
    assert reply["text"].startswith("For balance: my new team manager")
    assert tasks[0]["data"]["parent_text"] == ""
    assert set(reply) == {"text", "item_id", "thread_title", "parent_text", "kind"}
    assert (out / "config.xml").read_text() == make_config(SCHEMA)


def test_export_needs_an_existing_store(tmp_path, monkeypatch, capsys):
    rc, _, err = _run_cli(["labelstudio", "export", "--out", str(tmp_path / "ls"), "--db",
                           str(tmp_path / "none.sqlite"), "--schema", str(SCHEMA_PATH)], monkeypatch, capsys)
    assert rc == 2 and "no store here" in err
    assert not (tmp_path / "none.sqlite").exists()


def test_config_has_one_choices_per_field_with_target_statement_headers():
    root = ET.fromstring(make_config(SCHEMA))
    children = list(root)
    texts = {el.get("name") for el in root.iter("Text")}
    choices = [el for el in children if el.tag == "Choices"]
    assert [c.get("name") for c in choices] == ["sentiment", *SCHEMA.target_names]
    for c in choices:
        assert c.get("toName") in texts and c.get("choice") == "single-radio"
        allowed = SCHEMA.sentiment_classes if c.get("name") == "sentiment" else SCHEMA.stance_classes
        assert [ch.get("value") for ch in c] == allowed
        header = children[children.index(c) - 1]
        if c.get("name") != "sentiment":
            assert header.tag == "Header"
            assert header.get("value") == f"{c.get('name')}: {SCHEMA.targets[c.get('name')].statement}"
    assert {"$text", "$parent_text"} <= {el.get("value") for el in root.iter("Text")}
    assert any(el.get("value") == "$thread_title" for el in root.iter("Header"))


# ---- import of the realistic fixture ----------------------------------------------------------------
def test_import_fixture_export_reads_every_completed_annotation():
    result = import_export(_export_data(), SCHEMA, EXPORT)
    by_id = {r.item_id: r for r in result.records}
    assert list(by_id) == ["ts-fixture-caseloads/c1", "ts-fixture-caseloads/c1.r1", "ts-fixture-caseloads/c2",
                           "ts-fixture-caseloads/c3", "ts-fixture-agency/c1"]
    first = by_id["ts-fixture-caseloads/c1"]
    assert first == LabelRecord(item_id="ts-fixture-caseloads/c1", sentiment="negative",
                                stance={"blame_management": "none", "funding": "favor", "nqsw_access": "none",
                                        "ofsted": "none"},
                                annotator="ls-user-7", labelled_at="2026-03-03T10:12:44Z")
    assert by_id["ts-fixture-caseloads/c1.r1"].note.startswith("Protected first-year caseload")
    assert by_id["ts-fixture-caseloads/c1.r1"].labelled_at == "2026-03-03T10:14:02Z"  # updated_at wins
    # task 106 only has a cancelled (skipped) annotation
    assert result.unannotated == ["task 106 (item ts-fixture-agency/c2)"]
    # task 103 has annotations by users 7 and 9: the later one (user 9) is used, with a warning
    assert by_id["ts-fixture-caseloads/c2"].annotator == "ls-user-9"
    assert by_id["ts-fixture-caseloads/c2"].sentiment == "positive"
    assert len(result.warnings) == 1 and "task 103" in result.warnings[0]


def test_import_can_keep_one_users_annotations_and_rename_the_annotator():
    result = import_export(_export_data(), SCHEMA, EXPORT, annotator="alice", completed_by="7")
    assert {r.annotator for r in result.records} == {"alice"}
    c2 = next(r for r in result.records if r.item_id == "ts-fixture-caseloads/c2")
    assert c2.sentiment == "neutral" and not result.warnings


def test_completed_by_user_objects_are_named_by_email():
    data = _export_data()[:1]
    data[0]["annotations"][0]["completed_by"] = {"id": 7, "email": "a.rahman@example.org", "first_name": "A"}
    assert import_export(data, SCHEMA, EXPORT).records[0].annotator == "a.rahman@example.org"
    assert len(import_export(data, SCHEMA, EXPORT, completed_by="a.rahman@example.org").records) == 1


def _mutate(fn):
    data = _export_data()
    fn(data)
    return data


def _result(data, task_index, name):
    return next(r for r in data[task_index]["annotations"][0]["result"] if r["from_name"] == name)


ERROR_CASES = {
    "unknown_choice": (lambda d: _result(d, 0, "funding")["value"].update(choices=["pro"]),
                       ["task 101", "ts-fixture-caseloads/c1", "'funding'", "'pro'"]),
    "missing_field": (lambda d: d[0]["annotations"][0]["result"].pop(4),
                      ["task 101", "'ofsted'", "no choice"]),
    "two_choices": (lambda d: _result(d, 3, "sentiment")["value"].update(choices=["negative", "neutral"]),
                    ["task 104", "'sentiment'", "exactly one choice"]),
    "unknown_from_name": (lambda d: _result(d, 0, "ofsted").update(from_name="inspection"),
                          ["task 101", "'inspection'", "not in the label schema"]),
    "wrong_type": (lambda d: _result(d, 0, "ofsted").update(type="labels"),
                   ["task 101", "'ofsted'", "'choices'"]),
    "missing_item_id": (lambda d: d[2]["data"].pop("item_id"), ["task 103", "data.item_id"]),
    "no_timestamp": (lambda d: [d[0]["annotations"][0].pop(k) for k in ("created_at", "updated_at")],
                     ["task 101", "timestamp"]),
    "same_item_twice": (lambda d: d[1]["data"].update(item_id="ts-fixture-caseloads/c1"),
                        ["task 102", "annotated again", "task 101"]),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_import_errors_name_the_task_and_field(case):
    mutate, expected = ERROR_CASES[case]
    with pytest.raises(UserError) as exc:
        import_export(_mutate(mutate), SCHEMA, EXPORT)
    message = str(exc.value)
    assert message.startswith(str(EXPORT))
    for fragment in expected:
        assert fragment in message


def test_export_that_is_not_a_task_list_is_rejected(tmp_path):
    path = tmp_path / "min.json"
    path.write_text(json.dumps({"tasks": []}))
    with pytest.raises(UserError, match="list of tasks"):
        read_export(path)
    path.write_text("[{")
    with pytest.raises(UserError, match="not valid JSON"):
        read_export(path)


# ---- round trip ---------------------------------------------------------------------------------
def _annotate_like_label_studio(tasks, labels_by_id):
    """What Label Studio returns after annotators submit: each task gains an annotation."""
    exported = []
    for n, task in enumerate(copy.deepcopy(tasks), start=1):
        rec = labels_by_id[task["data"]["item_id"]]
        result = [{"value": {"choices": [rec.sentiment]}, "id": f"s{n}", "from_name": "sentiment",
                   "to_name": "text", "type": "choices", "origin": "manual"}]
        result += [{"value": {"choices": [rec.stance[t]]}, "id": f"{t[:3]}{n}", "from_name": t, "to_name": "text",
                    "type": "choices", "origin": "manual"} for t in SCHEMA.target_names]
        if rec.note:
            result.append({"value": {"text": [rec.note]}, "id": f"n{n}", "from_name": "note", "to_name": "text",
                           "type": "textarea", "origin": "manual"})
        stamp = rec.labelled_at.replace("Z", ".250000Z")
        task.update(id=500 + n, annotations=[{"id": 900 + n, "completed_by": 3, "result": result,
                                              "was_cancelled": False, "ground_truth": False, "created_at": stamp,
                                              "updated_at": stamp, "lead_time": 12.5, "task": 500 + n}],
                    drafts=[], predictions=[], project=1)
        exported.append(task)
    return exported


def test_round_trip_store_to_label_studio_and_back_gives_the_same_labels(db, tmp_path, monkeypatch, capsys):
    with Store(db) as store:
        items = select_items(store)
    original = []
    for i, ctx in enumerate(items):
        stance = {t: SCHEMA.stance_classes[(i + j) % 3] for j, t in enumerate(SCHEMA.target_names)}
        original.append(LabelRecord(item_id=ctx.item_id, sentiment=SCHEMA.sentiment_classes[i % 3], stance=stance,
                                    annotator="rt", labelled_at=f"2026-02-0{i + 1}T09:30:00Z",
                                    note="quoted speaker" if i == 2 else None))
    out = tmp_path / "ls"
    assert _run_cli(["labelstudio", "export", "--out", str(out), "--db", str(db), "--schema", str(SCHEMA_PATH)],
                    monkeypatch, capsys)[0] == 0
    tasks = json.loads((out / "tasks.json").read_text())
    ls_export = tmp_path / "project-1-at-2026-02-10.json"
    ls_export.write_text(json.dumps(_annotate_like_label_studio(tasks, {r.item_id: r for r in original})))
    labels = tmp_path / "imported.jsonl"
    rc, stdout, _ = _run_cli(["labelstudio", "import", str(ls_export), "--out", str(labels), "--annotator", "rt",
                              "--schema", str(SCHEMA_PATH)], monkeypatch, capsys)
    assert rc == 0 and f"wrote {len(original)} labels" in stdout
    assert read_labels(labels, SCHEMA) == original
    with Store(db) as store:
        assert check_label_file(labels, SCHEMA, store.item_ids()).ok


def test_import_command_reports_errors_without_traceback(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_mutate(ERROR_CASES["unknown_choice"][0])))
    rc, _, err = _run_cli(["labelstudio", "import", str(bad), "--out", str(tmp_path / "x.jsonl"),
                           "--schema", str(SCHEMA_PATH)], monkeypatch, capsys)
    assert rc == 2 and "task 101" in err and "Traceback" not in err
    assert not (tmp_path / "x.jsonl").exists()


def test_make_tasks_has_empty_parent_for_top_level_items(db):
    with Store(db) as store:
        tasks = make_tasks(select_items(store))
    assert [bool(t["data"]["parent_text"]) for t in tasks] == [False, False, False, True, False, False]
