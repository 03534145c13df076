"""Options and output helpers shared by the CLI commands."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from pipeline.config.settings import DEFAULT_DB

console = Console()
err_console = Console(stderr=True)

DbOption = typer.Option(DEFAULT_DB, "--db", help="SQLite store file (env THREADSTANCE_DB).")


def fail(message: str, code: int = 1) -> None:
    """Print an error and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {escape(str(message))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def db_path(path: Path) -> Path:
    return Path(path)


def check_device(device: str, where: str = "--device") -> None:
    """UserError (exit 2, one line) when ``device`` names an accelerator this machine does not have."""
    from pipeline.errors import UserError

    kind = str(device).split(":")[0]
    if kind not in ("auto", "cpu", "cuda", "mps"):
        raise UserError(f"{where} {device!r}: choose auto, cpu, cuda or mps")
    if kind == "cuda":
        import torch

        if not torch.cuda.is_available():
            built = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise UserError(f"{where} {device}: CUDA is not available ({built}); use cpu or auto")
        index = int(str(device).split(":")[1]) if ":" in str(device) else 0
        if index >= torch.cuda.device_count():
            raise UserError(f"{where} {device}: only {torch.cuda.device_count()} CUDA device(s) here")
    if kind == "mps":
        import torch

        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise UserError(f"{where} mps: Apple MPS is not available on this machine; use cpu or auto")
