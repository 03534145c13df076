"""Batched inference: tokenise once, sort by length, pad per batch, one model call per batch.

:class:`Predictor` loads a trained model directory once and classifies any number of texts, with the
PyTorch model (``backend="torch"``) or an ONNX Runtime export of it (``backend="onnx"`` /
``"onnx-int8"``, written by ``threadstance export onnx``). Both backends share the tokenisation, the
length sorting and the padding, so they see exactly the same inputs.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.errors import UserError
from pipeline.hardware import cpu_has_native_bf16, resolve_device
from pipeline.modeling.encoding import InputSpec, encode_texts, read_windows, special_ids
from pipeline.modeling.folder import ONNX_FILES, ModelFolder  # noqa: F401  (ONNX_FILES: used by scripts)
from pipeline.modeling.model import MultiTaskModel
from pipeline.modeling.outputs import (  # noqa: F401  (Prediction, batch_bounds: part of this module's API)
    Prediction,
    Probabilities,
    apply_bias,
    batch_bounds,
    collect,
    iter_proba,
    softmax,
    to_predictions,
    torch_forward,
)

BACKENDS = ("torch", "onnx", "onnx-int8")


PRECISIONS = ("auto", "fp32", "bf16")


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` → ``bf16`` on a CPU with native bf16, else ``fp32``; explicit values pass through."""
    if precision != "auto":
        return precision
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"


def bf16_linear_weights(model: torch.nn.Module) -> None:
    """Store the weights of every linear layer as bfloat16 once, for bf16 autocast.

    Autocast casts them to bfloat16 anyway (round to nearest even) at every forward call, which on a CPU
    means re-reading and re-writing the ~110 M encoder weights for each batch; cast once, the outputs are
    the same bits and short batches cost much less. Layer norms and embeddings stay float32, as autocast
    keeps them."""
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            module.to(torch.bfloat16)


