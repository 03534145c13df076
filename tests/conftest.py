"""Shared fixtures: the shared data folder and a smoke-trained model built once per session."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared data folder: $THREADSTANCE_SHARED or <repo>/../shared."""
    path = Path(os.environ.get("THREADSTANCE_SHARED") or REPO.parent / "shared")
    if not (path / "seeds").is_dir():
        pytest.skip(f"shared data folder not found at {path} (set THREADSTANCE_SHARED)")
    return path


@pytest.fixture(scope="session")
def seeds_dir(shared_dir: Path) -> Path:
    return shared_dir / "seeds"


@pytest.fixture(scope="session")
def smoke_model(tmp_path_factory: pytest.TempPathFactory, shared_dir: Path) -> Path:
    """A model trained once per test session with configs/smoke.yaml (≈15 s on 2 cores)."""
    from pipeline.config.run import load_config
    from pipeline.training.train import train

    out = tmp_path_factory.mktemp("models")
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        cfg = load_config(REPO / "configs" / "smoke.yaml", [f"paths.models={out}", f"paths.shared={shared_dir}"])
        result = train(cfg, progress=False)
    finally:
        os.chdir(cwd)
    return result.output_dir


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """Project-written test inputs (tests/fixtures)."""
    return REPO / "tests" / "fixtures"


def cli(args, monkeypatch, capsys):
    """Run the real console entry point; returns (exit code, stdout, stderr)."""
    from pipeline.cli import common
    from pipeline.cli.main import main

    for con in (common.console, common.err_console):
        monkeypatch.setattr(con, "_width", 400)
    monkeypatch.setattr(sys, "argv", ["threadstance", *map(str, args)])
    with pytest.raises(SystemExit) as exc:
        main()
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


@pytest.fixture(scope="session")
def postgres_server():
    """A throw-away PostgreSQL cluster for the session (tests/pg_support.py); skipped with the reason when none
    can be started (an error with THREADSTANCE_REQUIRE_POSTGRES=1)."""
    from pg_support import start_or_skip

    server = start_or_skip()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty store on each back end: a SQLite file path, or the URL of a new PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "store.sqlite")
    return request.getfixturevalue("postgres_server").new_database()


# ---- evaluate tests (test_evaluate, test_evaluate_inputs) ----------------------------------------------------

@pytest.fixture(scope="session")
def schema():  # noqa: ANN201
    """The project's label schema (configs/labels.yaml)."""
    from pipeline.config.schema import load_schema

    return load_schema(REPO / "configs" / "labels.yaml")


@pytest.fixture(scope="session")
def seeded_db(tmp_path_factory: pytest.TempPathFactory, seeds_dir: Path) -> Path:
    from pipeline.store.db import Store
    from pipeline.store.load import ingest_paths

    db = tmp_path_factory.mktemp("store") / "ts.sqlite"
    with Store(db) as store:
        assert not ingest_paths(store, [seeds_dir]).failed
    return db


@pytest.fixture(scope="session")
def eval_model(smoke_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the session's smoke model (evaluate writes gold_metrics.json and README.md into it)."""
    dest = tmp_path_factory.mktemp("eval-model") / "smoke"
    import shutil

    shutil.copytree(smoke_model, dest)
    return dest

