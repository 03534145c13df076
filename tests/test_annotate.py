"""The annotator: one key per decision, undo of the last action, model suggestions and evidence pre-selected,
agreement with the model at the end; driven through the session API and, end to end, through a
pseudo-terminal (real key presses to ``threadstance annotate``)."""
from __future__ import annotations

import io
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.annotation.annotate import AnnotationSession, assign_keys, run_annotation, schema_keys
from pipeline.annotation.suggestions import Suggestion, agreement_with_model
from pipeline.config.schema import load_schema
from pipeline.data.labels import LabelRecord, check_label_file, read_labels
from pipeline.data.selection import parse_filters, select_items
from pipeline.errors import UserError
from pipeline.inference.evidence import Evidence
from pipeline.store.db import Store
from pipeline.store.load import ingest_paths

REPO = Path(__file__).resolve().parents[1]
SCHEMA_PATH = REPO / "configs" / "labels.yaml"
SCHEMA = load_schema(SCHEMA_PATH)
FIXTURE = REPO / "tests" / "fixtures" / "labelstudio" / "threads.jsonl"
ORDER = ["ts-fixture-agency/c1", "ts-fixture-agency/c2", "ts-fixture-caseloads/c1", "ts-fixture-caseloads/c1.r1",
         "ts-fixture-caseloads/c2", "ts-fixture-caseloads/c3"]
NONE4 = ["o", "o", "o", "o"]  # blame_management, funding, nqsw_access, ofsted all "none"
ENTER, SPACE = "\r", " "


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "store.sqlite"
    with Store(path) as store:
        ingest_paths(store, [FIXTURE])
    return path


def _items(db, *filters):
    with Store(db) as store:
        return select_items(store, parse_filters(list(filters)))


def _session(db, labels, *filters, annotator="tester", suggest=None):
    return AnnotationSession(_items(db, *filters), SCHEMA, labels, annotator, clock=lambda: "2026-01-05T10:00:00Z",
                             suggest=suggest)


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


def _funding_suggestion(ctx):
    """A fixed suggestion: neutral, funding favor with the item's first sentence as evidence."""
    first = ctx.text.index(".") + 1
    return Suggestion(sentiment="neutral", stance={t: "favor" if t == "funding" else "none" for t in SCHEMA.target_names},
                      sentiment_prob=0.7, stance_prob={t: 0.8 for t in SCHEMA.target_names},
                      evidence={"funding": Evidence(ctx.text[:first], 0, first, 0.5, 2)})


# ---- keys ---------------------------------------------------------------------------------------
def test_every_key_names_one_label_and_no_label_key_is_a_command():
    sentiment, stance = schema_keys(SCHEMA)
    assert sentiment == {"n": "negative", "u": "neutral", "p": "positive"}
    assert stance == {"f": "favor", "a": "against", "o": "none"}
    assert not set(sentiment) & set(stance)
    assert assign_keys(["mixed", "sarcastic", "shouty"]) == {"m": "mixed", "a": "sarcastic", "h": "shouty"}
    assert not set(assign_keys(["skip", "zero", "quit", "query"])) & {"s", "z", "q", "e", "?"}


# ---- labelling without a model ----------------------------------------------------------------------
def test_labels_are_saved_after_every_item_in_page_order(db, tmp_path):
    labels = tmp_path / "labels.jsonl"
    shown = []
    keys = Keys(["u", "f", "a", "o", "o",     # agency/c1: neutral, blame favor, funding against
                 "u", *NONE4,                 # agency/c2
                 "q"])
    summary = run_annotation(_session(db, labels), keys,
                             show=lambda view: shown.append((view.draft.ctx.item_id, view.progress.done)))
    assert summary.saved == 2 and summary.quit
    assert shown == [(ORDER[0], 0), (ORDER[1], 1), (ORDER[2], 2)]
    records = read_labels(labels, SCHEMA)
    assert [r.item_id for r in records] == ORDER[:2]
    assert records[0].sentiment == "neutral" and records[0].evidence is None
    assert records[0].stance == {"blame_management": "favor", "funding": "against", "nqsw_access": "none",
                                 "ofsted": "none"}
    assert records[0].annotator == "tester" and records[0].labelled_at == "2026-01-05T10:00:00Z"
    assert "[sentiment=?]" in keys.prompts[0] and "[blame_management=?]" in keys.prompts[1]
    assert "Enter accept" not in keys.prompts[0]  # nothing to accept without a model


