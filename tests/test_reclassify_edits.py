"""Issue 15, defect 2: a comment edited after it was classified is classified again by the next run."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import yaml
from typer.testing import CliRunner

from pipeline.cli.main import app
from pipeline.store.db import Store

FIXTURE = Path(__file__).parent / "fixtures" / "jsonl" / "comments.jsonl"


def _config(root: Path, model: Path) -> Path:
    cfg = {"inbox": str(root / "inbox"), "processed": str(root / "processed"), "quarantine": str(root / "q"),
           "store": str(root / "store.sqlite"), "model": str(model), "export": str(root / "export"),
           "batch_size": 8, "lock_file": str(root / "run.lock"), "log_file": str(root / "run.log"),
           "device": "cpu"}
    path = root / "schedule.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    (root / "inbox").mkdir()
    return path


def test_edited_comment_is_reclassified_and_old_prediction_kept_as_history(tmp_path, smoke_model, monkeypatch):
    from pipeline.cli import common

    monkeypatch.setattr(common.console, "_width", 300)
    config = _config(tmp_path, smoke_model)
    lines = FIXTURE.read_text(encoding="utf-8").splitlines()
    (tmp_path / "inbox" / "comments.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    first = CliRunner().invoke(app, ["reclassify", str(config)], catch_exceptions=False)
    assert first.exit_code == 0, first.output

    edited = json.loads(lines[0])
    edited["text"] = "Edited: I was wrong, freezing the rates is a good idea and it will work."
    lines[0] = json.dumps(edited)
    (tmp_path / "inbox" / "comments.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    second = CliRunner().invoke(app, ["reclassify", str(config)], catch_exceptions=False)
    assert second.exit_code == 0, second.output

    with Store(tmp_path / "store.sqlite") as store:
        run = store.runs(limit=1)[0]
        assert run["counts"]["classified"] == 1
        assert run["counts"]["reclassified_after_edit"] == 1
        item_id = store.conn.execute("SELECT item_id FROM items WHERE revision = 2").fetchone()[0]
        history = store.prediction_history(item_id)
        assert [h["revision"] for h in history] == [1, 2]
        assert history[1]["text_sha256"] != history[0]["text_sha256"]
        version = run["model_version"]
        assert store.count_pending(version) == 0 and store.count_stale_predictions(version) == 0
    log = (tmp_path / "run.log").read_text(encoding="utf-8")
    assert "1 reclassified after edit" in log
    runs = CliRunner().invoke(app, ["runs", "--db", str(tmp_path / "store.sqlite")])
    assert "reclassified after edit 1" in " ".join(runs.output.split())

    third = CliRunner().invoke(app, ["reclassify", str(config)], catch_exceptions=False)
    assert third.exit_code == 0
    with Store(tmp_path / "store.sqlite") as store:
        assert store.runs(limit=1)[0]["counts"]["classified"] == 0


def test_schema_v1_store_migrates_predictions_to_their_revision(tmp_path):
    from pipeline.store.db import MIGRATIONS

    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0])
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO threads VALUES ('t', 'T', NULL, NULL, NULL, 's', NULL, 'x', 'x')")
    conn.execute("INSERT INTO items(item_id, thread_id, kind, position, depth, text, text_sha256, revision, "
                 "first_seen_at, updated_at) VALUES ('t/c1', 't', 'comment', 0, 0, 'new', 'h2', 2, 'x', 'x')")
    conn.execute("INSERT INTO item_revisions VALUES ('t/c1', 1, 'old', 'h1', 'x')")
    conn.execute("INSERT INTO predictions VALUES ('t/c1', 'm1', 'h1', 'neutral', '{}', NULL, 'x')")
    conn.commit()
    conn.close()
    with Store(path) as store:
        assert store.schema_version == 2
        assert [h["revision"] for h in store.prediction_history("t/c1")] == [1]
        assert store.count_pending("m1") == 1 and store.count_stale_predictions("m1") == 1
        assert store.pending_items("m1")[0]["edited"] == 1
