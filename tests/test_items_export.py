"""`threadstance items export --format jsonl|csv|parquet` writes every stored item with its thread title."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli.items_cmd import EXPORT_COLUMNS
from pipeline.cli.main import app
from pipeline.store.db import Store
from pipeline.store.load import ingest_paths

CC = "communitycare.co.uk/2019/03/14/council-trials-caseload-cap-newly-qualified-social-workers"


@pytest.fixture(scope="module")
def db(tmp_path_factory, fixtures_dir) -> Path:
    path = tmp_path_factory.mktemp("export") / "store.sqlite"
    with Store(path) as store:
        report = ingest_paths(store, [fixtures_dir / "html", fixtures_dir / "jsonl"])
        assert not report.failed
    return path


def _export(db: Path, *args: str):
    result = CliRunner().invoke(app, ["items", "export", "--db", str(db), *args])
    assert result.exit_code == 0, result.output
    return result


def _check_records(records: list[dict]) -> None:
    assert len(records) == 31  # 17 paragraphs, 10 comments, 4 replies
    assert set(records[0]) == {*EXPORT_COLUMNS, "thread_title"}
    by_id = {r["item_id"]: r for r in records}
    reply = by_id[f"{CC}/c1.r1.r1"]
    assert reply["kind"] == "reply" and reply["parent_id"] == f"{CC}/c1.r1" and int(reply["depth"]) == 2
    assert reply["author"] == "Frontline Fran" and reply["posted_at"] == "2019-03-15T07:15:00+00:00"
    assert reply["thread_title"] == "Council trials caseload cap for newly qualified social workers"
    assert by_id[f"{CC}/p6"]["text"].startswith("• A ceiling of twelve children")


def test_export_jsonl_to_file(db, tmp_path):
    out = tmp_path / "items.jsonl"
    _export(db, "--format", "jsonl", "--out", str(out))
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    _check_records(records)
    assert {tuple(r["flags"]) for r in records} >= {("standfirst",), ("heading",), ("list",), ()}


def test_export_jsonl_to_stdout(db):
    result = _export(db, "--format", "jsonl", "--kind", "reply")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 4 and {r["kind"] for r in records} == {"reply"}


def test_export_csv(db, tmp_path):
    out = tmp_path / "items.csv"
    _export(db, "--format", "csv", "--out", str(out))
    frame = pd.read_csv(out, keep_default_na=False)
    _check_records(frame.to_dict("records"))
    assert json.loads(frame.set_index("item_id").loc[f"{CC}/p4", "flags"]) == ["heading"]
    assert "\n" in frame.set_index("item_id").loc[f"{CC}/c1", "text"]  # multi-paragraph text survives quoting


def test_export_parquet(db, tmp_path):
    out = tmp_path / "items.parquet"
    _export(db, "--format", "parquet", "--out", str(out), "--thread", CC)
    frame = pd.read_parquet(out)
    assert len(frame) == 13 and set(frame["thread_id"]) == {CC}
    assert list(frame["item_id"])[:2] == [f"{CC}/p0", f"{CC}/p1"]  # page order
    assert frame.set_index("item_id").loc[f"{CC}/c1.r1", "parent_id"] == f"{CC}/c1"
