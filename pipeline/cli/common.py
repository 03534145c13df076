"""Options and output helpers shared by the CLI commands."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from pipeline.config.settings import DEFAULT_DB
from pipeline.hardware import check_device  # noqa: F401  (re-exported for the commands)

console = Console()
err_console = Console(stderr=True)

DbOption = typer.Option(DEFAULT_DB, "--db", help="SQLite store file (env THREADSTANCE_DB).")


def fail(message: str, code: int = 1) -> None:
    """Print an error and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {escape(str(message))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def db_path(path: Path) -> Path:
    return Path(path)