class Predictor:
    """A trained model ready for inference.

    Args:
        model_dir: A directory written by ``threadstance train``.
        device: ``auto``, ``cpu``, ``cuda``, ``mps``.
        batch_size: At most this many texts per model call (sorted by length, padded per batch).
        max_batch_tokens: If set, a batch also stops growing before its padded size (texts × longest
            text) would pass this many word pieces: short texts then share big batches (fewer, larger
            matrix products; helps most on a busy CPU) while long ones come in small batches (bounded memory).
        backend: ``torch`` (the saved PyTorch model), ``onnx`` (``model.onnx``) or ``onnx-int8``
            (``model.int8.onnx``); the ONNX files are written by ``threadstance export onnx``.
        num_threads: CPU threads for the model (torch: ``torch.set_num_threads``, process-wide;
            ONNX Runtime: intra-op threads). None leaves the library default.
        precision: ``fp32``; ``bf16`` for bfloat16 autocast of the torch model on CPU — about 1.7×
            faster on CPUs with native bf16 (AVX512-BF16 / AMX: AMD Zen 4, recent Xeons), slower on
            others; labels can differ from fp32 on near-ties (0.2 % of items in
            ``reports/inference_benchmark.md``); ``auto``: bf16 where the CPU has native bf16, else
            fp32. On CUDA, bf16 autocast is always used when the GPU supports it.
    """

    def __init__(self, model_dir: str | Path, device: str = "auto", batch_size: int = 64,
                 backend: str = "torch", num_threads: int | None = None,
                 max_batch_tokens: int | None = None, precision: str = "fp32") -> None:
        if backend not in BACKENDS:
            raise UserError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if precision not in PRECISIONS:
            raise UserError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        if batch_size < 1:
            raise UserError(f"batch size must be at least 1, got {batch_size}")
        self.model_dir = Path(model_dir)
        self.backend = backend
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.num_threads = num_threads
        self.model: MultiTaskModel | None = None
        self.session: Any = None
        self.folder = ModelFolder(self.model_dir)
        meta = self.folder.read_meta()
        self.spec = InputSpec(**meta.get("input", {}))
        self.model_version: str = meta.get("model_version", "unversioned")
        self.none_class = meta.get("none_class", "none")
        temps = meta.get("temperature") or {}
        # probabilities are softmax(logits / T), T fitted out of fold (argmax, so labels, never change)
        self.sentiment_temperature = float(temps.get("sentiment", 1.0))
        self.stance_temperature = float(temps.get("stance", 1.0))
        bias = meta.get("decision_bias") or {}
        self.sentiment_bias = np.array(bias["sentiment"]) if "sentiment" in bias else None
        self.stance_bias = np.array(bias["stance"]) if "stance" in bias else None  # [targets, classes]
        if backend == "torch":
            if num_threads:
                torch.set_num_threads(num_threads)
            self.model, self.tokenizer = self.folder.load_model(self.device)
            self.sentiment_classes = self.model.sentiment_classes
            self.stance_classes = self.model.stance_classes
            self.targets = self.model.targets
        else:
            self.sentiment_classes = list(meta["sentiment_classes"])
            self.stance_classes = list(meta["stance_classes"])
            self.targets = list(meta["targets"])
            self.session, self.tokenizer = self._load_onnx(meta)
        self._pad_id = self.tokenizer.pad_token_id or 0
        self._sep_id = special_ids(self.tokenizer)[1]
        self.precision = resolve_precision(precision, self.device) if backend == "torch" else "fp32"
        self._autocast = (self.device.type == "cuda" and torch.cuda.is_bf16_supported()) or (
            self.precision == "bf16" and self.device.type == "cpu")
        if self._autocast and self.model is not None:
            bf16_linear_weights(self.model)

    def autocast(self) -> Any:
        """The autocast context the torch model runs in (its linear weights are bf16 when it is on): callers
        that run ``self.model`` directly, like the pooled embeddings of ``suggest``, enter it too."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self._autocast)

    # ---- backends -----------------------------------------------------------------------------
    def _load_onnx(self, meta: dict) -> tuple[Any, Any]:
        import onnxruntime as ort

        path = self.folder.onnx_path(self.backend)
        flag = " --quantize int8" if self.backend == "onnx-int8" else ""
        if not path.is_file():
            raise UserError(f"no {path.name} in the model directory; write it with `threadstance export onnx "
                            f"--model {self.model_dir}{flag}`", self.model_dir)
        info = self.folder.onnx_info(self.backend) or {}
        exported = info.get("model_version")
        if exported != self.model_version:
            raise UserError(f"{path.name} was exported from model_version {exported}, the model is now "
                            f"{self.model_version}; export it again with `threadstance export onnx --model "
                            f"{self.model_dir}{flag}`", path)
        self.folder.verify_onnx(self.backend)
        tokenizer = self.folder.load_tokenizer()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.num_threads:
            options.intra_op_num_threads = self.num_threads
            options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        providers = ["CPUExecutionProvider"]
        if self.device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # a damaged export: name the file, no traceback
            raise UserError(f"{path.name} cannot be loaded ({type(exc).__name__}); export it again", path) from exc
        self._onnx_inputs = [i.name for i in session.get_inputs()]
        return session, tokenizer

    def _forward(self, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Sentiment probabilities [B, S] and stance probabilities [B, T, C] for one padded batch."""
        if self.session is not None:
            sent, stance = self.session.run(None, {k: batch[k] for k in self._onnx_inputs})
            return (softmax(sent.astype(np.float32) / self.sentiment_temperature),
                    softmax(stance.astype(np.float32) / self.stance_temperature))
        assert self.model is not None
        return torch_forward(self.model, self.device, self._autocast, self.sentiment_temperature,
                             self.stance_temperature)(batch)

    # ---- inference ----------------------------------------------------------------------------
    def encode(self, texts: Sequence[str], parents: Sequence[str | None] | None = None) -> list[list[int]]:
        """Token ids per text as the model sees them (parents only if the input spec includes them)."""
        return encode_texts(self.tokenizer, texts, self.spec, parents if self.spec.include_parent else None)

    def read_windows(self, texts: Sequence[str], parents: Sequence[str | None] | None = None
                     ) -> list[tuple[int, int] | None]:
        """Per text, None if the model reads all of it, else the ``(head_end, tail_start)`` characters it reads."""
        return read_windows(self.tokenizer, texts, self.spec, parents if self.spec.include_parent else None)

    def iter_proba(self, texts: Sequence[str], parents: Sequence[str | None] | None = None,
                   batch_size: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per batch, shortest texts first: (input indices, sentiment probs [B, S], stance probs [B, T, C]),
        decision biases applied. Lets a caller commit results batch by batch."""
        if len(texts) == 0:
            return
        ids = self.encode(texts, parents)
        for idx, sent, stance in iter_proba(ids, self._forward, self._pad_id, self._sep_id,
                                            batch_size or self.batch_size, self.max_batch_tokens):
            yield idx, apply_bias(sent, self.sentiment_bias), apply_bias(stance, self.stance_bias)

    def predict_proba(self, texts: Sequence[str], parents: Sequence[str | None] | None = None) -> Probabilities:
        """Class probabilities for every text (input order preserved)."""
        return collect(self.iter_proba(texts, parents), len(texts), len(self.sentiment_classes), self.targets,
                       len(self.stance_classes))

    def predict(self, texts: Sequence[str], parents: Sequence[str | None] | None = None) -> list[Prediction]:
        """Labels (argmax) with probabilities for every text."""
        probs = self.predict_proba(texts, parents)
        return to_predictions(probs, self.sentiment_classes, self.stance_classes, self.targets, self.none_class)

    def predict_batches(self, texts: Sequence[str], parents: Sequence[str | None] | None = None,
                        batch_size: int | None = None) -> Iterator[tuple[list[int], list[Prediction]]]:
        """Like :meth:`predict`, batch by batch: (input indices, their predictions)."""
        for idx, s, st in self.iter_proba(texts, parents, batch_size):
            probs = Probabilities(s, {t: st[:, j] for j, t in enumerate(self.targets)})
            yield ([int(i) for i in idx],
                   to_predictions(probs, self.sentiment_classes, self.stance_classes, self.targets, self.none_class))


