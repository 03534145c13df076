"""``threadstance reclassify`` (the scheduled job) and ``threadstance runs`` (its history)."""
from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from pipeline.cli.common import check_device, console, err_console
from pipeline.config.settings import DEFAULT_STORE
from pipeline.errors import UserError
from pipeline.jobs.schedule import DEFAULT_CONFIG, EX_TEMPFAIL, JOB

EXIT_PARTIAL = 1  # README contract: 1 = some input failed, the rest was processed
STATUS_STYLE = {"ok": "green", "partial": "yellow", "failed": "bold red", "killed": "red", "running": "cyan"}


class Terminated(Exception):
    """SIGTERM (systemd stop, kill) during a run: recorded as a failed run, then the process exits."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated("terminated by SIGTERM")


def reclassify(
    config: Annotated[Path, typer.Argument(help="Schedule config YAML.")] = DEFAULT_CONFIG,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Override: key=value (repeatable).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would happen; change nothing.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only (the log file has the rest); "
                                        "for cron, which mails any output.")] = False,
    min_confidence: Annotated[float | None, typer.Option(
        "--min-confidence", help="In the exported snapshot, a head whose top probability is below this says "
        "`abstain` (the store keeps the model's labels). Same as --set min_confidence=P.",
        show_default=False)] = None,
    engine: Annotated[str | None, typer.Option("--engine", help="local (default) or ray: batch inference on Ray Data "
                                               "(pip install 'threadstance[ray]'; docs/scaling.md).",
                                               show_default=False)] = None,
    address: Annotated[str | None, typer.Option("--address", help="--engine ray: the Ray cluster (default: start a "
                                                "local Ray).", show_default=False)] = None,
    actors: Annotated[int | None, typer.Option("--actors", min=1, help="--engine ray: model replicas.",
                                               show_default=False)] = None,
    gpus_per_actor: Annotated[float | None, typer.Option("--gpus-per-actor", min=0, help="--engine ray: GPUs per "
                                                         "actor.", show_default=False)] = None,
) -> None:
    """One scheduled run: ingest the inbox, classify items the current model has not seen, export a snapshot.

    Exit codes: 0 ok, 1 partial (some inbox files quarantined, the rest processed) or failed (see
    `threadstance runs`), 2 bad config, 75 another run holds the lock (try again later). Cron and systemd
    examples: docs/scheduling.md.
    """
    from pipeline.jobs.schedule import LockHeld, RunLog, job_lock, load_schedule, plan_dry_run, run_reclassify

    options = {"min_confidence": min_confidence, "engine": engine, "ray_address": address, "actors": actors,
               "gpus_per_actor": gpus_per_actor}
    cfg = load_schedule(config, [*(overrides or []), *(f"{k}={v}" for k, v in options.items() if v is not None)])
    check_device(cfg.device, f"{config} [device]")
    if dry_run:
        print_plan(plan_dry_run(cfg), cfg)
        return
    lock = job_lock(cfg)
    try:
        lock.acquire()
    except LockHeld as exc:
        log = RunLog(cfg.log_file)
        log(f"not started: {exc}", "warning")
        log.close()
        err_console.print(f"[bold yellow]busy:[/] {escape(str(exc))}; not starting a second run "
                          f"(exit {EX_TEMPFAIL}, try again later)", highlight=False)
        raise typer.Exit(EX_TEMPFAIL) from None
    log = RunLog(cfg.log_file, echo=None if quiet else lambda m: console.print(m, markup=False, highlight=False, soft_wrap=True))
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        summary = run_reclassify(cfg, log)
    except UserError:
        raise
    except (Exception, KeyboardInterrupt) as exc:
        err_console.print(f"[bold red]error:[/] reclassify run failed: {type(exc).__name__}: {escape(str(exc))} "
                          f"(details in {escape(cfg.log_file)})", highlight=False)
        raise typer.Exit(130 if isinstance(exc, KeyboardInterrupt) else 1) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        log.close()
        lock.release()
    for path in summary.quarantined:
        err_console.print(f"[bold red]quarantined:[/] {escape(path)} (reason in {escape(path)}.error.txt)",
                          highlight=False, soft_wrap=True)
    if not quiet:
        print_summary(summary)
    if summary.status == "partial":
        raise typer.Exit(EXIT_PARTIAL)


def print_plan(plan: Any, cfg: Any) -> None:
    console.print(f"[bold]dry run[/] — nothing is changed. model {escape(plan.model_version)} ({escape(cfg.model)}), "
                  f"store {escape(cfg.store)}", highlight=False, soft_wrap=True)
    if plan.ingest:
        console.print(f"would ingest {len(plan.ingest)} file(s) from {cfg.inbox} and move them to {cfg.processed}:",
                      markup=False, highlight=False, soft_wrap=True)
        for path, what in plan.ingest:
            console.print(f"  {path}: {what}", markup=False, highlight=False, soft_wrap=True)
    else:
        console.print(f"no new files in {cfg.inbox}", markup=False, highlight=False, soft_wrap=True)
    for path in plan.unchanged:
        console.print(f"  {path}: already ingested with the same content (would only be moved)",
                      markup=False, highlight=False, soft_wrap=True)
    for path, error in plan.quarantine:
        console.print(f"  [red]would quarantine[/] {escape(path)} → {escape(cfg.quarantine)}: {escape(error)}",
                      highlight=False, soft_wrap=True)
    console.print(f"would classify {plan.items_to_classify} items with model {plan.model_version} "
                  f"({plan.existing_pending} already in the store without a prediction from it, "
                  f"{plan.new_items} from new files)", markup=False, highlight=False, soft_wrap=True)
    if plan.predictions:
        console.print("predictions in the store by model version: "
                      + ", ".join(f"{v}: {n}" for v, n in plan.predictions.items()), markup=False, highlight=False,
                      soft_wrap=True)
    console.print(f"would write {', '.join(plan.export)}", markup=False, highlight=False, soft_wrap=True)


def print_summary(summary: Any) -> None:
    from rich.table import Table

    table = Table(title=f"reclassify run {summary.run_id} · model {escape(str(summary.model_version))} · "
                        f"[{STATUS_STYLE.get(summary.status, '')}]{summary.status}[/]", title_justify="left")
    table.add_column("count")
    table.add_column("value", justify="right")
    for key, value in summary.counts.items():
        table.add_row(escape(key), escape(str(value)))
    console.print(table)


def runs(
    db: Annotated[str | None, typer.Option("--db", help="The store: a SQLite file or a PostgreSQL URL (env "
                                           "THREADSTANCE_DB; default work/threadstance.sqlite).",
                                           show_default=False)] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Read the store path from this schedule config "
                                                "(not with --db).")] = None,
    job: Annotated[str | None, typer.Option("--job", help="Only runs of this job (e.g. reclassify).")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Newest N runs.")] = 20,
    fmt: Annotated[str, typer.Option("--format", help="table | jsonl")] = "table",
) -> None:
    """Past runs of the scheduled job(s): start, duration, status, model version, counts, errors."""
    from datetime import datetime

    from rich.table import Table

    from pipeline.store.db import Store

    if fmt not in ("table", "jsonl"):
        raise UserError(f"--format {fmt!r}: choose table or jsonl")
    if config is not None and db is not None:
        raise UserError("give --db or --config (whose store is read), not both")
    if config is not None:
        from pipeline.jobs.schedule import load_schedule

        db = load_schedule(config).store
    elif db is None:
        db = DEFAULT_STORE
    from pipeline.store.backend import shown, store_exists

    if not store_exists(db):
        raise UserError("no store here yet (run `threadstance reclassify` or `threadstance ingest` first)", db)
    store = Store.open_readonly(db)
    try:
        rows = store.runs(job=job, limit=limit)
    finally:
        store.close()
    if fmt == "jsonl":
        for r in rows:
            typer.echo(json.dumps(r, ensure_ascii=False))
        return
    if not rows:
        console.print(f"no runs recorded in {shown(db)}", markup=False, highlight=False)
        return
    jobs = {r["job"] for r in rows}
    table = Table(title=escape(f"runs in {shown(db)}" + (f" · job {next(iter(jobs))}" if len(jobs) == 1 else "")),
                  title_justify="left")
    table.add_column("run", no_wrap=True, justify="right")
    if len(jobs) > 1:
        table.add_column("job", no_wrap=True)
    table.add_column("started (UTC)", no_wrap=True)
    table.add_column("took", no_wrap=True, justify="right")
    table.add_column("status", no_wrap=True)
    table.add_column("model", no_wrap=True)
    table.add_column("counts", overflow="fold", min_width=14)
    table.add_column("errors", no_wrap=True, justify="right")
    for r in rows:
        took = ""
        if r["ended_at"]:
            secs = (datetime.fromisoformat(r["ended_at"]) - datetime.fromisoformat(r["started_at"])).total_seconds()
            took = f"{secs:.0f} s" if secs < 120 else f"{secs / 60:.0f} min"
        c = r["counts"]
        short = {"files": c.get("files_ingested"), "bad files": c.get("files_quarantined"),
                 "new": c.get("items_new"), "classified": c.get("classified"),
                 "reclassified after edit": c.get("reclassified_after_edit")}
        counts = "\n".join(f"{k} {v}" for k, v in short.items() if v) or ("–" if c else "")
        errors = str(len(r["errors"])) if r["errors"] else ""
        cells = [str(r["run_id"]), *([escape(r["job"])] if len(jobs) > 1 else []), r["started_at"].replace("T", " ")[:16],
                 took, f"[{STATUS_STYLE.get(r['status'], '')}]{escape(r['status'])}[/]", escape(r["model_version"] or ""),
                 escape(counts),
                 errors]
        table.add_row(*cells)
    console.print(table)
    for r in [r for r in rows if r["errors"]][:3]:
        console.print(f"[bold]run {r['run_id']}[/] ({r['status']}):", highlight=False)
        for error in r["errors"][:5]:
            console.print(f"  {error}", markup=False, highlight=False, soft_wrap=True)
        if len(r["errors"]) > 5:
            console.print(f"  … {len(r['errors']) - 5} more (threadstance runs --format jsonl)", highlight=False)


__all__ = ["reclassify", "runs", "JOB"]
