"""Label files: JSONL keyed by item id, checked against the label schema and (optionally) the store.

One JSON object per line, no item text copied in::

    {"item_id": "<thread>/c3", "sentiment": "negative",
     "stance": {"blame_management": "favor", "funding": "none", "nqsw_access": "none", "ofsted": "none"},
     "annotator": "a", "labelled_at": "2026-01-05T10:12:00Z", "note": "optional free text",
     "evidence": {"blame_management": {"start": 0, "end": 42}}}

``evidence`` (optional) gives, per target with a non-none stance, the character span of the item text that
the annotator points to as the reason for the label (``text[start:end]``).

:func:`check_label_file` reports every problem with its line; :func:`read_labels` is the strict reader
used by other stages (it raises :class:`~pipeline.errors.UserError` on the first problem).
Writers either append one line and fsync (:func:`append_label`) or rewrite atomically
(:func:`write_labels`), so an interrupted session never leaves a half-written file.
"""
from __future__ import annotations

import functools
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipeline.config.schema import LabelSchema
from pipeline.errors import UserError
from pipeline.ingest.jsonl import jsonl_lines

REQUIRED_KEYS = ("item_id", "sentiment", "stance", "annotator", "labelled_at")
OPTIONAL_KEYS = ("note", "evidence")
KNOWN_KEYS = frozenset(REQUIRED_KEYS + OPTIONAL_KEYS)


@dataclass
class LabelRecord:
    """One item's labels from one annotator."""

    item_id: str
    sentiment: str
    stance: dict[str, str]
    annotator: str
    labelled_at: str
    note: str | None = None
    evidence: dict[str, dict[str, int]] | None = None  # target -> {"start", "end"} in the item text
    line: int | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"item_id": self.item_id, "sentiment": self.sentiment, "stance": dict(self.stance),
                               "annotator": self.annotator, "labelled_at": self.labelled_at}
        if self.note:
            out["note"] = self.note
        if self.evidence:
            out["evidence"] = {t: dict(span) for t, span in self.evidence.items()}
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    def value(self, field_name: str) -> str:
        """The label for ``sentiment`` or for a stance target."""
        return self.sentiment if field_name == "sentiment" else self.stance[field_name]


@dataclass
class LabelProblem:
    """Something wrong in a label file, located by file and 1-based line."""

    path: str
    line: int | None
    kind: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"


