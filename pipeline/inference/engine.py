"""Where stored items are classified: the one seam between the local engine and Ray Data.

``local`` (the default) loads the model in this process and stores each batch as it is classified
(:func:`pipeline.inference.classify.classify_into_store`). ``ray`` (``pip install 'threadstance[ray]'``)
follows Ray's batch-inference pattern:

1. the pending items are exported, sorted by item id, to Parquet shards of :data:`SHARD_ITEMS` items (an
   id range each) in a work folder;
2. ``read_parquet(...).map_batches(Classifier, compute=ActorPoolStrategy(size=N), batch_size=…)``: each
   actor loads the model folder once (the same :class:`~pipeline.inference.predict.Predictor` and
   ModelFolder checks as the local engine) and turns a batch into stored-prediction rows;
3. the rows are written to Parquet, and only when the whole Ray job has finished does this process, which
   owns the store, load them (one transaction per batch, ``ON CONFLICT DO NOTHING``). A killed Ray job
   leaves nothing half written in the store, and the next run classifies what is missing.

Without ``address`` a local Ray is started (``ray.init(num_cpus=…)``, no dashboard), sized to the
machine's cores, and the actors together leave one core for Ray's own read and write tasks.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import UserError
from pipeline.inference.classify import StoredCounts, classify_into_store, stored_row, with_evidence
from pipeline.store.records import prediction_record

ENGINES = ("local", "ray")
SHARD_ITEMS = 10_000  # items per exported Parquet shard
ROW_FIELDS = ("item_id", "model_version", "revision", "text_sha256", "sentiment", "record")
ITEM_FIELDS = ("item_id", "thread_id", "kind", "parent_id", "author", "posted_at", "text", "parent_text",
               "revision", "text_sha256", "edited")


@dataclass
class EngineSpec:
    """How to run the classification: ``local``, or ``ray`` with a cluster ``address`` (None: start a local
    Ray), ``actors`` model replicas and ``gpus_per_actor`` GPUs each."""

    name: str = "local"
    address: str | None = None
    actors: int = 1
    gpus_per_actor: float = 0.0

    def check(self) -> None:
        if self.name not in ENGINES:
            raise UserError(f"--engine {self.name!r}: choose {' or '.join(ENGINES)}")
        if self.actors < 1 or self.gpus_per_actor < 0:
            raise UserError("--actors must be at least 1 and --gpus-per-actor at least 0")
        if self.name == "ray":
            try:
                import ray  # noqa: F401
            except ImportError as exc:
                raise UserError("--engine ray needs Ray Data: pip install 'threadstance[ray]'") from exc


def classify_pending(spec: EngineSpec, predictor_args: dict[str, Any], store: Any, items: Sequence[dict[str, Any]],
                     run_id: int | None = None, on_batch: Callable[[int, StoredCounts], None] | None = None,
                     log: Callable[[str], None] | None = None, predictor: Any = None) -> StoredCounts:
    """Classify store items (from ``Store.pending_items``) with the chosen engine and store the predictions.

    ``predictor_args`` are :class:`~pipeline.inference.predict.Predictor`'s keyword arguments (``model_dir``,
    ``device``, ``batch_size``, ``backend``, ``num_threads``, ``max_batch_tokens``, ``precision``); the
    local engine uses ``predictor`` when one is already loaded.
    """
    spec.check()
    if spec.name == "local":
        if predictor is None:
            from pipeline.inference.predict import Predictor

            predictor = Predictor(**predictor_args)
        return classify_into_store(predictor, store, items, run_id, on_batch)
    return RayEngine(spec, log or (lambda _m: None)).run(predictor_args, store, items, run_id, on_batch)


class Classifier:
    """The Ray actor: loads the model folder once, then turns batches of items into stored-prediction rows."""

    def __init__(self, predictor_args: dict[str, Any]) -> None:
        from pipeline.inference.predict import Predictor

        self.predictor = Predictor(**predictor_args)

    def __call__(self, batch: Any) -> Any:
        import pandas as pd

        items = batch.to_dict("records")
        return pd.DataFrame(rows_for(self.predictor, items), columns=list(ROW_FIELDS))


def rows_for(predictor: Any, items: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Stored-prediction rows (without run id) of ``items`` in input order: the same records as the local engine."""
    out: list[tuple[Any, ...] | None] = [None] * len(items)
    parents = [i.get("parent_text") for i in items] if predictor.spec.include_parent else None
    for idx, preds in predictor.predict_batches([i["text"] for i in items], parents):
        found = with_evidence(predictor, [items[i] for i in idx], preds)
        for i, pred, ev in zip(idx, preds, found):
            record = prediction_record(items[i], pred, predictor.model_version, with_text=False, evidence=ev)
            out[i] = stored_row(items[i], record, None)[:6]
    return [row for row in out if row is not None]


