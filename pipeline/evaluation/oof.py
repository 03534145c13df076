"""The recipe's out-of-fold scores on the real in-domain set (domain_real), shown beside the gold scores.

Read from the recipe study summary (``scripts/recipe_study.py table`` writes it; config key
``evaluation.oof_summary``). The recipe is ``evaluation.oof_recipe`` or, when that is unset, the recipe
named in the model's ``calibration.fitted_on`` text ("... of recipe NAME ..."). A missing summary or an
unknown recipe is reported as such (the evaluation still runs); an unreadable summary is a UserError.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pipeline.errors import UserError
from pipeline.evaluation.scoring import verdict

_RECIPE_IN_TEXT = re.compile(r"\brecipe\s+`?([A-Za-z0-9_.:+-]+)`?")


def recipe_name(oof_recipe: str | None, fitted_on: str) -> tuple[str | None, str | None]:
    """The recipe whose out-of-fold scores describe the model, and the config key it came from."""
    if oof_recipe:
        return oof_recipe, "evaluation.oof_recipe"
    match = _RECIPE_IN_TEXT.search(fitted_on or "")
    return (match.group(1), "calibration.fitted_on") if match else (None, None)


def _paired(diffs: dict[str, Any], recipe: str) -> list[dict[str, Any]]:
    out = []
    for pair, d in diffs.items():
        a, _, b = pair.partition(" - ")
        if recipe not in (a, b):
            continue
        entry: dict[str, Any] = {"pair": pair}
        for key in ("sentiment", "stance"):
            if isinstance(d.get(key), list) and len(d[key]) == 3:
                point, lo, hi = (float(x) for x in d[key])
                entry[key] = {"diff": point, "ci": [lo, hi], "verdict": verdict(lo, hi)}
        out.append(entry)
    return out


def read_oof(summary_path: str | Path, recipe: str | None, recipe_from: str | None,
             targets: list[str]) -> dict[str, Any]:
    """The recipe's pooled out-of-fold scores under the gold report's flat headline keys (``available``
    False with a ``reason`` when there is nothing to show)."""
    path = Path(summary_path)
    base: dict[str, Any] = {"summary": str(path), "recipe": recipe, "recipe_from": recipe_from}
    if recipe is None:
        return {**base, "available": False,
                "reason": "no recipe named (set evaluation.oof_recipe, or name it in calibration.fitted_on)"}
    if not path.is_file():
        return {**base, "available": False, "reason": f"recipe study summary {path} not found"}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        recipes = data["recipes"]
        if not isinstance(recipes, dict):
            raise TypeError("'recipes' is not an object")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read the recipe study summary ({type(exc).__name__}: {exc})", path,
                        key="evaluation.oof_summary") from exc
    if recipe not in recipes:
        return {**base, "available": False,
                "reason": f"recipe {recipe!r} is not in {path} (it has: {', '.join(recipes)})"}
    r = recipes[recipe]
    pooled = r.get("pooled", {})
    scores = {"sentiment_macro_f1": pooled.get("sentiment_macro_f1"),
              **{f"f1_avg.{t}": pooled.get("f1_avg", {}).get(t) for t in targets},
              "stance_score": pooled.get("stance_score")}
    return {**base, "available": True, "n": r.get("n"), "scores": scores,
            "ece_sentiment": {"raw": r.get("ece_raw"), "temperature": r.get("ece_temp")},
            "paired": _paired(data.get("paired", {}), recipe)}
