"""``threadstance reclassify`` on both back ends, and workers sharing a PostgreSQL store.

The same runs on a SQLite file and on a real PostgreSQL server (``store_location``): every item classified
once, a rerun classifies nothing, ``kill -9`` in the middle loses nothing. On PostgreSQL two workers run at
once on the same store and claim batches (``FOR UPDATE SKIP LOCKED``): every item is classified exactly
once, also when one of them is killed with ``kill -9``.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipeline.ingest.parse import parse_file
from pipeline.jobs.schedule import BATCH_DELAY_ENV, RunLog, load_schedule, run_reclassify
from pipeline.store.db import Store

REPO = Path(__file__).resolve().parent.parent
THREADSTANCE = [sys.executable, "-m", "pipeline.cli.main"]


@pytest.fixture(scope="module")
def seed_files(seeds_dir: Path) -> list[Path]:
    return sorted(seeds_dir.glob("*.txt"))[:4]


def schedule(root: Path, store: str, model: Path, files: list[Path], batch_size: int = 8, name: str = "w") -> Path:
    inbox = root / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    for f in files:
        (inbox / f.name).write_bytes(f.read_bytes())
    cfg = {"inbox": str(inbox), "processed": str(root / "processed"), "quarantine": str(root / "quarantine"),
           "store": store, "model": str(model), "export": str(root / "export"), "batch_size": batch_size,
           "lock_file": str(root / f"{name}.lock"), "log_file": str(root / f"{name}.log"), "device": "cpu",
           "num_threads": 1}
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def n_items(files: list[Path]) -> int:
    return sum(len(t.items) for f in files for t in parse_file(f)[1])


def stored(store: str) -> tuple[int, int, int]:
    """(items, predictions, items with a prediction)."""
    with Store(store) as s:
        items = s.counts()
        n = items["paragraph"] + items["comment"] + items["reply"]
        preds = sum(s.prediction_counts().values())
        return n, preds, n - sum(s.count_pending(v) for v in s.prediction_counts()) if preds else 0


def start(config: Path, delay: float) -> subprocess.Popen:
    env = {**os.environ, BATCH_DELAY_ENV: str(delay), "PYTHONPATH": str(REPO)}
    return subprocess.Popen([*THREADSTANCE, "reclassify", str(config), "--quiet"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_predictions(store: str, at_least: int, procs: list[subprocess.Popen], timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if stored(store)[1] >= at_least:
                return
        except Exception:  # noqa: BLE001 - the store may not exist yet
            pass
        if any(p.poll() is not None for p in procs):
            raise AssertionError([p.communicate() for p in procs if p.poll() is not None])
        time.sleep(0.2)
    raise AssertionError("no predictions appeared in time")


def test_reclassify_classifies_every_item_once_and_a_rerun_nothing(store_location: str, tmp_path: Path,
                                                                   smoke_model: Path, seed_files: list[Path]) -> None:
    cfg = load_schedule(schedule(tmp_path, store_location, smoke_model, seed_files[:2]))
    first = run_reclassify(cfg, RunLog(None))
    second = run_reclassify(cfg, RunLog(None))
    n = n_items(seed_files[:2])
    assert first.status == second.status == "ok"
    assert first.counts["classified"] == first.counts["items_new"] == n and second.counts["classified"] == 0
    assert stored(store_location) == (n, n, n)
    assert (tmp_path / "export" / "predictions.parquet").is_file()


def test_kill_9_mid_run_then_a_rerun_classifies_exactly_what_is_missing(
        store_location: str, tmp_path: Path, smoke_model: Path, seed_files: list[Path]) -> None:
    config = schedule(tmp_path, store_location, smoke_model, seed_files, batch_size=2)
    proc = start(config, 0.3)
    try:
        wait_for_predictions(store_location, 4, [proc])
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    n = n_items(seed_files)
    _, at_kill, _ = stored(store_location)
    assert 0 < at_kill < n
    summary = run_reclassify(load_schedule(config).model_copy(update={"batch_size": 32}), RunLog(None))
    assert summary.status == "ok" and summary.counts["classified"] == n - at_kill
    assert stored(store_location) == (n, n, n)
    with Store(store_location) as s:
        assert [r["status"] for r in s.runs()] == ["ok", "killed"]


def two_workers(root: Path, url: str, model: Path, files: list[Path]) -> list[Path]:
    """Two worker configs on one PostgreSQL store that already holds the items of ``files``."""
    from pipeline.store.load import ingest_paths

    with Store(url) as s:
        assert not ingest_paths(s, files).failed
    return [schedule(root, url, model, [], batch_size=4, name=f"w{k}") for k in range(2)]


def test_two_workers_on_postgresql_share_the_work_and_classify_every_item_exactly_once(
        postgres_server, tmp_path: Path, smoke_model: Path, seed_files: list[Path]) -> None:
    url = postgres_server.new_database()
    configs = two_workers(tmp_path, url, smoke_model, seed_files)
    procs = [start(c, 0.1) for c in configs]
    outs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    n = n_items(seed_files)
    assert stored(url) == (n, n, n)
    with Store(url) as s:
        runs = s.runs()
    assert len(runs) == 2 and all(r["status"] == "ok" for r in runs)
    assert sum(r["counts"]["classified"] for r in runs) == n  # no item classified twice
    assert all(r["counts"]["classified"] > 0 for r in runs), [r["counts"] for r in runs]  # both did a share


def test_one_of_two_workers_killed_with_kill_9_loses_nothing(
        postgres_server, tmp_path: Path, smoke_model: Path, seed_files: list[Path]) -> None:
    url = postgres_server.new_database()
    configs = two_workers(tmp_path, url, smoke_model, seed_files)
    procs = [start(c, 0.3) for c in configs]
    try:
        wait_for_predictions(url, 8, procs)
        os.kill(procs[1].pid, signal.SIGKILL)
        out = procs[0].communicate(timeout=900)
        procs[1].wait(timeout=30)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert procs[0].returncode == 0, out
    n = n_items(seed_files)
    assert stored(url) == (n, n, n)  # the survivor took over the killed worker's claimed batch
    after = run_reclassify(load_schedule(configs[1]), RunLog(None))  # the next run: nothing left to do
    assert after.counts["classified"] == 0
    with Store(url) as s:
        statuses = sorted(r["status"] for r in s.runs())
    assert statuses == ["killed", "ok", "ok"]
