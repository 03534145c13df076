"""Round 4 probes of the reading and reporting commands: control characters in user text, markup in
annotator names, outputs that would replace a store, JSON line separators, implausible dates, and small
contract breaks (``runs``, ``export predictions``, ``items``, ``data stats``)."""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

from conftest import cli  # the console entry point as a test helper

from pipeline.config.run import load_config
from pipeline.data.labels import LabelRecord, write_labels

REPO = Path(__file__).resolve().parent.parent
ESC = "\x1b"


def _ingest(tmp_path: Path, records: list[dict], monkeypatch, capsys, name: str = "page.jsonl") -> Path:  # noqa: ANN001
    page = tmp_path / name
    page.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    db = tmp_path / "s.sqlite"
    code, _, err = cli(["ingest", "--db", db, page], monkeypatch, capsys)
    assert code == 0, err
    return db


def test_control_characters_in_stored_text_never_reach_the_terminal(tmp_path, monkeypatch, capsys):
    db = _ingest(tmp_path, [{"thread_id": "t", "author": f"{ESC}[2J{ESC}[31mEve", "text": f"a{ESC}]0;TITLE\x07 b"}],
                 monkeypatch, capsys)
    code, out, err = cli(["items", "show", "--db", db], monkeypatch, capsys)
    assert code == 0, err
    assert ESC not in out and "\x07" not in out
    assert "\\x1b[2J\\x1b[31mEve" in out and "a\\x1b]0;TITLE\\x07 b" in out


def test_the_console_shows_control_characters_in_plain_and_table_output(monkeypatch):
    from rich.table import Table

    from pipeline.cli.common import SafeConsole

    buf = io.StringIO()
    con = SafeConsole(file=buf, width=120, force_terminal=True)
    con.print(f"wrote {ESC}[2Jfile", markup=False)
    table = Table(title=f"t{ESC}]0;x")
    table.add_column("c")
    table.add_row(f"cell{ESC}[5m")
    con.print(table)
    shown = buf.getvalue().replace(f"{ESC}[0m", "").replace(f"{ESC}[1m", "").replace(f"{ESC}[3m", "")
    assert ESC not in shown  # rich's own styling removed above; the user's ESC codes are shown as text
    assert "\\x1b[2Jfile" in shown and "cell\\x1b[5m" in shown


def _label(item: str, sentiment: str, annotator: str) -> LabelRecord:
    return LabelRecord(item_id=item, sentiment=sentiment, annotator=annotator, labelled_at="2026-12-06T10:00:00+00:00",
                       stance={t: "none" for t in ("blame_management", "funding", "nqsw_access", "ofsted")})


