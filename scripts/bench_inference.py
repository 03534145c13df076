#!/usr/bin/env python
"""Inference benchmark (not a test): a naive loop against the project's batched Predictor.

Classifies the same items several ways in one process and reports items/s:

* ``naive`` — what a first script does: batches in file order, each tokenised on its own and padded to
  the longest text of the batch (truncated at ``max_length``; one long text pads the whole batch),
  ``torch.no_grad``, then per-item argmax into dicts;
* ``Predictor, same batches`` — :class:`pipeline.inference.predict.Predictor` with the naive batch size: one
  fast-tokenizer call for all texts, sorted by length, padded per batch, ``torch.inference_mode``;
* ``Predictor`` — the same with the project defaults of ``threadstance predict`` / ``reclassify``
  (up to 32 texts and 8,192 padded word pieces per batch);
* ``Predictor, bf16`` — the same with bfloat16 autocast (``--precision bf16``);
* ``onnx`` / ``onnx-int8`` — the Predictor on ONNX Runtime (``threadstance export onnx``; pass
  ``--export`` to write the files first), when the model directory has them.

Items: every item of the seed threads (``../shared/seeds``, parsed by the ingest parsers) plus the
project-written corpus texts (``data/train/parts/*.jsonl``), cycled to ``--items``. Each path runs
``--repeat`` times, interleaved with the others so background load hits all of them alike; the best
run counts (load average and spread are reported so noisy numbers can be told apart). The report also
gives label agreement between the backends on these items.

    .venv/bin/python scripts/bench_inference.py --model models/smoke
    .venv/bin/python scripts/bench_inference.py --model models/default --max-length 256 --export
    .venv/bin/python scripts/bench_inference.py --model models/smoke --max-length 64 --max-length 256

``--end-to-end`` (the table of ``reports/inference_benchmark.md``): separate processes, timed from start to
exit (imports and model load included), run in pairs that alternate which goes first, so background load
hits both alike and the ratio of each pair is the number to read:

* naive: a Hugging Face script over the model's own mpnet encoder (``AutoModel`` + mean pooling, fp32,
  batches of 32 in file order, ``padding=True, truncation=True, max_length``, ``torch.no_grad``);
* predict: ``threadstance predict FILES --model M --format jsonl -o FILE`` with its defaults (precision
  ``auto``, evidence for every non-none stance), on the same items.

Inputs: (a) the seed threads ×5 (every ``<shared>/seeds/*.txt`` copied 5 times), (b) the first 1,000
texts of ``<shared>/datasets/domain_real/comments.jsonl`` (one JSONL record each)::

    .venv/bin/python scripts/bench_inference.py --end-to-end --model models/default --repeat 3 \
        --out reports/inference_benchmark.md
"""
from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from pipeline.config.settings import shared_dir  # noqa: E402
from pipeline.hardware import cpu_name  # noqa: E402
from pipeline.inference.predict import ONNX_FILES, Predictor  # noqa: E402


def load_items(n: int, seeds: Path, corpus_glob: str) -> tuple[list[str], dict[str, int]]:
    from pipeline.ingest.parse import parse_file

    seed_texts = []
    for path in sorted(seeds.glob("*.txt")):
        for thread in parse_file(path)[1]:
            seed_texts.extend(item.text for item in thread.items)
    corpus = []
    for path in sorted(glob.glob(corpus_glob)):
        with open(path, encoding="utf-8") as fh:
            corpus.extend(json.loads(line)["text"] for line in fh if line.strip())
    base = seed_texts + corpus
    if not base:
        raise SystemExit(f"no items found in {seeds} or {corpus_glob}")
    texts = [base[i % len(base)] for i in range(n)]
    return texts, {"seed_items": len(seed_texts), "corpus_items": len(corpus), "distinct": len(base)}


def naive_predict(model, tokenizer, texts: list[str], batch_size: int, max_length: int) -> list[dict]:  # noqa: ANN001
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(texts[start: start + batch_size], padding=True, truncation=True, max_length=max_length,
                            return_tensors="pt")
            logits = model(enc["input_ids"], enc["attention_mask"], enc.get("token_type_ids"))
            sent = torch.softmax(logits["sentiment"], -1)
            stance = {t: torch.softmax(v, -1) for t, v in logits["stance"].items()}
            for i in range(len(sent)):
                out.append({"sentiment": model.sentiment_classes[int(sent[i].argmax())],
                            **{t: model.stance_classes[int(p[i].argmax())] for t, p in stance.items()}})
    return out


