"""Reliability probes from issue 15: documented exit codes, one-line errors, no tracebacks."""
from __future__ import annotations

import sys

import pytest
from conftest import cli  # the console entry point as a test helper


@pytest.mark.parametrize("args", [["nosuch"], ["ingest", "--bogus", "x"], ["ingest"], ["predict"],
                                  ["evaluate", "--cv", "notanumber"], ["reclassify", "a", "b", "c"]])
def test_usage_errors_exit_2_with_one_line_and_no_traceback(args, monkeypatch, capsys):
    code, _, err = cli(args, monkeypatch, capsys)
    assert code == 2
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err


def test_unexpected_error_is_one_line_exit_1_and_debug_shows_traceback(monkeypatch, capsys):
    from pipeline.cli import main as main_mod

    def boom(*_a, **_k):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(main_mod, "app", boom)
    code, _, err = cli(["runs"], monkeypatch, capsys)
    assert code == 1 and "kaboom" in err and "Traceback" not in err
    with pytest.raises(RuntimeError):
        monkeypatch.setattr(sys, "argv", ["threadstance", "--debug", "runs"])
        main_mod.main()


# ---- defect 3: encoding -------------------------------------------------------------------------
DUMP = """Café workers say “no” to the Ofsted plan

A short standfirst

The first body paragraph, with a café in it.

1 Response to Café workers say “no” to the Ofsted plan

  1. Reader One June 28, 2016 at 1:00 pm #

    A first comment about the café ✓
"""


def _ingest(store_path, *paths):
    from pipeline.store.db import Store
    from pipeline.store.load import ingest_file

    with Store(store_path) as store:
        return [ingest_file(store, p) for p in paths]


def test_cut_final_utf8_character_is_read_as_utf8_with_offset_reported(tmp_path):
    data = DUMP.encode("utf-8")
    assert data.endswith("✓\n".encode())
    cut = data[:-3]  # "✓" is 3 bytes: drop the newline and the last byte of the check mark
    whole, broken = tmp_path / "a" / "page.txt", tmp_path / "b" / "page.txt"
    for p, d in ((whole, data), (broken, cut)):
        p.parent.mkdir()
        p.write_bytes(d)
    (ok,) = _ingest(tmp_path / "s1.sqlite", whole)
    (damaged,) = _ingest(tmp_path / "s2.sqlite", broken)
    assert damaged.ok and damaged.encoding == "utf-8"
    assert any(f"byte offset {len(data) - 4}" in w and str(broken) in w for w in damaged.warnings), damaged.warnings
    assert damaged.thread_ids == ok.thread_ids  # the thread id does not depend on the damage
    from pipeline.store.db import Store

    with Store(tmp_path / "s2.sqlite") as store:
        texts = [r["text"] for r in store.conn.execute("SELECT text FROM items")]
    assert not any("Ã" in t or "â€" in t for t in texts)  # no cp1252 mojibake
    assert "A first comment about the café" in texts


def test_thread_id_is_the_same_whether_the_file_is_utf8_or_cp1252(tmp_path):
    text = DUMP.replace(" ✓", "")
    a, b = tmp_path / "a" / "page.txt", tmp_path / "b" / "page.txt"
    a.parent.mkdir()
    b.parent.mkdir()
    a.write_bytes(text.encode("utf-8"))
    b.write_bytes(text.encode("cp1252"))
    (ra,) = _ingest(tmp_path / "s1.sqlite", a)
    (rb,) = _ingest(tmp_path / "s2.sqlite", b)
    assert ra.ok and rb.ok and rb.encoding == "cp1252"
    assert ra.thread_ids == rb.thread_ids


# ---- defect 4: per-file isolation ----------------------------------------------------------------
@pytest.mark.parametrize("name,content", [
    ("huge.jsonl", '{"thread_id": "t", "text": "x", "author": ' + "9" * 5000 + "}\n"),
    ("deep.jsonl", '{"thread_id": "t", "text": ' + "[" * 100_000 + "]" * 100_000 + "}\n"),
    ("deep.html", "<html><body><article><div class='entry-content'>" + "<div>" * 50_000 + "<p>x</p>"
     + "</div>" * 50_000 + "</div></article></body></html>"),
])
def test_parser_crash_skips_only_that_file(tmp_path, name, content):
    good = tmp_path / "good.txt"
    good.write_text(DUMP, encoding="utf-8")
    bad = tmp_path / name
    bad.write_text(content, encoding="utf-8")
    results = _ingest(tmp_path / "s.sqlite", bad, good)
    assert results[1].ok
    if not results[0].ok:
        assert str(bad) in results[0].error and "\n" not in results[0].error


