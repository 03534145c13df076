"""Where things are: the store, the shared data folder, models. Environment variables override defaults."""
from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DB = Path(os.environ.get("THREADSTANCE_DB", "work/threadstance.sqlite"))
DEFAULT_MODELS = Path(os.environ.get("THREADSTANCE_MODELS", "models"))


def shared_dir(configured: str | Path | None = None) -> Path:
    """The shared data folder: explicit value, else $THREADSTANCE_SHARED, else ``../shared``."""
    return Path(configured or os.environ.get("THREADSTANCE_SHARED") or "../shared")
