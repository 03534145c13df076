"""Scale benchmark: ingest and reclassify throughput on SQLite vs PostgreSQL, local engine vs Ray, store size.

Run it under ``pg_virtualenv`` (a throw-away PostgreSQL cluster; its PG* variables give the URL)::

    pg_virtualenv -t .venv/bin/python scripts/bench_scale.py --items 20000 --model models/smoke_bench

Synthetic items: the sentences of the project's own corpus (``data/train/parts/*.jsonl``, split after
``.``, ``!`` or ``?``) are sampled with a fixed seed and recombined, 1 to 3 sentences per item, into threads
of 25 comments (every fourth a reply to the comment before it), 500 items per JSONL file. Every step runs
in its own process so its peak memory (``ru_maxrss``) is its own; the store is emptied of predictions before
each reclassify step. Writes ``reports/scale.json`` and ``reports/scale.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


# a stored record of the size the default model writes (four stance targets, evidence on two of them)
RECORD_JSON = json.dumps({
    "item_id": "x", "thread_id": "t", "kind": "comment", "parent_id": None, "author": "a", "posted_at": None,
    "model_version": "bench-writes",
    "sentiment": {"label": "negative", "prob": 0.81, "probs": {"negative": 0.81, "neutral": 0.12, "positive": 0.07}},
    "stance": {t: {"label": "against" if k < 2 else "none", "prob": 0.7,
                   "probs": {"favor": 0.1, "against": 0.7, "none": 0.2},
                   **({"evidence": {"text": "Managers never listen to frontline staff about caseloads.", "start": 0,
                                    "end": 57, "score": 0.66}} if k < 2 else {})}
               for k, t in enumerate(("blame_management", "funding", "nqsw_access", "ofsted"))}})


def make_corpus(n_items: int, folder: Path, seed: int = 13) -> int:
    sentences = []
    for part in sorted((REPO / "data" / "train" / "parts").glob("*.jsonl")):
        for line in part.read_text(encoding="utf-8").splitlines():
            if line.strip():
                sentences += [s for s in re.split(r"(?<=[.!?])\s+", json.loads(line)["text"]) if len(s) > 3]
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    per_file, per_thread = 500, 25
    for f in range(0, n_items, per_file):
        lines = []
        for k in range(f, min(f + per_file, n_items)):
            thread, pos = divmod(k, per_thread)
            rec = {"url": f"https://bench.example.org/t{thread}", "thread_title": f"Bench thread {thread}",
                   "comment_id": f"c{pos}", "author": f"a{rng.randrange(500)}",
                   "posted_at": f"2024-{1 + thread % 12:02d}-{1 + pos % 28:02d}T10:00:00Z",
                   "text": " ".join(rng.choice(sentences) for _ in range(rng.randint(1, 3)))}
            if pos % 4 == 3:
                rec["parent"] = f"c{pos - 1}"
            lines.append(json.dumps(rec))
        (folder / f"bench_{f // per_file:04d}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(sentences)


# ---- steps (each in its own process) ---------------------------------------------------------------------
def step_ingest(store: str, corpus: str) -> dict:
    from pipeline.store.db import Store
    from pipeline.store.load import ingest_paths

    started = time.perf_counter()
    with Store(store) as s:
        report = ingest_paths(s, [corpus])
        n = sum(len(f.item_ids) for f in report.files)
    return {"items": n, "seconds": time.perf_counter() - started}


def step_reclassify(store: str, model: str, engine: str, actors: int, batch_size: int, limit: int = 0) -> dict:
    from pipeline.inference.engine import EngineSpec, classify_pending
    from pipeline.modeling.folder import ModelFolder
    from pipeline.store.db import Store

    out: dict = {}
    with Store(store) as s:
        s._x("DELETE FROM predictions")
        version = ModelFolder(model).recorded_version()
        items = s.pending_items(version)
        if limit:
            items = random.Random(7).sample(items, min(limit, len(items)))  # the same sample for every engine
        args = {"model_dir": model, "device": "cpu", "batch_size": batch_size, "backend": "torch",
                "num_threads": None, "max_batch_tokens": 8192, "precision": "auto"}
        if engine == "ray":
            import ray

            started = time.perf_counter()
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
            out["ray_start_seconds"] = time.perf_counter() - started
        started = time.perf_counter()
        counts = classify_pending(EngineSpec(engine, None, actors), args, s, items, None, None, None)
        out.update(items=counts.classified, seconds=time.perf_counter() - started)
    return out


def step_writes(store: str, record_json: str) -> dict:
    """The store's write rate for prediction rows (one transaction per 512, as reclassify commits) and the
    Parquet round trip of the Ray engine (items out to shards, rows back), without a model."""
    import tempfile

    import pyarrow.dataset as pads

    from pipeline.inference.engine import export_shards
    from pipeline.store.db import Store

    with Store(store) as s:
        s._x("DELETE FROM predictions WHERE model_version = 'bench-writes'")
        items = s.pending_items("bench-writes")
        rows = [(i["item_id"], "bench-writes", i["revision"], i["text_sha256"], "neutral", record_json, None)
                for i in items]
        started = time.perf_counter()
        for k in range(0, len(rows), 512):
            with s.transaction():
                s.add_predictions(rows[k:k + 512])
        write_s = time.perf_counter() - started
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            export_shards(items, Path(tmp) / "in")
            n = sum(b.num_rows for b in pads.dataset(str(Path(tmp) / "in"), format="parquet").to_batches())
            parquet_s = time.perf_counter() - started
            parquet_mb = sum(p.stat().st_size for p in (Path(tmp) / "in").glob("*")) / 1e6
    return {"items": len(rows), "write_rows_per_s": len(rows) / write_s, "parquet_items_per_s": n / parquet_s,
            "parquet_mb": parquet_mb}


def run_step(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--step", *args], capture_output=True, text=True, cwd=REPO)
    if proc.returncode:
        raise SystemExit(f"step {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def store_size(store: str) -> int:
    if store.startswith("postgresql"):
        from pipeline.store.db import Store

        with Store(store) as s:
            return int(s._scalar("SELECT pg_database_size(current_database())"))
    import sqlite3

    with sqlite3.connect(store) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(p.stat().st_size for p in Path(store).parent.glob(Path(store).name + "*"))


def pg_url() -> str | None:
    e = os.environ
    if "PGPORT" not in e:
        return None
    return (f"postgresql://{e['PGUSER']}:{e.get('PGPASSWORD', '')}@{e.get('PGHOST', 'localhost')}:{e['PGPORT']}/"
            f"{e.get('PGDATABASE', 'postgres')}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=20000)
    ap.add_argument("--classify-items", type=int, default=None, help="classify only this many (default: all)")
    ap.add_argument("--model", required=False)
    ap.add_argument("--work", default="work/bench_scale")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--step", nargs="*")
    ap.add_argument("--with-writes", action="store_true", help="also measure store writes and Parquet")
    ap.add_argument("--writes-only", action="store_true", help="ingest and measure store writes and Parquet only "
                    "(no model); adds to reports/scale.json")
    opts = ap.parse_args()
    if opts.step:
        kind, *rest = opts.step
        if kind == "ingest":
            result = step_ingest(*rest)
        elif kind == "writes":
            result = step_writes(*rest)
        else:
            result = step_reclassify(rest[0], rest[1], rest[2], int(rest[3]), int(rest[4]), int(rest[5]))
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result["load_avg_1min_after"] = os.getloadavg()[0]  # the machine is shared: how busy it was
        print(json.dumps(result))
        return
    work = REPO / opts.work
    shutil.rmtree(work, ignore_errors=True)
    corpus = work / "corpus"
    n_sentences = make_corpus(opts.items, corpus)
    stores = {"sqlite": str(work / "store.sqlite")}
    if pg_url():
        stores["postgresql"] = pg_url()
    results: dict = {"items": opts.items, "classify_items": opts.classify_items or opts.items, "sentences": n_sentences, "cpus": os.cpu_count(),
                     "machine": platform.processor() or platform.machine(), "model": opts.model, "runs": []}
    for name, store in stores.items():
        empty = store_size(store) if name == "postgresql" else 0
        r = run_step(["ingest", store, str(corpus)])
        r.update(store=name, step="ingest", engine="-", actors=0, size_bytes=store_size(store) - empty)
        results["runs"].append(r)
        print(r, flush=True)
        engines = [] if opts.writes_only else [("local", 1)] + ([("ray", 1), ("ray", 2)] if name == "sqlite" else [])
        for engine, actors in engines:
            r = run_step(["reclassify", store, opts.model, engine, str(actors), str(opts.batch_size),
                          str(opts.classify_items or 0)])
            r.update(store=name, step="reclassify", engine=engine, actors=actors,
                     size_bytes=store_size(store) - empty)
            results["runs"].append(r)
            print(r, flush=True)
        if opts.writes_only or opts.with_writes:
            r = run_step(["writes", store, RECORD_JSON])
            r.update(store=name, step="writes", engine="-", actors=0, size_bytes=store_size(store) - empty)
            results["runs"].append(r)
            print(r, flush=True)
    if opts.writes_only:
        old = json.loads((REPO / "reports" / "scale.json").read_text(encoding="utf-8"))
        old["runs"] = [r for r in old["runs"] if r["step"] != "writes"] + [r for r in results["runs"] if r["step"] == "writes"]
        results = old
    (REPO / "reports" / "scale.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print("wrote reports/scale.json; reports/scale.md is rendered from it by scripts/scale_report.py")


if __name__ == "__main__":
    main()