@dataclass
class LabelCheck:
    """The outcome of checking one file: the valid records and every problem found."""

    path: str
    records: list[LabelRecord] = field(default_factory=list)
    problems: list[LabelProblem] = field(default_factory=list)
    lines: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def now_iso() -> str:
    """The current UTC time as ISO 8601 with a ``Z`` suffix, to the second."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(value: str) -> datetime:
    """Parse ISO 8601 (``Z`` accepted on every Python version); ValueError if it is not one."""
    text = value.strip()
    if not text or not text[0].isdigit():
        raise ValueError(f"not an ISO 8601 timestamp: {value!r}")
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    return datetime.fromisoformat(text)


def _choices(values: Iterable[str]) -> str:
    return ", ".join(values)


def check_object(obj: Any, schema: LabelSchema | None = None,
                 item_ids: set[str] | None = None) -> list[tuple[str, str]]:
    """Problems with one parsed line as ``(kind, message)`` pairs; empty when the line is valid.

    Structure is always checked; labels against ``schema`` when given; ids against ``item_ids`` when given.
    """
    if not isinstance(obj, dict):
        return [("not_object", f"expected a JSON object, got {type(obj).__name__}")]
    out: list[tuple[str, str]] = []
    for key in obj:
        if key not in KNOWN_KEYS:
            hint = " (label files carry ids, not item text)" if key in ("text", "parent_text") else ""
            out.append(("unknown_key", f"unknown key {key!r}{hint}"))
    item_id = obj.get("item_id")
    if item_id is None:
        out.append(("missing_item_id", _absent(obj, "item_id")))
    elif not isinstance(item_id, str) or not item_id.strip():
        out.append(("bad_item_id", f"'item_id' must be a non-empty string, got {item_id!r}"))
    elif item_ids is not None and item_id not in item_ids:
        out.append(("unknown_item", f"unknown item id {item_id!r} (not in the store)"))

    sentiment = obj.get("sentiment")
    if sentiment is None:
        out.append(("missing_sentiment", _absent(obj, "sentiment")))
    elif not isinstance(sentiment, str):
        out.append(("bad_type", f"'sentiment' must be a string, got {type(sentiment).__name__}"))
    elif schema is not None and sentiment not in schema.sentiment_classes:
        out.append(("unknown_label", f"unknown sentiment label {sentiment!r} "
                                     f"(expected one of {_choices(schema.sentiment_classes)})"))

    stance = obj.get("stance")
    if stance is None:
        out.append(("missing_stance", _absent(obj, "stance")))
    elif not isinstance(stance, dict):
        out.append(("bad_type", f"'stance' must be an object {{target: label}}, got {type(stance).__name__}"))
    else:
        for target, label in stance.items():
            if schema is not None and target not in schema.targets:
                out.append(("unknown_target", f"unknown target {target!r} "
                                              f"(schema targets: {_choices(schema.target_names)})"))
            elif not isinstance(label, str):
                out.append(("bad_type", f"stance label for {target!r} must be a string, got {label!r}"))
            elif schema is not None and label not in schema.stance_classes:
                out.append(("unknown_label", f"unknown stance label {label!r} for target {target!r} "
                                             f"(expected one of {_choices(schema.stance_classes)})"))
        if schema is not None:
            for target in schema.target_names:
                if target not in stance:
                    out.append(("missing_target", f"missing target {target!r} in 'stance'"))

    annotator = obj.get("annotator")
    if annotator is None:
        out.append(("missing_annotator", _absent(obj, "annotator")))
    elif not isinstance(annotator, str) or not annotator.strip():
        out.append(("missing_annotator", f"'annotator' must be a non-empty string, got {annotator!r}"))

    stamp = obj.get("labelled_at")
    if stamp is None:
        out.append(("missing_timestamp", _absent(obj, "labelled_at")))
    elif not isinstance(stamp, str):
        out.append(("bad_timestamp", f"'labelled_at' must be an ISO 8601 string, got {stamp!r}"))
    else:
        try:
            parse_timestamp(stamp)
        except ValueError:
            out.append(("bad_timestamp", f"'labelled_at' is not an ISO 8601 timestamp: {stamp!r}"))

    note = obj.get("note")
    if note is not None and not isinstance(note, str):
        out.append(("bad_type", f"'note' must be a string, got {type(note).__name__}"))
    out.extend(_check_evidence(obj.get("evidence"), stance if isinstance(stance, dict) else {}))
    return out


def _check_evidence(evidence: Any, stance: dict[str, Any]) -> list[tuple[str, str]]:
    """Problems with the optional ``evidence`` object: ``{target: {"start": int, "end": int}}``."""
    if evidence is None:
        return []
    if not isinstance(evidence, dict):
        return [("bad_type", f"'evidence' must be an object {{target: {{start, end}}}}, got "
                             f"{type(evidence).__name__}")]
    out: list[tuple[str, str]] = []
    for target, span in evidence.items():
        if target not in stance:
            out.append(("unknown_target", f"evidence for {target!r}, which has no stance label"))
            continue
        ok = isinstance(span, dict) and set(span) == {"start", "end"} and all(
            isinstance(span[k], int) and not isinstance(span[k], bool) for k in ("start", "end"))
        if not ok or not 0 <= span["start"] < span["end"]:
            out.append(("bad_type", f"evidence for {target!r} must be {{\"start\": int, \"end\": int}} with "
                                    f"0 <= start < end, got {span!r}"))
    return out


def _absent(obj: dict[str, Any], key: str) -> str:
    return f"{key!r} is null: give a value" if key in obj else f"missing {key!r}"


def _note_repeats(pairs: list[tuple[str, Any]], repeated: list[str]) -> dict[str, Any]:
    """A JSON object as a dict, noting keys that appear twice (``json`` silently keeps the last one)."""
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen and key not in repeated:
            repeated.append(key)
        seen.add(key)
    return dict(pairs)


def _record(obj: dict[str, Any], line: int) -> LabelRecord:
    return LabelRecord(item_id=obj["item_id"], sentiment=obj["sentiment"], stance=dict(obj["stance"]),
                       annotator=obj["annotator"], labelled_at=obj["labelled_at"], note=obj.get("note"),
                       evidence={t: dict(s) for t, s in obj["evidence"].items()} if obj.get("evidence") else None,
                       line=line)


def _read_lines(path: Path) -> list[str]:
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise UserError("label file not found", path) from exc
    except OSError as exc:
        raise UserError(f"cannot read label file: {exc.strerror or exc}", path) from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UserError("label file is not valid UTF-8", path, line) from exc
    return jsonl_lines(text)


def check_label_file(path: str | Path, schema: LabelSchema | None = None,
                     item_ids: set[str] | None = None) -> LabelCheck:
    """Check every line of a label file; collects all problems instead of stopping at the first.

    Blank lines are ignored. A line is kept as a record only when it has no problems; a repeated
    item id is a problem on the later line (the first one is kept).
    """
    p = Path(path)
    result = LabelCheck(path=str(p))
    try:
        lines = _read_lines(p)
    except UserError as exc:
        result.problems.append(LabelProblem(str(p), exc.line, "unreadable", exc.message))
        return result
    first_seen: dict[str, int] = {}
    for lineno, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        result.lines += 1
        repeated: list[str] = []
        try:
            obj = json.loads(raw, object_pairs_hook=functools.partial(_note_repeats, repeated=repeated))
        except json.JSONDecodeError as exc:
            result.problems.append(LabelProblem(str(p), lineno, "bad_json", f"invalid JSON: {exc.msg} "
                                                                            f"(column {exc.colno})"))
            continue
        found = [("duplicate_key", f"key {key!r} appears more than once (JSON keeps only the last)")
                 for key in repeated]
        found += check_object(obj, schema, item_ids)
        item_id = obj.get("item_id") if isinstance(obj, dict) else None
        if isinstance(item_id, str) and item_id.strip():
            if item_id in first_seen:
                found.append(("duplicate_id", f"duplicate item id {item_id!r} (first labelled at line "
                                              f"{first_seen[item_id]})"))
            else:
                first_seen[item_id] = lineno
        for kind, message in found:
            result.problems.append(LabelProblem(str(p), lineno, kind, message))
        if not found:
            result.records.append(_record(obj, lineno))
    return result


def read_labels(path: str | Path, schema: LabelSchema | None = None,
                item_ids: set[str] | None = None) -> list[LabelRecord]:
    """Read a label file strictly: the first problem raises a UserError naming the file and line."""
    result = check_label_file(path, schema, item_ids)
    if result.problems:
        first = result.problems[0]
        more = f" (and {len(result.problems) - 1} more problems; run `threadstance labels check`)" \
            if len(result.problems) > 1 else ""
        raise UserError(first.message + more, first.path, first.line)
    return result.records


def label_counts(records: Iterable[LabelRecord], schema: LabelSchema) -> dict[str, Counter[str]]:
    """Counts per field (``sentiment`` then each target) and label."""
    counts: dict[str, Counter[str]] = {name: Counter() for name in ("sentiment", *schema.target_names)}
    for rec in records:
        counts["sentiment"][rec.sentiment] += 1
        for target in schema.target_names:
            if target in rec.stance:
                counts[target][rec.stance[target]] += 1
    return counts


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (:func:`~pipeline.store.outfile.atomic_output`)."""
    from pipeline.store.outfile import atomic_output

    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)


