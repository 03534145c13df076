"""Label Studio interchange: export tasks + config from the store, import a JSON export, round trip."""
from __future__ import annotations

import copy
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pipeline.annotation.labelstudio import (
    agreement_lines,
    annotator_agreement,
    import_export,
    make_config,
    make_tasks,
    read_export,
)
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
MULTI = FIXTURES / "export_multi.json"  # three annotators, problems (project-written, tests/fixtures/README.md)


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
    (labels,) = list(root.iter("Labels"))
    assert labels.get("name") == "evidence" and labels.get("toName") == "text"
    assert [el.get("value") for el in labels] == SCHEMA.target_names
    assert {"$text", "$parent_text"} <= {el.get("value") for el in root.iter("Text")}
    assert any(el.get("value") == "$thread_title" for el in root.iter("Header"))


# ---- import of the realistic fixtures --------------------------------------------------------------
def test_import_fixture_export_keeps_every_annotators_labels():
    result = import_export(_export_data(), SCHEMA)
    assert [(r.item_id, r.annotator) for r in result.records] == [
        ("ts-fixture-caseloads/c1", "ls-user-7"), ("ts-fixture-caseloads/c1.r1", "ls-user-7"),
        ("ts-fixture-caseloads/c2", "ls-user-7"), ("ts-fixture-caseloads/c2", "ls-user-9"),
        ("ts-fixture-caseloads/c3", "ls-user-7"), ("ts-fixture-agency/c1", "ls-user-7")]
    first = result.records[0]
    assert first == LabelRecord(item_id="ts-fixture-caseloads/c1", sentiment="negative",
                                stance={"blame_management": "none", "funding": "favor", "nqsw_access": "none",
                                        "ofsted": "none"},
                                annotator="ls-user-7", labelled_at="2026-03-03T10:12:44Z")
    reply = result.records[1]
    assert reply.note.startswith("Protected first-year caseload") and reply.labelled_at == "2026-03-03T10:14:02Z"
    c2 = {r.annotator: r.sentiment for r in result.records if r.item_id == "ts-fixture-caseloads/c2"}
    assert c2 == {"ls-user-7": "neutral", "ls-user-9": "positive"}  # both kept, neither overwrites the other
    # task 106 only has a cancelled (skipped) annotation
    assert result.unannotated == ["task 106 (item ts-fixture-agency/c2)"] and result.problems == []


def test_import_can_keep_one_users_annotations_and_rename_the_annotator():
    result = import_export(_export_data(), SCHEMA, annotator="alice", completed_by="7")
    assert {r.annotator for r in result.records} == {"alice"} and len(result.records) == 5
    c2 = next(r for r in result.records if r.item_id == "ts-fixture-caseloads/c2")
    assert c2.sentiment == "neutral"


def test_one_name_for_several_users_is_refused():
    with pytest.raises(UserError, match="--annotator 'alice' would give one name to the annotations of 2 users"):
        import_export(_export_data(), SCHEMA, annotator="alice")


def test_completed_by_user_objects_are_named_by_email():
    data = _export_data()[:1]
    data[0]["annotations"][0]["completed_by"] = {"id": 7, "email": "a.rahman@example.org", "first_name": "A"}
    assert import_export(data, SCHEMA).records[0].annotator == "a.rahman@example.org"
    assert len(import_export(data, SCHEMA, completed_by="a.rahman@example.org").records) == 1


def test_multi_annotator_export_imports_the_rest_and_reports_what_it_left_out_by_task_id():
    result = import_export(read_export(MULTI), SCHEMA)
    by = result.by_annotator()
    assert {name: [r.item_id.split("/")[1] for r in recs] for name, recs in by.items()} == {
        "ls-user-7": ["c1", "c1.r1", "c2", "c3", "c1"], "ls-user-9": ["c1", "c1.r1", "c2"], "ls-user-12": ["c2"]}
    assert [str(p) for p in result.problems] == [
        "task 204 (item ts-fixture-caseloads/c3), annotation 609 by ls-user-9: incomplete: no choice for 'ofsted'",
        "task 205 (item ts-fixture-agency/c1), annotation 611 by ls-user-9: field 'blame_management': choice "
        "'pro' is not one of favor, against, none",
        "task 207: data.item_id is missing (export tasks with `threadstance labelstudio export` so each task "
        "carries its item id)"]
    assert result.unannotated == ["task 206 (item ts-fixture-agency/c2)"]
    text = json.loads(MULTI.read_text())[0]["data"]["text"]
    span = by["ls-user-9"][0].evidence["funding"]
    assert text[span["start"]:span["end"]] == "Until the council actually funds the posts it keeps promising, " \
                                               "nothing on my team will change."
    assert by["ls-user-7"][1].evidence == {"blame_management": {"start": 0, "end": 96}}
    assert by["ls-user-9"][1].evidence is None  # blame none: no evidence kept


