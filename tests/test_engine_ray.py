"""``reclassify --engine ray``: batch inference on Ray Data gives the same stored records as the local engine,
and a run killed with ``kill -9`` while Ray works leaves nothing half written; the next run does the rest."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipeline.jobs.schedule import RunLog, load_schedule, run_reclassify
from pipeline.store.db import Store

pytest.importorskip("ray", reason="the Ray engine needs the ray extra: pip install '.[ray]'")

REPO = Path(__file__).resolve().parent.parent


def _config(root: Path, model: Path, files: list[Path], engine: str) -> Path:
    inbox = root / "inbox"
    inbox.mkdir(parents=True)
    for f in files:
        (inbox / f.name).write_bytes(f.read_bytes())
    cfg = {"inbox": str(inbox), "processed": str(root / "processed"), "quarantine": str(root / "quarantine"),
           "store": str(root / "store.sqlite"), "model": str(model), "export": str(root / "export"),
           "batch_size": 8, "lock_file": str(root / "run.lock"), "log_file": str(root / "run.log"),
           "device": "cpu", "precision": "fp32", "engine": engine, "actors": 1}
    path = root / "schedule.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def _predictions(store: Path) -> dict[str, tuple]:
    with Store(store) as s:
        return {r[0]: tuple(r[1:]) for r in s.db.exec_driver_sql(
            "SELECT item_id, model_version, revision, text_sha256, sentiment, record FROM predictions")}


def test_ray_engine_stores_the_same_records_as_the_local_engine(tmp_path: Path, smoke_model: Path,
                                                                seeds_dir: Path) -> None:
    files = sorted(seeds_dir.glob("*.txt"))[:2]
    results = {}
    for engine in ("local", "ray"):
        cfg = load_schedule(_config(tmp_path / engine, smoke_model, files, engine))
        summary = run_reclassify(cfg, RunLog(tmp_path / engine / "run.log"))
        assert summary.status == "ok" and summary.counts["classified"] > 0
        results[engine] = _predictions(tmp_path / engine / "store.sqlite")
    local, ray_ = results["local"], results["ray"]
    assert local.keys() == ray_.keys()
    for item_id, row in local.items():
        other = ray_[item_id]
        assert row[:4] == other[:4], item_id  # model_version, revision, text hash, sentiment label
        a, b = json.loads(row[4]), json.loads(other[4])
        assert {t: h["label"] for t, h in a["stance"].items()} == {t: h["label"] for t, h in b["stance"].items()}
        assert a["sentiment"]["prob"] == pytest.approx(b["sentiment"]["prob"], abs=1e-4)
        assert {t: h.get("evidence", {}).get("text") for t, h in a["stance"].items()} == \
               {t: h.get("evidence", {}).get("text") for t, h in b["stance"].items()}
    assert "ray:" in (tmp_path / "ray" / "run.log").read_text()


def test_a_ray_run_killed_with_kill_9_leaves_nothing_half_written_and_the_next_run_completes(
        tmp_path: Path, smoke_model: Path, seeds_dir: Path) -> None:
    files = sorted(seeds_dir.glob("*.txt"))[:2]
    config = _config(tmp_path, smoke_model, files, "ray")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli.main", "reclassify", str(config), "--quiet"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and "ray:" not in _read(tmp_path / "run.log"):
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        assert "ray:" in _read(tmp_path / "run.log")
        os.killpg(proc.pid, signal.SIGKILL)  # the job and the local Ray it started
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert _predictions(tmp_path / "store.sqlite") == {}  # Ray's output is loaded only when the job finished
    summary = run_reclassify(load_schedule(config), RunLog(None))
    with Store(tmp_path / "store.sqlite") as s:
        n = sum(v for k, v in s.counts().items() if k != "threads")
        assert summary.counts["classified"] == n and s.prediction_counts() == {summary.model_version: n}
        assert [r["status"] for r in s.runs()] == ["ok", "killed"]


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.is_file() else ""
