"""Where things are by default: the store, models, the label schema, the shared data folder.

Every default path is written here once; environment variables override the command-line defaults."""
from __future__ import annotations

import os
from pathlib import Path

STORE_PATH = "work/threadstance.sqlite"  # the one place the default store path is written
MODELS_PATH = "models"
SCHEMA_PATH = "configs/labels.yaml"
DEFAULT_STORE = os.environ.get("THREADSTANCE_DB", STORE_PATH)  # a SQLite file or a postgresql:// URL
DEFAULT_MODELS = Path(os.environ.get("THREADSTANCE_MODELS", MODELS_PATH))


def shared_dir(configured: str | Path | None = None) -> Path:
    """The shared data folder: explicit value, else $THREADSTANCE_SHARED, else ``../shared``."""
    return Path(configured or os.environ.get("THREADSTANCE_SHARED") or "../shared")
