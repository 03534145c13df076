"""Label Studio interchange: export items as tasks (with the model's pre-annotations) plus a labelling config;
import a JSON export with every annotator's labels.

Export writes ``tasks.json`` (one task per item; ``data.text``, ``data.item_id``, ``data.thread_title``,
``data.parent_text`` and ``data.kind``) and ``config.xml`` generated from the label schema: one
``<Choices>`` for sentiment and one per target, each target under a header showing its statement, and a
``<Labels name="evidence">`` control (one label per target) to mark the sentence behind a stance. With a
model, every task also carries ``predictions``: one pre-annotation with the ``model_version``, a task
``score`` (the lowest probability among the model's chosen labels: sort by it to review the least sure
first), one ``choices`` result per field with the probability of its label as ``score``, and one
``labels`` region per non-none stance marking its evidence sentence.

Import reads Label Studio's JSON export (a list of tasks, each with ``annotations[].result[]``,
``completed_by`` and ``created_at``/``updated_at``). Every annotation that is not cancelled becomes one
label record, so a task labelled by three people gives three records (one per annotator). A task or an
annotation that cannot be read (no item id, a field without a choice, a choice outside the schema …) is
reported by task id, annotation id and field, and the rest is imported.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timezone
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from pipeline.config.schema import LabelSchema
from pipeline.data.labels import LabelRecord, parse_timestamp, write_text_atomic
from pipeline.data.selection import ItemContext
from pipeline.errors import UserError

TEXT_NAME = "text"
SENTIMENT_NAME = "sentiment"
NOTE_NAME = "note"
EVIDENCE_NAME = "evidence"


# ---- export -----------------------------------------------------------------------------------
def make_tasks(items: Sequence[ItemContext], predictions: dict[str, dict[str, Any]] | None = None
               ) -> list[dict[str, Any]]:
    """One Label Studio task per item (parent_text is empty for items that are not replies); ``predictions``
    (item id → :func:`prediction_for_task`) become the task's pre-annotation."""
    tasks = []
    for c in items:
        task: dict[str, Any] = {"data": {"text": c.text, "item_id": c.item_id, "thread_title": c.thread_title,
                                         "parent_text": c.parent_text or "", "kind": c.kind}}
        if predictions and c.item_id in predictions:
            task["predictions"] = [predictions[c.item_id]]
        tasks.append(task)
    return tasks


def prediction_for_task(record: dict[str, Any], schema: LabelSchema) -> dict[str, Any]:
    """A Label Studio pre-annotation from a prediction record (:func:`pipeline.store.records.prediction_record`):
    ``model_version``, task ``score`` and one result per field, plus evidence regions."""
    result: list[dict[str, Any]] = []
    heads = [(SENTIMENT_NAME, record["sentiment"])] + [(t, record["stance"][t]) for t in schema.target_names]
    for name, head in heads:
        result.append({"id": f"{name}-pred", "from_name": name, "to_name": TEXT_NAME, "type": "choices",
                       "value": {"choices": [head["label"]]}, "score": round(float(head["prob"]), 4)})
    for t in schema.target_names:
        ev = record["stance"][t].get("evidence")
        if ev:
            result.append({"id": f"{t}-evidence", "from_name": EVIDENCE_NAME, "to_name": TEXT_NAME, "type": "labels",
                           "value": {"start": ev["start"], "end": ev["end"], "text": ev["text"], "labels": [t]},
                           "score": round(float(ev.get("score", 0.0)), 4)})
    return {"model_version": record["model_version"], "score": round(min(float(h["prob"]) for _, h in heads), 4),
            "result": result}


