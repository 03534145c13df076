"""Training-seed variation: the same recipe trained with other seeds, scored on the same gold items.

The main job trains one model; ``threadstance evaluate --seed-models DIR ...`` takes further model folders of
the same recipe trained with other seeds (e.g. ``threadstance train configs/default.yaml --set seed=14 --set
run_name=default-s14``). Their configs must equal the main model's apart from the keys in
:data:`NOT_RECIPE`; the report shows each headline score's mean and sample SD over all seeds.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config.run import RunConfig
from pipeline.errors import UserError
from pipeline.modeling.folder import ModelFolder

# Config keys that may differ between seed runs of one recipe: the seed itself, names and places, the
# evaluation section, and where the run executed.
NOT_RECIPE = ("seed", "run_name", "paths", "evaluation", "training.device", "training.num_threads")


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): data}


def recipe_differences(a: RunConfig, b: RunConfig) -> list[str]:
    """The dotted config keys on which two runs differ, ignoring :data:`NOT_RECIPE`."""
    fa, fb = _flat(a.model_dump(by_alias=True)), _flat(b.model_dump(by_alias=True))

    def recipe_key(k: str) -> bool:
        return not any(k == n or k.startswith(n + ".") for n in NOT_RECIPE)

    return sorted(k for k in fa.keys() | fb.keys() if recipe_key(k) and fa.get(k) != fb.get(k))


def check_seed_models(main_dir: Path, main_cfg: RunConfig, dirs: list[Path]) -> list[tuple[Path, RunConfig]]:
    """The seed models' configs, after checking each is a model of the main model's recipe with its own seed."""
    seen = {main_cfg.seed: main_dir}
    out = []
    for d in dirs:
        folder = ModelFolder(d)
        folder.require()
        cfg = folder.read_config()
        diff = recipe_differences(main_cfg, cfg)
        if diff:
            shown = ", ".join(diff[:8]) + (f", … (+{len(diff) - 8} more)" if len(diff) > 8 else "")
            raise UserError(f"--seed-models: not the same recipe as {main_dir} ({shown} differ; only "
                            f"{', '.join(NOT_RECIPE)} may)", d)
        if cfg.seed in seen:
            raise UserError(f"--seed-models: trained with seed {cfg.seed}, like {seen[cfg.seed]}; each model must "
                            "have its own seed", d)
        seen[cfg.seed] = d
        out.append((d, cfg))
    return out


def seed_summary(runs: list[dict[str, Any]], keys: list[str]) -> dict[str, Any]:
    """Mean and sample SD (ddof=1) of each headline key over the runs (``seed``, ``headline``, ...);
    with one run there is no spread to report."""
    summary: dict[str, Any] = {"n_seeds": len(runs), "seeds": [r["seed"] for r in runs], "runs": runs}
    if len(runs) > 1:
        summary["mean"] = {k: float(np.mean([r["headline"][k] for r in runs])) for k in keys}
        summary["sd"] = {k: float(np.std([r["headline"][k] for r in runs], ddof=1)) for k in keys}
    return summary
