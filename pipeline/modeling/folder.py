"""The model folder ``models/<run>/``: the one place that writes and reads its files.

Layout (all written through :class:`ModelFolder`)::

    encoder/                  transformers ``save_pretrained``: config.json + model.safetensors
    tokenizer.json, tokenizer_config.json, vocab.txt, special_tokens_map.json
    heads.safetensors         sentiment head, one stance head per target, the pair-stance head (and, for
                              target-aware heads, the statement embeddings and their shared scorer)
    threadstance.json         label spaces, pooling, input spec, model_version, decision_bias, temperature
    config.yaml, labels.yaml  the resolved run config and label schema
    metrics.json, train_log.jsonl, README.md (model card)
    oof_table.json            out-of-fold predictions on domain_real: the misclassification rates of ``trends``
    gold_metrics.json         written by ``evaluate``
    model.onnx, model.int8.onnx (+ ``.json`` side files)   written by ``export onnx``
    manifest.json             SHA-256 and size of every file above

The manifest is written when training finishes and updated by every later write made through this
class (``calibrate``'s decision biases, ``evaluate``'s gold metrics and model card, ONNX exports).
Loading checks it: a missing, truncated or altered file is a one-line :class:`UserError` naming the
file, never silently wrong predictions. Folders written before manifests existed load without the
check, but the files the model cannot work without are still required by name.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import UserError
from pipeline.modeling.base_models import sha256_file as file_digest

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

    from pipeline.config.run import RunConfig
    from pipeline.config.schema import LabelSchema
    from pipeline.modeling.model import MultiTaskModel

MODEL_META = "threadstance.json"
HEADS_FILE = "heads.safetensors"
ENCODER_DIR = "encoder"
CONFIG_FILE = "config.yaml"
LABELS_FILE = "labels.yaml"
METRICS_FILE = "metrics.json"
GOLD_METRICS_FILE = "gold_metrics.json"
CARD_FILE = "README.md"
TRAIN_LOG_FILE = "train_log.jsonl"
OOF_TABLE_FILE = "oof_table.json"  # true class + out-of-fold probabilities per domain_real item (training/oof_table.py)
MANIFEST_FILE = "manifest.json"
CHECKPOINTS_DIR = "checkpoints"  # --resume state of an unfinished run; not part of the model
ONNX_FILES = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx"}
ONNX_META_SUFFIX = ".json"  # model.onnx.json: the model_version the export was made from
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")  # without tokenizer.json every word is [UNK]
ENCODER_FILES = (f"{ENCODER_DIR}/config.json",)
SAVING_MARK = ".saving-"  # .<run>.saving-<pid>: a model being written beside models/<run>
REPLACED_MARK = ".replaced-"  # .<run>.replaced-<pid>: the previous model, moved aside for the swap


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


class ModelFolder:
    """A trained model directory. ``save_model`` / ``load_model`` in the spirit of ``save_pretrained`` /
    ``from_pretrained``; every other file in the folder is read and written through the methods below."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"ModelFolder({str(self.path)!r})"

    def file(self, name: str) -> Path:
        return self.path / name

    def has(self, name: str) -> bool:
        return self.file(name).is_file()

    def is_model(self) -> bool:
        return self.has(MODEL_META)

    def require(self, hint: str = "train one with `threadstance train`") -> None:
        if not self.is_model():
            raise UserError(f"not a threadstance model directory (no {MODEL_META}); {hint}", self.path)

    # ---- manifest -----------------------------------------------------------------------------
    def _tracked_files(self) -> list[str]:
        out = []
        for p in sorted(self.path.rglob("*")):
            rel = p.relative_to(self.path).as_posix()
            if (not p.is_file() or rel == MANIFEST_FILE or rel.split("/")[0] == CHECKPOINTS_DIR
                    or rel.endswith(".tmp")):
                continue
            out.append(rel)
        return out

    def manifest(self) -> dict[str, dict[str, Any]] | None:
        """``{relative path: {"sha256", "size"}}``, or None for a folder written before manifests."""
        path = self.file(MANIFEST_FILE)
        if not path.is_file():
            return None
        try:
            files = json.loads(path.read_text(encoding="utf-8"))["files"]
            if not isinstance(files, dict):
                raise TypeError
            return files
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise UserError(f"model folder manifest is damaged ({type(exc).__name__}); train the model again",
                            path) from exc

    def _write_manifest(self, files: dict[str, dict[str, Any]]) -> None:
        body = {"format": 1, "algorithm": "sha256", "files": dict(sorted(files.items()))}
        self._atomic_write(MANIFEST_FILE, json.dumps(body, indent=2) + "\n")

    def write_manifest(self) -> None:
        """Record the SHA-256 and size of every file in the folder (end of training)."""
        self._write_manifest({rel: self._entry(rel) for rel in self._tracked_files()})

    def _entry(self, rel: str) -> dict[str, Any]:
        p = self.file(rel)
        return {"sha256": file_digest(p), "size": p.stat().st_size}

    def _record(self, *names: str) -> None:
        """Update the manifest after a legitimate write (no-op for a folder without a manifest)."""
        files = self.manifest()
        if files is None:
            return
        for rel in names:
            if self.file(rel).is_file():
                files[rel] = self._entry(rel)
            else:
                files.pop(rel, None)
        self._write_manifest(files)

    def verify(self, names: Iterable[str] | None = None) -> None:
        """Check files against the manifest (all of them, or ``names``); UserError naming the first bad one."""
        files = self.manifest()
        if files is None:
            return
        wanted = list(files) if names is None else [n for n in names if n in files]
        for rel in wanted:
            entry, p = files[rel], self.file(rel)
            if not p.is_file():
                raise UserError(f"model file {rel} is missing (listed in {MANIFEST_FILE}); copy the whole model "
                                "folder again or retrain", p)
            size = p.stat().st_size
            if size != entry.get("size"):
                raise UserError(f"model file {rel} is damaged: {size} bytes, {entry.get('size')} when saved "
                                "(truncated or altered); copy the whole model folder again or retrain", p)
            if file_digest(p) != entry.get("sha256"):
                raise UserError(f"model file {rel} was altered after it was saved (SHA-256 differs from "
                                f"{MANIFEST_FILE}); copy the whole model folder again or retrain", p)

    # ---- plain files --------------------------------------------------------------------------
    def _atomic_write(self, name: str, text: str) -> Path:
        path = self.file(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        return path

    def write_text(self, name: str, text: str) -> Path:
        path = self._atomic_write(name, text)
        self._record(name)
        return path

    def read_text(self, name: str, verify: bool = True) -> str:
        path = self.file(name)
        if not path.is_file():
            raise UserError(f"no {name} in the model directory; is this a folder written by `threadstance train`?",
                            self.path)
        if verify:
            self.verify([name])
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise UserError(f"model file {name} is not UTF-8 text", path) from exc

    def read_json(self, name: str, default: Any = None, verify: bool = True) -> Any:
        """Parsed JSON file; ``default`` when it does not exist (an error if no default is given)."""
        if default is not None and not self.has(name):
            return default
        try:
            return json.loads(self.read_text(name, verify))
        except ValueError as exc:
            raise UserError(f"model file {name} is not valid JSON ({exc})", self.file(name)) from exc

    def write_json(self, name: str, obj: Any) -> Path:
        return self.write_text(name, json.dumps(obj, indent=2) + "\n")

    # ---- typed documents ----------------------------------------------------------------------
    def read_meta(self) -> dict[str, Any]:
        self.require()
        return self.read_json(MODEL_META)

    def write_meta(self, meta: dict[str, Any]) -> None:
        self.write_json(MODEL_META, meta)

    def update_meta(self, **changes: Any) -> dict[str, Any]:
        meta = self.read_meta()
        for k, v in changes.items():
            if v is None:
                meta.pop(k, None)
            else:
                meta[k] = v
        self.write_meta(meta)
        return meta

    def recorded_version(self) -> str:
        return self.read_meta().get("model_version", "unversioned")

    def read_config(self) -> RunConfig:
        from pipeline.config.run import load_config

        self.read_text(CONFIG_FILE)  # presence, UTF-8 and manifest check, one-line errors
        return load_config(self.file(CONFIG_FILE))

    def write_config(self, cfg: RunConfig) -> None:
        self.write_text(CONFIG_FILE, cfg.to_yaml())

    def read_schema(self) -> LabelSchema | None:
        from pipeline.config.schema import load_schema

        if not self.has(LABELS_FILE):
            return None
        self.verify([LABELS_FILE])
        return load_schema(self.file(LABELS_FILE))

    def write_schema(self, schema: LabelSchema) -> None:
        import yaml

        self.write_text(LABELS_FILE, yaml.safe_dump(schema.model_dump(), sort_keys=False, allow_unicode=True))

    def write_train_log(self, entries: list[dict]) -> None:
        self.write_text(TRAIN_LOG_FILE, "".join(json.dumps(e) + "\n" for e in entries))

    def write_oof_table(self, table: dict[str, Any]) -> Path:
        return self.write_text(OOF_TABLE_FILE, json.dumps(table, separators=(",", ":")) + "\n")

    def read_oof_table(self) -> dict[str, Any] | None:
        """The out-of-fold table, or None for a model trained without one."""
        return self.read_json(OOF_TABLE_FILE) if self.has(OOF_TABLE_FILE) else None

    def write_card(self) -> Path:
        """(Re)write the model card README.md from metrics.json, config.yaml and gold_metrics.json."""
        import yaml

        from pipeline.modeling.card import render_model_card

        metrics = self.read_json(METRICS_FILE)
        cfg = yaml.safe_load(self.read_text(CONFIG_FILE))
        gold = self.read_json(GOLD_METRICS_FILE) if self.has(GOLD_METRICS_FILE) else None
        return self.write_text(CARD_FILE, render_model_card(metrics, cfg, gold))

    # ---- saving a whole model -------------------------------------------------------------------
    @contextlib.contextmanager
    def saving(self) -> Iterator[ModelFolder]:
        """A new, empty folder beside this one (``.<run>.saving-<pid>``) to write a whole model into.

        When the block finishes, the new folder replaces this one: this one is renamed aside, the new one
        renamed into place, the old one removed, so a reader sees the old model or the new one, never a
        mix. If the block raises (disk full, a kill signal turned into an exception), the new folder is
        removed and this one is left as it was; after a hard kill (``kill -9``) the next save clears it.
        """
        parent = self.path.parent
        parent.mkdir(parents=True, exist_ok=True)
        self._clear_interrupted_saves()
        staging = ModelFolder(parent / f".{self.path.name}{SAVING_MARK}{os.getpid()}")
        shutil.rmtree(staging.path, ignore_errors=True)
        staging.path.mkdir()
        try:
            yield staging
            old = parent / f".{self.path.name}{REPLACED_MARK}{os.getpid()}"
            if self.path.exists():
                os.replace(self.path, old)
            os.replace(staging.path, self.path)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(staging.path, ignore_errors=True)

    def _clear_interrupted_saves(self) -> None:
        """Remove what a killed save left beside this folder; put back a model moved aside mid-swap."""
        prefix = f".{self.path.name}."
        for p in sorted(q for q in self.path.parent.iterdir() if q.name.startswith(prefix)):
            mark, _, pid = p.name[len(prefix) - 1:].rpartition("-")
            if f"{mark}-" not in (SAVING_MARK, REPLACED_MARK) or not pid.isdigit() or _pid_alive(int(pid)):
                continue
            if f"{mark}-" == REPLACED_MARK and not self.path.exists():
                os.replace(p, self.path)  # killed between the two renames: the old model goes back
            else:
                shutil.rmtree(p, ignore_errors=True)

    def check_finished(self, meta: dict[str, Any]) -> None:
        """A folder without ``manifest.json`` loads only in the layout written before manifests existed: its
        recorded ``model_version`` is still the content hash of its weights and schema. Anything else
        (a save that died half way, a hand-assembled folder) is refused rather than run with mixed weights."""
        if self.manifest() is not None:
            return
        version, schema = meta.get("model_version"), self.read_schema()
        if version is None or schema is None or self.content_version(schema) != version:
            raise UserError(f"model folder has no {MANIFEST_FILE} and its weights do not match its recorded "
                            f"model_version {version} (an interrupted save or a hand-assembled folder); retrain, "
                            "or copy the whole model folder again", self.path)

    # ---- weights ------------------------------------------------------------------------------
    def save_model(self, model: MultiTaskModel, tokenizer: PreTrainedTokenizerBase) -> None:
        """Encoder, tokenizer, heads and the label-space meta into a new folder (from :meth:`saving`); the
        manifest is written by :meth:`write_manifest` once the run's other files are in place."""
        from safetensors.torch import save_file

        if self.is_model() or self.has(MANIFEST_FILE):
            raise ValueError(f"{self.path} already holds a model: write a new one through ModelFolder.saving()")
        self.path.mkdir(parents=True, exist_ok=True)
        model.encoder.save_pretrained(self.file(ENCODER_DIR), safe_serialization=True)
        tokenizer.save_pretrained(self.path)
        save_file({k: v.detach().contiguous().cpu() for k, v in model.head_state().items()},
                  str(self.file(HEADS_FILE)))
        meta = {"sentiment_classes": model.sentiment_classes, "stance_classes": model.stance_classes,
                "targets": model.targets, "pooling": model.pooling, "dropout": model.dropout_p}
        if model.target_aware:
            meta["target_aware"] = True
        self.write_meta(meta)

    def _require_files(self, names: Iterable[str]) -> None:
        for rel in names:
            if not self.file(rel).is_file():
                raise UserError(f"model file {rel} is missing; copy the whole model folder again or retrain",
                                self.file(rel))

    def _encoder_weights(self) -> list[Path]:
        return sorted(self.file(ENCODER_DIR).glob("*.safetensors"))

    def load_tokenizer(self, verified: bool = False) -> PreTrainedTokenizerBase:
        from transformers import AutoTokenizer

        self.require()
        self._require_files(TOKENIZER_FILES)
        if not verified:
            self.verify([n for n in (self.manifest() or {}) if "/" not in n and n.startswith(("tokenizer",
                                                                                             "vocab", "special"))])
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            return AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        except Exception as exc:  # a damaged tokenizer file: name it, no traceback
            raise UserError(f"model tokenizer files cannot be read ({type(exc).__name__}: {str(exc)[:200]})",
                            self.file(TOKENIZER_FILES[0])) from exc

    def load_model(self, device: str | torch.device = "cpu") -> tuple[MultiTaskModel, PreTrainedTokenizerBase]:
        """The model in eval mode on ``device`` and its tokenizer, after checking every file."""
        import torch
        from safetensors.torch import load_file
        from transformers import AutoModel

        from pipeline.modeling.model import MultiTaskModel

        meta = self.read_meta()
        self.verify([n for n in self.manifest() or {} if not n.startswith("model.")])  # ONNX: checked when used
        self._require_files([*ENCODER_FILES, HEADS_FILE])
        if not self._encoder_weights():
            raise UserError(f"model file {ENCODER_DIR}/model.safetensors is missing; copy the whole model folder "
                            "again or retrain", self.file(ENCODER_DIR))
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            encoder = AutoModel.from_pretrained(self.file(ENCODER_DIR), local_files_only=True)
        except Exception as exc:
            raise UserError(f"model encoder cannot be loaded ({type(exc).__name__}: {str(exc)[:200]})",
                            self.file(ENCODER_DIR)) from exc
        emb = None
        if meta.get("target_aware"):  # the real embeddings come with the heads below
            emb = torch.zeros(len(meta["targets"]), encoder.config.hidden_size)
        model = MultiTaskModel(encoder, meta["sentiment_classes"], meta["stance_classes"], meta["targets"],
                               meta.get("dropout", 0.1), meta.get("pooling", "mean"), emb)
        try:
            state = load_file(str(self.file(HEADS_FILE)))
        except Exception as exc:
            raise UserError(f"model heads cannot be read ({type(exc).__name__}: {str(exc)[:200]})",
                            self.file(HEADS_FILE)) from exc
        missing, unexpected = model.load_state_dict(state, strict=False)
        unexpected = [k for k in unexpected if not k.startswith("encoder.")]
        head_missing = [k for k in missing if not k.startswith("encoder.")]
        if head_missing or unexpected:
            raise UserError(f"model heads do not match {MODEL_META}: missing {head_missing}, "
                            f"unexpected {unexpected}", self.file(HEADS_FILE))
        self.check_finished(meta)
        return model.to(device).eval(), self.load_tokenizer(verified=True)

    def content_version(self, schema: LabelSchema) -> str:
        """model_version: hash of the weights, the decision biases and the label schema (12 hex digits)."""
        h = hashlib.sha256()
        meta = json.loads(self.file(MODEL_META).read_text(encoding="utf-8"))
        h.update(json.dumps(meta.get("decision_bias"), sort_keys=True).encode())
        for path in sorted([self.file(HEADS_FILE), *self._encoder_weights()]):  # order as ever: encoder/ < heads
            with open(path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        h.update(schema.model_dump_json().encode())
        return h.hexdigest()[:12]

    # ---- ONNX exports -------------------------------------------------------------------------
    def onnx_path(self, backend: str) -> Path:
        return self.file(ONNX_FILES[backend])

    def onnx_info(self, backend: str) -> dict[str, Any] | None:
        """The side file of an export (its model_version etc.), None if absent."""
        name = ONNX_FILES[backend] + ONNX_META_SUFFIX
        return self.read_json(name) if self.has(name) else None

    def verify_onnx(self, backend: str) -> None:
        self.verify([ONNX_FILES[backend], ONNX_FILES[backend] + ONNX_META_SUFFIX])

    def commit_onnx(self, tmp: Path, backend: str, info: dict[str, Any]) -> Path:
        """Move a finished export into place with its side file and record both in the manifest."""
        final = self.onnx_path(backend)
        os.replace(tmp, final)
        side = final.name + ONNX_META_SUFFIX
        self._atomic_write(side, json.dumps(info, indent=2) + "\n")
        self._record(final.name, side)
        return final
