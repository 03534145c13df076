"""Top-layer training on cached states and frozen-encoder heads: real model folders that predict like the
network they were trained as."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.config.run import load_config
from pipeline.inference.predict import Predictor
from pipeline.modeling.base_models import resolve_base_model
from pipeline.modeling.folder import ModelFolder
from pipeline.modeling.layerwise import lower_states, pad_states, run_top
from pipeline.modeling.model import MultiTaskModel, mean_pool
from pipeline.training.train import train

REPO = Path(__file__).resolve().parent.parent
TEXTS = ["Managers dish out unmanageable caseloads and then blame us.", "Ofsted were fair.",
         "Councils should give newly qualified social workers a chance on the frontline, with support."]


def _train(tmp_path: Path, shared_dir: Path, *overrides: str) -> Path:
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        cfg = load_config(REPO / "configs" / "smoke.yaml",
                          [f"paths.models={tmp_path}", f"paths.shared={shared_dir}", *overrides])
        return train(cfg, progress=False).output_dir
    finally:
        os.chdir(cwd)


def test_cached_lower_layers_plus_top_layers_equal_one_full_forward() -> None:
    from transformers import AutoModel, AutoTokenizer

    path = resolve_base_model("minilm")
    enc, tok = AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
    ids = [tok(t)["input_ids"] for t in TEXTS]
    states = lower_states(enc, ids, 4)
    hidden, mask = pad_states(states)
    batch = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        split = mean_pool(run_top(enc, hidden, mask, 4), mask)
        full = mean_pool(enc(**batch).last_hidden_state, batch["attention_mask"])
    assert torch.allclose(split, full, atol=1e-5)


@pytest.fixture(scope="module")
def top2_model(tmp_path_factory: pytest.TempPathFactory, shared_dir: Path) -> Path:
    return _train(tmp_path_factory.mktemp("top2"), shared_dir, "training.trainable_layers=2", "training.bf16=off",
                  "calibration.temperature={sentiment: 2.0, stance: 1.5}", "calibration.fitted_on=test")


def test_top_layer_model_trains_only_the_top_layers(top2_model: Path, tmp_path: Path) -> None:
    base = MultiTaskModel.from_base("minilm", ["a", "b", "c"], ["none", "favor", "against"], ["t"])[0].encoder
    trained, _ = ModelFolder(top2_model).load_model()
    lower = [n for n, _ in base.named_parameters() if n.startswith(("embeddings.", "encoder.layer.0.",
                                                                      "encoder.layer.3."))]
    top = [n for n, _ in base.named_parameters() if n.startswith("encoder.layer.5.")]
    b, t = dict(base.named_parameters()), dict(trained.encoder.named_parameters())
    assert all(torch.equal(b[n], t[n]) for n in lower)
    assert any(not torch.equal(b[n], t[n]) for n in top)
    metrics = json.loads((top2_model / "metrics.json").read_text())
    assert metrics["trainable_layers"] == 2 and metrics["selection_dev_set"] is None


def test_top_layer_model_round_trips_through_the_predictor(top2_model: Path) -> None:
    model, tok = ModelFolder(top2_model).load_model()
    batch = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(batch["input_ids"], batch["attention_mask"])
    predictor = Predictor(top2_model, device="cpu", precision="fp32")
    probs = predictor.predict_proba(TEXTS)
    expected = torch.softmax(out["sentiment"] / 2.0, -1).numpy()  # the stored temperature is applied
    assert np.allclose(probs.sentiment, expected, atol=1e-4)
    stance = torch.softmax(out["stance"]["funding"] / 1.5, -1).numpy()
    assert np.allclose(probs.stance["funding"], stance, atol=1e-4)


def test_frozen_encoder_heads_are_the_fitted_logistic_regressions(tmp_path: Path, shared_dir: Path) -> None:
    folder = _train(tmp_path, shared_dir, "training.trainable_layers=0", "training.bf16=off")
    base = MultiTaskModel.from_base("minilm", ["a", "b", "c"], ["none", "favor", "against"], ["t"])[0].encoder
    trained, _ = ModelFolder(folder).load_model()
    assert all(torch.equal(p, dict(trained.encoder.named_parameters())[n]) for n, p in base.named_parameters())
    preds = Predictor(folder, device="cpu", precision="fp32").predict(TEXTS)
    assert {p.sentiment for p in preds} <= {"negative", "neutral", "positive"}
    assert json.loads((folder / "metrics.json").read_text())["trainable_layers"] == 0


@pytest.fixture(scope="module")
def target_aware_model(tmp_path_factory: pytest.TempPathFactory, shared_dir: Path) -> Path:
    return _train(tmp_path_factory.mktemp("tgt"), shared_dir, "training.trainable_layers=2", "training.bf16=off",
                  "model.target_aware=true")


def test_target_aware_heads_are_saved_with_the_statement_embeddings_and_used_at_inference(
        target_aware_model: Path) -> None:
    from transformers import AutoModel, AutoTokenizer

    from pipeline.config.schema import load_schema
    from pipeline.modeling.model import statement_embeddings

    schema = load_schema(REPO / "configs" / "labels.yaml")
    path = resolve_base_model("minilm")
    expected = statement_embeddings(AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path),
                                    schema.target_statements)
    model, tok = ModelFolder(target_aware_model).load_model()
    assert json.loads((target_aware_model / "threadstance.json").read_text())["target_aware"] is True
    assert model.target_aware and torch.allclose(model.target_emb, expected, atol=1e-5)
    assert model.cond_out.weight.abs().sum() > 0  # trained away from its zero start

    probs = Predictor(target_aware_model, device="cpu", precision="fp32").predict_proba(TEXTS)
    batch = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        with_cond = model(batch["input_ids"], batch["attention_mask"])["stance"]["funding"]
        torch.nn.init.zeros_(model.cond_out.weight)
        torch.nn.init.zeros_(model.cond_out.bias)
        without = model(batch["input_ids"], batch["attention_mask"])["stance"]["funding"]
    temperature = json.loads((target_aware_model / "threadstance.json").read_text()).get("temperature") or {}
    t = float(temperature.get("stance", 1.0)) if isinstance(temperature, dict) else 1.0
    assert np.allclose(probs.stance["funding"], torch.softmax(with_cond / t, -1).numpy(), atol=1e-4)
    assert not torch.allclose(with_cond, without)


def test_target_aware_heads_with_a_frozen_encoder_are_a_config_error(tmp_path: Path, shared_dir: Path) -> None:
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="target_aware"):
        _train(tmp_path, shared_dir, "training.trainable_layers=0", "model.target_aware=true")


def test_the_onnx_export_graph_keeps_the_target_conditioning(target_aware_model: Path) -> None:
    from pipeline.inference.onnx_export import LogitsWrapper

    model, tok = ModelFolder(target_aware_model).load_model()
    torch.nn.init.normal_(model.cond_out.weight, std=1.0, generator=torch.Generator().manual_seed(0))
    batch = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(batch["input_ids"], batch["attention_mask"])
        sent, stance = LogitsWrapper(model)(batch["input_ids"], batch["attention_mask"],
                                            torch.zeros_like(batch["input_ids"]))
    assert torch.allclose(sent, out["sentiment"])
    assert torch.allclose(stance, torch.stack([out["stance"][t] for t in model.targets], 1))


def test_label_smoothing_spreads_the_target_as_torch_defines_it() -> None:
    from torch.nn import functional as F

    from pipeline.modeling.model import multitask_loss

    logits = torch.tensor([[4.0, 0.0, -1.0], [0.5, 2.0, 0.0]])
    out = {"sentiment": logits, "stance": {"t": logits.clone()}}
    labels = {"sentiment": torch.tensor([0, 1]), "stance_t": torch.tensor([0, -100])}
    plain = multitask_loss(out, labels, ["t"], {}, {"sentiment": 1.0, "stance": 1.0})
    smoothed = multitask_loss(out, labels, ["t"], {}, {"sentiment": 1.0, "stance": 1.0}, label_smoothing=0.1)
    expected = F.cross_entropy(logits, labels["sentiment"], label_smoothing=0.1) + F.cross_entropy(
        logits[:1], labels["stance_t"][:1], label_smoothing=0.1)
    assert torch.isclose(smoothed, expected) and smoothed > plain  # confident right answers cost more
