"""How fast the dashboard answers on a big store: builds a synthetic store, serves it, times every page.

    .venv/bin/python scripts/bench_dashboard.py [--items 200000] [--store work/bench/dashboard.sqlite]
                                                [--out reports/dashboard_bench.json]

Synthetic items recombine sentences of the project's own written corpus (``data/train/parts/*.jsonl``,
not the shared data) into threads of ~100 items (5 article paragraphs, comments and replies) dated
2012–2024. Their prediction records are built by ``prediction_record`` from random calibrated-looking
probabilities (evidence = the first sentence for every non-none stance) and stored with
``Store.write_thread`` / ``Store.add_predictions``, the store's normal API. The corrected trends use a
synthetic out-of-fold table of 563 passages (``prevalence.error_tables``), as a model folder would give.

The dashboard runs in a real uvicorn server on a free localhost port; each URL is fetched once cold (the
first request after start, which may build a cached trend table) and then 5 times warm (median).
"""
from __future__ import annotations

import argparse
import json
import random
import re
import socket
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline.ingest.model import Item, Thread  # noqa: E402
from pipeline.modeling.outputs import Prediction  # noqa: E402
from pipeline.store.db import Store, sha256_text  # noqa: E402
from pipeline.store.records import prediction_record  # noqa: E402

VERSION = "bench0000001"
TARGETS = ["blame_management", "funding", "nqsw_access", "ofsted"]
SENTIMENT = ["negative", "neutral", "positive"]
STANCE = ["favor", "against", "none"]
AUTHORS = ["Frontline SW", "Agency Al", "Team manager", "Jo", "Anonymous", "NQSW 2019", "Retired DCS", "Parent"]


