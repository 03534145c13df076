"""Batched inference: tokenise once, sort by length, pad per batch, one model call per batch.

:class:`Predictor` loads a trained model directory once and classifies any number of texts, with the
PyTorch model (``backend="torch"``) or an ONNX Runtime export of it (``backend="onnx"`` /
``"onnx-int8"``, written by ``threadstance export onnx``). Both backends share the tokenisation, the
length sorting and the padding, so they see exactly the same inputs.
"""
from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.errors import UserError
from pipeline.hardware import cpu_has_native_bf16
from pipeline.modeling.encoding import InputSpec, encode_texts, special_ids
from pipeline.modeling.model import MODEL_META, MultiTaskModel
from pipeline.training.calibration import apply_bias

BACKENDS = ("torch", "onnx", "onnx-int8")
ONNX_FILES = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx"}
ONNX_META_SUFFIX = ".json"  # model.onnx.json: the model_version the export was made from


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


@dataclass
class Prediction:
    """Labels and probabilities for one text."""

    sentiment: str
    sentiment_probs: dict[str, float]
    stance: dict[str, str]
    stance_probs: dict[str, dict[str, float]]
    targets: list[str] = field(default_factory=list)  # targets with a non-none stance

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Probabilities:
    """Class probabilities for N texts, in the model's class order."""

    sentiment: np.ndarray  # [N, n_sentiment]
    stance: dict[str, np.ndarray]  # target -> [N, n_stance]


def pad_numpy(batch: Sequence[list[int]], pad_id: int, sep_id: int) -> dict[str, np.ndarray]:
    """Right-pad to the longest member: int64 input_ids, attention_mask, token_type_ids.

    Same values as :func:`pipeline.modeling.encoding.pad_batch` (segment 1 after the first [SEP]) without a
    Python loop per token.
    """
    lengths = np.fromiter((len(ids) for ids in batch), dtype=np.int64, count=len(batch))
    width = int(lengths.max())
    input_ids = np.full((len(batch), width), pad_id, dtype=np.int64)
    for row, ids in enumerate(batch):
        input_ids[row, : len(ids)] = ids
    positions = np.arange(width)[None, :]
    mask = positions < lengths[:, None]
    is_sep = (input_ids == sep_id) & mask
    first_sep = np.where(is_sep.any(1), is_sep.argmax(1), width)
    types = (positions > first_sep[:, None]) & mask
    return {"input_ids": input_ids, "attention_mask": mask.astype(np.int64),
            "token_type_ids": types.astype(np.int64)}