def labels_of(preds) -> list[dict]:  # noqa: ANN001
    return [{"sentiment": p.sentiment, **p.stance} for p in preds]


def agreement(a: list[dict], b: list[dict]) -> tuple[float, float]:
    """(share of identical labels over item × head, share of items with every label identical)."""
    same = [x[k] == y[k] for x, y in zip(a, b) for k in x]
    return float(np.mean(same)), float(np.mean([x == y for x, y in zip(a, b)]))


def token_stats(predictor: Predictor, texts: list[str]) -> dict[str, float]:
    lengths = np.array([len(x) for x in predictor.encode(texts)])
    return {"mean": float(lengths.mean()), "p50": float(np.median(lengths)), "p90": float(np.percentile(lengths, 90)),
            "max": int(lengths.max())}


def padding_stats(predictor: Predictor, texts: list[str], batch_size: int, max_length: int) -> dict[str, float]:
    """Word pieces the model processes per real word piece: naive (file order, pad to the batch's longest,
    head truncation) and sorted (the Predictor), plus the same for the quadratic attention term."""
    naive_lens = np.array([len(x) for x in predictor.tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]])
    sorted_lens = np.sort([len(x) for x in predictor.encode(texts)])
    out = {}
    for name, lens in (("naive", naive_lens), ("sorted", sorted_lens)):
        batches = [lens[s: s + batch_size] for s in range(0, len(lens), batch_size)]
        out[name] = sum(b.max() * len(b) for b in batches) / lens.sum()
        out[f"{name}_attn"] = sum(b.max() ** 2 * len(b) for b in batches) / (lens.astype(float) ** 2).sum()
    return out


NAMES = {"naive": "naive loop (torch, file order)", "torch-same": "Predictor, torch, same batches as naive",
         "torch": "Predictor, torch", "torch-bf16": "Predictor, torch, `--precision bf16`",
         "onnx": "Predictor, ONNX Runtime fp32", "onnx-int8": "Predictor, ONNX Runtime int8"}