def corpus_sentences() -> list[str]:
    out: list[str] = []
    for path in sorted((REPO / "data" / "train" / "parts").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                text = json.loads(line)["text"]
                out += [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if len(s.strip()) > 20]
    return out


def _probs(rng: random.Random, classes: list[str], skew: int) -> dict[str, float]:
    raw = [rng.gammavariate(1.0 + (4.0 if k == skew else 0.0), 1.0) for k in range(len(classes))]
    total = sum(raw)
    return {c: round(x / total, 4) for c, x in zip(classes, raw)}


def synthetic_prediction(rng: random.Random, year: int) -> Prediction:
    sent = _probs(rng, SENTIMENT, rng.choices([0, 1, 2], [5, 4, 1])[0])
    stance_probs = {}
    for j, t in enumerate(TARGETS):
        drift = (year - 2012) / 12 * (0.15 if j % 2 else -0.1)
        skew = rng.choices([0, 1, 2], [0.08 + max(drift, 0), 0.15 + max(-drift, 0), 0.75])[0]
        stance_probs[t] = _probs(rng, STANCE, skew)
    return Prediction(max(sent, key=sent.get), sent, {t: max(p, key=p.get) for t, p in stance_probs.items()}, stance_probs)


def build_store(path: Path, n_items: int, seed: int = 7, per_thread: int = 100) -> float:
    """Write ``n_items`` synthetic items with predictions into a new store; returns seconds taken."""
    start = time.perf_counter()
    rng = random.Random(seed)
    sentences = corpus_sentences()
    if path.exists():
        path.unlink()
    store = Store(path)
    n_threads = max(1, n_items // per_thread)
    made = 0
    for t in range(n_threads):
        year = 2012 + t * 13 // n_threads
        month, day = rng.randint(1, 12), rng.randint(1, 28)
        tid = f"bench/{year}/{t:06d}"
        thread = Thread(thread_id=tid, title=" ".join(rng.choice(sentences).split()[:9]), source="synthetic",
                        article_date=f"{year}-{month:02d}-{day:02d}")
        count = per_thread if t < n_threads - 1 else n_items - made
        comment = 0
        for pos in range(count):
            text = " ".join(rng.sample(sentences, rng.randint(1, 3)))
            if pos < 5:
                item = Item(f"{tid}/p{pos + 1}", tid, "paragraph", pos, 0, text)
            elif comment and rng.random() < 0.35:
                item = Item(f"{tid}/c{comment}.r{pos}", tid, "reply", pos, 1, text, parent_id=f"{tid}/c{comment}",
                            author=rng.choice(AUTHORS), posted_at=f"{year}-{month:02d}-{day:02d}T12:{pos % 60:02d}:00+00:00")
            else:
                comment += 1
                item = Item(f"{tid}/c{comment}", tid, "comment", pos, 0, text, author=rng.choice(AUTHORS),
                            posted_at=f"{year}-{month:02d}-{day:02d}T11:{pos % 60:02d}:00+00:00")
            thread.items.append(item)
        rows = []
        for item in thread.items:
            pred = synthetic_prediction(rng, year)
            first = re.split(r"(?<=[.!?])\s+", item.text)[0]
            evidence = {t: {"text": first, "start": 0, "end": len(first), "score": 0.5}
                        for t, label in pred.stance.items() if label != "none"}
            rec = prediction_record(item.__dict__, pred, VERSION, with_text=False, evidence=evidence)
            rows.append((item.item_id, VERSION, 1, sha256_text(item.text), pred.sentiment,
                         json.dumps(rec, ensure_ascii=False), None))
        with store.transaction():
            store.write_thread(thread)
            store.add_predictions(rows)
        made += len(thread.items)
    store.close()
    return time.perf_counter() - start


def synthetic_tables(seed: int = 11, n: int = 563) -> dict:
    """Error tables as ``prevalence.error_tables`` builds them from a model folder's out-of-fold table."""
    import numpy as np

    from pipeline.evaluation.prevalence import error_tables

    rng = np.random.default_rng(seed)

    def task(classes: list[str]) -> dict:
        true = rng.integers(0, len(classes), n)
        logits = rng.normal(0, 1, (n, len(classes)))
        logits[np.arange(n), true] += 1.5
        p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        return {"classes": classes, "true": true.tolist(), "probs": p.tolist()}

    oof = {"groups": rng.integers(0, 224, n).tolist(), "sentiment": task(SENTIMENT),
           "stance": {t: task(STANCE) for t in TARGETS}}
    return error_tables(oof, {"targets": TARGETS})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str) -> tuple[float, int, int]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as resp:
        body = resp.read()
        status = resp.status
    return (time.perf_counter() - start) * 1000, status, len(body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=200_000)
    ap.add_argument("--store", type=Path, default=REPO / "work" / "bench" / "dashboard.sqlite")
    ap.add_argument("--out", type=Path, default=REPO / "reports" / "dashboard_bench.json")
    ap.add_argument("--reuse", action="store_true", help="keep an existing store of the right size")
    ap.add_argument("--warm", type=int, default=5)
    args = ap.parse_args()

    import uvicorn

    from pipeline.web.app import create_app

    args.store.parent.mkdir(parents=True, exist_ok=True)
    build_s = None
    if not (args.reuse and args.store.is_file()):
        build_s = build_store(args.store, args.items)
        print(f"built {args.items:,} items in {build_s:.0f} s", flush=True)
    start = time.perf_counter()
    app = create_app(args.store, VERSION)
    app.state.dash.model.tables = synthetic_tables()
    app.state.dash.model.table_note = None
    index_s = time.perf_counter() - start
    counts = app.state.dash.index.counts()
    print(f"indexed {counts['items']:,} items in {index_s:.1f} s", flush=True)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    thread_id = app.state.dash.index.threads_page(None, 0, 1)[0]["thread_id"]
    urls = [
        ("overview", "/"),
        ("trends, month, all items", "/trends"),
        ("trends, quarter, comments, 2015–2020, min-confidence 0.6",
         "/trends?by=quarter&kind=comment&since=2015-01-01&until=2020-12-31&min_confidence=0.6"),
        ("trends CSV (month)", "/trends.csv"),
        ("threads list", "/threads"),
        ("threads search", "/threads?q=caseload"),
        ("thread view (~100 items)", "/thread?id=" + quote(thread_id, safe="")),
        ("items, first page", "/items"),
        ("items, funding=against, confidence ≥ 0.6", "/items?target=funding&label=against&conf_min=0.6"),
        ("items, text search", "/items?q=supervision"),
        ("items, page 2,000", "/items?page=2000"),
        ("label next (first request ranks every item)", "/suggest"),
    ]
    results = []
    for name, path in urls:
        cold, status, size = fetch(base + path)
        warm = [fetch(base + path)[0] for _ in range(args.warm)]
        results.append({"page": name, "url": path, "status": status, "bytes": size, "cold_ms": round(cold, 1),
                        "warm_median_ms": round(statistics.median(warm), 1), "warm_max_ms": round(max(warm), 1)})
        print(f"{name:58s} {status} cold {cold:8.1f} ms  warm median {statistics.median(warm):7.1f} ms", flush=True)
    server.should_exit = True
    out = {"items": counts["items"], "threads": counts["threads"], "build_store_s": build_s,
           "index_s": round(index_s, 1), "cpu": _cpu(), "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                import os

                return f"{line.split(':', 1)[1].strip()} × {os.cpu_count()}"
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    main()
