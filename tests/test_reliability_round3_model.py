"""Issue 24 round 3 probes: the model folder, the API and very long texts.

* a retrain into an existing model folder that dies during the save leaves the old model intact;
* a folder without a manifest that is not a finished legacy folder is refused in one line;
* bad API arguments and invisible-only texts are clear errors, as empty texts are;
* a huge text is classified (with evidence) in seconds, and normal texts keep their predictions.
"""
from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO, cli

from pipeline.errors import UserError
from pipeline.modeling.folder import MANIFEST_FILE, ModelFolder

TEXT = "Managers keep blaming frontline social workers for every failure."


@pytest.fixture
def model_copy(smoke_model: Path, tmp_path: Path) -> Path:
    import shutil

    dest = tmp_path / "models" / "model"
    shutil.copytree(smoke_model, dest)
    return dest


def _retrained(model_dir: Path) -> tuple[object, object]:
    """The model of ``model_dir`` with changed encoder and head weights: what a retrain would save."""
    model, tokenizer = ModelFolder(model_dir).load_model()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    return model, tokenizer


def _save_run(model_dir: Path, shared_dir: Path, model: object, tokenizer: object) -> str:
    from pipeline.config.run import load_config
    from pipeline.modeling.encoding import InputSpec
    from pipeline.training.run import save_run

    cfg = load_config(REPO / "configs" / "smoke.yaml", [f"paths.models={model_dir.parent}",
                                                        f"run_name={model_dir.name}", f"paths.shared={shared_dir}"])
    counts = json.loads((model_dir / "metrics.json").read_text())["counts"]
    return save_run(cfg, model, tokenizer, InputSpec(**cfg.input.model_dump()), cfg.schema(), [], counts, {}, 1.0,
                    torch.device("cpu"), {}, [])


def test_retrain_killed_during_the_save_leaves_the_old_model_loading_intact(model_copy: Path, shared_dir: Path,
                                                                           monkeypatch) -> None:
    import safetensors.torch

    old_version = ModelFolder(model_copy).recorded_version()
    old_encoder = (model_copy / "encoder" / "model.safetensors").read_bytes()
    old_heads = (model_copy / "heads.safetensors").read_bytes()
    model, tokenizer = _retrained(model_copy)

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", disk_full)  # the heads write, after the encoder's
    with pytest.raises(OSError, match="No space left"):
        _save_run(model_copy, shared_dir, model, tokenizer)
    folder = ModelFolder(model_copy)
    assert folder.manifest() is not None
    folder.verify()
    assert folder.recorded_version() == old_version
    assert (model_copy / "encoder" / "model.safetensors").read_bytes() == old_encoder
    assert (model_copy / "heads.safetensors").read_bytes() == old_heads
    folder.load_model()
    assert sorted(p.name for p in model_copy.parent.iterdir()) == ["model"]  # no half-written sibling left


def test_retrain_into_an_existing_folder_replaces_it_whole(model_copy: Path, shared_dir: Path) -> None:
    old_version = ModelFolder(model_copy).recorded_version()
    model, tokenizer = _retrained(model_copy)
    new_version = _save_run(model_copy, shared_dir, model, tokenizer)
    folder = ModelFolder(model_copy)
    assert new_version != old_version and folder.recorded_version() == new_version
    folder.verify()
    folder.load_model()
    assert sorted(p.name for p in model_copy.parent.iterdir()) == ["model"]


def test_folder_without_manifest_whose_weights_do_not_match_its_version_is_refused(model_copy: Path, monkeypatch,
                                                                                   capsys) -> None:
    model, _ = _retrained(model_copy)  # what the old save left: new encoder, old heads and meta, no manifest
    (model_copy / MANIFEST_FILE).unlink()
    model.encoder.save_pretrained(model_copy / "encoder", safe_serialization=True)
    with pytest.raises(UserError, match="interrupted save"):
        ModelFolder(model_copy).load_model()
    monkeypatch.setattr(sys, "stdin", io.StringIO(TEXT + "\n"))
    code, out, err = cli(["predict", "-", "--model", model_copy, "--format", "jsonl"], monkeypatch, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and out.strip() == "" and "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("error:") and "manifest" in lines[0], err


def test_legacy_folder_without_manifest_still_loads(model_copy: Path) -> None:
    (model_copy / MANIFEST_FILE).unlink()
    folder = ModelFolder(model_copy)
    model, _ = folder.load_model()
    assert model.targets