def test_resume_skips_items_already_in_the_file(db, tmp_path):
    labels = tmp_path / "labels.jsonl"
    run_annotation(_session(db, labels), Keys(["n", *NONE4, "p", *NONE4, "q"]))
    session = _session(db, labels)
    assert session.progress().done == 2
    assert session.next_item().item_id == ORDER[2]
    summary = run_annotation(session, Keys(["u", *NONE4] * 4))
    assert summary.finished and summary.saved == 4
    assert [r.item_id for r in read_labels(labels, SCHEMA)] == ORDER


def test_enter_and_space_without_a_suggestion_ask_for_a_label(db, tmp_path):
    labels = tmp_path / "labels.jsonl"
    summary = run_annotation(_session(db, labels), Keys([ENTER, SPACE, "x", "n", *NONE4, "q"]))
    assert summary.saved == 1
    assert sum("no suggestion" in line for line in summary.log) == 2
    assert sum("unknown key 'x'" in line for line in summary.log) == 1
    assert read_labels(labels, SCHEMA)[0].sentiment == "negative"


def test_a_sentiment_key_is_not_a_stance_key(db, tmp_path):
    labels = tmp_path / "labels.jsonl"
    summary = run_annotation(_session(db, labels), Keys(["n", "n", "p", "o", "o", "o", "o", "q"]))
    assert summary.saved == 1 and "unknown key 'n' for blame_management" in summary.log[0]
    assert read_labels(labels, SCHEMA)[0].stance["blame_management"] == "none"


# ---- undo: the last action --------------------------------------------------------------------------
def test_undo_mid_item_undoes_the_last_key_not_the_previous_item(db, tmp_path):
    labels = tmp_path / "labels.jsonl"
    keys = ["n", *NONE4,                # agency/c1 saved
            "p", "f", "z",              # agency/c2: blame favor is undone, sentiment positive stays
            "a", "o", "o", "o", "q"]    # blame against
    summary = run_annotation(_session(db, labels), Keys(keys))
    assert summary.saved == 2 and summary.undone == 1
    records = read_labels(labels, SCHEMA)
    assert [(r.item_id, r.sentiment, r.stance["blame_management"]) for r in records] == [
        (ORDER[0], "negative", "none"), (ORDER[1], "positive", "against")]


def test_undo_right_after_a_save_reopens_that_item_at_its_last_field(db, tmp_path):
    labels = tmp_path / "labels.jsonl"
    shown = []
    keys = Keys(["n", *NONE4,          # agency/c1
                 "p", *NONE4,          # agency/c2 saved with ofsted none …
                 "z",                  # … undone: agency/c2 is back, cursor on ofsted
                 "f",                  # ofsted favor -> saved again
                 "q"])
    summary = run_annotation(_session(db, labels), keys, show=lambda view: shown.append(view.draft.ctx.item_id))
    assert summary.undone == 1 and summary.saved == 2
    assert shown == [ORDER[0], ORDER[1], ORDER[2], ORDER[1], ORDER[2]]
    assert "[ofsted=?]" in keys.prompts[11]
    records = read_labels(labels, SCHEMA)
    assert [(r.item_id, r.sentiment, r.stance["ofsted"]) for r in records] == [
        (ORDER[0], "negative", "none"), (ORDER[1], "positive", "favor")]


def test_undo_steps_back_through_saves_and_keys_in_reverse_order(db, tmp_path):
    labels = tmp_path / "labels.jsonl"
    # two items saved, then 5 undos: the second save (with its last key) and its 4 other keys
    keys = Keys(["n", *NONE4, "p", *NONE4, *["z"] * 5, "q"])
    summary = run_annotation(_session(db, labels), keys)
    assert summary.undone == 5 and summary.saved == 1
    assert [r.item_id for r in read_labels(labels, SCHEMA)] == [ORDER[0]]
    cursor = [re.search(r"\[(\w+)=", p).group(1) for p in keys.prompts[-6:]]
    assert cursor == ["sentiment", "ofsted", "nqsw_access", "funding", "blame_management", "sentiment"]
    assert keys.prompts[-1].startswith("[sentiment=?]")


