#!/usr/bin/env python
"""Ingest benchmark (not a test): synthetic text-dump threads through the real ingest path.

Generates N threads in the text-dump format of ``../shared/seeds`` (title, standfirst, furniture
lines, body paragraphs with sub-headings and bullet lists, "N Responses to TITLE", numbered comments and
"•" replies up to two levels deep; sizes drawn at random from a fixed seed), writes one file per thread,
then ingests them into a fresh SQLite store file by file with :func:`pipeline.store.load.ingest_file`
(read, decode, detect, parse, one transaction per file: what ``threadstance ingest`` does), and reports
threads/s, items/s and peak memory. A second pass over the same files measures the idempotent
re-ingest (nothing written).

    .venv/bin/python scripts/bench_ingest.py                 # 10,000 threads
    .venv/bin/python scripts/bench_ingest.py --threads 2000 --tracemalloc
    .venv/bin/python scripts/bench_ingest.py --profile 30    # cProfile top 30 of the first pass
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import random
import resource
import sys
import tempfile
import time
import tracemalloc
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.store.db import Store  # noqa: E402
from pipeline.store.load import ingest_file  # noqa: E402

WORDS = ("social workers caseloads council inspection children families managers supervision agency "
         "recruitment retention budget report ofsted review practice frontline team duty assessment "
         "protection court visits paperwork workload stress pay locum vacancy director improvement "
         "early help services local authority government funding training students placement year "
         "month week cases plan risk support staff turnover morale leadership culture change time").split()
NAMES = ("Alex", "Sam", "Jo Bloggs", "Frontline worker", "NQSW", "Retired SW", "Team Manager", "Priya",
         "M. Smith", "Anon", "Ruth", "Dev", "Concerned parent", "Agency SW", "Kim", "Tom J")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")


def sentence(rng: random.Random, n_min: int = 8, n_max: int = 30) -> str:
    words = rng.choices(WORDS, k=rng.randint(n_min, n_max))
    return words[0].capitalize() + " " + " ".join(words[1:]) + rng.choice((".", ".", ".", "?", "!"))


def paragraph(rng: random.Random, n_sent: tuple[int, int] = (1, 5)) -> str:
    return " ".join(sentence(rng) for _ in range(rng.randint(*n_sent)))


def header_time(dt: datetime) -> str:
    hour = dt.hour % 12 or 12
    return f"{MONTHS[dt.month - 1]} {dt.day}, {dt.year} at {hour}:{dt.minute:02d} {'am' if dt.hour < 12 else 'pm'}"


def make_thread(index: int, rng: random.Random) -> tuple[str, int]:
    """One text dump and the number of items it should give."""
    title = f"Synthetic thread {index}: " + " ".join(rng.choices(WORDS, k=rng.randint(4, 9)))
    lines = [title, "", paragraph(rng, (1, 1)), ""]
    items = 1  # standfirst
    if rng.random() < 0.5:
        lines += [f"Picture: {rng.choice(NAMES)}/Stock", ""]
    for _ in range(rng.randint(3, 40)):
        roll = rng.random()
        if roll < 0.08:
            lines += [" ".join(rng.choices(WORDS, k=rng.randint(2, 6))).capitalize(), ""]  # sub-heading
        elif roll < 0.12:
            lines += [f"  • {sentence(rng, 3, 10)}" for _ in range(rng.randint(2, 6))] + [""]
        else:
            lines += [paragraph(rng), ""]
        items += 1
    lines += ["More from Community Care", ""]
    n_comments = rng.choice((0, 0, 1, 2, 3, 5, 8, 12, 20, 40))
    start = datetime(2014, 1, 1) + timedelta(days=rng.randint(0, 3000), minutes=rng.randint(0, 1439))
    body: list[str] = []
    n_items_comments = 0
    for c in range(1, n_comments + 1):
        t = start + timedelta(minutes=37 * c)
        body += [f"  {c}. {rng.choice(NAMES)} {header_time(t)} #", ""]
        body += ["    " + paragraph(rng, (1, 6)) for _ in range(rng.randint(1, 3))] + [""]
        n_items_comments += 1
        for r in range(rng.choice((0, 0, 0, 1, 1, 2, 3))):
            rt = t + timedelta(minutes=11 * (r + 1))
            body += [f"    • {rng.choice(NAMES)} {header_time(rt)} #", "", "      " + paragraph(rng, (1, 3)), ""]
            n_items_comments += 1
            if rng.random() < 0.2:  # a reply to the reply
                rrt = rt + timedelta(minutes=5)
                body += [f"        • {rng.choice(NAMES)} {header_time(rrt)} #", "",
                         "          " + paragraph(rng, (1, 2)), ""]
                n_items_comments += 1
    if n_comments:
        lines += [f"{n_items_comments} Responses to {title}", ""] + body
    return "\n".join(lines) + "\n", items + n_items_comments


def generate(folder: Path, n: int, seed: int) -> int:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    expected = 0
    for i in range(n):
        text, items = make_thread(i, rng)
        (folder / f"{i:06d}.txt").write_text(text, encoding="utf-8")
        expected += items
    return expected


def ingest_all(db: Path, files: list[Path]) -> tuple[float, float, int, int, int]:
    """(wall seconds, CPU seconds, threads, items written new, failures) for one pass over ``files``."""
    failures = new = threads = 0
    with Store(db) as store:
        t0, c0 = time.perf_counter(), time.process_time()
        for path in files:
            result = ingest_file(store, path)
            if not result.ok:
                failures += 1
                print("FAILED:", result.error, file=sys.stderr)
            threads += result.counts.threads
            new += result.counts.new
        return time.perf_counter() - t0, time.process_time() - c0, threads, new, failures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder, removed after")
    ap.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations (slower)")
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="print the cProfile top N")
    ap.add_argument("--json", type=Path, default=None, help="write the numbers as JSON here")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_ingest_") as tmp:
        work = args.workdir or Path(tmp)
        inputs, db = work / "input", work / "bench.sqlite"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        t0 = time.perf_counter()
        expected_items = generate(inputs, args.threads, args.seed)
        gen_s = time.perf_counter() - t0
        files = sorted(inputs.glob("*.txt"))
        input_mb = sum(f.stat().st_size for f in files) / 1e6

        if args.tracemalloc:
            tracemalloc.start()
        profiler = cProfile.Profile() if args.profile else None
        if profiler:
            profiler.enable()
        secs, cpu_secs, threads, new, failures = ingest_all(db, files)
        if profiler:
            profiler.disable()
        traced_peak = tracemalloc.get_traced_memory()[1] / 2**20 if args.tracemalloc else None
        if args.tracemalloc:
            tracemalloc.stop()
        again_s, again_cpu_s, _, again_new, _ = ingest_all(db, files)
        maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        with Store(db) as store:
            counts = store.counts()
        db_mb = sum(Path(f"{db}{s}").stat().st_size for s in ("", "-wal") if Path(f"{db}{s}").exists()) / 1e6

    items = counts["paragraph"] + counts["comment"] + counts["reply"]
    out = {
        "threads": threads, "items": items, "expected_items": expected_items, "failures": failures,
        "paragraphs": counts["paragraph"], "comments": counts["comment"], "replies": counts["reply"],
        "input_mb": round(input_mb, 1), "store_mb": round(db_mb, 1), "generate_s": round(gen_s, 2),
        "ingest_s": round(secs, 2), "threads_per_s": round(threads / secs, 1),
        "items_per_s": round(items / secs, 1), "ingest_cpu_s": round(cpu_secs, 2),
        "threads_per_cpu_s": round(threads / cpu_secs, 1), "reingest_s": round(again_s, 2),
        "reingest_cpu_s": round(again_cpu_s, 2),
        "reingest_threads_per_s": round(threads / again_s, 1), "reingest_new_items": again_new,
        "peak_rss_mb": round(maxrss_mb, 1), "load_avg_1m": round(os.getloadavg()[0], 2),
        "tracemalloc_peak_mb": round(traced_peak, 1) if traced_peak is not None else None,
        "python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
        "profiled": bool(profiler),
    }
    for key, value in out.items():
        print(f"{key:>24}: {value}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile)
    if failures or items != expected_items:
        sys.exit(f"benchmark check failed: {failures} failures, {items} items stored, {expected_items} expected")


if __name__ == "__main__":
    main()