def test_unreadable_file_and_store_failure_skip_the_file_and_roll_back(tmp_path, monkeypatch):
    import sqlite3

    from pipeline.store.db import Store

    good = tmp_path / "good.txt"
    good.write_text(DUMP, encoding="utf-8")
    unreadable = tmp_path / "unreadable.txt"
    unreadable.write_text(DUMP, encoding="utf-8")
    real_read = type(unreadable).read_bytes

    def read_bytes(self):
        if self.name == "unreadable.txt":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self)

    monkeypatch.setattr(type(unreadable), "read_bytes", read_bytes)
    results = _ingest(tmp_path / "s.sqlite", unreadable, good)
    assert not results[0].ok and "Permission denied" in results[0].error and results[1].ok

    # disk full in the middle of a file: rolled back, one clear line, the store still works afterwards
    other = tmp_path / "other.txt"
    other.write_text(DUMP.replace("Café workers", "Bakery workers"), encoding="utf-8")
    real_write = Store.write_thread

    def full(self, thread):
        real_write(self, thread)
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Store, "write_thread", full)
    (res,) = _ingest(tmp_path / "s.sqlite", other)
    assert not res.ok and "disk full" in res.error and "cannot rollback" not in res.error
    monkeypatch.setattr(Store, "write_thread", real_write)
    with Store(tmp_path / "s.sqlite") as store:
        assert store.conn.execute("SELECT COUNT(*) FROM threads").fetchone()[0] == 1
    (res,) = _ingest(tmp_path / "s.sqlite", other)
    assert res.ok


def test_read_only_store_is_a_clear_one_line_error(tmp_path):
    from pipeline.store.db import Store
    from pipeline.store.load import ingest_file

    good = tmp_path / "good.txt"
    good.write_text(DUMP, encoding="utf-8")
    with Store(tmp_path / "s.sqlite") as store:
        store.conn.execute("PRAGMA query_only = ON")  # what a read-only file gives, also as root
        res = ingest_file(store, good)
    assert not res.ok and "read-only" in res.error and str(tmp_path / "s.sqlite") in res.error


# ---- defect 6: paths -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["..", ".", ".hidden", "-x", "a/b"])
def test_run_name_that_is_not_a_plain_folder_name_is_a_config_error(tmp_path, name):
    import yaml

    from pipeline.config.run import load_config
    from pipeline.errors import ConfigError

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"run_name": name}), encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert "run_name" in str(exc.value) and str(path) in str(exc.value)


def test_run_name_dotdot_via_set_exits_2(tmp_path, monkeypatch, capsys):
    code, _, err = cli(["train", "configs/smoke.yaml", "--set", "run_name=.."], monkeypatch, capsys)
    assert code == 2 and "run_name" in err and "Traceback" not in err


def test_evaluate_report_folder_never_comes_from_metrics_json(tmp_path):
    import json

    from pipeline.evaluation.evaluate import default_report_dir

    model = tmp_path / "models" / "mine"
    model.mkdir(parents=True)
    (model / "metrics.json").write_text(json.dumps({"run_name": "../../escaped"}), encoding="utf-8")
    assert default_report_dir(model, tmp_path / "reports") == tmp_path / "reports" / "mine"
    from pipeline.errors import UserError

    with pytest.raises(UserError):
        default_report_dir(tmp_path / "models" / ".hidden", tmp_path / "reports")