def test_undo_of_a_skip_brings_the_item_back(db, tmp_path):
    labels = tmp_path / "labels.jsonl"
    shown = []
    summary = run_annotation(_session(db, labels), Keys(["s", "z", "u", *NONE4, "q"]),
                             show=lambda view: shown.append(view.draft.ctx.item_id))
    assert shown == [ORDER[0], ORDER[1], ORDER[0], ORDER[1]]
    assert summary.skipped == 0 and summary.saved == 1
    assert read_labels(labels, SCHEMA)[0].item_id == ORDER[0]


def test_undo_in_a_resumed_session_removes_the_last_label_in_the_file(db, tmp_path):
    labels = tmp_path / "labels.jsonl"
    run_annotation(_session(db, labels), Keys(["n", *NONE4, "n", *NONE4, "q"]))
    summary = run_annotation(_session(db, labels), Keys(["z", "q"]))
    assert summary.undone == 1 and f"removed the label of {ORDER[1]}; label it again" in summary.log
    assert [r.item_id for r in read_labels(labels, SCHEMA)] == [ORDER[0]]
    assert _session(db, labels).next_item().item_id == ORDER[1]


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
    assert _session(db, labels).next_item().item_id == ORDER[0]  # skipped, so still to do next time


def test_input_ending_quits_cleanly_without_a_partial_label(db, tmp_path):
    labels = tmp_path / "labels.jsonl"
    summary = run_annotation(_session(db, labels), Keys(["n", *NONE4, "p", "f"]))
    assert summary.quit and summary.saved == 1
    assert len(read_labels(labels, SCHEMA)) == 1


# ---- with the model's suggestion and evidence --------------------------------------------------------
def test_enter_accepts_the_suggestion_and_its_evidence(db, tmp_path):
    labels = tmp_path / "labels.jsonl"
    keys = Keys([ENTER, "q"])
    summary = run_annotation(_session(db, labels, suggest=_funding_suggestion), keys)
    assert summary.saved == 1
    (rec,) = read_labels(labels, SCHEMA)
    assert rec.sentiment == "neutral" and rec.stance["funding"] == "favor"
    text = _items(db, f"item={ORDER[0]}")[0].text
    span = rec.evidence["funding"]
    assert list(rec.evidence) == ["funding"] and text[span["start"]:span["end"]] == text[:text.index(".") + 1]
    assert "[sentiment=neutral]" in keys.prompts[0] and "Enter accept" in keys.prompts[0]


def test_space_keeps_a_field_a_label_key_changes_it_and_e_moves_the_evidence(db, tmp_path):
    labels = tmp_path / "labels.jsonl"
    # sentiment kept, blame against (no evidence yet: e picks the first sentence, e again the second),
    # funding kept, then Enter accepts nqsw_access and ofsted
    keys = ["\x20", "a", "e", "e", "\x20", ENTER, "q"]
    summary = run_annotation(_session(db, labels, suggest=_funding_suggestion), Keys(keys))
    assert summary.saved == 1
    (rec,) = read_labels(labels, SCHEMA)
    text = _items(db, f"item={ORDER[0]}")[0].text
    assert rec.sentiment == "neutral"
    assert rec.stance == {"blame_management": "against", "funding": "favor", "nqsw_access": "none", "ofsted": "none"}
    blame = rec.evidence["blame_management"]
    assert blame["start"] > 0 and text[blame["start"]:blame["end"]].strip() == text[blame["start"]:blame["end"]]
    assert rec.evidence["funding"] == {"start": 0, "end": text.index(".") + 1}
    assert any(line.startswith("evidence for blame_management: «") for line in summary.log)


def test_setting_a_stance_to_none_drops_its_evidence(db, tmp_path):
    labels = tmp_path / "labels.jsonl"
    run_annotation(_session(db, labels, suggest=_funding_suggestion), Keys([SPACE, SPACE, "o", ENTER, "q"]))
    (rec,) = read_labels(labels, SCHEMA)
    assert rec.stance["funding"] == "none" and rec.evidence is None


