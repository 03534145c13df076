"""The scheduled job: ingest an inbox, classify what the current model has not seen, export a snapshot.

One :func:`run_reclassify` call is one run, safe to start from cron or a systemd timer:

* a non-blocking ``fcntl.flock`` on ``lock_file`` admits one run at a time on a SQLite store (the CLI exits 75
  otherwise); on a PostgreSQL store several workers run at once and claim batches of items
  (``FOR UPDATE SKIP LOCKED``), one of them ingesting the inbox and writing the export;
* inbox files are ingested one transaction each, then moved to ``processed/``; a file that cannot be
  parsed goes to ``quarantine/`` with ``<name>.error.txt`` beside it and the rest carry on;
* every item without a prediction from the model's ``model_version`` is classified, shortest texts
  first, one transaction per batch with ``INSERT OR IGNORE`` on (item_id, model_version): a run killed at
  any point loses at most the batch in flight, and the next run classifies exactly what is missing;
  predictions of other model versions are never touched;
* ``export/predictions.parquet`` and ``.csv`` (the prediction records of the current model, flattened:
  docs/formats.md) are replaced atomically;
* the run is recorded in the ``runs`` table (``running`` → ``ok`` / ``partial`` / ``failed``; a run
  found still ``running`` by the next one is marked ``killed``), and every step is appended to
  ``log_file`` as timestamped lines.

Relative paths in the config are relative to the working directory (run from the repository root).
"""
from __future__ import annotations

import os
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.config.settings import STORE_PATH
from pipeline.errors import UserError
from pipeline.jobs.locks import INBOX_LOCK, LockHeld, RunLock, RunLog, SharedStoreLock, _now, job_lock  # noqa: F401 - LockHeld, RunLock, SharedStoreLock, job_lock: this module's API
from pipeline.progress import throughput

JOB = "reclassify"
EX_TEMPFAIL = 75  # sysexits.h: temporary failure, try again later (another run holds the lock)
DEFAULT_CONFIG = Path("configs/schedule.yaml")
EXPORT_NAME = "predictions"
LOG_EVERY_BATCHES = 20  # a progress line (items done, rate, ETA) at least every this many batches
BATCH_DELAY_ENV = "THREADSTANCE_BATCH_DELAY"  # test hook: seconds to sleep after each committed batch


class ScheduleConfig(BaseModel):
    """``configs/schedule.yaml``: where the scheduled job reads, writes and logs."""

    model_config = ConfigDict(extra="forbid")

    inbox: str = Field("work/inbox", description="Folder new thread files are dropped into (any ingest format).")
    processed: str = Field("work/processed", description="Ingested inbox files are moved here.")
    quarantine: str = Field("work/quarantine", description="Files that failed to parse, each with .error.txt.")
    store: str = Field(STORE_PATH, description="The store: a SQLite file or a postgresql:// URL.")
    model: str = Field("models/default", description="Model directory; its model_version keys the predictions.")
    export: str = Field("work/export", description="Folder that receives predictions.parquet and .csv.")
    batch_size: int = Field(32, ge=1, le=4096, description="At most this many items per model call and per "
                            "committed transaction.")
    max_batch_tokens: int = Field(8192, ge=16, description="At most this many padded word pieces per model call.")
    lock_file: str = Field("work/reclassify.lock", description="flock()ed for the whole run.")
    log_file: str = Field("work/reclassify.log", description="Appended with timestamped lines.")
    backend: Literal["torch", "onnx", "onnx-int8"] = "torch"
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    num_threads: int | None = Field(None, ge=1, description="CPU threads for the model; null = library default.")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="bf16: bfloat16 autocast of the torch model on CPU (faster on CPUs with native bf16; "
        "labels may differ on near-ties); auto: bf16 where the CPU has it natively, else fp32.")
    input_format: Literal["auto", "text", "html", "jsonl"] = "auto"
    engine: Literal["local", "ray"] = Field("local", description="local: classify in this process; ray: batch "
                                            "inference on Ray Data (pip install 'threadstance[ray]'; docs/scaling.md).")
    ray_address: str | None = Field(None, description="Ray cluster address for engine ray; null = start a local Ray.")
    actors: int = Field(1, ge=1, description="engine ray: model replicas (Ray actors).")
    gpus_per_actor: float = Field(0.0, ge=0, description="engine ray: GPUs per actor (0 = CPU).")
    min_confidence: float | None = Field(
        None, ge=0, le=1, description="In the exported snapshot, a head whose top probability is below this says "
        "`abstain` (the store keeps the model's labels); null = never.")


