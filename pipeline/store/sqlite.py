"""Helpers shared by the store modules: timestamps, text digests and the one-line :class:`StoreError`."""
from __future__ import annotations

import hashlib
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from pipeline.errors import UserError


def utcnow() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class StoreError(UserError):
    """The SQLite store could not be read or written (disk full, read-only, locked, damaged)."""


def store_error(exc: sqlite3.Error, path: str | Path) -> StoreError:
    """A one-line, actionable StoreError for a sqlite3 error; never an empty message."""
    text = str(exc).strip() or type(exc).__name__
    low = text.lower()
    if "disk is full" in low or "disk full" in low:
        message = "disk full: the store could not be written; this step was rolled back (free space and rerun)"
    elif "readonly" in low or "read-only" in low:
        message = "the store is read-only: cannot write (check the file and folder permissions)"
    elif "locked" in low or "busy" in low:
        message = "the store is locked by another process; try again when it has finished"
    elif "not a database" in low or "malformed" in low:
        message = f"the store file is damaged or not a threadstance database ({text})"
    elif "unable to open" in low:
        message = f"cannot open the store ({text})"
    else:
        message = f"SQLite error: {text}; this step was rolled back"
    return StoreError(message, path)
