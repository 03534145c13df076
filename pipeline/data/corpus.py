"""The project-written labelled corpus: loading, validation against the schema, and the dev split."""
from __future__ import annotations

import glob
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sklearn.model_selection import train_test_split

from pipeline.config.schema import LabelSchema
from pipeline.errors import UserError
from pipeline.ingest.jsonl import jsonl_lines


def corpus_files(patterns: list[str]) -> list[Path]:
    files: list[Path] = []
    for pattern in patterns:
        matched = sorted(Path(p) for p in glob.glob(pattern))
        if not matched:
            raise UserError("no corpus file matches this pattern", pattern)
        files.extend(matched)
    return files


def validate_record(rec: dict, schema: LabelSchema, path: Path | str, lineno: int) -> None:
    if not isinstance(rec.get("text"), str) or not rec["text"].strip():
        raise UserError("missing or empty 'text'", path, lineno)
    if rec.get("sentiment") not in schema.sentiment_classes:
        raise UserError(f"sentiment {rec.get('sentiment')!r} is not one of {schema.sentiment_classes}", path, lineno)
    stance = rec.get("stance")
    if not isinstance(stance, dict):
        raise UserError("'stance' must be an object with one label per target", path, lineno)
    missing = [t for t in schema.target_names if t not in stance]
    if missing:
        raise UserError(f"missing stance for target(s) {missing}", path, lineno)
    for t in schema.target_names:
        if stance[t] not in schema.stance_classes:
            raise UserError(f"stance[{t}] {stance[t]!r} is not one of {schema.stance_classes}", path, lineno)


def iter_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed record) for each non-blank line of a JSONL file; UserError names the bad line."""
    for lineno, line in enumerate(jsonl_lines(path.read_text(encoding="utf-8")), start=1):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"invalid JSON: {exc.msg} (column {exc.colno})", path, lineno) from exc


def load_corpus(patterns: list[str], schema: LabelSchema) -> list[dict]:
    """All corpus records (validated), each with ``id``, ``text``, ``sentiment``, ``stance``, ``parent_text``."""
    records, seen = [], set()
    for path in corpus_files(patterns):
        for lineno, rec in iter_jsonl(path):
            validate_record(rec, schema, path, lineno)
            rid = rec.get("id") or f"{path.stem}-{lineno}"
            if rid in seen:
                raise UserError(f"duplicate id {rid!r}", path, lineno)
            seen.add(rid)
            records.append({"id": rid, "text": rec["text"], "sentiment": rec["sentiment"],
                            "stance": {t: rec["stance"][t] for t in schema.target_names},
                            "parent_text": rec.get("parent_text"), "kind": rec.get("kind", "comment"),
                            "source": rec.get("source", "project-written")})
    return records


def strata(rec: dict, schema: LabelSchema) -> str:
    """Stratification key: sentiment plus which targets carry a polar stance."""
    polar = "".join("1" if rec["stance"][t] != schema.none_class else "0" for t in schema.target_names)
    return f"{rec['sentiment']}|{polar}"


def split_corpus(records: list[dict], schema: LabelSchema, dev_fraction: float, seed: int
                 ) -> tuple[list[dict], list[dict]]:
    """Stratified train/dev split; rare strata fall back to sentiment-only stratification."""
    if dev_fraction == 0:
        return list(records), []
    keys = [strata(r, schema) for r in records]
    counts = Counter(keys)
    keys = [k if counts[k] >= 2 else k.split("|")[0] for k in keys]
    try:
        train, dev = train_test_split(records, test_size=dev_fraction, random_state=seed, stratify=keys)
    except ValueError:
        train, dev = train_test_split(records, test_size=dev_fraction, random_state=seed,
                                      stratify=[r["sentiment"] for r in records])
    return list(train), list(dev)


def kfold_split(records: list[dict], folds: int, fold: int, seed: int) -> tuple[list[dict], list[dict]]:
    """(train, dev) for fold ``fold`` of a seeded K-fold split stratified on sentiment."""
    from sklearn.model_selection import StratifiedKFold

    if folds > len(records):
        raise ValueError(f"cannot make {folds} folds of {len(records)} records")
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    train_idx, dev_idx = list(splitter.split(records, [r["sentiment"] for r in records]))[fold]
    return [records[i] for i in train_idx], [records[i] for i in dev_idx]


def fixed_fold_split(records: list[dict], folds: dict[str, int], n_folds: int, fold: int
                     ) -> tuple[list[dict], list[dict]]:
    """(train, dev) for fold ``fold`` of a fixed id -> fold map (e.g. the url-grouped ``folds.json``)."""
    missing = [r["id"] for r in records if r["id"] not in folds]
    if missing:
        raise ValueError(f"{len(missing)} records have no fold (first: {missing[0]})")
    found = sorted(set(folds.values()))
    if found != list(range(n_folds)):
        raise ValueError(f"the fold file has folds {found}, the config asks for {n_folds}")
    return [r for r in records if folds[r["id"]] != fold], [r for r in records if folds[r["id"]] == fold]


def record_label_counts(records: list[dict], schema: LabelSchema) -> dict[str, dict[str, int]]:
    """Counts per field (``sentiment`` then each target) and class, every class listed (zeros too)."""
    out = {"sentiment": {c: 0 for c in schema.sentiment_classes}}
    out.update({t: {c: 0 for c in schema.stance_classes} for t in schema.target_names})
    for r in records:
        out["sentiment"][r["sentiment"]] += 1
        for t in schema.target_names:
            out[t][r["stance"][t]] += 1
    return out