def run(args: argparse.Namespace) -> str:
    import onnxruntime as ort
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    model_dir = Path(args.model)
    if args.export:
        from pipeline.inference.onnx_export import export_onnx

        export_onnx(model_dir, "int8")
    texts, sources = load_items(args.items, Path(args.seeds) if args.seeds else shared_dir() / "seeds", args.corpus)
    base = Predictor(model_dir, device="cpu", batch_size=args.project_batch_size, max_batch_tokens=args.max_batch_tokens)
    same = Predictor(model_dir, device="cpu", batch_size=args.batch_size)
    same.model, same.tokenizer = base.model, base.tokenizer  # one copy of the weights
    bf16 = Predictor(model_dir, device="cpu", batch_size=args.project_batch_size,
                     max_batch_tokens=args.max_batch_tokens, precision="bf16")
    bf16.model, bf16.tokenizer = base.model, base.tokenizer
    predictors = {"torch-same": same, "torch": base, "torch-bf16": bf16}
    if args.project_batch_size == args.batch_size and args.max_batch_tokens >= args.batch_size * 512:
        del predictors["torch-same"]  # the project defaults batch exactly like the naive loop's batch size
    for b in ("onnx", "onnx-int8"):
        if b in args.backends.split(",") and (model_dir / ONNX_FILES[b]).is_file():
            predictors[b] = Predictor(model_dir, device="cpu", batch_size=args.project_batch_size,
                                      max_batch_tokens=args.max_batch_tokens, backend=b, num_threads=threads)
    paths = ["naive", *predictors]
    lines = ["# Inference benchmark", "",
             f"`{' '.join(['scripts/bench_inference.py', *sys.argv[1:]])}` · {time.strftime('%Y-%m-%d %H:%M %Z')}", "",
             "## Machine", "",
             f"* CPU: {cpu_name()}, {os.cpu_count()} logical cores visible; {platform.platform()}",
             f"* torch {torch.__version__}, {threads} intra-op threads (`torch.get_num_threads()`), "
             f"onnxruntime {ort.__version__} with {threads} intra-op threads",
             f"* load average before: {' / '.join(f'{x:.2f}' for x in os.getloadavg())} (1/5/15 min; "
             f"{os.cpu_count()} cores — above that, other processes were competing for the CPU)",
             "",
             "## Items and paths", "",
             f"{len(texts)} items: the {sources['seed_items']} items of the seed threads and "
             f"{sources['corpus_items']} project-written corpus texts ({sources['distinct']} distinct), "
             f"cycled. Model `{model_dir}` (model_version {base.model_version}, trained input spec "
             f"max_length {base.spec.max_length}, {base.spec.truncation}). Best of {args.repeat} interleaved "
             "runs per path (spread = slowest/best).", "",
             f"* naive: batches of {args.batch_size} in file order, each tokenised on its own and padded to its "
             "longest text (capped at max_length), `torch.no_grad`, per-item argmax;",
             f"* Predictor (project defaults, as `threadstance predict`): one tokeniser call for all texts, sorted "
             f"by length, at most {args.project_batch_size} texts and {args.max_batch_tokens} padded word pieces "
             "per batch, each padded to its own longest text, `torch.inference_mode`;",
             *([f"* Predictor, same batches: {args.batch_size} texts per batch, otherwise as above;"]
               if "torch-same" in predictors else []),
             "* bf16: the same with bfloat16 autocast on the CPU (`--precision bf16`);",
             "* ONNX Runtime: the same Predictor with `--backend onnx` / `onnx-int8` "
             "(`threadstance export onnx --quantize int8`).", ""]
    own_max_length = base.spec.max_length
    for max_length in args.max_length or [own_max_length]:
        for p in predictors.values():
            p.spec = dataclasses.replace(p.spec, max_length=max_length,
                                         tail_tokens=min(p.spec.tail_tokens, max_length // 4))
        toks = token_stats(base, texts)
        pad = padding_stats(base, texts, args.batch_size, max_length)
        warm = texts[:64]
        naive_predict(base.model, base.tokenizer, warm, args.batch_size, max_length)
        for p in predictors.values():
            p.predict(warm)
        times: dict[str, list[float]] = {k: [] for k in paths}
        labels: dict[str, list[dict]] = {}
        for _ in range(args.repeat):
            for k in paths:
                started = time.perf_counter()
                if k == "naive":
                    labels[k] = naive_predict(base.model, base.tokenizer, texts, args.batch_size, max_length)
                else:
                    labels[k] = labels_of(predictors[k].predict(texts))
                times[k].append(time.perf_counter() - started)
            print(f"max_length {max_length}: " + ", ".join(f"{k} {len(texts) / v[-1]:.1f}/s" for k, v in times.items()),
                  file=sys.stderr)
        best = {k: min(v) for k, v in times.items()}
        lines += [f"## max_length {max_length}" + (" (the model's own)" if max_length == own_max_length
                                                   else " (input spec overridden for every path)"), "",
                  f"Word pieces per item after truncation: mean {toks['mean']:.1f}, median {toks['p50']:.0f}, "
                  f"p90 {toks['p90']:.0f}, max {toks['max']}. Word pieces run through the model per real "
                  f"word piece at batch size {args.batch_size}: naive {pad['naive']:.2f}, sorted {pad['sorted']:.2f} "
                  f"— length sorting alone saves at most ≈{pad['naive'] / pad['sorted']:.1f}× on the linear layers "
                  f"(≈{pad['naive_attn'] / pad['sorted_attn']:.1f}× on attention).", "",
                  "| path | seconds | items/s | × naive | spread | label agreement with Predictor, torch |",
                  "| --- | ---: | ---: | ---: | ---: | --- |"]
        for k, secs in best.items():
            if k == "torch":
                agree = "—"
            else:
                per_label, per_item = agreement(labels["torch"], labels[k])
                agree = f"{per_label:.1%} of labels; {per_item:.1%} of items with all 5 labels equal"
            lines.append(f"| {NAMES[k]} | {secs:.1f} | {len(texts) / secs:.1f} | {best['naive'] / secs:.2f} | "
                         f"{max(times[k]) / secs:.2f} | {agree} |")
        lines += ["", f"Predictor (torch, project defaults) over naive: **{best['naive'] / best['torch']:.2f}×**"
                  + (f" (same batches: {best['naive'] / best['torch-same']:.2f}×)" if "torch-same" in best else "")
                  + "".join(f"; {NAMES[b]}: **{best['naive'] / best[b]:.2f}×**" for b in ("torch-bf16", "onnx", "onnx-int8")
                            if b in best) + ".", "",
                  "Run times (s): " + "; ".join(f"{k} " + ", ".join(f"{t:.1f}" for t in v) for k, v in times.items())
                  + f". Load average after: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}.", ""]
    return "\n".join(lines)


NAIVE = """
import json, os, sys, torch
from transformers import AutoModel, AutoTokenizer
texts = json.load(open(sys.argv[1], encoding="utf-8"))
tok = AutoTokenizer.from_pretrained(sys.argv[2], local_files_only=True)
encoder = sys.argv[2] + "/encoder" if os.path.isdir(sys.argv[2] + "/encoder") else sys.argv[2]
model = AutoModel.from_pretrained(encoder, local_files_only=True).eval()
out = []
with torch.no_grad():
    for s in range(0, len(texts), 32):
        enc = tok(texts[s:s + 32], padding=True, truncation=True, max_length=int(sys.argv[3]), return_tensors="pt")
        hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        out.extend(((hidden * mask).sum(1) / mask.sum(1)).tolist())
print(len(out))
"""


def e2e_inputs(work: Path, shared: Path) -> dict[str, tuple[list[str], list[str]]]:
    """Per input set: (the files ``predict`` reads, the item texts in file order for the naive script)."""
    import shutil

    from pipeline.ingest.parse import parse_file

    seeds = work / "seeds_x5"
    seeds.mkdir(parents=True, exist_ok=True)
    files = []
    for k in range(5):
        for path in sorted((shared / "seeds").glob("*.txt")):
            dest = seeds / f"{k}_{path.name}"
            shutil.copyfile(path, dest)
            files.append(str(dest))
    seed_texts = [item.text for f in files for thread in parse_file(Path(f))[1] for item in thread.items]
    once = [f for f in files if Path(f).name.startswith("0_")]
    once_texts = [item.text for f in once for thread in parse_file(Path(f))[1] for item in thread.items]
    dr = work / "domain_real_1000.jsonl"
    with open(shared / "datasets" / "domain_real" / "comments.jsonl", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()][:1000]
    dr.write_text("".join(json.dumps({"thread_id": "domain_real", "comment_id": r["id"], "text": r["text"]},
                                     ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    dr_texts = [item.text for thread in parse_file(dr)[1] for item in thread.items]
    return {"seed threads ×5": (files, seed_texts), "seed threads ×1": (once, once_texts),
            "domain_real, 1,000 texts": ([str(dr)], dr_texts)}


def end_to_end(args: argparse.Namespace) -> str:
    import statistics
    import subprocess
    import tempfile

    from pipeline.inference.predict import resolve_precision
    from pipeline.modeling.folder import MODEL_META, ModelFolder

    model = Path(args.model)
    # The naive script runs the encoder of --naive-model (default: the same model), so a smaller model's
    # predict can be timed against the naive loop over the default's mpnet encoder.
    naive_model = Path(args.naive_model or args.model)
    # A base model folder (no threadstance.json) is read at the default's 256 word pieces.
    meta = ModelFolder(naive_model).read_meta() if (naive_model / MODEL_META).exists() else {}
    max_length = meta.get("input", {}).get("max_length", 256)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    exe = str(Path(sys.executable).with_name("threadstance"))
    started_load = os.getloadavg()
    rows, runs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        inputs = e2e_inputs(Path(tmp), Path(args.seeds).parent if args.seeds else shared_dir())
        for name, (files, texts) in inputs.items():
            text_file = Path(tmp) / "texts.json"
            text_file.write_text(json.dumps(texts), encoding="utf-8")
            commands = {"naive": [sys.executable, "-c", NAIVE, str(text_file), str(naive_model), str(max_length)],
                        "predict": [exe, "predict", *files, "--model", str(model), "--format", "jsonl",
                                    "-o", str(Path(tmp) / "out.jsonl")]}
            pairs = []
            for r in range(args.repeat):
                seconds = {}
                for path in (("naive", "predict") if r % 2 == 0 else ("predict", "naive")):
                    load = os.getloadavg()[0]
                    t0 = time.perf_counter()
                    done = subprocess.run(commands[path], env=env, capture_output=True, text=True)
                    seconds[path] = time.perf_counter() - t0
                    if done.returncode != 0:
                        raise SystemExit(f"{path} failed ({done.returncode}): {done.stderr[-2000:]}")
                    runs.append(f"{name} · {path} · run {r + 1}: {seconds[path]:.1f} s, load {load:.1f}")
                    print(runs[-1], file=sys.stderr)
                pairs.append(seconds)
            n = len(texts)
            naive = [n / p["naive"] for p in pairs]
            pred = [n / p["predict"] for p in pairs]
            ratio = [p["naive"] / p["predict"] for p in pairs]
            rows.append((name, n, len(set(texts)), naive, pred, ratio))

    def mmm(xs: list[float], fmt: str = "{:.1f}") -> str:
        return " / ".join(fmt.format(x) for x in (min(xs), statistics.median(xs), max(xs)))

    precision = resolve_precision("auto", torch.device("cpu"))
    lines = ["| inputs | items | distinct texts | naive items/s | predict items/s | ratio (per pair) | predict precision |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for name, n, distinct, naive, pred, ratio in rows:
        lines.append(f"| {name} | {n} | {distinct} | {mmm(naive)} | {mmm(pred)} | **{mmm(ratio, '{:.2f}')}×** | {precision} "
                     "(auto), evidence on |")
    naive_arg = f" --naive-model {args.naive_model}" if args.naive_model else ""
    return "\n".join([f"`scripts/bench_inference.py --end-to-end --model {args.model}{naive_arg} --repeat {args.repeat}` · "
                      f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
                      f"CPU: {cpu_name()}, {os.cpu_count()} logical cores; torch {torch.__version__}, "
                      f"{torch.get_num_threads()} threads; {platform.platform()}. Load average (1/5/15 min) "
                      f"before: {' / '.join(f'{x:.1f}' for x in started_load)}, after: "
                      f"{' / '.join(f'{x:.1f}' for x in os.getloadavg())}.", "",
                      "min / median / max over the pairs:", "", *lines, "", "Runs in order:", "",
                      *[f"* {r}" for r in runs], ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="models/smoke", help="Model directory (default models/smoke).")
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=32, help="Naive loop's batch size (and the same-batches row).")
    parser.add_argument("--project-batch-size", type=int, default=32, help="Predictor: most texts per batch.")
    parser.add_argument("--max-batch-tokens", type=int, default=8192, help="Predictor: most padded word pieces per batch.")
    parser.add_argument("--threads", type=int, default=None, help="torch / ORT intra-op threads.")
    parser.add_argument("--max-length", type=int, action="append",
                        help="Override the input spec's max_length (repeatable; default: the model's own).")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backends", default="onnx,onnx-int8", help="ONNX backends to include if exported.")
    parser.add_argument("--export", action="store_true", help="Export model.onnx + model.int8.onnx first.")
    parser.add_argument("--seeds", default=None, help="Seed folder (default: <shared>/seeds).")
    parser.add_argument("--corpus", default="data/train/parts/*.jsonl")
    parser.add_argument("--out", default=None, help="Write the markdown report here (e.g. reports/inference_benchmark.md).")
    parser.add_argument("--end-to-end", action="store_true",
                        help="Naive script against `threadstance predict`, whole processes, in alternating pairs.")
    parser.add_argument("--naive-model", default=None,
                        help="--end-to-end: model folder (or base model folder) whose encoder the naive script runs "
                        "(default: --model).")
    args = parser.parse_args()
    report = end_to_end(args) if args.end_to_end else run(args)
    print(report)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(report + "\n", encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