def batch_bounds(sorted_lengths: np.ndarray, batch_size: int, max_tokens: int | None = None) -> list[tuple[int, int]]:
    """(start, end) of consecutive batches over ascending lengths: at most ``batch_size`` texts, and with
    ``max_tokens`` at most that many padded word pieces (always at least one text)."""
    bounds, start, n = [], 0, len(sorted_lengths)
    while start < n:
        end = min(start + batch_size, n)
        if max_tokens:
            # ascending lengths: the batch start..end-1 is padded to sorted_lengths[end - 1]
            while end - start > 1 and (end - start) * int(sorted_lengths[end - 1]) > max_tokens:
                end = start + max(1, min(end - start - 1, max_tokens // max(int(sorted_lengths[end - 1]), 1)))
        bounds.append((start, end))
        start = end
    return bounds


def _softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


PRECISIONS = ("auto", "fp32", "bf16")


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` → ``bf16`` on a CPU with native bf16, else ``fp32``; explicit values pass through."""
    if precision != "auto":
        return precision
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"


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
        meta_path = self.model_dir / MODEL_META
        if not meta_path.is_file():
            raise UserError(f"not a threadstance model directory (no {MODEL_META}); train one with "
                            "`threadstance train`", self.model_dir)
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
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
            self.model, self.tokenizer = MultiTaskModel.load(self.model_dir, self.device)
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

    # ---- backends -----------------------------------------------------------------------------
    def _load_onnx(self, meta: dict) -> tuple[Any, Any]:
        import os

        import onnxruntime as ort
        from transformers import AutoTokenizer

        path = self.model_dir / ONNX_FILES[self.backend]
        flag = " --quantize int8" if self.backend == "onnx-int8" else ""
        if not path.is_file():
            raise UserError(f"no {path.name} in the model directory; write it with `threadstance export onnx "
                            f"--model {self.model_dir}{flag}`", self.model_dir)
        side = path.with_name(path.name + ONNX_META_SUFFIX)
        exported = json.loads(side.read_text(encoding="utf-8")).get("model_version") if side.is_file() else None
        if exported != self.model_version:
            raise UserError(f"{path.name} was exported from model_version {exported}, the model is now "
                            f"{self.model_version}; export it again with `threadstance export onnx --model "
                            f"{self.model_dir}{flag}`", path)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.num_threads:
            options.intra_op_num_threads = self.num_threads
            options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        providers = ["CPUExecutionProvider"]
        if self.device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        session = ort.InferenceSession(str(path), options, providers=providers)
        self._onnx_inputs = [i.name for i in session.get_inputs()]
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        return session, AutoTokenizer.from_pretrained(self.model_dir)

    def _forward(self, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Sentiment probabilities [B, S] and stance probabilities [B, T, C] for one padded batch."""
        if self.session is not None:
            sent, stance = self.session.run(None, {k: batch[k] for k in self._onnx_inputs})
            return (_softmax(sent.astype(np.float32) / self.sentiment_temperature),
                    _softmax(stance.astype(np.float32) / self.stance_temperature))
        assert self.model is not None
        tensors = {k: torch.from_numpy(v).to(self.device) for k, v in batch.items()}
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self._autocast):
            out = self.model(**tensors)
        sent = torch.softmax(out["sentiment"].float() / self.sentiment_temperature, -1).cpu().numpy()
        stance = torch.softmax(torch.stack([out["stance"][t] for t in self.targets], 1).float()
                               / self.stance_temperature, -1).cpu().numpy()
        return sent, stance

    # ---- inference ----------------------------------------------------------------------------
    def encode(self, texts: Sequence[str], parents: Sequence[str | None] | None = None) -> list[list[int]]:
        """Token ids per text as the model sees them (parents only if the input spec includes them)."""
        return encode_texts(self.tokenizer, texts, self.spec, parents if self.spec.include_parent else None)

    def iter_proba(self, texts: Sequence[str], parents: Sequence[str | None] | None = None,
                   batch_size: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per batch, shortest texts first: (input indices, sentiment probs [B, S], stance probs [B, T, C]).

        All texts are tokenised in one call, then sorted by length and padded per batch, so each batch
        is about as long as its own texts. Lets a caller commit results batch by batch.
        """
        if len(texts) == 0:
            return
        ids = self.encode(texts, parents)
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        order = np.argsort(lengths, kind="stable")
        with torch.inference_mode():
            for start, end in batch_bounds(lengths[order], batch_size or self.batch_size, self.max_batch_tokens):
                idx = order[start:end]
                sent, stance = self._forward(pad_numpy([ids[i] for i in idx], self._pad_id, self._sep_id))
                yield idx, apply_bias(sent, self.sentiment_bias), apply_bias(stance, self.stance_bias)

    def predict_proba(self, texts: Sequence[str], parents: Sequence[str | None] | None = None) -> Probabilities:
        """Class probabilities for every text (input order preserved)."""
        n = len(texts)
        sent = np.zeros((n, len(self.sentiment_classes)), dtype=np.float32)
        stance = np.zeros((n, len(self.targets), len(self.stance_classes)), dtype=np.float32)
        for idx, s, st in self.iter_proba(texts, parents):
            sent[idx] = s
            stance[idx] = st
        return Probabilities(sent, {t: stance[:, j] for j, t in enumerate(self.targets)})

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


def to_predictions(probs: Probabilities, sentiment_classes: list[str], stance_classes: list[str],
                   targets: list[str], none_class: str = "none") -> list[Prediction]:
    out = []
    for i in range(len(probs.sentiment)):
        s = probs.sentiment[i]
        stance, stance_probs = {}, {}
        for t in targets:
            p = probs.stance[t][i]
            stance[t] = stance_classes[int(p.argmax())]
            stance_probs[t] = {c: round(float(v), 4) for c, v in zip(stance_classes, p)}
        out.append(Prediction(
            sentiment=sentiment_classes[int(s.argmax())],
            sentiment_probs={c: round(float(v), 4) for c, v in zip(sentiment_classes, s)},
            stance=stance, stance_probs=stance_probs,
            targets=[t for t in targets if stance[t] != none_class]))
    return out
