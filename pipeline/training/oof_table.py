"""The model folder's out-of-fold table: where ``threadstance trends`` gets its misclassification rates.

The recipe study (``scripts/recipe_study.py``) scores every real labelled passage (domain_real) with a
model that never saw it and writes ``oof: {item_id: {sentiment: [logits], stance: [[logits per class]
per target]}}`` (class order of the label schema, targets in schema order) into its recipe JSON. The
config key ``calibration.oof_predictions`` names that file; training then stores, per item, the true
class index and the probabilities after the model's temperature for every task, plus the item's url
cluster (an index, for the cluster bootstrap), in the model folder. Decision biases are applied when
the table is read, since ``threadstance calibrate`` can change them later.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config.run import RunConfig
from pipeline.config.schema import LabelSchema
from pipeline.data.public_data import load_domain_real
from pipeline.errors import ConfigError

KEY = "calibration.oof_predictions"


def _softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError("out-of-fold predictions file not found", path, key=KEY)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"not valid JSON ({exc})", path, key=KEY) from exc
    if not isinstance(data, dict) or not isinstance(data.get("oof"), dict) or not data["oof"]:
        raise ConfigError("no 'oof' predictions (item_id -> {sentiment, stance})", path, key=KEY)
    return data


def build_oof_table(cfg: RunConfig, schema: LabelSchema) -> dict[str, Any] | None:
    """The out-of-fold table for ``cfg`` (None when ``calibration.oof_predictions`` is unset); ConfigError
    naming the key for a missing or malformed file, or one that does not fit the label schema."""
    source = cfg.calibration.oof_predictions
    if not source:
        return None
    path = Path(source)
    data = _read(path)
    real = {r["id"]: r for r in load_domain_real(cfg.paths.shared)}
    unknown = sorted(set(data["oof"]) - set(real))
    if unknown:
        raise ConfigError(f"{len(unknown)} ids are not domain_real items (e.g. {unknown[0]})", path, key=KEY)
    ids = [i for i in real if i in data["oof"]]  # dataset order
    targets, s_classes, t_classes = schema.target_names, schema.sentiment_classes, schema.stance_classes
    try:
        sent = np.array([data["oof"][i]["sentiment"] for i in ids], dtype=float)
        stance = np.array([data["oof"][i]["stance"] for i in ids], dtype=float)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"every oof entry needs sentiment [classes] and stance [targets][classes] "
                          f"({type(exc).__name__}: {exc})", path, key=KEY) from exc
    if sent.shape != (len(ids), len(s_classes)) or stance.shape != (len(ids), len(targets), len(t_classes)):
        raise ConfigError(f"predictions have shapes {sent.shape} / {stance.shape}, the label schema "
                          f"needs ({len(ids)}, {len(s_classes)}) / ({len(ids)}, {len(targets)}, {len(t_classes)})",
                          path, key=KEY)
    temps = cfg.calibration.temperature or {}
    t_sent, t_stance = float(temps.get("sentiment", 1.0)), float(temps.get("stance", 1.0))
    urls = [real[i].get("url") or i for i in ids]
    group_of = {u: g for g, u in enumerate(dict.fromkeys(urls))}

    def task(true_labels: list[str], classes: list[str], probs: np.ndarray) -> dict[str, Any]:
        return {"classes": classes, "true": [classes.index(y) for y in true_labels],
                "probs": np.round(probs, 5).tolist()}

    return {
        "format": 1, "source": str(source), "recipe": data.get("recipe"), "dataset": "domain_real",
        "n": len(ids), "temperature": {"sentiment": t_sent, "stance": t_stance},
        "probabilities": "softmax(logits / T), the model's temperature; decision biases are applied when read",
        "ids": ids, "groups": [group_of[u] for u in urls], "kinds": [real[i].get("kind") for i in ids],
        "sentiment": task([real[i]["sentiment"] for i in ids], s_classes, _softmax(sent, t_sent)),
        "stance": {t: task([real[i]["stance"][t] for i in ids], t_classes, _softmax(stance[:, j], t_stance))
                   for j, t in enumerate(targets)},
    }


def oof_summary(table: dict[str, Any] | None, file_name: str) -> dict[str, Any] | None:
    """What metrics.json (and the model card) say about the table."""
    if table is None:
        return None
    return {"file": file_name, "source": table["source"], "recipe": table.get("recipe"), "n": table["n"],
            "dataset": table["dataset"]}
