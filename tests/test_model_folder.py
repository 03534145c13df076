"""The model folder's one owner (pipeline.modeling.folder.ModelFolder): a manifest written at save,
checked at load; damaged folders are one clear line naming the file (exit 2), never wrong predictions."""
from __future__ import annotations

import io
import json
import shutil
import sys
import time
from pathlib import Path

import pytest
from conftest import cli  # the console entry point as a test helper

from pipeline.config.schema import load_schema
from pipeline.errors import UserError
from pipeline.modeling.folder import MANIFEST_FILE, ModelFolder

TEXT = "Managers keep blaming frontline social workers for every failure."




@pytest.fixture
def model_copy(smoke_model: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "model"
    shutil.copytree(smoke_model, dest)
    return dest


def _predict_fails(model: Path, monkeypatch, capsys, *needles: str) -> str:
    monkeypatch.setattr(sys, "stdin", io.StringIO(TEXT + "\n"))
    started = time.time()
    code, out, err = cli(["predict", "-", "--model", model, "--format", "jsonl"], monkeypatch, capsys)
    assert code == 2, (code, out, err)
    assert "Traceback" not in err and out.strip() == ""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    for needle in needles:
        assert needle in err, err
    assert time.time() - started < 30  # no retries against a model hub
    return err


def test_manifest_lists_every_file_with_its_sha256_and_size(smoke_model: Path) -> None:
    manifest = json.loads((smoke_model / MANIFEST_FILE).read_text())["files"]
    for name in ("tokenizer.json", "heads.safetensors", "encoder/model.safetensors", "encoder/config.json",
                 "threadstance.json", "config.yaml", "labels.yaml", "metrics.json", "README.md"):
        assert name in manifest, name
        assert manifest[name]["size"] == (smoke_model / name).stat().st_size
        assert len(manifest[name]["sha256"]) == 64
    assert not any(n.startswith("checkpoints/") for n in manifest)
    ModelFolder(smoke_model).verify()


def test_model_version_is_the_content_hash_of_the_weights(smoke_model: Path) -> None:
    folder = ModelFolder(smoke_model)
    schema = load_schema(smoke_model / "labels.yaml")
    assert folder.recorded_version() == folder.content_version(schema)
    assert json.loads((smoke_model / "metrics.json").read_text())["model_version"] == folder.recorded_version()


def test_removed_tokenizer_is_one_line_naming_the_file(model_copy: Path, monkeypatch, capsys) -> None:
    (model_copy / "tokenizer.json").unlink()
    _predict_fails(model_copy, monkeypatch, capsys, "tokenizer.json", "missing")


def test_removed_tokenizer_without_a_manifest_is_still_refused(model_copy: Path) -> None:
    (model_copy / MANIFEST_FILE).unlink()
    (model_copy / "tokenizer.json").unlink()
    with pytest.raises(UserError, match=r"tokenizer\.json is missing"):
        ModelFolder(model_copy).load_model()


def test_truncated_weights_file_is_one_line_naming_the_file(model_copy: Path, monkeypatch, capsys) -> None:
    heads = model_copy / "heads.safetensors"
    heads.write_bytes(heads.read_bytes()[:100])
    _predict_fails(model_copy, monkeypatch, capsys, "heads.safetensors", "truncated")


def test_corrupt_heads_without_a_manifest_is_one_line_naming_the_file(model_copy: Path) -> None:
    (model_copy / MANIFEST_FILE).unlink()
    heads = model_copy / "heads.safetensors"
    heads.write_bytes(heads.read_bytes()[:100])
    with pytest.raises(UserError, match=r"heads cannot be read") as exc:
        ModelFolder(model_copy).load_model()
    assert "heads.safetensors" in str(exc.value)


def test_altered_encoder_weights_of_the_same_size_are_refused(model_copy: Path, monkeypatch, capsys) -> None:
    weights = model_copy / "encoder" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    _predict_fails(model_copy, monkeypatch, capsys, "encoder/model.safetensors", "altered")


def test_missing_encoder_folder_is_one_line_and_no_hub_retries(model_copy: Path, monkeypatch, capsys) -> None:
    shutil.rmtree(model_copy / "encoder")
    _predict_fails(model_copy, monkeypatch, capsys, "encoder/", "missing")


def test_edited_config_is_refused_by_evaluate(model_copy: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    cfg = model_copy / "config.yaml"
    cfg.write_text(cfg.read_text() + "# edited\n", encoding="utf-8")
    code, _, err = cli(["evaluate", "--model", model_copy, "--out", tmp_path / "report"], monkeypatch, capsys)
    assert code == 2 and "config.yaml" in err and "Traceback" not in err, err
    assert len([line for line in err.splitlines() if line.strip()]) == 1, err


def test_writes_through_the_folder_keep_the_manifest_true(model_copy: Path) -> None:
    folder = ModelFolder(model_copy)
    folder.update_meta(note="calibrated elsewhere")
    folder.write_json("gold_metrics.json", {"model": {"sentiment_macro_f1": 0.5, "stance_score": 0.4}})
    folder.verify()
    manifest = folder.manifest() or {}
    assert "gold_metrics.json" in manifest
    model, tokenizer = folder.load_model()
    assert model.targets and tokenizer("x")["input_ids"]


def test_models_list_escapes_markup_in_run_names(model_copy: Path, monkeypatch, capsys) -> None:
    folder = ModelFolder(model_copy)
    metrics = folder.read_json("metrics.json")
    metrics["run_name"] = "a[/]b[bold]c"
    folder.write_json("metrics.json", metrics)
    code, out, err = cli(["models", "list", "--dir", model_copy.parent], monkeypatch, capsys)
    assert code in (0, None) and "a[/]b[bold]c" in out, (out, err)


def test_models_list_shows_a_dash_without_a_dev_set_and_counts_the_real_passages(model_copy: Path, monkeypatch,
                                                                                capsys) -> None:
    folder = ModelFolder(model_copy)
    metrics = folder.read_json("metrics.json")
    metrics["dev"], metrics["selection_dev_set"] = {}, None
    metrics["counts"].update(train=2300, domain_real_train=1425, domain_real_repeat=2)
    folder.write_json("metrics.json", metrics)
    monkeypatch.setenv("COLUMNS", "200")
    code, out, err = cli(["models", "list", "--dir", model_copy.parent], monkeypatch, capsys)
    assert code in (0, None), err
    assert "nan" not in out and "2300 + 1425×2" in out
