"""Helpers shared by the evaluate tests (their fixtures are in conftest.py)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from typer.testing import CliRunner

from pipeline.cli.main import app

REPO = Path(__file__).resolve().parent.parent
# Pass A of the gold labelling: stable, same format as the adjudicated gold.jsonl.
GOLD = REPO / "data" / "gold" / "pass_a.jsonl"
SYSTEMS = ["model", "majority", "lexicon", "tfidf_lr", "vader"]
runner = CliRunner()


def invoke(*args: str) -> object:
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        return runner.invoke(app, [str(a) for a in args])
    finally:
        os.chdir(cwd)


def _gold_ids(n: int | None = None) -> list[str]:
    ids = [json.loads(line)["item_id"] for line in GOLD.read_text(encoding="utf-8").splitlines() if line.strip()]
    return ids[:n] if n else ids
