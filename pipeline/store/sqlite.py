"""Helpers shared by the store modules: timestamps, text digests and the one-line :class:`StoreError`."""
from __future__ import annotations

import hashlib
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from pipeline.errors import UserError

DB_ERRORS: tuple[type[BaseException], ...] = (sqlite3.Error, SQLAlchemyError)  # what a store operation may raise


def utcnow() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class StoreError(UserError):
    """The store could not be read or written (disk full, read-only, locked, damaged, server unreachable)."""


def store_error(exc: BaseException, path: str | Path) -> StoreError:
    """A one-line, actionable StoreError for a database error (sqlite3, psycopg, or SQLAlchemy's wrapper of
    either); never an empty message."""
    orig = getattr(exc, "orig", None) or exc
    text = " ".join(str(orig).split()) or type(orig).__name__
    low = text.lower()
    if "disk is full" in low or "disk full" in low or "no space left" in low:
        message = "disk full: the store could not be written; this step was rolled back (free space and rerun)"
    elif "readonly" in low or "read-only" in low:
        message = "the store is read-only: cannot write (check the file and folder permissions)"
    elif "locked" in low or "busy" in low:
        message = "the store is locked by another process; try again when it has finished"
    elif "not a database" in low or "malformed" in low:
        message = f"the store file is damaged or not a threadstance database ({text})"
    elif "unable to open" in low:
        message = f"cannot open the store ({text})"
    elif "connection" in low and ("refused" in low or "failed" in low or "closed" in low):
        message = f"cannot reach the PostgreSQL store ({text})"
    elif isinstance(orig, sqlite3.Error):
        message = f"SQLite error: {text}; this step was rolled back"
    else:
        message = f"database error: {text}; this step was rolled back"
    return StoreError(message, path)
