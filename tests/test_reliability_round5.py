"""Round 5 probes: the store option on every command (PostgreSQL URLs kept whole), label files with null or
repeated keys, thread ids that name nothing, comparing a label file with itself, help text that keeps its
sentences together, and throughput lines for short runs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import cli  # the console entry point as a test helper

REPO = Path(__file__).resolve().parent.parent
SCHEMA = REPO / "configs" / "labels.yaml"
NONE = {"blame_management": "none", "funding": "none", "nqsw_access": "none", "ofsted": "none"}


def _label(item_id: str, **fields: object) -> dict:
    return {"item_id": item_id, "sentiment": "negative", "stance": NONE, "annotator": "a",
            "labelled_at": "2026-01-01T00:00:00Z", **fields}


def _page(path: Path, thread_id: object) -> Path:
    path.write_text(json.dumps({"thread_id": thread_id, "text": "Caseloads are too high."}) + "\n", encoding="utf-8")
    return path


def test_a_label_with_a_null_field_says_null_not_missing(tmp_path, monkeypatch, capsys):
    path = tmp_path / "labels.jsonl"
    path.write_text(json.dumps(_label("t/c1", sentiment=None)) + "\n" + json.dumps(_label("t/c2")) + "\n")
    code, out, err = cli(["labels", "check", path, "--schema", SCHEMA], monkeypatch, capsys)
    assert code == 1
    assert f"{path}:1: 'sentiment' is null: give a value" in out
    assert "missing 'sentiment'" not in out


def test_a_key_given_twice_on_a_label_line_is_reported(tmp_path, monkeypatch, capsys):
    path = tmp_path / "labels.jsonl"
    line = json.dumps(_label("t/c1")).replace('"sentiment": "negative"',
                                              '"sentiment": "negative", "sentiment": "positive"')
    path.write_text(line + "\n")
    code, out, _ = cli(["labels", "check", path, "--schema", SCHEMA], monkeypatch, capsys)
    assert code == 1
    assert f"{path}:1: key 'sentiment' appears more than once" in out


@pytest.mark.parametrize("thread_id", ["/", "   ", " t1", "t\x1b1"])
def test_a_thread_id_that_names_nothing_fails_its_file_and_the_rest_is_ingested(thread_id, tmp_path, monkeypatch,
                                                                               capsys):
    bad = _page(tmp_path / "bad.jsonl", thread_id)
    good = _page(tmp_path / "good.jsonl", "t2")
    db = tmp_path / "s.sqlite"
    code, _, err = cli(["ingest", "--db", db, bad, good], monkeypatch, capsys)
    assert code == 1
    assert f"{bad}:1:" in err and "thread_id" in err and "Traceback" not in err
    code, out, _ = cli(["items", "export", "--db", db, "--format", "jsonl"], monkeypatch, capsys)
    assert code == 0
    assert [json.loads(line)["thread_id"] for line in out.splitlines()] == ["t2"]


def test_agreement_of_a_file_with_itself_warns(tmp_path, monkeypatch, capsys):
    path = tmp_path / "labels.jsonl"
    path.write_text(json.dumps(_label("t/c1")) + "\n")
    code, _, err = cli(["agreement", path, path, "--schema", SCHEMA], monkeypatch, capsys)
    assert code == 0
    assert "are the same file" in err


def test_short_runs_report_a_throughput_that_is_not_zero():
    from pipeline.progress import throughput

    assert throughput(1, 7.3) == "0.14 items/s"
    assert throughput(144, 38.0) == "3.8 items/s"
    assert throughput(1000, 78.9) == "13 items/s"


def test_help_keeps_a_docstring_sentence_together(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = cli(["reclassify", "--help"], monkeypatch, capsys)
    assert code == 0
    text = " ".join(out.split())
    assert "or failed (see threadstance runs), 2 bad config" in text
    assert "(see\n" not in out


@pytest.mark.parametrize("command", [["suggest"], ["labels", "check", "LABELS"], ["data", "stats", "configs/smoke.yaml"],
                                     ["labelstudio", "export", "--out", "OUT"],
                                     ["annotate", "--labels", "LABELS"]])
def test_every_store_option_keeps_a_postgresql_url_whole(command, tmp_path, monkeypatch, capsys):
    labels = tmp_path / "labels.jsonl"
    labels.write_text(json.dumps(_label("t/c1")) + "\n")
    args = [str(labels) if a == "LABELS" else str(tmp_path / "out") if a == "OUT" else a for a in command]
    url = "postgresql://nobody@127.0.0.1:1/none"  # nothing listens on port 1: the URL reaches the store layer
    code, _, err = cli([*args, "--db", url], monkeypatch, capsys)
    assert code != 0
    assert url in err and "cannot reach the PostgreSQL store" in err
    assert "Traceback" not in err


def test_serve_on_an_unreachable_postgresql_store_fails_in_one_line_without_its_password(monkeypatch, capsys):
    code, _, err = cli(["serve", "--db", "postgresql://nobody:secret@127.0.0.1:1/none"], monkeypatch, capsys)
    assert code not in (0, None)
    assert "cannot reach the PostgreSQL store" in err and "nobody:***@" in err and "secret" not in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_labels_check_reads_item_ids_from_a_postgresql_store(postgres_server, tmp_path, monkeypatch, capsys):
    url = postgres_server.new_database()
    page = _page(tmp_path / "page.jsonl", "t1")
    code, _, err = cli(["ingest", "--db", url, page], monkeypatch, capsys)
    assert code == 0, err
    labels = tmp_path / "labels.jsonl"
    labels.write_text(json.dumps(_label("t1/c1")) + "\n" + json.dumps(_label("t1/c9")) + "\n")
    code, out, err = cli(["labels", "check", labels, "--schema", SCHEMA, "--db", url], monkeypatch, capsys)
    assert code == 1
    assert "item ids checked against" in err and "(1 items)" in err
    assert f"{labels}:2: unknown item id 't1/c9'" in out and f"{labels}:1:" not in out


def _store(tmp_path: Path, monkeypatch, capsys) -> Path:  # noqa: ANN001
    db = tmp_path / "s.sqlite"
    code, _, err = cli(["ingest", "--db", db, _page(tmp_path / "page.jsonl", "t1")], monkeypatch, capsys)
    assert code == 0, err
    return db


def test_an_output_that_is_a_pipe_is_written_through_not_replaced(tmp_path, monkeypatch, capsys):
    import os
    import stat
    import threading

    db = _store(tmp_path, monkeypatch, capsys)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)  # ends with the test
    reader.start()
    code, _, err = cli(["items", "export", "--db", db, "--format", "jsonl", "-o", fifo], monkeypatch, capsys)
    reader.join(timeout=20)
    assert code == 0, err
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # /dev/null and /dev/stdout are kept the same way
    assert json.loads(received[0].decode())["thread_id"] == "t1"
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temporary file left


def test_an_output_that_is_a_symbolic_link_writes_the_file_it_points_to(tmp_path, monkeypatch, capsys):
    from pipeline.data.labels import write_text_atomic

    db = _store(tmp_path, monkeypatch, capsys)
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "items.csv"
    target.write_text("old\n")
    link = tmp_path / "items.csv"
    link.symlink_to(target)
    code, _, err = cli(["items", "export", "--db", db, "--format", "csv", "-o", link], monkeypatch, capsys)
    assert code == 0, err
    assert link.is_symlink() and target.read_text().startswith("item_id")
    labels = tmp_path / "labels.jsonl"
    labels.symlink_to(tmp_path / "real" / "labels.jsonl")
    write_text_atomic(labels, "{}\n")
    assert labels.is_symlink() and (tmp_path / "real" / "labels.jsonl").read_text() == "{}\n"