def write_labels(path: str | Path, records: Iterable[LabelRecord]) -> int:
    """Atomically (re)write a label file; returns the number of records written."""
    lines = [rec.to_json() + "\n" for rec in records]
    write_text_atomic(path, "".join(lines))
    return len(lines)


def append_label(path: str | Path, record: LabelRecord) -> None:
    """Append one record and fsync, so a crash loses at most the label being typed."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "ab") as fh:
        if fh.tell() > 0:
            with open(p, "rb") as check:
                check.seek(-1, os.SEEK_END)
                if check.read(1) != b"\n":
                    fh.write(b"\n")
        fh.write((record.to_json() + "\n").encode("utf-8"))
        fh.flush()
        os.fsync(fh.fileno())


def remove_last_label(path: str | Path, item_ids: set[str] | None = None) -> str | None:
    """Remove the last line labelling one of ``item_ids`` (any item when None); atomic rewrite.

    Other lines are kept byte for byte. Returns the removed item id, or None when nothing matched.
    """
    p = Path(path)
    if not p.exists():
        return None
    _read_lines(p)  # reports unreadable / non-UTF-8 files as UserError
    lines = p.read_bytes().decode("utf-8-sig").splitlines(keepends=True)
    for index in range(len(lines) - 1, -1, -1):
        try:
            obj = json.loads(lines[index])
        except json.JSONDecodeError:
            continue
        item_id = obj.get("item_id") if isinstance(obj, dict) else None
        if isinstance(item_id, str) and (item_ids is None or item_id in item_ids):
            del lines[index]
            write_text_atomic(p, "".join(lines))
            return item_id
    return None


def labelled_ids(path: str | Path) -> set[str]:
    """Item ids that have a line in ``path`` (lenient: lines that do not parse are ignored)."""
    p = Path(path)
    if not p.exists():
        return set()
    out = set()
    for raw in _read_lines(p):
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("item_id"), str):
            out.add(obj["item_id"])
    return out


_ITEM_ID = re.compile(r'"item_id"\s*:\s*"((?:[^"\\]|\\.)*)"')


def read_labelled_ids(path: str | Path, warn: Callable[[str], None] | None = None) -> set[str]:
    """Item ids that have a line in the label file ``path`` (strict, for ``suggest``).

    A line that is not a JSON object with a string ``item_id`` raises a UserError naming the file and
    line. The one exception is a last line without a newline that does not parse (a write cut short):
    ``warn`` gets a line naming the file, line and item, and that item counts as unlabelled.
    """
    p = Path(path)
    try:
        ends_whole = p.read_bytes().endswith(b"\n")
    except OSError:
        ends_whole = True  # _read_lines says why
    lines = _read_lines(p)
    last = max((n for n, raw in enumerate(lines, start=1) if raw.strip()), default=0)
    out: set[str] = set()
    for lineno, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
            problem = None
        except json.JSONDecodeError as exc:
            obj, problem = None, f"invalid JSON: {exc.msg} (column {exc.colno})"
        if problem and lineno == last and not ends_whole:
            found = _ITEM_ID.search(raw)
            item = f"item {found.group(1)}" if found else "the item on it"
            if warn is not None:
                warn(f"{p}:{lineno}: the last line is cut short (a write that did not finish): {item} is not "
                     "counted as labelled")
            continue
        if problem is None and not isinstance(obj, dict):
            problem = f"expected a JSON object with an item_id, got {type(obj).__name__}"
        elif problem is None and not isinstance(obj.get("item_id"), str):
            problem = "no item_id (a string) on this line"
        if problem:
            raise UserError(f"not a label file line: {problem}", p, lineno)
        out.add(obj["item_id"])
    return out