def load_schedule(path: str | Path = DEFAULT_CONFIG, overrides: list[str] | None = None) -> ScheduleConfig:
    """Load and validate the schedule config; ConfigError names the key and the file."""
    from pipeline.config.run import load_validated

    return load_validated(ScheduleConfig, path, overrides)


# ---- one run -------------------------------------------------------------------------------------
@dataclass
class RunSummary:
    run_id: int | None = None
    status: str = "running"
    model_version: str | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    export_files: list[Path] = field(default_factory=list)


@dataclass
class DryRunPlan:
    model_version: str
    ingest: list[tuple[str, str]] = field(default_factory=list)  # (path, what would happen)
    quarantine: list[tuple[str, str]] = field(default_factory=list)  # (path, error)
    unchanged: list[str] = field(default_factory=list)
    items_to_classify: int = 0
    existing_pending: int = 0
    new_items: int = 0
    predictions: dict[str, int] = field(default_factory=dict)
    export: list[str] = field(default_factory=list)


def model_version_of(model_dir: str | Path,
                     hint: str = "train one with `threadstance train` or fix `model:` in the schedule config") -> str:
    """The model_version recorded in a model directory's threadstance.json (without loading the weights)."""
    from pipeline.modeling.folder import ModelFolder

    folder = ModelFolder(model_dir)
    folder.require(hint)
    return folder.recorded_version()


def scan_inbox(cfg: ScheduleConfig) -> tuple[list[Path], list[Any]]:
    """Files waiting in the inbox (hidden files, *.md, and *.part/*.tmp still being written are skipped),
    and the symbolic links in it, which are never followed (:class:`pipeline.ingest.paths.Refused`).

    Raises:
        UserError: the inbox folder does not exist (a typo in the config must not look like an empty inbox).
    """
    from pipeline.ingest.paths import scan_paths

    inbox = Path(cfg.inbox)
    if not inbox.is_dir():
        raise UserError("the inbox folder does not exist (or is not a folder): create it or fix `inbox:` in the "
                        "schedule config", inbox, key="inbox")
    files, links = scan_paths([inbox], links="refuse")
    return [p for p in files if p.suffix.lower() not in (".part", ".tmp", ".partial")], links


def inbox_files(cfg: ScheduleConfig) -> list[Path]:
    """The files of :func:`scan_inbox`."""
    return scan_inbox(cfg)[0]


def _destination(folder: Path, rel: Path) -> Path:
    """``folder/rel``, or with a timestamp suffix when a file of that name is already there."""
    dest = folder / rel
    if dest.exists() or dest.with_name(dest.name + ".error.txt").exists():
        stem = time.strftime("%Y%m%dT%H%M%S")
        dest = dest.with_name(f"{dest.stem}.{stem}{dest.suffix}")
        n = 1
        while dest.exists():
            dest = dest.with_name(f"{Path(rel).stem}.{stem}-{n}{Path(rel).suffix}")
            n += 1
    dest.parent.mkdir(parents=True, exist_ok=True)
    return dest