# ---- defect 7: rich markup in user strings --------------------------------------------------------
def test_markup_in_path_thread_id_and_text_is_printed_literally(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "odd [bold] a[" / "]b"  # the path contains "[bold]" and "[/]"
    folder.mkdir(parents=True)
    page = folder / "x[red].jsonl"
    page.write_text('{"thread_id": "[bold]t[/]", "author": "[red]a", "text": "closing [/] tag [bold]x"}\n'
                    '{"thread_id": "[/]2", "text": "ok"}\n', encoding="utf-8")
    db = folder / "s[bold].sqlite"
    code, out, err = cli(["ingest", "--db", db, page], monkeypatch, capsys)
    assert code == 0, err
    assert "MarkupError" not in err + out
    code, out, err = cli(["items", "show", "--db", db], monkeypatch, capsys)
    assert code == 0, err
    assert "closing [/] tag [bold]x" in out and "[bold]t[/]/c1" in out
    bad = folder / "bad[bold].jsonl"
    bad.write_text('{"thread_id": "[/]2", "text": 5}\n', encoding="utf-8")
    code, out, err = cli(["ingest", "--db", db, bad], monkeypatch, capsys)
    assert code == 1 and "a[/]b/bad[bold].jsonl" in err and "MarkupError" not in err
    code, out, err = cli(["runs", "--db", folder / "[bold]nope.sqlite"], monkeypatch, capsys)
    assert code == 2 and "a[/]b/[bold]nope.sqlite" in err


# ---- defect 8: device, non-UTF-8 config ----------------------------------------------------------
def test_device_cuda_without_cuda_is_one_line_exit_2(monkeypatch, capsys, tmp_path):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    (tmp_path / "t.txt").write_text(DUMP, encoding="utf-8")
    code, _, err = cli(["predict", tmp_path / "t.txt", "--model", tmp_path / "nomodel", "--device", "cuda"],
                       monkeypatch, capsys)
    assert code == 2 and "CUDA is not available" in err and "Traceback" not in err
    code, _, err = cli(["train", "configs/smoke.yaml", "--set", "training.device=cuda"], monkeypatch, capsys)
    assert code == 2 and "training.device" in err and "CUDA" in err


def test_non_utf8_yaml_config_names_the_file_and_exits_2(tmp_path, monkeypatch, capsys):
    path = tmp_path / "c.yaml"
    path.write_bytes("run_name: caf\u00e9\n".encode("latin-1"))
    code, _, err = cli(["train", path], monkeypatch, capsys)
    assert code == 2 and str(path) in err and "UTF-8" in err and "Traceback" not in err


# ---- defect 9: CSV formulas, late NUL bytes --------------------------------------------------------
def test_csv_export_neutralises_spreadsheet_formulas(tmp_path, monkeypatch, capsys):
    import csv
    import io

    page = tmp_path / "f.jsonl"
    page.write_text('{"thread_id": "t", "author": "@evil", "text": "=HYPERLINK(\\"http://x\\")"}\n'
                    '{"thread_id": "t", "text": "+1 agree"}\n{"thread_id": "t", "text": "-- minus"}\n',
                    encoding="utf-8")
    db = tmp_path / "s.sqlite"
    assert cli(["ingest", "--db", db, page], monkeypatch, capsys)[0] == 0
    code, out, _ = cli(["items", "export", "--db", db, "--format", "csv"], monkeypatch, capsys)
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    texts = [r["text"] for r in rows]
    assert texts == ["'=HYPERLINK(\"http://x\")", "'+1 agree", "'-- minus"]
    assert rows[0]["author"] == "'@evil"
    from pipeline.csvsafe import neutralise

    assert neutralise(-3) == -3 and neutralise("ok") == "ok"


def test_nul_byte_after_the_first_8kb_refuses_the_file_with_its_offset(tmp_path):
    data = DUMP.encode("utf-8")
    data = data[:-1] + b" " * 9000 + b"\x00tail\n"
    bad = tmp_path / "late_nul.txt"
    bad.write_bytes(data)
    (res,) = _ingest(tmp_path / "s.sqlite", bad)
    nul_at = data.index(bytes(1))
    assert not res.ok and f"offset {nul_at}" in res.error
    from pipeline.store.db import Store

    with Store(tmp_path / "s.sqlite") as store:
        assert store.conn.execute("SELECT COUNT(*) FROM items WHERE instr(text, char(0)) > 0").fetchone()[0] == 0
        assert store.counts()["threads"] == 0


# ---- defect 10: predict - --input-format jsonl ---------------------------------------------------
def test_predict_stdin_with_input_format_jsonl_parses_the_records():
    import io

    from pipeline.cli.predict_cmd import items_from_stdin

    stream = io.StringIO('{"thread_id": "t", "comment_id": "1", "text": "first"}\n'
                         '{"thread_id": "t", "parent": "1", "text": "a reply"}\n')
    items = items_from_stdin(stream, "jsonl")
    assert [i["text"] for i in items] == ["first", "a reply"]
    assert items[1]["kind"] == "reply"
    plain = items_from_stdin(io.StringIO("one\ntwo\n"), "auto")
    assert [i["text"] for i in plain] == ["one", "two"]


def test_predict_stdin_with_bad_jsonl_is_one_line_exit_1(monkeypatch, capsys, tmp_path):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO('{"thread_id": "t", "text": 5}\n'))
    code, _, err = cli(["predict", "-", "--input-format", "jsonl", "--model", tmp_path], monkeypatch, capsys)
    assert code == 1 and "<stdin>:1" in err and "Traceback" not in err


