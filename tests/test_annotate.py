"""The annotation session, driven programmatically: save after every item, resume, undo, skip, quit."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pipeline.annotation.annotate import AnnotationSession, assign_keys, run_annotation
from pipeline.config.schema import load_schema
from pipeline.data.labels import read_labels
from pipeline.data.selection import parse_filters, select_items
from pipeline.errors import UserError
from pipeline.store.db import Store
from pipeline.store.load import ingest_paths

REPO = Path(__file__).resolve().parents[1]
SCHEMA_PATH = REPO / "configs" / "labels.yaml"
SCHEMA = load_schema(SCHEMA_PATH)
FIXTURE = REPO / "tests" / "fixtures" / "labelstudio" / "threads.jsonl"
ORDER = ["ts-fixture-agency/c1", "ts-fixture-agency/c2", "ts-fixture-caseloads/c1", "ts-fixture-caseloads/c1.r1",
         "ts-fixture-caseloads/c2", "ts-fixture-caseloads/c3"]
NONE4 = ["n", "n", "n", "n"]  # blame_management, funding, nqsw_access, ofsted all "none"


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "store.sqlite"
    with Store(path) as store:
        ingest_paths(store, [FIXTURE])
    return path


def _items(db, *filters):
    with Store(db) as store:
        return select_items(store, parse_filters(list(filters)))


def _session(db, labels, *filters, annotator="tester"):
    return AnnotationSession(_items(db, *filters), SCHEMA, labels, annotator, clock=lambda: "2026-01-05T10:00:00Z")


class Keys:
    """An input function fed from a list; records the prompts it was asked."""

    def __init__(self, keys):
        self.keys = list(keys)
        self.prompts = []

    def __call__(self, prompt):
        self.prompts.append(prompt)
        if not self.keys:
            raise EOFError
        return self.keys.pop(0)


def test_keys_follow_the_codebook_letters():
    assert assign_keys(SCHEMA.sentiment_classes) == {"n": "negative", "u": "neutral", "p": "positive"}
    assert assign_keys(SCHEMA.stance_classes) == {"f": "favor", "a": "against", "n": "none"}
    assert assign_keys(["mixed", "sarcastic"]) == {"m": "mixed", "a": "sarcastic"}  # never s / z / q


def test_labels_are_saved_after_every_item_in_page_order(db, tmp_path):
    labels = tmp_path / "labels.jsonl"
    session = _session(db, labels)
    shown = []
    keys = Keys(["u", "f", "a", "n", "n",     # agency/c1: neutral, blame favor, funding against
                 "u", *NONE4,                 # agency/c2
                 "q"])
    summary = run_annotation(session, keys, show=lambda ctx, prog: shown.append((ctx.item_id, prog.done)))
    assert summary.saved == 2 and summary.quit
    assert shown == [(ORDER[0], 0), (ORDER[1], 1), (ORDER[2], 2)]
    records = read_labels(labels, SCHEMA)
    assert [r.item_id for r in records] == ORDER[:2]
    assert records[0].sentiment == "neutral"
    assert records[0].stance == {"blame_management": "favor", "funding": "against", "nqsw_access": "none",
                                 "ofsted": "none"}
    assert records[0].annotator == "tester" and records[0].labelled_at == "2026-01-05T10:00:00Z"
    assert keys.prompts[0].startswith("sentiment") and keys.prompts[1].startswith("blame_management")


def test_resume_skips_items_already_in_the_file(db, tmp_path):
    labels = tmp_path / "labels.jsonl"
    run_annotation(_session(db, labels), Keys(["n", *NONE4, "p", *NONE4, "q"]))
    session = _session(db, labels)
    assert session.progress().done == 2
    assert session.next_item().item_id == ORDER[2]
    summary = run_annotation(session, Keys(["u", *NONE4] * 4))
    assert summary.finished and summary.saved == 4
    assert [r.item_id for r in read_labels(labels, SCHEMA)] == ORDER


def test_undo_removes_the_last_saved_label_and_shows_that_item_again(db, tmp_path):
    labels = tmp_path / "labels.jsonl"
    shown = []
    keys = Keys(["n", *NONE4,          # agency/c1 negative
                 "p", *NONE4,          # agency/c2 positive (a slip)
                 "z",                  # undo at caseloads/c1's sentiment prompt -> agency/c2 removed
                 "u", *NONE4,          # agency/c2 again, neutral
                 "q"])
    summary = run_annotation(_session(db, labels), keys, show=lambda ctx, prog: shown.append(ctx.item_id))
    assert summary.undone == 1
    assert shown == [ORDER[0], ORDER[1], ORDER[2], ORDER[1], ORDER[2]]
    records = read_labels(labels, SCHEMA)
    assert [(r.item_id, r.sentiment) for r in records] == [(ORDER[0], "negative"), (ORDER[1], "neutral")]


def test_undo_in_a_resumed_session_removes_the_last_label_in_the_file(db, tmp_path):
    labels = tmp_path / "labels.jsonl"
    run_annotation(_session(db, labels), Keys(["n", *NONE4, "n", *NONE4, "q"]))
    session = _session(db, labels)
    assert session.undo() == ORDER[1]
    assert session.next_item().item_id == ORDER[1]
    assert [r.item_id for r in read_labels(labels, SCHEMA)] == [ORDER[0]]


def test_undo_mid_item_discards_the_keys_typed_for_it(db, tmp_path):
    labels = tmp_path / "labels.jsonl"
    summary = run_annotation(_session(db, labels), Keys(["n", *NONE4, "p", "f", "z", "q"]))
    assert summary.saved == 1 and summary.undone == 1
    assert read_labels(labels, SCHEMA) == []


def test_undo_with_nothing_saved_says_so(db, tmp_path):
    summary = run_annotation(_session(db, tmp_path / "labels.jsonl"), Keys(["z", "q"]))
    assert summary.undone == 0 and "nothing to undo" in summary.log


def test_skip_leaves_the_item_unlabelled_for_the_next_session(db, tmp_path):
    labels = tmp_path / "labels.jsonl"
    # skip agency/c1 at once, agency/c2 after typing its sentiment, then label the other four
    summary = run_annotation(_session(db, labels), Keys(["s", "u", "s", *["u", *NONE4] * 4]))
    assert summary.skipped == 2 and summary.saved == 4 and summary.finished
    assert [r.item_id for r in read_labels(labels, SCHEMA)] == ORDER[2:]
    assert "2 skipped" in summary.log[-1]
    later = _session(db, labels)
    assert later.next_item().item_id == ORDER[0]  # skipped, so still to do next time


def test_unknown_keys_are_asked_again(db, tmp_path):
    labels = tmp_path / "labels.jsonl"
    keys = Keys(["x", "N", "f", "maybe", "a", "n", "n", "n", "q"])
    summary = run_annotation(_session(db, labels), keys)
    assert summary.saved == 1
    assert sum("unknown key" in line for line in summary.log) == 2
    (rec,) = read_labels(labels, SCHEMA)
    assert rec.sentiment == "negative" and rec.stance["blame_management"] == "favor"
    assert rec.stance["funding"] == "against"


def test_input_ending_quits_cleanly_without_a_partial_label(db, tmp_path):
    labels = tmp_path / "labels.jsonl"
    summary = run_annotation(_session(db, labels), Keys(["n", *NONE4, "p", "f"]))
    assert summary.quit and summary.saved == 1
    assert len(read_labels(labels, SCHEMA)) == 1


def test_filters_select_replies_with_their_parent_and_thread_title(db, tmp_path):
    (reply,) = _items(db, "kind=reply")
    assert reply.item_id == "ts-fixture-caseloads/c1.r1"
    assert reply.thread_title == "Council pledges to cut caseloads after critical inspection"
    assert reply.parent_text.startswith("Another pledge, another year")
    assert [c.item_id for c in _items(db, "thread=ts-fixture-agency")] == ORDER[:2]
    assert [c.item_id for c in _items(db, "kind=comment", "thread=ts-fixture-caseloads")] == [ORDER[2], *ORDER[4:]]
    with pytest.raises(UserError, match="unknown key"):
        parse_filters(["colour=red"])
    with pytest.raises(UserError, match="KEY=VALUE"):
        parse_filters(["kind"])
    with pytest.raises(UserError, match="no such thread"):
        _items(db, "thread=nope")


def test_record_rejects_labels_outside_the_schema(db, tmp_path):
    session = _session(db, tmp_path / "labels.jsonl")
    with pytest.raises(UserError):
        session.record(ORDER[0], "cheerful", {t: "none" for t in SCHEMA.target_names})
    with pytest.raises(UserError):
        session.record(ORDER[0], "neutral", {"funding": "none"})
    with pytest.raises(UserError):
        session.record("not/selected", "neutral", {t: "none" for t in SCHEMA.target_names})
    session.record(ORDER[0], "neutral", {t: "none" for t in SCHEMA.target_names})
    with pytest.raises(UserError, match="already labelled"):
        session.record(ORDER[0], "neutral", {t: "none" for t in SCHEMA.target_names})


def test_session_refuses_a_label_file_with_broken_lines(db, tmp_path):
    labels = tmp_path / "labels.jsonl"
    labels.write_text("{not json\n")
    with pytest.raises(UserError) as exc:
        _session(db, labels)
    assert exc.value.line == 1


def test_annotate_command_wires_prompts_to_the_session(db, tmp_path, monkeypatch, capsys):
    from pipeline.cli import annotate_cmd
    from pipeline.cli.main import main

    keys = iter(["p", "a", "n", "f", "n", "q"])
    monkeypatch.setattr(annotate_cmd.Prompt, "ask", staticmethod(lambda *a, **k: next(keys)))
    labels = tmp_path / "labels.jsonl"
    monkeypatch.setattr(sys, "argv", ["threadstance", "annotate", "--labels", str(labels), "--db", str(db),
                                      "--filter", "kind=reply", "--annotator", "cli-tester",
                                      "--schema", str(SCHEMA_PATH)])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "in reply to" in out and "Council pledges to cut caseloads" in out
    (rec,) = read_labels(labels, SCHEMA)
    assert rec.item_id == "ts-fixture-caseloads/c1.r1" and rec.annotator == "cli-tester"
    assert rec.sentiment == "positive" and rec.stance["blame_management"] == "against"
    assert rec.stance["nqsw_access"] == "favor"
