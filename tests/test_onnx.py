"""ONNX Runtime export (`threadstance export onnx`) and the Predictor's onnx backends."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline.cli.main import app
from pipeline.errors import UserError
from pipeline.inference.classify import items_from_threads
from pipeline.inference.predict import Predictor
from pipeline.ingest.parse import parse_file
from pipeline.modeling.folder import ModelFolder


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory: pytest.TempPathFactory, smoke_model: Path) -> Path:
    """A copy of the smoke model with model.onnx and model.int8.onnx written by the CLI."""
    model = tmp_path_factory.mktemp("onnx") / "smoke"
    shutil.copytree(smoke_model, model)
    result = CliRunner().invoke(app, ["export", "onnx", "--model", str(model), "--quantize", "int8"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return model


@pytest.fixture(scope="module")
def seed_texts(seeds_dir: Path) -> list[str]:
    return [i["text"] for p in sorted(seeds_dir.glob("*.txt")) for i in items_from_threads(parse_file(p)[1])]


@pytest.fixture(scope="module")
def torch_probs(onnx_model: Path, seed_texts: list[str]):  # noqa: ANN201
    predictor = Predictor(onnx_model, device="cpu", batch_size=16)
    return predictor, predictor.predict_proba(seed_texts)


def test_export_writes_fp32_and_int8_models_stamped_with_the_model_version(onnx_model: Path) -> None:
    version = json.loads((onnx_model / "threadstance.json").read_text())["model_version"]
    for name in ("model.onnx", "model.int8.onnx"):
        assert (onnx_model / name).stat().st_size > 1_000_000
        assert json.loads((onnx_model / f"{name}.json").read_text())["model_version"] == version
    assert (onnx_model / "model.int8.onnx").stat().st_size < (onnx_model / "model.onnx").stat().st_size / 2


def test_onnx_backend_gives_the_same_labels_as_torch_on_the_seeds(onnx_model: Path, seed_texts: list[str],
                                                                    torch_probs) -> None:  # noqa: ANN001
    torch_predictor, ref = torch_probs
    predictor = Predictor(onnx_model, device="cpu", batch_size=16, backend="onnx")
    got = predictor.predict_proba(seed_texts)
    assert predictor.model_version == torch_predictor.model_version
    assert np.abs(got.sentiment - ref.sentiment).max() < 1e-4
    assert (got.sentiment.argmax(1) == ref.sentiment.argmax(1)).all()
    for t in torch_predictor.targets:
        assert np.abs(got.stance[t] - ref.stance[t]).max() < 1e-4
        assert (got.stance[t].argmax(1) == ref.stance[t].argmax(1)).all()


def test_int8_backend_gives_probabilities_close_to_torch(onnx_model: Path, seed_texts: list[str],
                                                         torch_probs) -> None:  # noqa: ANN001
    _, ref = torch_probs
    got = Predictor(onnx_model, device="cpu", batch_size=16, backend="onnx-int8").predict_proba(seed_texts)
    assert np.allclose(got.sentiment.sum(1), 1, atol=1e-4)
    # the smoke model is barely trained (near-uniform probabilities), so labels flip on quantisation noise;
    # the probabilities themselves must stay close
    assert np.abs(got.sentiment - ref.sentiment).max() < 0.1


def test_predict_cli_runs_on_the_onnx_backend(onnx_model: Path) -> None:
    result = CliRunner().invoke(app, ["predict", "-", "--model", str(onnx_model), "--backend", "onnx",
                                      "--format", "jsonl"], input="The cuts have gutted early help.\n",
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["item_id"] == "stdin/1"


def test_a_stale_export_is_refused_after_the_model_changes(onnx_model: Path, tmp_path: Path) -> None:
    changed = tmp_path / "changed"
    shutil.copytree(onnx_model, changed)
    ModelFolder(changed).update_meta(model_version="retrained000")  # as a retrain or `calibrate` would
    with pytest.raises(UserError, match="export it again"):
        Predictor(changed, device="cpu", backend="onnx")
    (changed / "model.int8.onnx").unlink()
    with pytest.raises(UserError, match="--quantize int8"):
        Predictor(changed, device="cpu", backend="onnx-int8")
