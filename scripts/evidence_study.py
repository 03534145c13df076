"""How often the model's evidence sentence is the one a person points to, and what finding it costs.

Agreement: for every judged (gold item, target) pair in ``data/evidence/person_v1.jsonl`` (a person read the
item with the codebook and chose the sentence that most supports the gold stance, before seeing any model
output), the evidence is computed for the gold label with each method (``pipeline.inference.evidence``),
(the product default and its variants, :data:`METHODS`) and compared with that choice: strict (the
person's sentence) and lenient (one the person also accepted).
Baselines: the first sentence, a random sentence (expected value), and the sentence most similar to the
target statement (TF-IDF cosine, no model). 95 % intervals: Wilson for rates; paired differences from a
bootstrap over items (pairs of one item move together), 10,000 resamples, seed 0.

Cost: seconds to classify the gold items plus the domain_real passages (texts only), then seconds to find
the evidence of those predictions by each method, each run once after a warm-up; items/s with evidence =
items / (classify + evidence seconds).

    .venv/bin/python scripts/evidence_study.py --model models/default --out reports/evidence.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline.config.schema import load_schema  # noqa: E402
from pipeline.inference.evidence import find_evidence, split_sentences  # noqa: E402
from pipeline.modeling.outputs import Prediction  # noqa: E402

RESAMPLES = 10_000
# name -> find_evidence keyword arguments; the first is the default of pipeline.inference.evidence
METHODS = {"alone": {"method": "alone"}, "occlusion": {"method": "occlusion"},
           "both (top 3 alone, then occlusion)": {"method": "both", "candidates": 3},
           "both (every sentence)": {"method": "both", "candidates": None}}
DEFAULT = next(iter(METHODS))


def wilson(k: int, n: int) -> list[float]:
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(0.95, method="wilson")
    return [round(float(ci.low), 3), round(float(ci.high), 3)]


def seed_items(db: Path, shared: Path) -> dict[str, dict]:
    from pipeline.store.db import Store
    from pipeline.store.load import ingest_paths

    with Store(db) as store:
        if not store.items():
            ingest_paths(store, [shared / "seeds"])
        items = {i["item_id"]: i for i in store.items()}
        texts = {i["item_id"]: i["text"] for i in items.values()}
    for item in items.values():
        item["parent_text"] = texts.get(item["parent_id"]) if item.get("parent_id") else None
    return items


def statement_baseline(text: str, statement: str) -> tuple[int, int]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    spans = split_sentences(text)
    sentences = [text[s.start:s.end] for s in spans]
    vec = TfidfVectorizer(stop_words="english").fit(sentences + [statement])
    sims = (vec.transform(sentences) @ vec.transform([statement]).T).toarray().ravel()
    best = spans[int(np.argmax(sims))]
    return best.start, best.end


def agreement(judged: list[dict], items: dict, predictor, schema) -> dict:
    texts = [items[j["item_id"]]["text"] for j in judged]
    parents = [items[j["item_id"]]["parent_text"] for j in judged]
    probs = predictor.predict_proba(texts, parents if predictor.spec.include_parent else None)
    none = schema.none_class
    preds, model_label = [], []
    for row, j in enumerate(judged):
        stance_probs = {t: {c: float(probs.stance[t][row, k]) for k, c in enumerate(predictor.stance_classes)}
                        for t in predictor.targets}
        stance = {t: (j["label"] if t == j["target"] else none) for t in predictor.targets}
        preds.append(Prediction("", {}, stance, stance_probs))
        model_label.append(predictor.stance_classes[int(probs.stance[j["target"]][row].argmax())])
    chosen: dict[str, list[tuple[int, int]]] = {}
    for name, kwargs in METHODS.items():
        found = find_evidence(predictor, texts, preds, parents, **kwargs)
        chosen[name] = [(f[j["target"]].start, f[j["target"]].end) for f, j in zip(found, judged)]
    chosen["first sentence"] = [(split_sentences(t)[0].start, split_sentences(t)[0].end) for t in texts]
    chosen["statement similarity (TF-IDF)"] = [statement_baseline(t, schema.targets[j["target"]].statement)
                                               for t, j in zip(texts, judged)]
    hits = {}
    for name, spans in chosen.items():
        strict = np.array([s == (j["start"], j["end"]) for s, j in zip(spans, judged)], dtype=float)
        lenient = np.array([s == (j["start"], j["end"]) or any(s == (a["start"], a["end"]) for a in j["also"])
                            for s, j in zip(spans, judged)], dtype=float)
        hits[name] = (strict, lenient)
    random_strict = np.array([1 / j["sentences"] for j in judged])
    random_lenient = np.array([(1 + len(j["also"])) / j["sentences"] for j in judged])
    n = len(judged)
    agrees = np.array([m == j["label"] for m, j in zip(model_label, judged)])
    rows = {}
    for name, (strict, lenient) in hits.items():
        rows[name] = {"strict": round(strict.mean(), 3), "strict_ci": wilson(int(strict.sum()), n),
                      "lenient": round(lenient.mean(), 3), "lenient_ci": wilson(int(lenient.sum()), n),
                      "strict_when_model_agrees": round(strict[agrees].mean(), 3) if agrees.any() else None}
    rows["random sentence (expected)"] = {"strict": round(random_strict.mean(), 3),
                                          "lenient": round(random_lenient.mean(), 3)}
    # paired differences, bootstrap over items
    item_ids = sorted({j["item_id"] for j in judged})
    index = {i: [k for k, j in enumerate(judged) if j["item_id"] == i] for i in item_ids}
    rng = np.random.default_rng(0)
    draws = [np.concatenate([index[item_ids[d]] for d in rng.integers(0, len(item_ids), len(item_ids))])
             for _ in range(RESAMPLES)]

    def diff(a: np.ndarray, b: np.ndarray) -> dict:
        samples = np.array([a[d].mean() - b[d].mean() for d in draws])
        return {"diff": round(float(a.mean() - b.mean()), 3),
                "ci": [round(float(np.percentile(samples, 2.5)), 3), round(float(np.percentile(samples, 97.5)), 3)]}

    paired = {}
    for m in METHODS:
        for base in ("first sentence", "statement similarity (TF-IDF)"):
            paired[f"{m} - {base}"] = diff(hits[m][0], hits[base][0])
        paired[f"{m} - random sentence (expected)"] = diff(hits[m][0], random_strict)
    names = list(METHODS)
    for k, a in enumerate(names):
        for b in names[k + 1:]:
            paired[f"{a} - {b}"] = diff(hits[a][0], hits[b][0])
    per_pair = [{"item_id": j["item_id"], "target": j["target"], "label": j["label"], "sentences": j["sentences"],
                 "person": j["sentence"], "model_label": ml,
                 **{m: next(k + 1 for k, s in enumerate(split_sentences(items[j["item_id"]]["text"]))
                            if (s.start, s.end) == chosen[m][row]) for m in METHODS}}
                for row, (j, ml) in enumerate(zip(judged, model_label))]
    return {"n_pairs": n, "n_items": len(item_ids), "model_agrees_with_gold": int(agrees.sum()),
            "methods": rows, "paired_strict": paired, "pairs": per_pair}


def cost(predictor, items: list[dict]) -> dict:
    """Seconds to classify ``items``, then seconds to find the evidence of their predictions by each method."""
    from pipeline.inference.classify import classify_items

    texts = [i["text"] for i in items]
    classify_items(predictor, items[:64])  # warm-up
    started = time.perf_counter()
    preds = classify_items(predictor, items)
    predict_s = time.perf_counter() - started
    out = {"items": len(items), "predict only": {"seconds": round(predict_s, 2),
                                                 "items_per_s": round(len(items) / predict_s, 1)}}
    for name, kwargs in METHODS.items():
        started = time.perf_counter()
        find_evidence(predictor, texts, preds, **kwargs)
        seconds = time.perf_counter() - started
        out[f"predict + evidence: {name}"] = {"evidence_seconds": round(seconds, 2),
                                              "items_per_s": round(len(items) / (predict_s + seconds), 1)}
    stance = [t for t, p in zip(texts, preds) if p.targets]
    out["items_with_a_stance"] = len(stance)
    out["stances"] = sum(len(p.targets) for p in preds)
    out["sentences_in_them"] = sum(len(split_sentences(t)) for t in stance)
    return out


def study_arguments(description: str) -> argparse.ArgumentParser:
    """The arguments every evidence study script takes: the model, the judgements, the seed store, shared."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--model", default="models/default")
    ap.add_argument("--judgements", default="data/evidence/person_v1.jsonl")
    ap.add_argument("--db", default="work/evidence_study.sqlite")
    ap.add_argument("--shared", default=str(REPO.parent / "shared"))
    return ap