def make_config(schema: LabelSchema) -> str:
    """A Label Studio labelling config (XML) for the schema's sentiment classes, stance targets and evidence."""
    lines = [
        "<View>",
        '  <Header value="$thread_title" size="4"/>',
        '  <Text name="parent" value="$parent_text" granularity="word"/>',
        f'  <Labels name="{EVIDENCE_NAME}" toName="{TEXT_NAME}" choice="multiple" showInline="true">',
    ]
    lines += [f"    <Label value={quoteattr(t)}/>" for t in schema.target_names]
    lines += [
        "  </Labels>",
        f'  <Text name="{TEXT_NAME}" value="$text"/>',
        '  <Header value="Sentiment of the item (the author\'s overall tone)" size="5"/>',
        f'  <Choices name="{SENTIMENT_NAME}" toName="{TEXT_NAME}" choice="single-radio" required="true" '
        'showInline="true">',
    ]
    lines += [f"    <Choice value={quoteattr(c)}/>" for c in schema.sentiment_classes]
    lines.append("  </Choices>")
    for name, target in schema.targets.items():
        lines.append(f"  <Header value={quoteattr(f'{name}: {target.statement}')} size=\"5\"/>")
        lines.append(f'  <Choices name="{name}" toName="{TEXT_NAME}" choice="single-radio" required="true" '
                     'showInline="true">')
        lines += [f"    <Choice value={quoteattr(c)}/>" for c in schema.stance_classes]
        lines.append("  </Choices>")
    lines.append(f'  <TextArea name="{NOTE_NAME}" toName="{TEXT_NAME}" placeholder="note (optional)" '
                 'maxSubmissions="1" editable="true" rows="2"/>')
    lines.append("</View>")
    return "\n".join(lines) + "\n"


