"""`threadstance calibrate` fits decision biases only on items the model was not trained on."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import REPO, cli

from pipeline.config.run import load_config
from pipeline.config.schema import load_schema
from pipeline.data.splits import make_splits
from pipeline.modeling.folder import ModelFolder


@pytest.fixture()
def model_copy(smoke_model: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "model"
    shutil.copytree(smoke_model, dest)
    return dest


def _splits(shared_dir: Path):  # noqa: ANN202
    cfg = load_config(REPO / "configs" / "smoke.yaml", [f"paths.shared={shared_dir}"])
    return make_splits(cfg, load_schema(REPO / "configs" / "labels.yaml"))


def _write(path: Path, records: list[dict]) -> Path:
    rows = [{k: r[k] for k in ("id", "text", "sentiment", "stance")} for r in records]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_calibrate_refuses_a_dev_set_the_model_was_trained_on(model_copy, shared_dir, tmp_path, monkeypatch,
                                                               capsys) -> None:
    monkeypatch.chdir(REPO)
    before = ModelFolder(model_copy).recorded_version()
    dev = _write(tmp_path / "dev.jsonl", _splits(shared_dir).train[:12])
    code, out, err = cli(["calibrate", "--model", model_copy, "--dev", dev, "--shared", shared_dir],
                         monkeypatch, capsys)
    assert code == 2
    assert "trained on all 12 items of dev.jsonl" in err and "Traceback" not in err
    assert ModelFolder(model_copy).recorded_version() == before
    assert "decision_bias" not in ModelFolder(model_copy).read_meta()


def test_calibrate_leaves_out_training_items_and_fits_on_the_rest(model_copy, shared_dir, tmp_path, monkeypatch,
                                                                  capsys) -> None:
    monkeypatch.chdir(REPO)
    splits = _splits(shared_dir)
    held_out = splits.corpus_dev[:20]
    assert held_out
    dev = _write(tmp_path / "dev.jsonl", splits.train[:5] + held_out)
    code, out, err = cli(["calibrate", "--model", model_copy, "--dev", dev, "--shared", shared_dir],
                         monkeypatch, capsys)
    assert code == 0, err
    assert f"left out 5 of {5 + len(held_out)} dev.jsonl items the model was trained on" in out
    assert ModelFolder(model_copy).read_meta()["decision_bias"]["n"] == len(held_out)