def plan_dry_run(cfg: ScheduleConfig) -> DryRunPlan:
    """What a run would do, reading only: files to ingest or quarantine, items to classify."""
    from pipeline.inference.classify import items_from_threads
    from pipeline.ingest.parse import parse_raw
    from pipeline.ingest.paths import shown
    from pipeline.ingest.reader import read_input
    from pipeline.store.db import Store

    plan = DryRunPlan(model_version=model_version_of(cfg.model))
    files, links = scan_inbox(cfg)
    plan.quarantine.extend((shown(link.path), link.reason) for link in links)
    from pipeline.store.backend import store_exists

    store = Store.open_readonly(cfg.store) if store_exists(cfg.store) else None
    try:
        known: set[str] = store.item_ids() if store else set()
        done: set[str] = set()
        if store:
            done = store.predicted_item_ids(plan.model_version)
            plan.existing_pending = store.count_pending(plan.model_version)
            plan.predictions = store.prediction_counts()
        new_ids: set[str] = set()
        for path in files:
            try:
                raw = read_input(path, nofollow_below=Path(cfg.inbox))
                threads = parse_raw(raw, cfg.input_format)
            except Exception as exc:  # noqa: BLE001 - report every failure as a quarantine
                plan.quarantine.append((shown(path), str(exc)))
                continue
            if store and store.source_unchanged(raw.path, raw.sha256):
                plan.unchanged.append(raw.path)
                continue
            items = items_from_threads(threads)
            fresh = {i["item_id"] for i in items} - known - new_ids
            new_ids |= fresh
            plan.ingest.append((raw.path, f"{len(threads)} thread(s), {len(items)} items, {len(fresh)} new"))
        plan.new_items = len(new_ids - done)
        plan.items_to_classify = plan.existing_pending + plan.new_items
    finally:
        if store:
            store.close()
    plan.export = [str(Path(cfg.export) / f"{EXPORT_NAME}.{ext}") for ext in ("parquet", "csv")]
    return plan


def run_reclassify(cfg: ScheduleConfig, log: RunLog, store: Any = None) -> RunSummary:
    """One run (the caller holds the lock). Records itself in ``runs``; raises after recording a failure."""
    from pipeline.ingest.paths import safe_text
    from pipeline.store.db import Store

    own_store = store is None
    store = store or Store(cfg.store)
    summary = RunSummary()
    try:
        summary.run_id = store.start_run(JOB)
        killed = store.mark_abandoned_runs(JOB, by_run=summary.run_id)
        log(f"run {summary.run_id} started (store {cfg.store}, model {cfg.model}, inbox {cfg.inbox})")
        if killed:
            log(f"runs {', '.join(map(str, killed))} had not finished (killed or crashed): marked killed; "
                "this run completes their work", "warning")
        try:
            summary.model_version = model_version_of(cfg.model)
            store.update_run(summary.run_id, model_version=summary.model_version)
            owner = store.backend.try_lock(store.db, INBOX_LOCK)  # always, with one run at a time
            if owner:
                _ingest_inbox(cfg, store, summary, log)
            else:
                log("another worker is ingesting the inbox: this run only classifies")
            _classify_pending(cfg, store, summary, log)
            if owner:
                _export_snapshot(cfg, store, summary, log)
                store.backend.unlock(store.db, INBOX_LOCK)
        except BaseException as exc:
            summary.status = "failed"
            reason = safe_text("interrupted" if isinstance(exc, KeyboardInterrupt) else
                               str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}")
            summary.errors.append(reason)
            if not isinstance(exc, (UserError, KeyboardInterrupt, SystemExit)):
                log(traceback.format_exc().rstrip(), "error")
            log(f"run {summary.run_id} failed: {reason}", "error")
            store.update_run(summary.run_id, status="failed", ended_at=_utc(), counts=summary.counts,
                             errors=summary.errors)
            raise
        summary.status = "partial" if summary.errors else "ok"
        store.update_run(summary.run_id, status=summary.status, ended_at=_utc(), counts=summary.counts,
                         errors=summary.errors)
        log(f"run {summary.run_id} {summary.status}: " + ", ".join(f"{k}={v}" for k, v in summary.counts.items()))
        return summary
    finally:
        if own_store:
            store.close()


def _utc() -> str:
    from pipeline.store.db import utcnow

    return utcnow()


