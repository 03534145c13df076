"""``threadstance serve``: the results dashboard in the browser, over the store, read-only."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import OptionalDbOption, err_console
from pipeline.config.run import EvaluationConfig

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def serve(
    db: str | None = OptionalDbOption,
    model: Annotated[str | None, typer.Option("--model", help="Model folder or model_version (default: "
                                              "models/default when it exists, else the store's latest).",
                                              show_default=False)] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on; anything but localhost makes the "
                                      "store visible to the network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8765,
    bootstrap: Annotated[int, typer.Option("--bootstrap", min=50, help="Bootstrap replicates of the trend "
                                           "intervals.")] = 1000,
    min_items: Annotated[int, typer.Option("--min-items", min=1, help="Periods with fewer items are marked too "
                                           "few.")] = 30,
) -> None:
    """Serve the dashboard (overview, trends, threads, items, label next) at http://HOST:PORT/.

    The store is opened read-only; nothing on the pages writes to it."""
    import uvicorn

    from pipeline.config.settings import DEFAULT_STORE
    from pipeline.web.app import create_app

    path = db or DEFAULT_STORE
    if host not in LOCAL_HOSTS:
        err_console.print(f"[bold yellow]warning:[/] listening on {host}: the store's threads, comments and "
                          "predictions become visible to the network (no login)", highlight=False)
    start = time.perf_counter()
    gold = Path(EvaluationConfig().gold)
    app = create_app(path, model, n_boot=bootstrap, min_items=min_items, gold=gold if gold.is_file() else None)
    dash = app.state.dash
    counts = dash.index.counts()
    err_console.print(f"indexed {counts['items']:,} items ({counts['classified']:,} classified by "
                      f"{dash.version or 'no model'}) in {time.perf_counter() - start:.1f} s", highlight=False)
    import threading

    threading.Thread(target=dash.warm, name="warm-trends", daemon=True).start()  # first trend views cached
    shown = f"[{host}]" if ":" in host else host
    err_console.print(f"dashboard: http://{shown}:{port}/  (Ctrl+C stops it)", highlight=False)
    uvicorn.run(app, host=host, port=port, log_level="warning")