def export_project(items: Sequence[ItemContext], schema: LabelSchema, out_dir: str | Path,
                   predictions: dict[str, dict[str, Any]] | None = None) -> tuple[Path, Path]:
    """Write ``tasks.json`` and ``config.xml`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tasks_path, config_path = out / "tasks.json", out / "config.xml"
    write_text_atomic(tasks_path, json.dumps(make_tasks(items, predictions), indent=2, ensure_ascii=False) + "\n")
    write_text_atomic(config_path, make_config(schema))
    return tasks_path, config_path


# ---- import -----------------------------------------------------------------------------------
@dataclass
class ImportProblem:
    """A task or an annotation that was not imported, and why."""

    task: str  # "task 101 (item t/c1)" or "task #3" when the task has no id
    annotation: str | None  # "annotation 412 by ls-user-7", or None for the whole task
    message: str

    def __str__(self) -> str:
        return f"{self.task}" + (f", {self.annotation}" if self.annotation else "") + f": {self.message}"


@dataclass
class ImportResult:
    records: list[LabelRecord] = field(default_factory=list)  # every annotator's, in task order
    unannotated: list[str] = field(default_factory=list)  # tasks without an annotation to import
    problems: list[ImportProblem] = field(default_factory=list)  # tasks / annotations left out

    def by_annotator(self) -> dict[str, list[LabelRecord]]:
        out: dict[str, list[LabelRecord]] = {}
        for rec in self.records:
            out.setdefault(rec.annotator, []).append(rec)
        return out


class _Bad(Exception):
    """One annotation (or task) that cannot be imported."""


def _user_name(completed_by: Any) -> str | None:
    """Label Studio writes ``completed_by`` as a user id or as a user object."""
    if isinstance(completed_by, dict):
        for key in ("email", "username"):
            if completed_by.get(key):
                return str(completed_by[key])
        if completed_by.get("id") is not None:
            return f"ls-user-{completed_by['id']}"
        return None
    if isinstance(completed_by, (int, str)) and not isinstance(completed_by, bool) and str(completed_by):
        return f"ls-user-{completed_by}"
    return None


def _user_matches(completed_by: Any, wanted: str) -> bool:
    if isinstance(completed_by, dict):
        return wanted in {str(completed_by.get(k)) for k in ("id", "email", "username") if completed_by.get(k)}
    return str(completed_by) == wanted


def _iso(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        stamp = parse_timestamp(value)
    except ValueError:
        return None
    if stamp.tzinfo is not None:
        return stamp.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return stamp.replace(microsecond=0).isoformat()


def read_export(path: str | Path) -> list[Any]:
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8-sig"))
    except FileNotFoundError as exc:
        raise UserError("Label Studio export not found", p) from exc
    except json.JSONDecodeError as exc:
        raise UserError(f"not valid JSON: {exc.msg}", p, exc.lineno) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read the export: {exc}", p) from exc
    if not isinstance(data, list):
        raise UserError("expected Label Studio's JSON export: a list of tasks (export as 'JSON', not "
                        "'JSON-MIN' or CSV)", p)
    return data


def import_export(data: list[Any], schema: LabelSchema, annotator: str | None = None,
                  completed_by: str | None = None) -> ImportResult:
    """Turn a Label Studio JSON export into label records, one per (task, annotator), in task order.

    Cancelled (skipped) annotations are ignored; ``completed_by`` keeps only that user's annotations
    (id, email or username); ``annotator`` names the records (only when one user's annotations are kept).
    When one annotator labelled the same item twice, the first is kept and the later one reported.
    Nothing raises for a bad task or annotation: it is added to ``problems`` and the rest is imported.
    """
    result = ImportResult()
    seen: dict[tuple[str, str], str] = {}
    users: set[str] = set()
    fields = [SENTIMENT_NAME, *schema.target_names]
    for index, task in enumerate(data):
        where = f"task #{index + 1}"
        if not isinstance(task, dict):
            result.problems.append(ImportProblem(where, None, f"expected an object, got {type(task).__name__}"))
            continue
        if task.get("id") is not None:
            where = f"task {task['id']}"
        task_data = task.get("data")
        item_id = task_data.get("item_id") if isinstance(task_data, dict) else None
        if not isinstance(item_id, str) or not item_id:
            result.problems.append(ImportProblem(where, None, "data.item_id is missing (export tasks with "
                                                              "`threadstance labelstudio export` so each task "
                                                              "carries its item id)"))
            continue
        where = f"{where} (item {item_id})"
        annotations = task.get("annotations") or []
        if not isinstance(annotations, list):
            result.problems.append(ImportProblem(where, None, "'annotations' must be a list"))
            continue
        usable = [a for a in annotations if not (isinstance(a, dict) and a.get("was_cancelled"))]
        if completed_by is not None:
            usable = [a for a in usable if isinstance(a, dict) and _user_matches(a.get("completed_by"), completed_by)]
        if not usable:
            result.unannotated.append(where)
            continue
        for ann in usable:
            label = "an annotation"
            try:
                if not isinstance(ann, dict):
                    raise _Bad(f"expected an object, got {type(ann).__name__}")
                user = _user_name(ann.get("completed_by"))
                users.add(user or "?")
                name = annotator or user
                label = f"annotation {ann.get('id', '?')}" + (f" by {name}" if name else "")
                rec = _record(ann, item_id, name, schema, fields)
            except _Bad as exc:
                result.problems.append(ImportProblem(where, label, str(exc)))
                continue
            key = (item_id, rec.annotator)
            if key in seen:
                result.problems.append(ImportProblem(where, label, f"{rec.annotator} already labelled this item "
                                                                   f"(in {seen[key]}); the first is kept"))
                continue
            seen[key] = where
            result.records.append(rec)
    if annotator is not None and len(users) > 1:
        raise UserError(f"--annotator {annotator!r} would give one name to the annotations of {len(users)} users "
                        f"({', '.join(sorted(users))}); keep one user's with --completed-by")
    return result


def _record(ann: dict[str, Any], item_id: str, name: str | None, schema: LabelSchema,
            fields: list[str]) -> LabelRecord:
    values, note, evidence = _read_results(ann, schema, fields)
    missing = [f for f in fields if f not in values]
    if missing:
        raise _Bad(f"incomplete: no choice for {', '.join(repr(f) for f in missing)}")
    stamp = _iso(ann.get("updated_at")) or _iso(ann.get("created_at"))
    if stamp is None:
        raise _Bad("no valid updated_at/created_at timestamp")
    if not name:
        raise _Bad("no completed_by user (pass --annotator NAME)")
    stance = {t: values[t] for t in schema.target_names}
    kept = {t: span for t, span in evidence.items() if stance[t] != schema.none_class}
    return LabelRecord(item_id=item_id, sentiment=values[SENTIMENT_NAME], stance=stance, annotator=name,
                       labelled_at=stamp, note=note, evidence=kept or None)


def _read_results(ann: dict[str, Any], schema: LabelSchema, fields: list[str]
                  ) -> tuple[dict[str, str], str | None, dict[str, dict[str, int]]]:
    """The chosen label per field, the optional note and the first evidence span per target."""
    results = ann.get("result")
    if not isinstance(results, list):
        raise _Bad("no 'result' list")
    values: dict[str, str] = {}
    notes: list[str] = []
    evidence: dict[str, dict[str, int]] = {}
    for res in results:
        if not isinstance(res, dict):
            raise _Bad("a result entry is not an object")
        name = res.get("from_name")
        value = res.get("value") if isinstance(res.get("value"), dict) else {}
        if name == NOTE_NAME and res.get("type") == "textarea":
            text = value.get("text")
            if not isinstance(text, list) or not all(isinstance(t, str) for t in text):
                raise _Bad("field 'note': expected value.text to be a list of strings")
            notes.extend(t.strip() for t in text if t.strip())
            continue
        if name == EVIDENCE_NAME and res.get("type") == "labels":
            start, end, targets = value.get("start"), value.get("end"), value.get("labels")
            if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end and isinstance(targets, list)):
                raise _Bad(f"field 'evidence': expected value.start < value.end and value.labels, got {value!r}")
            for t in targets:
                if t not in schema.targets:
                    raise _Bad(f"field 'evidence': {t!r} is not a target")
                evidence.setdefault(t, {"start": start, "end": end})
            continue
        if name not in fields:
            raise _Bad(f"field {name!r}: not in the label schema (expected one of {', '.join(fields)})")
        if res.get("type") != "choices":
            raise _Bad(f"field {name!r}: result type {res.get('type')!r}, expected 'choices'")
        choices = value.get("choices")
        if not isinstance(choices, list) or len(choices) != 1 or not isinstance(choices[0], str):
            raise _Bad(f"field {name!r}: expected exactly one choice, got {choices!r}")
        allowed = schema.sentiment_classes if name == SENTIMENT_NAME else schema.stance_classes
        if choices[0] not in allowed:
            raise _Bad(f"field {name!r}: choice {choices[0]!r} is not one of {', '.join(allowed)}")
        if name in values and values[name] != choices[0]:
            raise _Bad(f"field {name!r}: two different choices ({values[name]!r}, {choices[0]!r})")
        values[name] = choices[0]
    return values, " ".join(notes) or None, evidence


# ---- agreement across annotators ------------------------------------------------------------------
def annotator_agreement(by_annotator: dict[str, list[LabelRecord]], schema: LabelSchema) -> list[dict[str, Any]]:
    """Pairwise agreement (:func:`pipeline.evaluation.agreement.compare_labels`) of every two annotators over
    the items both labelled: per pair, the shared items, items fully agreed and each field's kappa."""
    from pipeline.evaluation.agreement import compare_labels

    names = sorted(by_annotator)
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            report = compare_labels(by_annotator[a], by_annotator[b], schema)
            out.append({"annotators": [a, b], "common": len(report.common),
                        "items_fully_agreed": report.items_fully_agreed,
                        "fields": {f.field: f.to_dict() for f in report.fields}})
    return out


def agreement_lines(pairs: list[dict[str, Any]], schema: LabelSchema) -> list[str]:
    """One line per annotator pair: shared items, items agreed on every field, Cohen's kappa per field."""
    lines = []
    for pair in pairs:
        a, b = pair["annotators"]
        if not pair["common"]:
            lines.append(f"{a} vs {b}: no item labelled by both")
            continue
        kappas = []
        for name in ("sentiment", *schema.target_names):
            f = pair["fields"][name]
            kappa = "n/a" if f["kappa"] is None else f"{f['kappa']:.2f}"
            kappas.append(f"{name} κ {kappa} ({f['agreed']}/{f['n']})")
        lines.append(f"{a} vs {b}: {pair['common']} shared item(s), {pair['items_fully_agreed']} agreed on every "
                     f"field; " + ", ".join(kappas))
    return lines