class RayEngine:
    """Batch inference on Ray Data; see the module docstring."""

    def __init__(self, spec: EngineSpec, log: Callable[[str], None]) -> None:
        self.spec = spec
        self.log = log

    def _start(self, threads: int) -> float:
        """Connect to the cluster (or start a local Ray); returns the seconds it took."""
        import ray

        started = time.perf_counter()
        if not ray.is_initialized():
            if self.spec.address:
                ray.init(address=self.spec.address, log_to_driver=False)
            else:
                ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                         configure_logging=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
        return time.perf_counter() - started

    def run(self, predictor_args: dict[str, Any], store: Any, items: Sequence[dict[str, Any]],
            run_id: int | None, on_batch: Callable[[int, StoredCounts], None] | None) -> StoredCounts:
        import ray

        cpus = os.cpu_count() or 1
        per_actor = max(0.25, (cpus - 1) / self.spec.actors) if self.spec.address is None else 1.0
        args = {**predictor_args, "num_threads": predictor_args.get("num_threads") or max(1, int(per_actor))}
        work = Path(tempfile.mkdtemp(prefix=f"threadstance-ray-{run_id or 'job'}-"))
        try:
            shards = export_shards(items, work / "in")
            seconds = self._start(args["num_threads"])
            self.log(f"ray: {len(items)} items in {len(shards)} Parquet shard(s), {self.spec.actors} actor(s) "
                     f"({per_actor:g} CPU, {self.spec.gpus_per_actor:g} GPU each); Ray ready in {seconds:.1f} s")
            ds = ray.data.read_parquet(str(work / "in"))
            out = ds.map_batches(Classifier, fn_constructor_kwargs={"predictor_args": args}, batch_format="pandas",
                                 batch_size=int(args.get("batch_size") or 32) * 4,
                                 compute=ray.data.ActorPoolStrategy(size=self.spec.actors),
                                 num_cpus=per_actor, num_gpus=self.spec.gpus_per_actor or None)
            out.write_parquet(str(work / "out"))
            return load_rows(store, work / "out", items, run_id, int(args.get("batch_size") or 32) * 16, on_batch)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def export_shards(items: Sequence[dict[str, Any]], folder: Path) -> list[Path]:
    """The items, sorted by id, as Parquet shards of :data:`SHARD_ITEMS` (an id range each)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    ordered = sorted(items, key=lambda i: i["item_id"])
    paths = []
    for n, start in enumerate(range(0, len(ordered), SHARD_ITEMS)):
        chunk = ordered[start:start + SHARD_ITEMS]
        table = pa.table({f: [i.get(f) for i in chunk] for f in ITEM_FIELDS},
                         schema=pa.schema([(f, pa.int64() if f in ("revision", "edited") else pa.string())
                                           for f in ITEM_FIELDS]))
        paths.append(folder / f"part-{n:05d}.parquet")
        pq.write_table(table, paths[-1])
    return paths


def load_rows(store: Any, folder: Path, items: Sequence[dict[str, Any]], run_id: int | None, chunk: int,
              on_batch: Callable[[int, StoredCounts], None] | None) -> StoredCounts:
    """Store the rows a finished Ray job wrote, one transaction per ``chunk`` rows, idempotently."""
    import pyarrow.dataset as pads

    edited = {i["item_id"] for i in items if i.get("edited")}
    counts, done = StoredCounts(), 0
    for batch in pads.dataset(str(folder), format="parquet").to_batches(batch_size=chunk):
        rows = [(*(r[f] for f in ROW_FIELDS), run_id) for r in batch.to_pylist()]
        with store.transaction():
            added = store.add_predictions(rows)
        counts.classified += added
        n_edited = sum(1 for r in rows if r[0] in edited)
        counts.reclassified_after_edit += n_edited if added == len(rows) else min(added, n_edited)
        done += len(rows)
        if on_batch:
            on_batch(done, counts)
    return counts


def record_of(row: Sequence[Any]) -> dict[str, Any]:
    """The record of a stored-prediction row (for tests and checks)."""
    return json.loads(row[5])
