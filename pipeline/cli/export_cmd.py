"""``threadstance export onnx``: an ONNX Runtime copy of a trained model (optionally int8-quantised)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from pipeline.cli.common import console, err_console
from pipeline.config.settings import DEFAULT_MODELS

app = typer.Typer(help="Export a trained model for other runtimes.", no_args_is_help=True)


@app.command("onnx")
def onnx(
    model: Annotated[Path, typer.Option("--model", help="Model directory (models/<run>).")] = DEFAULT_MODELS / "default",
    quantize: Annotated[str | None, typer.Option("--quantize", help="Also write an int8 dynamically quantised "
                                                 "model.int8.onnx.")] = None,
    exporter: Annotated[str, typer.Option("--exporter", help="dynamo (torch.export) | legacy (TorchScript)")] = "dynamo",
) -> None:
    """Write model.onnx (and model.int8.onnx) into the model directory; use them with --backend onnx|onnx-int8."""
    from transformers.utils import logging as hf_logging

    from pipeline.inference.onnx_export import export_onnx

    hf_logging.disable_progress_bar()
    result = export_onnx(model, quantize, exporter)
    for note in result.notes:
        err_console.print(f"[yellow]warning:[/] {escape(str(note))}", highlight=False)
    for path in result.files:
        console.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB; max |prob diff| vs torch on a check "
                      f"batch {result.max_abs_diff[path.name]:.1e}; exporter {result.exporter})", highlight=False, soft_wrap=True)
