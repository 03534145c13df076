"""scripts/domain_real_cv.py: pooled out-of-fold scoring on the real in-domain set."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_fixed_model_cv_scores_every_real_item_once_and_indexes_the_recipe(smoke_model: Path, shared_dir: Path,
                                                                            tmp_path: Path) -> None:
    out = tmp_path / "cv"
    env = {**os.environ, "THREADSTANCE_SHARED": str(shared_dir)}
    subprocess.run([sys.executable, "scripts/domain_real_cv.py", "configs/smoke.yaml", "--name", "fixed",
                    "--folds", "5", "--fixed-model", str(smoke_model), "--set", "data.domain_real.repeat=0",
                    "--models", str(tmp_path / "models"), "--out", str(out)],
                   cwd=REPO, env=env, check=True, capture_output=True)
    result = json.loads((out / "fixed.json").read_text())
    real_ids = [json.loads(line)["id"] for line in (shared_dir / "datasets/domain_real/comments.jsonl")
                .read_text().splitlines() if line.strip()]
    assert sorted(result["predictions"]) == sorted(real_ids)
    assert sum(f["n_dev"] for f in result["per_fold"]) == len(real_ids) == result["pooled"]["model"]["n"]
    assert all(f["n_real_train"] == 0 for f in result["per_fold"])
    for system in ("model", "tfidf_lr", "lexicon"):
        assert 0 <= result["pooled"][system]["stance_score"] <= 1
    assert "| fixed | 5 |" in (out / "README.md").read_text()
