"""Training: the smoke config trains, saves a loadable model, and is reproducible."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pipeline.config.run import load_config
from pipeline.inference.predict import Predictor
from pipeline.modeling.encoding import InputSpec, encode_texts
from pipeline.modeling.folder import ModelFolder
from pipeline.training.train import train

REPO = Path(__file__).resolve().parent.parent


def test_smoke_model_directory_has_all_artifacts(smoke_model: Path) -> None:
    for name in ("encoder/config.json", "heads.safetensors", "tokenizer.json", "threadstance.json", "labels.yaml",
                 "config.yaml", "metrics.json", "train_log.jsonl", "README.md"):
        assert (smoke_model / name).exists(), name
    meta = json.loads((smoke_model / "threadstance.json").read_text())
    assert len(meta["model_version"]) == 12
    assert meta["targets"] == ["blame_management", "funding", "nqsw_access", "ofsted"]
    assert not (smoke_model / "checkpoints").exists()


def test_predictor_gives_probabilities_for_every_head(smoke_model: Path) -> None:
    predictor = Predictor(smoke_model, device="cpu")
    preds = predictor.predict(["Managers dump cases on us and blame us when it goes wrong.", "Ofsted visited."])
    assert len(preds) == 2
    for p in preds:
        assert abs(sum(p.sentiment_probs.values()) - 1) < 1e-3
        assert set(p.stance) == set(predictor.targets)
        assert all(abs(sum(v.values()) - 1) < 1e-3 for v in p.stance_probs.values())


def test_predictor_output_does_not_depend_on_batch_order(smoke_model: Path) -> None:
    predictor = Predictor(smoke_model, device="cpu", batch_size=2)
    texts = ["short", "a much longer comment about caseloads and cuts " * 5, "Ofsted were fair", "Give NQSWs a chance"]
    a = predictor.predict_proba(texts)
    b = predictor.predict_proba(texts[::-1])
    assert abs(a.sentiment - b.sentiment[::-1]).max() < 1e-4


def test_same_config_and_seed_give_the_same_dev_metrics(tmp_path: Path, shared_dir: Path) -> None:
    os.chdir(REPO)
    results = []
    for run in ("a", "b"):
        cfg = load_config(REPO / "configs" / "smoke.yaml",
                          [f"paths.models={tmp_path / run}", f"paths.shared={shared_dir}"])
        results.append(train(cfg, progress=False))
    assert results[0].dev_metrics == results[1].dev_metrics
    assert results[0].model_version == results[1].model_version


def test_saved_model_reloads_to_identical_outputs(smoke_model: Path) -> None:
    model, tokenizer = ModelFolder(smoke_model).load_model()
    spec = InputSpec(max_length=64)
    ids = encode_texts(tokenizer, ["The cuts have gutted early help."], spec)
    import torch

    batch = torch.tensor(ids)
    out1 = model(batch, torch.ones_like(batch))["sentiment"]
    model2, _ = ModelFolder(smoke_model).load_model()
    assert torch.allclose(out1, model2(batch, torch.ones_like(batch))["sentiment"])


def test_head_tail_truncation_keeps_the_end_of_long_comments(smoke_model: Path) -> None:
    _, tokenizer = ModelFolder(smoke_model).load_model()
    text = "start " * 300 + "FINALWORD"
    ids = encode_texts(tokenizer, [text], InputSpec(max_length=64, truncation="head_tail", tail_tokens=8))[0]
    assert len(ids) == 64
    assert "finalword" in tokenizer.decode(ids).replace(" ", "")
    head_only = encode_texts(tokenizer, [text], InputSpec(max_length=64, truncation="head"))[0]
    assert "finalword" not in tokenizer.decode(head_only).replace(" ", "")


def test_training_without_a_terminal_prints_plain_progress_lines() -> None:
    import io
    from types import SimpleNamespace

    from pipeline.training import loop

    stream = io.StringIO()  # not a TTY
    cb = loop.RichProgress("training")
    orig = loop.console.file
    loop.console.file = stream
    try:
        state = SimpleNamespace(max_steps=20, global_step=0)
        cb.on_train_begin(None, state, None)
        for step in range(1, 21):
            state.global_step = step
            cb.on_step_end(None, state, None)
        cb.on_train_end(None, state, None)
    finally:
        loop.console.file = orig
    lines = stream.getvalue().splitlines()
    assert lines and lines[-1].startswith("training: 20/20 steps (100%)") and "ETA" in lines[-1]


def test_fixed_epoch_fine_tuning_trains_on_the_whole_corpus_without_a_dev_set(tmp_path: Path, shared_dir: Path) -> None:
    os.chdir(REPO)
    cfg = load_config(REPO / "configs" / "smoke.yaml",
                      [f"paths.models={tmp_path}", f"paths.shared={shared_dir}", "data.dev_fraction=0",
                       "data.domain_real.use=none", "training.checkpoint=last"])
    result = train(cfg, progress=False)
    metrics = json.loads((result.output_dir / "metrics.json").read_text())
    assert metrics["checkpoint"] == "last" and metrics["selection_dev_set"] is None
    assert metrics["counts"]["corpus_dev"] == 0 and result.dev_metrics == {}
    assert not (result.output_dir / "checkpoints").exists()
    Predictor(result.output_dir).predict(["Managers are to blame."])


def test_checkpoint_selection_without_a_dev_set_is_a_config_error(tmp_path: Path, shared_dir: Path) -> None:
    from pipeline.errors import ConfigError

    os.chdir(REPO)
    cfg = load_config(REPO / "configs" / "smoke.yaml",
                      [f"paths.models={tmp_path}", f"paths.shared={shared_dir}", "data.dev_fraction=0",
                       "data.domain_real.use=none", "training.checkpoint=best"])
    with pytest.raises(ConfigError):
        train(cfg, progress=False)
