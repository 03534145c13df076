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


# ---- API arguments and invisible-only texts ------------------------------------------------------------
@pytest.fixture(scope="module")
def api_model(smoke_model: Path):  # noqa: ANN201
    from pipeline import api

    return api.load_model(smoke_model, device="cpu", precision="fp32")


def test_api_load_model_of_none_is_a_clear_user_error() -> None:
    from pipeline import api

    with pytest.raises(UserError, match="load_model: path must be a model folder"):
        api.load_model(None)


def test_api_classify_of_a_number_is_a_clear_user_error(api_model) -> None:  # noqa: ANN001
    from pipeline import api

    with pytest.raises(UserError, match="data must be a list of strings or a DataFrame, got int 12345"):
        api.classify(api_model, 12345)
    with pytest.raises(UserError, match="model must come from load_model"):
        api.classify("models/default", ["text"])


def test_api_refuses_a_text_of_only_zero_width_characters_as_it_refuses_an_empty_one(api_model) -> None:  # noqa: ANN001
    import pandas as pd

    from pipeline import api

    for blank in ("", "  ", "\u200b\u200b\ufeff", "\u2060\u200d \u200c"):
        with pytest.raises(UserError, match=r"text 1 of 2 is empty \(no visible character\)"):
            api.classify(api_model, ["fine", blank])
    with pytest.raises(UserError, match="row '1': text is empty"):
        api.classify(api_model, pd.DataFrame({"text": ["fine", "\u200b\ufeff"]}))
    assert len(api.classify(api_model, ["\u200bfine\u200b"])) == 1  # a visible character: classified


def test_predict_stdin_skips_a_zero_width_line_as_it_skips_an_empty_line(smoke_model: Path, monkeypatch,
                                                                          capsys) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{TEXT}\n\n\u200b\u200b\ufeff\n{TEXT}\n"))
    code, out, err = cli(["predict", "-", "--model", smoke_model, "--format", "jsonl"], monkeypatch, capsys)
    assert code == 0, err
    assert [json.loads(line)["item_id"] for line in out.splitlines()] == ["stdin/1", "stdin/2"]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\u200b\u200b\ufeff\n"))
    code, out, err = cli(["predict", "-", "--model", smoke_model, "--format", "jsonl"], monkeypatch, capsys)
    assert code == 0 and out.strip() == "" and "no items to classify" in err


# ---- very long texts ----------------------------------------------------------------------------------------
def _long_text(chars: int) -> str:
    sentences = ["Managers keep blaming frontline social workers for every failure.",
                 "The council cut the budget again this year.", "Ofsted inspectors were fair to our team.",
                 "Newly qualified workers get no protected caseload."]
    out, n = [], 0
    while n < chars:
        s = f"{sentences[len(out) % 4]} Point {len(out)}."
        out.append(s)
        n += len(s) + 1
    return " ".join(out)


def test_a_one_megabyte_text_is_classified_with_evidence_in_seconds(api_model) -> None:  # noqa: ANN001
    from pipeline.inference.evidence import find_evidence

    big = _long_text(1_000_000)
    started = time.process_time()  # CPU time of this process (all threads): the 2 cores are often shared
    pred = api_model.predict([big])[0]
    pred.stance = dict.fromkeys(pred.stance, "against")  # every target needs evidence
    found = find_evidence(api_model, [big], [pred])[0]
    seconds = time.process_time() - started
    assert seconds < 20, seconds  # was many minutes: every one of ~40,000 sentences scored by the model
    (head_end, tail_start), = api_model.read_windows([big])
    assert 0 < head_end < tail_start < len(big)
    for ev in found.values():
        assert big[ev.start:ev.end] == ev.text
        assert ev.start < head_end or ev.end > tail_start  # a sentence the model read
        assert ev.sentences < 40  # only the read sentences were candidates


def test_cutting_long_texts_before_tokenising_keeps_the_same_word_pieces(api_model) -> None:  # noqa: ANN001
    from pipeline.modeling.encoding import InputSpec, _cut, encode_texts, special_ids

    tok = api_model.tokenizer
    texts = [_long_text(n) for n in (10, 300, 5_000, 40_000, 120_000)] + ["word " * 20_000 + "the end.",
                                                                          "café naïve " * 9_000]
    start, sep = special_ids(tok)
    for spec in (InputSpec(max_length=64, truncation="head_tail", tail_tokens=16),
                 InputSpec(max_length=256, truncation="head_tail", tail_tokens=32), InputSpec(truncation="head")):
        for text in texts:
            full = tok([text], add_special_tokens=False, verbose=False)["input_ids"][0]
            assert encode_texts(tok, [text], spec)[0] == [start, *_cut(full, spec.max_length - 2, spec), sep]


def test_bf16_predictor_with_linear_weights_cast_once_gives_the_autocast_probabilities(smoke_model: Path) -> None:
    from pipeline.inference.predict import Predictor
    from pipeline.modeling.encoding import special_ids
    from pipeline.modeling.outputs import iter_proba, torch_forward

    texts = [TEXT, "Ofsted were fair to us.", "The budget was cut again and again. " * 20]
    fast = Predictor(smoke_model, device="cpu", precision="bf16")
    assert {m.weight.dtype for m in fast.model.modules() if isinstance(m, torch.nn.Linear)} == {torch.bfloat16}
    reference, tok = ModelFolder(smoke_model).load_model()  # float32 weights, cast by autocast at every call
    forward = torch_forward(reference, torch.device("cpu"), True, fast.sentiment_temperature, fast.stance_temperature)
    ids = fast.encode(texts)
    # each loop run to its end before the next starts: interleaved generators would leave inference mode on
    ours = list(iter_proba(ids, fast._forward, fast._pad_id, fast._sep_id, 2))
    theirs = list(iter_proba(ids, forward, tok.pad_token_id or 0, special_ids(tok)[1], 2))
    assert not torch.is_inference_mode_enabled()
    for (i, s1, st1), (j, s2, st2) in zip(ours, theirs):
        assert (i == j).all() and (s1 == s2).all() and (st1 == st2).all()