# ---- defect 11: evaluate on a fresh checkout -------------------------------------------------------
def test_eval_set_on_a_fresh_store_ingests_the_seeds_first(tmp_path, seeds_dir):
    from pipeline.config.schema import load_schema
    from pipeline.evaluation.goldset import load_eval_set, read_gold

    schema = load_schema("configs/labels.yaml")
    gold = read_gold("data/gold/gold.jsonl", schema)
    db = tmp_path / "fresh.sqlite"
    logged = []
    es = load_eval_set(gold, schema, db, seeds=seeds_dir, log=logged.append)
    assert len(es.ids) == len(gold) and all(es.texts)
    assert logged and "ingesting the seed threads" in logged[0]
    logged.clear()
    load_eval_set(gold, schema, db, seeds=seeds_dir, log=logged.append)  # second time: nothing to ingest
    assert logged == []


# ---- defect 12: progress without a terminal ------------------------------------------------------
def test_ingest_without_a_terminal_prints_plain_progress_lines(tmp_path, monkeypatch, capsys):
    for n in range(6):
        (tmp_path / f"p{n}.txt").write_text(DUMP.replace("Café workers", f"Workers {n}"), encoding="utf-8")
    code, _, err = cli(["ingest", "--db", tmp_path / "s.sqlite", *sorted(tmp_path.glob("*.txt"))],
                       monkeypatch, capsys)
    assert code == 0
    lines = [line for line in err.splitlines() if line.startswith("ingest: ")]
    assert lines and lines[-1].startswith("ingest: 6/6 files (100%)") and "files/s, ETA" in lines[-1]
    assert "\x1b[" not in err and "━" not in err  # no bar drawing


def test_plain_progress_reports_done_rate_and_eta():
    import io

    from pipeline.progress import PlainProgress

    stream = io.StringIO()
    p = PlainProgress(100, "classify", "items", every=25, stream=stream)
    for _ in range(10):
        p.advance(10)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4 and lines[-1].startswith("classify: 100/100 items (100%)") and "ETA" in lines[0]


def test_predict_without_a_terminal_logs_progress_per_batch(monkeypatch, capsys):
    from pipeline.cli import predict_cmd
    from pipeline.modeling.outputs import Prediction

    def pred(text: str) -> Prediction:
        # every stance "none", so no evidence is searched and no model call is needed
        return Prediction(sentiment=text, sentiment_probs={text: 1.0}, stance={"ofsted": "none"},
                          stance_probs={"ofsted": {"none": 1.0}})

    class Fake:
        model_version = "v-test"
        none_class = "none"

        class spec:
            include_parent = False

        def predict_batches(self, texts, parents):
            for start in range(0, len(texts), 100):
                idx = list(range(start, min(start + 100, len(texts))))
                yield idx, [pred(texts[i].upper()) for i in idx]

    items = [{"item_id": f"i{i}", "text": f"t{i}"} for i in range(1000)]
    out = predict_cmd.classify_with_progress(Fake(), items, None)
    assert [r["item_id"] for r in out] == [f"i{i}" for i in range(1000)]
    assert out[5]["sentiment"]["label"] == "T5" and out[5]["model_version"] == "v-test"
    err = capsys.readouterr().err
    assert "classify: 1000/1000 items (100%)" in err