def _ingest_inbox(cfg: ScheduleConfig, store: Any, summary: RunSummary, log: RunLog) -> None:
    from pipeline.ingest.paths import first_link_below, shown
    from pipeline.store.load import ingest_file
    from pipeline.store.sqlite import DB_ERRORS

    c = summary.counts
    for key in ("files_ingested", "files_unchanged", "files_quarantined", "items_new", "items_updated",
                "items_unchanged"):
        c.setdefault(key, 0)
    inbox = Path(cfg.inbox)
    files, links = scan_inbox(cfg)
    for link in links:  # never followed: the link itself is quarantined, so the next run does not meet it
        _quarantine(cfg, summary, log, link.path, link.path.relative_to(inbox), link.message)
    for path in files:
        rel = path.relative_to(inbox)
        try:
            result = ingest_file(store, path, cfg.input_format, nofollow_below=inbox)
            error = result.error
        except (*DB_ERRORS, OSError):
            raise  # the store or the disk, not the file: fail the run and leave the file in the inbox
        except Exception as exc:  # noqa: BLE001 - a parser bug quarantines the file, the run goes on
            error = f"{shown(path)}: internal error while ingesting ({type(exc).__name__}: {exc})"
            result = None
        if result is not None and result.ok:
            for warning in result.warnings:
                log(warning, "warning")
            if first_link_below(inbox, path) is not None:  # a folder became a link after the read
                _quarantine(cfg, summary, log, path, rel, f"{shown(path)}: lies in a folder that became a "
                            "symbolic link while it was ingested; links are never followed")
                continue
            dest = _destination(Path(cfg.processed), rel)
            shutil.move(str(path), dest)
            if result.skipped_unchanged:
                c["files_unchanged"] += 1
                log(f"{shown(path)}: already ingested with the same content → {shown(dest)}")
            else:
                c["files_ingested"] += 1
                c["items_new"] += result.counts.new
                c["items_updated"] += result.counts.updated
                c["items_unchanged"] += result.counts.unchanged
                log(f"{shown(path)}: {result.counts.threads} thread(s), {result.counts.new} new, "
                    f"{result.counts.updated} updated, {result.counts.unchanged} unchanged items → {shown(dest)}")
            continue
        _quarantine(cfg, summary, log, path, rel, error or "")


def _quarantine(cfg: ScheduleConfig, summary: RunSummary, log: RunLog, path: Path, rel: Path, error: str) -> None:
    """Move ``path`` (a file, or a link itself) to the quarantine folder, its reason written beside it first."""
    from pipeline.ingest.paths import first_link_below, safe_text, shown

    error = safe_text(error)
    inbox = Path(cfg.inbox)
    link = first_link_below(inbox, path) if path != inbox and inbox in path.parents else None
    if link is not None:  # move the link itself, never what lies behind it
        path, rel = link, link.relative_to(inbox)
    dest = _destination(Path(cfg.quarantine), rel)
    note = dest.with_name(dest.name + ".error.txt")  # written first: a quarantined file always has its reason
    note.write_text(f"{error}\n\nquarantined by reclassify run {summary.run_id} at {_now()} from {shown(path)}\n"
                    "Fix the file and drop it into the inbox again.\n", encoding="utf-8")
    shutil.move(str(path), dest)  # a symbolic link is moved as the link, its target untouched
    summary.counts["files_quarantined"] += 1
    summary.quarantined.append(shown(dest))
    summary.errors.append(f"quarantined {error}")
    log(f"quarantined {shown(path)} → {shown(dest)}: {error}", "error")


