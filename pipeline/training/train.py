"""``train(cfg)``: the one way in to training, from the CLI or from Python.

``training.trainable_layers: null`` fine-tunes everything (:mod:`pipeline.training.loop`); a number
trains only the top layers on cached lower-layer states (:mod:`pipeline.training.layerwise`).
"""
from __future__ import annotations

from pipeline.config.run import RunConfig
from pipeline.training.layerwise import train_layerwise
from pipeline.training.loop import train_finetune
from pipeline.training.oof_table import build_oof_table
from pipeline.training.run import RunResult


def train(cfg: RunConfig, resume: bool = False, progress: bool = True) -> RunResult:
    """Run the configured training and write the model directory ``models/<run_name>/``."""
    build_oof_table(cfg, cfg.schema())  # a bad calibration.oof_predictions fails now, not after training
    if cfg.training.trainable_layers is not None:
        return train_layerwise(cfg, progress)
    return train_finetune(cfg, resume, progress)