def test_the_run_ends_with_agreement_between_the_annotator_and_the_model(db, tmp_path):
    labels = tmp_path / "labels.jsonl"
    keys = [ENTER,                      # agency/c1 accepted
            "n", ENTER,                 # agency/c2: negative, rest accepted
            "u", SPACE, "o", ENTER,     # caseloads/c1: funding none
            "q"]
    summary = run_annotation(_session(db, labels, suggest=_funding_suggestion), Keys(keys))
    assert summary.saved == 3
    assert summary.agreement[0] == "agreement with the model over 3 item(s): 1 accepted unchanged"
    assert "  sentiment: 2/3 agree (67%), Cohen's kappa 0.00" in summary.agreement
    assert "  funding: 2/3 agree (67%), Cohen's kappa 0.00" in summary.agreement
    assert "  ofsted: 3/3 agree (100%), Cohen's kappa undefined (one label only)" in summary.agreement
    assert summary.agreement[-1] == "  evidence: the model's sentence kept for 2 of 2 stance(s) both gave"


def test_agreement_kappa_is_sklearns():
    from sklearn.metrics import cohen_kappa_score

    ann = ["negative", "neutral", "neutral", "positive", "negative", "neutral"]
    model = ["negative", "neutral", "positive", "positive", "neutral", "neutral"]
    none = {t: "none" for t in SCHEMA.target_names}
    records = [LabelRecord(f"i{k}", s, none, "a", "2026-01-01T00:00:00Z") for k, s in enumerate(ann)]
    sugs = {f"i{k}": Suggestion(s, none, 0.5, {t: 0.5 for t in none}) for k, s in enumerate(model)}
    result = agreement_with_model(records, sugs, SCHEMA)
    assert result.fields[0].kappa == pytest.approx(cohen_kappa_score(ann, model))
    assert result.n == 6 and result.accepted_unchanged == 4


# ---- session details ----------------------------------------------------------------------------------
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


def test_label_files_check_the_evidence_spans(tmp_path):
    path = tmp_path / "labels.jsonl"
    base = '{"item_id": "t/c1", "sentiment": "neutral", "stance": {"blame_management": "none", "funding": "favor", ' \
           '"nqsw_access": "none", "ofsted": "none"}, "annotator": "a", "labelled_at": "2026-01-01T00:00:00Z"'
    path.write_text(base + ', "evidence": {"funding": {"start": 0, "end": 12}}}\n'
                    + base.replace("t/c1", "t/c2") + ', "evidence": {"funding": {"start": 5, "end": 2}}}\n'
                    + base.replace("t/c1", "t/c3") + ', "evidence": {"colour": {"start": 0, "end": 2}}}\n')
    check = check_label_file(path, SCHEMA)
    assert [r.evidence for r in check.records] == [{"funding": {"start": 0, "end": 12}}]
    assert [(p.line, p.kind) for p in check.problems] == [(2, "bad_type"), (3, "unknown_target")]


