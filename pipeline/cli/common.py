"""Options and output helpers shared by the CLI commands."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from pipeline.config.settings import DEFAULT_STORE
from pipeline.hardware import check_device  # noqa: F401  (re-exported for the commands)


def _width(stream: object) -> int | None:
    """None (fit the terminal) on a terminal or with $COLUMNS; else 200, since piped or cron output has no
    width to fit and rich's default 80 columns would cut table cells (names, versions, probabilities)."""
    return None if getattr(stream, "isatty", lambda: False)() or "COLUMNS" in os.environ else 200


console = Console(width=_width(sys.stdout))
err_console = Console(stderr=True, width=_width(sys.stderr))

DbOption = typer.Option(DEFAULT_STORE, "--db", help="The store: a SQLite file or a PostgreSQL URL postgresql://user@host:port/db (env THREADSTANCE_DB).")


def fail(message: str, code: int = 1) -> None:
    """Print an error and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {escape(str(message))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def db_path(path: Path) -> Path:
    return Path(path)