def test_agreement_prints_annotator_names_and_paths_literally(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "x[red]"
    folder.mkdir()
    write_labels(folder / "a.jsonl", [_label("t/c1", "negative", "[bold red]A"), _label("t/c2", "neutral", "[bold red]A")])
    write_labels(folder / "b[red].jsonl", [_label("t/c1", "positive", "[/]"), _label("t/c2", "neutral", "[/]")])
    code, out, err = cli(["agreement", folder / "a.jsonl", folder / "b[red].jsonl",
                          "--schema", REPO / "configs/labels.yaml"], monkeypatch, capsys)
    assert code == 0, err
    assert "annotator [bold red]A" in out and "annotator [/]" in out and "b[red].jsonl" in out
    assert "MarkupError" not in out + err


def test_an_output_file_never_replaces_a_store(tmp_path, monkeypatch, capsys):
    db = _ingest(tmp_path, [{"thread_id": "t", "text": "a comment"}], monkeypatch, capsys)
    before = db.read_bytes()
    code, _, err = cli(["items", "export", "--db", db, "-o", db], monkeypatch, capsys)
    assert code == 2 and "SQLite database" in err and str(db) in err
    code, _, err = cli(["export", "predictions", "--db", db, "--model", "any", "-o", db, "--format", "csv"],
                       monkeypatch, capsys)
    assert code == 2
    assert db.read_bytes() == before


def test_jsonl_strings_may_hold_unicode_line_separators(tmp_path, monkeypatch, capsys):
    db = _ingest(tmp_path, [{"thread_id": "t", "text": "one\u2028two\u2029three\x85four"},
                            {"thread_id": "t", "text": "second"}], monkeypatch, capsys)
    code, out, _ = cli(["items", "export", "--db", db], monkeypatch, capsys)
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert code == 0 and len(rows) == 2 and rows[0]["text"].startswith("one") and rows[0]["text"].endswith("four")


def test_invalid_json_names_the_column(tmp_path, monkeypatch, capsys):
    page = tmp_path / "bad.jsonl"
    page.write_text('{"thread_id": "t", "text": "unterminated\n', encoding="utf-8")
    code, _, err = cli(["ingest", "--db", tmp_path / "s.sqlite", page], monkeypatch, capsys)
    assert code == 1 and "bad.jsonl:1" in err and "(column " in err


def test_a_posting_date_outside_1900_to_2100_refuses_that_file_only(tmp_path, monkeypatch, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "far.jsonl").write_text(json.dumps({"thread_id": "far", "text": "x",
                                                           "posted_at": "9999-12-31T23:59:59"}) + "\n")
    (tmp_path / "in" / "ok.jsonl").write_text(json.dumps({"thread_id": "ok", "text": "y",
                                                          "posted_at": "2016-06-28T13:00:00"}) + "\n")
    db = tmp_path / "s.sqlite"
    code, out, err = cli(["ingest", "--db", db, tmp_path / "in"], monkeypatch, capsys)
    assert code == 1 and "far.jsonl:1" in err and "9999" in err and "outside 1900" in err
    code, out, _ = cli(["items", "export", "--db", db], monkeypatch, capsys)
    assert [json.loads(line)["thread_id"] for line in out.splitlines()] == ["ok"]


def test_runs_refuses_db_and_config_together(tmp_path, monkeypatch, capsys):
    code, _, err = cli(["runs", "--db", tmp_path / "s.sqlite", "--config", REPO / "configs/schedule.yaml"],
                       monkeypatch, capsys)
    assert code == 2 and "not both" in err


def test_export_predictions_of_an_unknown_model_is_an_error_not_an_empty_file(tmp_path, monkeypatch, capsys):
    db = _ingest(tmp_path, [{"thread_id": "t", "text": "a comment"}], monkeypatch, capsys)
    out = tmp_path / "p.csv"
    code, _, err = cli(["export", "predictions", "--db", db, "--model", "nosuch", "-o", out, "--format", "csv"],
                       monkeypatch, capsys)
    assert code == 2 and "nosuch" in err and not out.exists()


def test_items_options_are_validated_and_an_empty_csv_keeps_its_header(tmp_path, monkeypatch, capsys):
    db = _ingest(tmp_path, [{"thread_id": "t", "text": "a comment"}], monkeypatch, capsys)
    code, _, err = cli(["items", "show", "--db", db, "--limit", "-5"], monkeypatch, capsys)
    assert code == 2
    code, _, err = cli(["items", "export", "--db", db, "--kind", "bogus"], monkeypatch, capsys)
    assert code == 2 and "bogus" in err
    code, out, _ = cli(["items", "export", "--db", db, "--format", "csv", "--thread", "nosuch"], monkeypatch, capsys)
    assert code == 0 and out.splitlines()[0].startswith("item_id,")


def test_data_stats_counts_the_corpus_items_training_uses(shared_dir: Path):
    from pipeline.data.stats import describe

    os.chdir(REPO)
    smoke = describe(load_config(REPO / "configs/smoke.yaml", [f"paths.shared={shared_dir}"]))
    assert smoke.sizes["train"] == 48
    part = describe(load_config(REPO / "configs/default.yaml",
                                [f"paths.shared={shared_dir}", "data.corpus_fraction=0.5"]))
    assert part.sizes["train"] == round(0.5 * part.sizes["corpus"])


def test_models_list_of_a_missing_folder_or_a_file_is_an_error(tmp_path, monkeypatch, capsys):
    code, _, err = cli(["models", "list", "--dir", tmp_path / "nosuchdir"], monkeypatch, capsys)
    assert code == 2 and "no such folder" in err
    (tmp_path / "afile").write_text("x")
    code, _, err = cli(["models", "list", "--dir", tmp_path / "afile"], monkeypatch, capsys)
    assert code == 2 and "not a folder" in err


def test_trends_since_after_until_says_so():
    import pytest

    from pipeline.errors import UserError
    from pipeline.reporting.trends import select_items

    with pytest.raises(UserError, match="--since 2024-01-01 is after --until 2023-01-01"):
        select_items([], "year", since="2024-01-01", until="2023-01-01")
