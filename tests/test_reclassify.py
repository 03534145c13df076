"""`threadstance reclassify` (scheduled job), `runs` and `trends`: end to end on a temporary inbox."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli.main import app
from pipeline.ingest.parse import parse_file
from pipeline.jobs.schedule import BATCH_DELAY_ENV, EX_TEMPFAIL, RunLog, load_schedule, run_reclassify
from pipeline.modeling.folder import ModelFolder

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
THREADSTANCE = [sys.executable, "-m", "pipeline.cli.main"]


def make_schedule(root: Path, model: Path, files: list[Path], batch_size: int = 16) -> Path:
    inbox = root / "inbox"
    inbox.mkdir(parents=True)
    for f in files:
        shutil.copy(f, inbox / f.name)
    cfg = {"inbox": str(inbox), "processed": str(root / "processed"), "quarantine": str(root / "quarantine"),
           "store": str(root / "store.sqlite"), "model": str(model), "export": str(root / "export"),
           "batch_size": batch_size, "lock_file": str(root / "run.lock"), "log_file": str(root / "run.log"),
           "device": "cpu"}
    path = root / "schedule.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def item_count(files: list[Path]) -> int:
    return sum(len(t.items) for f in files for t in parse_file(f)[1])


def db(root: Path) -> sqlite3.Connection:
    return sqlite3.connect(root / "store.sqlite")


def invoke(*args: str):  # noqa: ANN202
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def seed_files(seeds_dir: Path) -> list[Path]:
    return sorted(seeds_dir.glob("*.txt"))


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory, smoke_model: Path, seed_files: list[Path]) -> dict:
    """Seeds plus the HTML and JSONL fixtures in an inbox, one reclassify run through the CLI."""
    root = tmp_path_factory.mktemp("sched")
    files = [*seed_files, FIXTURES / "html" / "cc_caseload_cap.html", FIXTURES / "jsonl" / "comments.jsonl"]
    config = make_schedule(root, smoke_model, files)
    result = invoke("reclassify", str(config))
    return {"root": root, "config": config, "files": files, "result": result, "n_items": item_count(files)}


def test_reclassify_ingests_the_inbox_classifies_every_item_and_exports(first_run: dict, smoke_model: Path) -> None:
    root, result = first_run["root"], first_run["result"]
    assert result.exit_code == 0, result.output
    assert not list((root / "inbox").iterdir())
    assert sorted(p.name for p in (root / "processed").iterdir()) == sorted(f.name for f in first_run["files"])
    version = json.loads((smoke_model / "threadstance.json").read_text())["model_version"]
    with db(root) as conn:
        n_items = conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        assert n_items == first_run["n_items"]
        assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT item_id) FROM predictions WHERE model_version = ?",
                            (version,)).fetchone() == (n_items, n_items)
        record = json.loads(conn.execute("SELECT record FROM predictions LIMIT 1").fetchone()[0])
        assert record["model_version"] == version and "text" not in record  # the item's text is stored once
        assert record["sentiment"]["label"] in record["sentiment"]["probs"]
        assert all(set(head) == {"label", "prob", "probs"} | ({"evidence"} if head["label"] != "none" else set())
                   for head in record["stance"].values())
    parquet = pd.read_parquet(root / "export" / "predictions.parquet")
    csv = pd.read_csv(root / "export" / "predictions.csv")
    assert len(parquet) == len(csv) == first_run["n_items"]
    assert (parquet["model_version"] == version).all()
    assert list(parquet.columns) == list(csv.columns)
    for col in ("item_id", "thread_id", "kind", "author", "posted_at", "sentiment.label", "sentiment.probs.negative",
                "stance.funding.label", "stance.funding.probs.against", "text"):
        assert col in parquet.columns, col
    log_lines = (root / "run.log").read_text().splitlines()
    assert log_lines and all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", line) for line in log_lines)


def test_every_run_is_recorded_with_counts_and_runs_lists_them(first_run: dict, smoke_model: Path) -> None:
    root = first_run["root"]
    again = invoke("reclassify", str(first_run["config"]))  # nothing new: classifies nothing
    assert again.exit_code == 0, again.output
    with db(root) as conn:
        rows = conn.execute("SELECT run_id, status, ended_at, model_version, counts FROM runs ORDER BY run_id").fetchall()
    assert [r[1] for r in rows] == ["ok", "ok"] and all(r[2] for r in rows)
    first, second = json.loads(rows[0][4]), json.loads(rows[1][4])
    assert first["classified"] == first["items_new"] == first_run["n_items"]
    assert first["files_ingested"] == len(first_run["files"])
    assert second["classified"] == 0 and second["files_ingested"] == 0
    listing = invoke("runs", "--db", str(root / "store.sqlite"))
    assert listing.exit_code == 0
    assert "reclassify" in listing.stdout and "ok" in listing.stdout and rows[0][3] in listing.stdout


def test_trends_prints_label_shares_per_month_and_writes_a_png(first_run: dict) -> None:
    root = first_run["root"]
    png = root / "trends.png"
    result = invoke("trends", "--db", str(root / "store.sqlite"), "--out", str(png))
    assert result.exit_code == 0, result.output
    assert "2016-06" in result.stdout and "2023-05" in result.stdout  # a seed thread and the JSONL fixture
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dry_run_says_what_would_happen_and_changes_nothing(tmp_path: Path, smoke_model: Path,
                                                           seed_files: list[Path]) -> None:
    config = make_schedule(tmp_path, smoke_model, seed_files[:2])
    (tmp_path / "inbox" / "junk.pdf").write_bytes(b"%PDF-1.4 binary")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = invoke("reclassify", str(config), "--dry-run")
    assert result.exit_code == 0, result.output
    assert f"would classify {item_count(seed_files[:2])} items" in result.stdout
    assert "would quarantine" in result.stdout and "junk.pdf" in result.stdout
    assert seed_files[0].name in result.stdout
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_a_corrupt_inbox_file_is_quarantined_while_the_rest_are_processed(tmp_path: Path, smoke_model: Path,
                                                                          seed_files: list[Path]) -> None:
    config = make_schedule(tmp_path, smoke_model, seed_files[:1])
    (tmp_path / "inbox" / "a_corrupt.jsonl").write_text('{"thread_title": "x", "text": "ok"}\n{"text": \n')
    (tmp_path / "inbox" / "z_binary.txt").write_bytes(b"\x00\x01\x02 not text")
    result = invoke("reclassify", str(config))
    assert result.exit_code == 1  # partial: some input failed, the rest was processed (README)
    for name in ("a_corrupt.jsonl", "z_binary.txt"):
        assert (tmp_path / "quarantine" / name).is_file()
        assert name in (tmp_path / "quarantine" / f"{name}.error.txt").read_text()
    assert [p.name for p in (tmp_path / "processed").iterdir()] == [seed_files[0].name]
    with db(tmp_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM predictions").fetchone()[0] == item_count(seed_files[:1])
        status, errors = conn.execute("SELECT status, errors FROM runs").fetchone()
    assert status == "partial" and len(json.loads(errors)) == 2


def test_a_new_model_version_reclassifies_all_items_and_keeps_the_old_predictions(
        tmp_path: Path, smoke_model: Path, seed_files: list[Path]) -> None:
    config = make_schedule(tmp_path, smoke_model, seed_files[:1])
    cfg = load_schedule(config)
    first = run_reclassify(cfg, RunLog(None))
    with db(tmp_path) as conn:
        old = conn.execute("SELECT item_id, model_version, record, predicted_at FROM predictions "
                           "ORDER BY item_id").fetchall()
    new_model = tmp_path / "model_v2"
    shutil.copytree(smoke_model, new_model, ignore=shutil.ignore_patterns("*.onnx", "*.onnx.json"))
    folder = ModelFolder(new_model)  # a new model version, written as a retrain or `calibrate` would
    meta = folder.update_meta(model_version="v2-" + folder.recorded_version())
    second = run_reclassify(cfg.model_copy(update={"model": str(new_model)}), RunLog(None))
    n = item_count(seed_files[:1])
    assert first.counts["classified"] == second.counts["classified"] == n
    assert second.model_version == meta["model_version"]
    with db(tmp_path) as conn:
        counts = dict(conn.execute("SELECT model_version, COUNT(*) FROM predictions GROUP BY model_version"))
        kept = conn.execute("SELECT item_id, model_version, record, predicted_at FROM predictions "
                            "WHERE model_version = ? ORDER BY item_id", (first.model_version,)).fetchall()
    assert counts == {first.model_version: n, meta["model_version"]: n}
    assert kept == old
    export = pd.read_parquet(tmp_path / "export" / "predictions.parquet")
    assert (export["model_version"] == meta["model_version"]).all()


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory: pytest.TempPathFactory, smoke_model: Path, seed_files: list[Path]) -> dict:
    """A slow run (batch size 2, a pause after each batch) killed with SIGKILL in the middle of
    classification; a second run is started while the first holds the lock."""
    root = tmp_path_factory.mktemp("killed")
    config = make_schedule(root, smoke_model, seed_files, batch_size=2)
    env = {**os.environ, BATCH_DELAY_ENV: "0.25", "PYTHONPATH": str(REPO)}
    first = subprocess.Popen([*THREADSTANCE, "reclassify", str(config), "--quiet"], cwd=REPO, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 90
        done = 0
        while time.time() < deadline and first.poll() is None:
            if (root / "store.sqlite").exists():
                try:
                    with db(root) as conn:
                        done = conn.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
                except sqlite3.OperationalError:
                    done = 0
            if done >= 6:
                break
            time.sleep(0.1)
        assert first.poll() is None and done >= 6, first.communicate()
        started = time.monotonic()
        second = subprocess.run([*THREADSTANCE, "reclassify", str(config)], cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=60)
        second_seconds = time.monotonic() - started
        assert first.poll() is None, "the slow run ended before it could be killed"
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    with db(root) as conn:
        at_kill = conn.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
        status = conn.execute("SELECT status FROM runs ORDER BY run_id").fetchall()
    return {"root": root, "config": config, "second": second, "second_seconds": second_seconds,
            "at_kill": at_kill, "status_at_kill": [s[0] for s in status], "n_items": item_count(seed_files),
            "returncode": first.returncode}


def test_a_second_concurrent_run_exits_75_at_once(killed_run: dict) -> None:
    second = killed_run["second"]
    assert second.returncode == EX_TEMPFAIL
    assert "lock" in second.stderr and "run.lock" in second.stderr
    assert killed_run["second_seconds"] < 20  # no model load: it only starts the CLI and tries the lock
    assert "not started" in (killed_run["root"] / "run.log").read_text()


def test_kill_9_mid_run_then_a_rerun_leaves_exactly_one_prediction_per_item(killed_run: dict) -> None:
    root, n = killed_run["root"], killed_run["n_items"]
    assert killed_run["returncode"] == -signal.SIGKILL
    assert 0 < killed_run["at_kill"] < n
    assert killed_run["status_at_kill"] == ["running"]
    cfg = load_schedule(killed_run["config"]).model_copy(update={"batch_size": 32})
    summary = run_reclassify(cfg, RunLog(root / "run.log"))
    assert summary.status == "ok"
    assert summary.counts["classified"] == n - killed_run["at_kill"]
    with db(root) as conn:
        assert conn.execute("SELECT COUNT(*) FROM items").fetchone()[0] == n
        assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT item_id) FROM predictions").fetchone() == (n, n)
        assert conn.execute("SELECT COUNT(*) FROM items i WHERE NOT EXISTS "
                            "(SELECT 1 FROM predictions p WHERE p.item_id = i.item_id)").fetchone()[0] == 0
        statuses = [r[0] for r in conn.execute("SELECT status FROM runs ORDER BY run_id")]
    assert statuses == ["killed", "ok"]
    assert len(pd.read_csv(root / "export" / "predictions.csv")) == n