# ---- end to end: key presses through a pseudo-terminal -------------------------------------------------
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal:
    """``threadstance`` running on the slave side of a pseudo-terminal; keys go in, screen text comes out."""

    def __init__(self, args, cwd):
        master, slave = os.openpty()
        env = {**os.environ, "COLUMNS": "200", "LINES": "50", "TERM": "xterm", "NO_COLOR": "1",
               "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli.main", *map(str, args)], cwd=cwd,
                                     stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
        os.close(slave)
        self.master = master
        self.screen = ""
        self.seen = 0

    def _read(self, timeout):
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # the child closed the terminal
            return False
        self.screen += ANSI.sub("", data.decode("utf-8", "replace")).replace("\r", "")
        return bool(data)

    def expect(self, pattern, timeout=120.0):
        """Wait until ``pattern`` shows after the last match; returns the text up to and including it."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while True:
            match = regex.search(self.screen, self.seen)
            if match:
                text = self.screen[self.seen:match.end()]
                self.seen = match.end()
                return text
            if time.monotonic() > deadline or (not self._read(0.5) and self.proc.poll() is not None):
                raise AssertionError(f"{pattern!r} not shown; screen since last match:\n{self.screen[self.seen:]}")

    def press(self, key, then=r"\? help\n"):
        os.write(self.master, key.encode())
        return self.expect(then) if then else ""

    def close(self, failed=False):
        try:
            self.proc.wait(timeout=5 if failed else 60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)  # our own child, in its own session
            self.proc.wait()
        finally:
            while self._read(0.1):
                pass
            os.close(self.master)
        return self.proc.returncode


def test_annotate_through_a_terminal_with_single_keys_undo_and_model_suggestions(db, tmp_path, smoke_model):
    labels = tmp_path / "labels.jsonl"
    term = Terminal(["annotate", "--labels", labels, "--db", db, "--model", smoke_model, "--annotator", "pty",
                     "--schema", SCHEMA_PATH, "--filter", "thread=ts-fixture-caseloads"], REPO)
    failed = True
    try:
        first = term.expect(r"\? help\n")
        assert "4 item(s) selected" in first and "model suggests:" in first and "item 1 of 4" in first
        assert "Enter accept all" in first
        term.press("\r", then=r"saved ts-fixture-caseloads/c1\n")            # accept the suggestion: one key
        shown = term.expect(r"\? help\n")
        assert "item 2 of 4" in shown and "1 saved this session" in shown
        term.press("p")                                                        # reply: positive …
        term.press("z", then=r"undid the sentiment choice\n")                 # … undone (the key, not a label)
        term.expect(r"\? help\n")
        for key in "nfoa":                                                     # type every field, no Enter
            term.press(key)
        term.press("o", then=r"saved ts-fixture-caseloads/c1\.r1\n")
        term.expect(r"\? help\n")
        term.press("q", then=r"agreement with the model over 2 item\(s\)")
        tail = term.expect(r"evidence: .*\n|ofsted: .*\n")
        assert "Cohen's kappa" in tail
        failed = False
    finally:
        rc = term.close(failed)
    assert rc == 0
    records = read_labels(labels, SCHEMA)
    assert [r.item_id for r in records] == ["ts-fixture-caseloads/c1", "ts-fixture-caseloads/c1.r1"]
    reply = records[1]
    assert reply.sentiment == "negative" and reply.annotator == "pty"
    assert reply.stance == {"blame_management": "favor", "funding": "none", "nqsw_access": "against", "ofsted": "none"}
    with Store(db) as store:
        texts = {it["item_id"]: it["text"] for it in store.items()}
    for rec in records:
        for target, span in (rec.evidence or {}).items():
            assert rec.stance[target] != "none" and 0 <= span["start"] < span["end"] <= len(texts[rec.item_id])


def test_suggest_order_shows_the_least_sure_item_first_and_piped_keys_work(db, tmp_path, smoke_model, monkeypatch,
                                                                            capsys):
    from conftest import cli

    from pipeline.inference.predict import Predictor
    from pipeline.inference.suggest import ranked_ids

    labels = tmp_path / "labels.jsonl"
    items = _items(db)
    ranked = [i for i, _ in ranked_ids(Predictor(smoke_model, device="cpu"), items[1:])]
    run_annotation(_session(db, labels), Keys(["n", *NONE4, "q"]))  # ORDER[0] is labelled already
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n" "u oo\n" "\n" "q\n"))  # not a terminal: keys from lines
    rc, out, _ = cli(["annotate", "--labels", labels, "--db", db, "--model", smoke_model, "--order", "suggest",
                      "--annotator", "piped", "--schema", SCHEMA_PATH, "--device", "cpu"], monkeypatch, capsys)
    assert rc == 0 and "suggest order" in out
    assert out.index(ranked[0]) < out.index(ranked[1])  # shown most informative first
    records = read_labels(labels, SCHEMA)
    assert [r.item_id for r in records] == [ORDER[0], ranked[0], ranked[1]]
    assert records[1].annotator == "piped"  # Enter accepted the model's suggestion for ranked[0]
    assert records[2].sentiment == "neutral" and records[2].stance["nqsw_access"] == "none"
    assert "agreement with the model over 2 item(s)" in out
