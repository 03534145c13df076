"""Options and output helpers shared by the CLI commands."""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from pipeline.config.settings import DEFAULT_STORE, STORE_PATH
from pipeline.hardware import check_device  # noqa: F401  (re-exported for the commands)

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # C0 but tab and newline, DEL, C1


def _visible(text: str) -> str:
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _width(stream: object) -> int | None:
    """None (fit the terminal) on a terminal or with $COLUMNS; else 200, since piped or cron output has no
    width to fit and rich's default 80 columns would cut table cells (names, versions, probabilities)."""
    return None if getattr(stream, "isatty", lambda: False)() or "COLUMNS" in os.environ else 200


class SafeConsole(Console):
    """A console that shows control characters in any string it renders (plain, markup or a table cell) as
    ``\\xNN``: user text from a store, a label file or a file name cannot drive the terminal."""

    def render_str(self, text: str, **kwargs: object) -> Text:  # type: ignore[override]
        return super().render_str(_visible(text), **kwargs)  # type: ignore[arg-type]


console = SafeConsole(width=_width(sys.stdout))
err_console = SafeConsole(stderr=True, width=_width(sys.stderr))

_DB_HELP = "The store: a SQLite file or a PostgreSQL URL postgresql://user@host:port/db"
DbOption = typer.Option(DEFAULT_STORE, "--db", help=f"{_DB_HELP} (env THREADSTANCE_DB).")
# The same option where no --db means the default store (the commands then look it up themselves).
OptionalDbOption = typer.Option(None, "--db", help=f"{_DB_HELP} (default: env THREADSTANCE_DB, else {STORE_PATH}).",
                                show_default=False)


def fail(message: str, code: int = 1) -> None:
    """Print an error and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {escape(str(message))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def db_path(path: Path) -> Path:
    return Path(path)