def judged_items(args: argparse.Namespace) -> tuple[list[dict], dict]:
    """The judged (item, target) pairs and the seed items, after checking that every judgement's offsets
    are still one of the splitter's sentences."""
    judged = [json.loads(line) for line in Path(args.judgements).read_text().splitlines() if line.strip()]
    Path(args.db).parent.mkdir(parents=True, exist_ok=True)
    items = seed_items(Path(args.db), Path(args.shared))
    for j in judged:
        spans = split_sentences(items[j["item_id"]]["text"])
        assert (spans[j["sentence"] - 1].start, spans[j["sentence"] - 1].end) == (j["start"], j["end"]), j
    return judged, items


def main() -> None:
    ap = study_arguments(__doc__.splitlines()[0])
    ap.add_argument("--out", default="reports/evidence.json")
    ap.add_argument("--skip-cost", action="store_true")
    args = ap.parse_args()
    from transformers.utils import logging as hf_logging

    from pipeline.data.public_data import load_domain_real
    from pipeline.inference.predict import Predictor

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    schema = load_schema(REPO / "configs" / "labels.yaml")
    judged, items = judged_items(args)
    predictor = Predictor(args.model, device="cpu", precision="auto")
    result = {"model_dir": str(args.model), "model_version": predictor.model_version, "default_method": DEFAULT,
              "precision": predictor.precision, "judgements": args.judgements,
              "agreement": agreement(judged, items, predictor, schema)}
    if not args.skip_cost:
        gold_ids = [json.loads(line)["item_id"] for line in (REPO / "data/gold/gold.jsonl").read_text().splitlines()
                    if line.strip()]
        bench = [items[i] for i in gold_ids] + [
            {"item_id": f"domain_real/{k}", "thread_id": "domain_real", "kind": "comment", "parent_id": None,
             "author": None, "posted_at": None, "text": r["text"], "parent_text": None}
            for k, r in enumerate(load_domain_real(args.shared))]
        result["cost"] = cost(predictor, bench)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result["agreement"].items() if k != "pairs"}, indent=2))
    if "cost" in result:
        print(json.dumps(result["cost"], indent=2))


if __name__ == "__main__":
    main()