def _classify_pending(cfg: ScheduleConfig, store: Any, summary: RunSummary, log: RunLog) -> None:
    version = summary.model_version
    assert version is not None
    pending = store.pending_items(version)
    c = summary.counts
    c["items_pending"] = len(pending)
    c["classified"] = 0
    c["reclassified_after_edit"] = 0
    edited = sum(1 for i in pending if i["edited"])
    if edited:
        c["items_edited_pending"] = edited
        log(f"{edited} items changed text after model {version} classified them: they are classified again "
            "(their earlier predictions are kept as history)")
    if not pending:
        log(f"nothing to classify: every item has a prediction from model {version}")
        return
    from transformers.utils import logging as hf_logging

    from pipeline.inference.predict import Predictor

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    from pipeline.inference.engine import EngineSpec, classify_pending

    spec = EngineSpec(cfg.engine, cfg.ray_address, cfg.actors, cfg.gpus_per_actor)
    spec.check()
    args = {"model_dir": cfg.model, "device": cfg.device, "batch_size": cfg.batch_size, "backend": cfg.backend,
            "num_threads": cfg.num_threads, "max_batch_tokens": cfg.max_batch_tokens, "precision": cfg.precision}
    started = time.perf_counter()
    predictor = None
    if spec.name == "local":
        predictor = Predictor(**args)
        if predictor.model_version != version:
            raise UserError(f"the model directory changed during the run ({version} → {predictor.model_version})",
                            cfg.model)
        log(f"classifying {len(pending)} items with model {version} ({cfg.backend} {predictor.precision} on "
            f"{predictor.device}, batch size {cfg.batch_size}; model loaded in {time.perf_counter() - started:.1f} s)")
    else:
        log(f"classifying {len(pending)} items with model {version} on Ray ({cfg.actors} actor(s), "
            f"{'cluster ' + cfg.ray_address if cfg.ray_address else 'local Ray'}, batch size {cfg.batch_size})")
    delay = float(os.environ.get(BATCH_DELAY_ENV) or 0)
    started, progress = time.perf_counter(), {"batches": 0, "next_report": 0.1}

    def on_batch(done_items: int, counts: Any) -> None:
        c["classified"], c["reclassified_after_edit"] = counts.classified, counts.reclassified_after_edit
        progress["batches"] += 1
        if done_items >= progress["next_report"] * len(pending) or progress["batches"] % LOG_EVERY_BATCHES == 0:
            rate = done_items / max(time.perf_counter() - started, 1e-9)
            eta = (len(pending) - done_items) / rate if rate else 0.0
            log(f"classify: {done_items}/{len(pending)} items ({100 * done_items / len(pending):.0f}%), "
                f"{rate:.1f} items/s, ETA {eta:.0f} s")
            while progress["next_report"] * len(pending) <= done_items:
                progress["next_report"] += 0.25
        if delay:
            time.sleep(delay)

    classify_pending(spec, args, store, pending, summary.run_id, on_batch, log, predictor)
    while store.backend.shares_work:  # items a killed worker had claimed are free again: take them too
        pending = store.pending_items(version)
        before = c["classified"]
        more = classify_pending(spec, args, store, pending, summary.run_id, None, log, predictor) if pending else None
        if more is None or not more.classified:
            break
        c["classified"] = before + more.classified
        c["reclassified_after_edit"] += more.reclassified_after_edit
    seconds = time.perf_counter() - started
    c["classify_seconds"] = round(seconds, 2)
    log(f"classified {c['classified']} items in {seconds:.1f} s ({throughput(c['classified'], seconds)}"
        f"; {c['reclassified_after_edit']} reclassified after edit)")


def export_frame(store: Any, model_version: str) -> Any:
    """The prediction records of ``model_version`` for every stored item it classified in its current
    text, as a flat DataFrame (one row per item; the columns of ``threadstance export predictions``)."""
    from pipeline.store.records import records_frame, stored_records

    return records_frame(stored_records(store, model_version))


def _export_snapshot(cfg: ScheduleConfig, store: Any, summary: RunSummary, log: RunLog) -> None:
    from pipeline.store.records import stored_records, write_records

    assert summary.model_version is not None
    records = stored_records(store, summary.model_version)
    if cfg.min_confidence:
        from pipeline.inference.abstain import ABSTAIN, apply_min_confidence

        records = [apply_min_confidence(r, cfg.min_confidence) for r in records]
        summary.counts["exported_abstain_labels"] = sum(
            (r["sentiment"]["label"] == ABSTAIN) + sum(h["label"] == ABSTAIN for h in r["stance"].values())
            for r in records)
    folder = Path(cfg.export)
    folder.mkdir(parents=True, exist_ok=True)
    for ext in ("parquet", "csv"):
        final = folder / f"{EXPORT_NAME}.{ext}"
        tmp = final.with_name(f".{final.name}.tmp")
        write_records(records, tmp, ext)
        os.replace(tmp, final)
        summary.export_files.append(final)
    summary.counts["exported_items"] = len(records)
    log(f"export: {len(records)} items with a prediction from {summary.model_version} → "
        f"{', '.join(map(str, summary.export_files))}")