def test_agreement_across_annotators_is_pairwise_cohens_kappa_over_shared_items():
    from sklearn.metrics import cohen_kappa_score

    by = import_export(read_export(MULTI), SCHEMA).by_annotator()
    pairs = annotator_agreement(by, SCHEMA)
    assert [p["annotators"] for p in pairs] == [["ls-user-12", "ls-user-7"], ["ls-user-12", "ls-user-9"],
                                                ["ls-user-7", "ls-user-9"]]
    main = pairs[2]
    assert main["common"] == 3 and main["items_fully_agreed"] == 1
    a = {r.item_id: r for r in by["ls-user-7"]}
    b = {r.item_id: r for r in by["ls-user-9"]}
    common = [i for i in a if i in b]
    assert main["fields"]["blame_management"]["kappa"] == pytest.approx(cohen_kappa_score(
        [a[i].stance["blame_management"] for i in common], [b[i].stance["blame_management"] for i in common]),
        abs=1e-4)
    assert main["fields"]["sentiment"]["agreed"] == 2 and main["fields"]["funding"]["kappa"] == 1.0
    lines = agreement_lines(pairs, SCHEMA)
    assert lines[2].startswith("ls-user-7 vs ls-user-9: 3 shared item(s), 1 agreed on every field; sentiment κ ")


def _mutate(fn):
    data = _export_data()
    fn(data)
    return data


def _result(data, task_index, name):
    return next(r for r in data[task_index]["annotations"][0]["result"] if r["from_name"] == name)


PROBLEM_CASES = {
    "unknown_choice": (lambda d: _result(d, 0, "funding")["value"].update(choices=["pro"]),
                       ["task 101", "ts-fixture-caseloads/c1", "annotation 412", "'funding'", "'pro'"]),
    "missing_field": (lambda d: d[0]["annotations"][0]["result"].pop(4), ["task 101", "incomplete", "'ofsted'"]),
    "two_choices": (lambda d: _result(d, 3, "sentiment")["value"].update(choices=["negative", "neutral"]),
                    ["task 104", "'sentiment'", "exactly one choice"]),
    "unknown_from_name": (lambda d: _result(d, 0, "ofsted").update(from_name="inspection"),
                          ["task 101", "'inspection'", "not in the label schema"]),
    "wrong_type": (lambda d: _result(d, 0, "ofsted").update(type="labels"), ["task 101", "'ofsted'", "'choices'"]),
    "missing_item_id": (lambda d: d[2]["data"].pop("item_id"), ["task 103", "data.item_id"]),
    "no_timestamp": (lambda d: [d[0]["annotations"][0].pop(k) for k in ("created_at", "updated_at")],
                     ["task 101", "timestamp"]),
    "same_item_twice": (lambda d: d[1]["data"].update(item_id="ts-fixture-caseloads/c1"),
                        ["task 102", "ls-user-7 already labelled this item", "task 101"]),
    "not_an_object": (lambda d: d.insert(0, "a stray string"), ["task #1", "expected an object"]),
    "bad_evidence": (lambda d: d[0]["annotations"][0]["result"].append(
        {"from_name": "evidence", "type": "labels", "value": {"start": 9, "end": 3, "labels": ["funding"]}}),
                     ["task 101", "'evidence'"]),
}


@pytest.mark.parametrize("case", sorted(PROBLEM_CASES))
def test_a_bad_task_or_annotation_is_reported_by_task_and_field_and_the_rest_imported(case):
    mutate, expected = PROBLEM_CASES[case]
    result = import_export(_mutate(mutate), SCHEMA)
    (problem,) = result.problems
    for fragment in expected:
        assert fragment in str(problem)
    lost = {"missing_item_id": 2, "not_an_object": 0}.get(case, 1)  # task 103 has two annotations
    assert len(result.records) == 6 - lost


