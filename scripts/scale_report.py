"""Render reports/scale.md from reports/scale.json (written by scripts/bench_scale.py): the measured tables and
the cost model for 100 M items, computed from those numbers.

    .venv/bin/python scripts/scale_report.py
"""
from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
N_TARGET = 100_000_000
# The default model (all-mpnet-base-v2, top two layers fine-tuned) on this 2-core CPU, measured elsewhere:
DEFAULT_CPU_ITEMS_S = 18.0  # `predict` end to end, bf16, evidence for every non-none stance (reports/inference_benchmark.md)
DEFAULT_CPU_NO_EVIDENCE_ITEMS_S = 84.8  # Predictor, torch bf16, labels only (reports/inference_benchmark.md)
# NOT measured (no GPU in this session): an assumption, to be replaced by a measurement on a GPU machine.
GPU_ENCODER_ITEMS_S = 2500.0  # one forward pass of an mpnet-base encoder per item, short texts, bf16, one mid-range GPU
GPU_HOUR_USD = 1.0  # on-demand price of one such GPU, per hour (assumption)
CPU_CORE_HOUR_USD = 0.04  # one vCPU, per hour (assumption)


def _fmt(x: float, digits: int = 0) -> str:
    return f"{x:,.{digits}f}"


def render(data: dict) -> str:
    runs = data["runs"]
    get = {(r["store"], r["step"], r["engine"], r["actors"]): r for r in runs}
    lines = [
        "# Scale: SQLite vs PostgreSQL, local engine vs Ray",
        "",
        f"`pg_virtualenv -t .venv/bin/python scripts/bench_scale.py --items {data['items']} "
        f"--classify-items {data.get('classify_items', data['items'])} --model {data['model']} --with-writes`, then `scripts/scale_report.py` (this page, from `reports/scale.json`).",
        "",
        f"**Machine**: {data['cpus']} CPU cores ({data['machine']}), no GPU (none was available in this session: "
        "every GPU figure below is an assumption, marked as such). The machine was shared with a long training "
        "study and other engineers' test runs; each row gives the 1-minute load average at its end (above "
        f"{data['cpus']} means other processes competed for the cores), so read the engine rows against each other "
        "and treat absolute rates as lower bounds.",
        "",
        *[line for note in data.get("notes", []) for line in (note, "")],
        f"**Items**: {data['items']:,} synthetic items: the {data['sentences']:,} sentences of the project's corpus "
        "(`data/train/parts/*.jsonl`, split after `.`, `!`, `?`) sampled with a fixed seed and recombined, 1–3 "
        "sentences per item, in threads of 25 comments (every fourth a reply), 500 items per JSONL file. "
        f"Every store holds all {data['items']:,}; each classification row classifies the same random sample of "
        f"{data.get('classify_items', data['items']):,} of them (fixed seed), the store emptied of predictions "
        "before each row.",
        "",
        f"**Model**: `{data['model']}`, a model trained from `configs/smoke.yaml` (MiniLM-L6, inputs cut to 64 word "
        "pieces): small, so the store and the engine overheads show; the default mpnet model is slower per item "
        "(see the cost model), which makes the fixed overheads matter less.",
        "",
        "## Classification: local engine vs Ray (SQLite store)",
        "",
        "| engine | items | seconds | items/s | Ray start (s) | items/s with Ray start | peak RSS of the job (MB) | load avg |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for store in ("sqlite", "postgresql"):
        for engine, actors in (("local", 1), ("ray", 1), ("ray", 2)):
            r = get.get((store, "reclassify", engine, actors))
            if not r:
                continue
            start = r.get("ray_start_seconds")
            name = f"{engine}" + (f", {actors} actor{'s' if actors > 1 else ''}" if engine == "ray" else "") + \
                (" (PostgreSQL store)" if store == "postgresql" else "")
            lines.append(f"| {name} | {r['items']:,} | {r['seconds']:.1f} | {r['items'] / r['seconds']:.0f} | "
                         f"{start:.1f} | {r['items'] / (r['seconds'] + start):.0f} |" if start is not None else
                         f"| {name} | {r['items']:,} | {r['seconds']:.1f} | {r['items'] / r['seconds']:.0f} | – | – |")
            lines[-1] += f" {r['peak_rss_mb']:.0f} | {r['load_avg_1min_after']:.1f} |"
    lines += [
        "",
        "`seconds` run from the call into the engine to the last stored row; for Ray that is the export of the pending "
        "items to Parquet, actor start-up (each loads the model folder), inference, Parquet output, and loading it "
        "into the store. `Ray start` (`ray.init` of a local Ray, before that) is the fixed overhead shown apart; "
        "actor start-up (a process and a model load per actor, a few seconds each) stays inside `seconds`. "
        "Connecting to a running cluster skips `ray.init`'s start. The driver's RSS leaves out the actors' own processes. On 2 cores Ray gives each of N actors "
        "(2 − 1)/N cores, one core staying with Ray's read and write tasks, so on this machine it cannot beat "
        "the local engine, which uses both cores: Ray pays off with more cores, more machines or GPUs.",
        "",
        "## Store: ingest, write rate and size, SQLite vs PostgreSQL",
        "",
        "| store | ingest items/s | ingest peak RSS (MB) | prediction rows/s written | Parquet round trip items/s | "
        "bytes per item (items only) | bytes per item (with one prediction each) | per 1 M items |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for store in ("sqlite", "postgresql"):
        ing = get.get((store, "ingest", "-", 0))
        if not ing:
            continue
        w = get.get((store, "writes", "-", 0))
        n = data["items"]
        per_item = ing["size_bytes"] / n
        # the writes step stores one prediction per item on top of the sample the engines classified
        preds = n + data.get("classify_items", n)
        with_pred = per_item + (w["size_bytes"] - ing["size_bytes"]) / preds if w else None
        lines.append(
            f"| {store} | {ing['items'] / ing['seconds']:,.0f} | {ing['peak_rss_mb']:.0f} | "
            f"{_fmt(w['write_rows_per_s']) if w else '–'} | {_fmt(w['parquet_items_per_s']) if w else '–'} | "
            f"{per_item:,.0f} | {_fmt(with_pred) if with_pred else '–'} | "
            f"{(with_pred or per_item) * 1e6 / 1e9:.2f} GB |")
    lines += [
        "",
        "Sizes are measured on the 20,000-item stores (SQLite: the file after a WAL checkpoint; PostgreSQL: "
        "`pg_database_size` minus the empty database) and extrapolated linearly to a million items (tables and "
        "B-tree indexes grow linearly; a store's per-item size is its measured size / 20,000). A prediction row is "
        "the stored record (JSON, ~1 KB with four stance targets and evidence), so predictions, not items, "
        "dominate the size; every further model version adds the same again.",
        "",
    ]
    lines += cost_model(get)
    return "\n".join(lines) + "\n"


def cost_model(get: dict) -> list[str]:
    sq = get.get(("sqlite", "writes", "-", 0))
    pg = get.get(("postgresql", "writes", "-", 0))
    pg_rows = pg["write_rows_per_s"] if pg else float("nan")
    sq_rows = sq["write_rows_per_s"] if sq else float("nan")
    parquet = (sq or pg or {}).get("parquet_items_per_s", float("nan"))
    ing = get.get(("postgresql", "ingest", "-", 0)) or get.get(("sqlite", "ingest", "-", 0))
    w = pg or sq
    bytes_item = ing["size_bytes"] / 20000 + (w["size_bytes"] - ing["size_bytes"]) / 22000 if w else float("nan")
    evidence_factor = DEFAULT_CPU_NO_EVIDENCE_ITEMS_S / DEFAULT_CPU_ITEMS_S
    gpu_items_s = GPU_ENCODER_ITEMS_S / evidence_factor
    cpu_days = N_TARGET / DEFAULT_CPU_ITEMS_S / 86400
    gpu_hours = N_TARGET / gpu_items_s / 3600
    out = [
        "## Cost model: 100 M items with the default model",
        "",
        "From the measured numbers above and the default model's measured CPU rate; the GPU rate is an "
        "assumption (no GPU here) and is labelled so.",
        "",
        f"* **CPU only.** The default model classifies {DEFAULT_CPU_ITEMS_S:.0f} items/s end to end on this 2-core "
        f"CPU (bf16, with evidence; {DEFAULT_CPU_NO_EVIDENCE_ITEMS_S:.0f} items/s for labels alone). 100 M items "
        f"take {cpu_days:,.0f} days on one such machine, {cpu_days / 100:,.1f} days on 100 Ray actors of 2 cores "
        f"(about {N_TARGET / DEFAULT_CPU_ITEMS_S / 3600 * 2:,.0f} core-hours, ≈ ${N_TARGET / DEFAULT_CPU_ITEMS_S / 3600 * 2 * CPU_CORE_HOUR_USD:,.0f} at "
        f"${CPU_CORE_HOUR_USD}/core-hour, assumed).",
        f"* **GPU (assumed, not measured).** If one GPU runs the encoder at {GPU_ENCODER_ITEMS_S:,.0f} items/s and "
        f"evidence costs the same factor as on the CPU ({evidence_factor:.1f}×), one actor with one GPU does "
        f"≈ {gpu_items_s:,.0f} items/s: {gpu_hours:,.0f} GPU-hours for 100 M items (≈ ${gpu_hours * GPU_HOUR_USD:,.0f} "
        f"at ${GPU_HOUR_USD:.0f}/GPU-hour, assumed); with 8 actors × 1 GPU, {gpu_hours / 8:,.1f} h of wall time.",
        f"* **Where the bottleneck moves.** 8 GPU actors deliver ≈ {8 * gpu_items_s:,.0f} predictions/s. The store "
        f"takes {_fmt(sq_rows)} rows/s (SQLite) and {_fmt(pg_rows)} rows/s (PostgreSQL, one connection) in "
        "transactions of 512, so one loader keeps up with about "
        f"{pg_rows / gpu_items_s:,.0f} GPU actors on PostgreSQL; beyond that the store's write rate is the limit "
        "(load from several connections, or COPY, and drop the JSON evidence from the row). Parquet export and "
        f"reading back run at {_fmt(parquet)} items/s on one core, about "
        f"{parquet / gpu_items_s:,.0f} GPU actors' worth; the export of 100 M items takes "
        f"{N_TARGET / parquet / 3600:,.1f} h on one core unless it is split by id range across workers (the shards "
        "already are id ranges). Tokenisation runs inside each actor (the Rust tokenizer; not measured separately here, its rate is inside the engine rows above; a few thousand short "
        "texts/s per core): a GPU actor needs 2–4 CPU cores beside its GPU so that the GPU, not tokenisation, "
        "stays the limit.",
        f"* **Storage.** At ≈ {bytes_item:,.0f} bytes per item with one prediction (PostgreSQL measured above), "
        f"100 M items need ≈ {bytes_item * N_TARGET / 1e9:,.0f} GB, and each further model version adds its "
        "predictions again: PostgreSQL on a server disk, not SQLite on a laptop.",
        "",
    ]
    return out


def main() -> None:
    data = json.loads((REPO / "reports" / "scale.json").read_text(encoding="utf-8"))
    (REPO / "reports" / "scale.md").write_text(render(data), encoding="utf-8")
    print("wrote reports/scale.md")


if __name__ == "__main__":
    main()
