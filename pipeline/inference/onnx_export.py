"""ONNX Runtime export of a trained model, with optional int8 dynamic quantisation.

``model.onnx`` takes ``input_ids``, ``attention_mask``, ``token_type_ids`` (int64, [batch, seq], both
axes dynamic) and returns ``sentiment`` logits [batch, S] and ``stance`` logits [batch, targets, C]
(targets in ``threadstance.json`` order). ``model.int8.onnx`` is the same graph with int8 weights
(``onnxruntime.quantization.quantize_dynamic``, per-channel scales). A ``<file>.json`` next to each records the
``model_version`` it was made from, so a stale export of a retrained directory is refused at load time.

The default exporter is ``torch.onnx.export(dynamo=True)`` (torch.export based, the supported path since
torch 2.9); ``legacy`` is the TorchScript exporter (deprecated, faster to run, same numbers). Every export
is checked against the PyTorch model on a padded batch before it is kept.
"""
from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pipeline.errors import UserError
from pipeline.modeling.folder import ONNX_FILES, ModelFolder
from pipeline.modeling.model import MultiTaskModel
from pipeline.modeling.outputs import pad_numpy, softmax

INPUT_NAMES = ["input_ids", "attention_mask", "token_type_ids"]
OUTPUT_NAMES = ["sentiment", "stance"]
EXPORTERS = ("dynamo", "legacy")


class LogitsWrapper(nn.Module):
    """The inference graph: sentiment logits and the stance logits of every target stacked on dim 1."""

    def __init__(self, model: MultiTaskModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(input_ids, attention_mask, token_type_ids)  # the model's own heads, conditioning included
        return out["sentiment"], torch.stack([out["stance"][t] for t in self.model.targets], 1)


@dataclass
class ExportResult:
    files: list[Path] = field(default_factory=list)
    exporter: str = ""
    max_abs_diff: dict[str, float] = field(default_factory=dict)  # file name -> max |prob diff| vs torch
    notes: list[str] = field(default_factory=list)


@contextmanager
def _quiet():
    """Hide the exporters' and the quantiser's chatter (torchvision op notes, pre-processing advice)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)


def _export(wrapper: nn.Module, sample: tuple[torch.Tensor, ...], out: Path, exporter: str) -> None:
    if exporter == "dynamo":
        batch, seq = torch.export.Dim("batch", min=1), torch.export.Dim("seq", min=2, max=512)
        torch.onnx.export(wrapper, sample, str(out), dynamo=True, input_names=INPUT_NAMES,
                          output_names=OUTPUT_NAMES, dynamic_shapes={k: {0: batch, 1: seq} for k in INPUT_NAMES},
                          external_data=False, verbose=False)
    else:
        axes = {k: {0: "batch", 1: "seq"} for k in INPUT_NAMES} | {k: {0: "batch"} for k in OUTPUT_NAMES}
        torch.onnx.export(wrapper, sample, str(out), dynamo=False, input_names=INPUT_NAMES,
                          output_names=OUTPUT_NAMES, dynamic_axes=axes, opset_version=17)


def _check_batch(model: MultiTaskModel, tokenizer) -> dict[str, np.ndarray]:  # noqa: ANN001
    """A padded batch of unequal lengths, different from the export sample's shape."""
    from pipeline.modeling.encoding import InputSpec, encode_texts, special_ids

    texts = ["Managers blame frontline staff for every failure.", "Ofsted were fair to us this time.",
             "The council cut the early help budget again and caseloads rose to thirty per worker, "
             "which nobody in the senior team will admit."]
    ids = encode_texts(tokenizer, texts, InputSpec(max_length=64), ["A parent comment.", None, None])
    return pad_numpy(ids, tokenizer.pad_token_id or 0, special_ids(tokenizer)[1])


def _probs(sent: np.ndarray, stance: np.ndarray) -> np.ndarray:
    return np.concatenate([softmax(sent), softmax(stance).reshape(len(stance), -1)], 1)


def export_onnx(model_dir: str | Path, quantize: str | None = None, exporter: str = "dynamo",
                tolerance: float = 1e-4) -> ExportResult:
    """Write ``model.onnx`` (and ``model.int8.onnx`` with ``quantize="int8"``) into ``model_dir``."""
    import onnxruntime as ort

    if quantize not in (None, "int8"):
        raise UserError(f"--quantize {quantize!r}: only int8 is supported")
    if exporter not in EXPORTERS:
        raise UserError(f"--exporter {exporter!r}: choose dynamo or legacy")
    d = Path(model_dir)
    folder = ModelFolder(d)
    model, tokenizer = folder.load_model("cpu")
    version = folder.recorded_version()
    wrapper = LogitsWrapper(model).eval()
    ids = torch.randint(1000, 2000, (2, 16))
    sample = (ids, torch.ones_like(ids), torch.zeros_like(ids))
    result = ExportResult(exporter=exporter)
    out = d / ONNX_FILES["onnx"]
    tmp = out.with_name(out.name + ".tmp")
    with _quiet():
        try:
            _export(wrapper, sample, tmp, exporter)
        except Exception as exc:  # noqa: BLE001 - the dynamo exporter fails in many ways; fall back once
            if exporter != "dynamo":
                raise
            result.notes.append(f"dynamo exporter failed ({type(exc).__name__}: {str(exc)[:200]}); "
                                "used the legacy TorchScript exporter")
            result.exporter = "legacy"
            _export(wrapper, sample, tmp, "legacy")
    check = _check_batch(model, tokenizer)
    with torch.inference_mode():  # the reference is the model itself, not the graph that was exported
        logits = model(*(torch.from_numpy(v) for v in check.values()))
        ref = _probs(logits["sentiment"].numpy(),
                     torch.stack([logits["stance"][t] for t in model.targets], 1).numpy())
    candidates = [(tmp, out)]
    if quantize == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        q_out = d / ONNX_FILES["onnx-int8"]
        q_tmp = q_out.with_name(q_out.name + ".tmp")
        with _quiet():
            # per-channel weight scales: 98.9% of labels equal to torch on the benchmark items
            # (reports/inference_benchmark.md)
            quantize_dynamic(str(tmp), str(q_tmp), weight_type=QuantType.QInt8, per_channel=True)
        candidates.append((q_tmp, q_out))
    for path, final in candidates:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        got = _probs(*session.run(None, {k: check[k] for k in names}))
        diff = float(np.abs(got - ref).max())
        result.max_abs_diff[final.name] = diff
        # fp32 must match torch; int8 is an approximation, checked only for being a probability table
        if final.name == ONNX_FILES["onnx"] and diff > tolerance:
            for p, _ in candidates:
                p.unlink(missing_ok=True)
            raise UserError(f"the ONNX export does not reproduce the PyTorch outputs (max prob diff {diff:.2e} "
                            f"> {tolerance:g}); try --exporter {'legacy' if result.exporter == 'dynamo' else 'dynamo'}",
                            d)
    for path, final in candidates:
        backend = "onnx-int8" if final.name == ONNX_FILES["onnx-int8"] else "onnx"
        folder.commit_onnx(path, backend, {
            "model_version": version, "exporter": result.exporter,
            "quantization": "int8-dynamic-per-channel" if backend == "onnx-int8" else None,
            "torch": torch.__version__, "onnxruntime": ort.__version__,
            "max_abs_prob_diff_vs_torch": result.max_abs_diff[final.name]})
        result.files.append(final)
    return result