def test_export_that_is_not_a_task_list_is_rejected(tmp_path):
    path = tmp_path / "min.json"
    path.write_text(json.dumps({"tasks": []}))
    with pytest.raises(UserError, match="list of tasks"):
        read_export(path)
    path.write_text("[{")
    with pytest.raises(UserError, match="not valid JSON"):
        read_export(path)


def test_import_command_writes_one_label_file_per_annotator_and_reports_problems(tmp_path, monkeypatch, capsys):
    out = tmp_path / "imported"
    rc, stdout, err = _run_cli(["labelstudio", "import", str(MULTI), "--out", str(out), "--schema",
                                str(SCHEMA_PATH)], monkeypatch, capsys)
    assert rc == 1  # something was left out; the rest is written
    assert sorted(p.name for p in out.iterdir()) == ["agreement.json", "ls-user-12.jsonl", "ls-user-7.jsonl",
                                                     "ls-user-9.jsonl"]
    assert [r.item_id for r in read_labels(out / "ls-user-9.jsonl", SCHEMA)] == [
        "ts-fixture-caseloads/c1", "ts-fixture-caseloads/c1.r1", "ts-fixture-caseloads/c2"]
    assert "agreement: ls-user-7 vs ls-user-9: 3 shared item(s)" in stdout
    assert json.loads((out / "agreement.json").read_text())[2]["annotators"] == ["ls-user-7", "ls-user-9"]
    assert err.count("not imported:") == 3 and "task 204" in err and "task 207" in err
    assert "Traceback" not in err and "1 task(s) without an annotation" in err
    rc, _, err = _run_cli(["labelstudio", "import", str(MULTI), "--out", str(tmp_path / "one.jsonl"), "--schema",
                           str(SCHEMA_PATH)], monkeypatch, capsys)
    assert rc == 2 and "3 annotators" in err and not (tmp_path / "one.jsonl").exists()


def test_export_with_a_model_adds_pre_annotations_with_version_scores_and_evidence(db, tmp_path, smoke_model,
                                                                                    monkeypatch, capsys):
    out = tmp_path / "ls"
    rc, stdout, _ = _run_cli(["labelstudio", "export", "--out", str(out), "--db", str(db), "--model", str(smoke_model),
                              "--schema", str(SCHEMA_PATH), "--device", "cpu"], monkeypatch, capsys)
    assert rc == 0 and "with pre-annotations from model" in stdout
    version = json.loads((smoke_model / "threadstance.json").read_text())["model_version"]
    tasks = json.loads((out / "tasks.json").read_text())
    evidence_regions = 0
    for task in tasks:
        (pred,) = task["predictions"]
        assert pred["model_version"] == version
        choices = [r for r in pred["result"] if r["type"] == "choices"]
        assert [r["from_name"] for r in choices] == ["sentiment", *SCHEMA.target_names]
        assert all(0 < r["score"] <= 1 and len(r["value"]["choices"]) == 1 for r in choices)
        assert pred["score"] == min(r["score"] for r in choices)
        stances = {r["from_name"]: r["value"]["choices"][0] for r in choices[1:]}
        regions = [r for r in pred["result"] if r["type"] == "labels"]
        assert sorted(r["value"]["labels"][0] for r in regions) == sorted(t for t, v in stances.items() if v != "none")
        for r in regions:
            assert r["from_name"] == "evidence" and r["to_name"] == "text"
            assert task["data"]["text"][r["value"]["start"]:r["value"]["end"]] == r["value"]["text"]
        evidence_regions += len(regions)
    assert evidence_regions > 0
    # the pre-annotation, submitted unchanged in Label Studio, imports as the model's labels and evidence
    for n, task in enumerate(tasks, start=1):
        task.update(id=700 + n, annotations=[{"id": 800 + n, "completed_by": 4, "result": task["predictions"][0]["result"],
                                              "was_cancelled": False, "created_at": "2026-05-01T10:00:00Z"}])
    result = import_export(tasks, SCHEMA)
    assert not result.problems and len(result.records) == len(tasks)
    assert sum(len(r.evidence or {}) for r in result.records) == evidence_regions


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


def test_make_tasks_has_empty_parent_for_top_level_items(db):
    with Store(db) as store:
        tasks = make_tasks(select_items(store))
    assert [bool(t["data"]["parent_text"]) for t in tasks] == [False, False, False, True, False, False]
