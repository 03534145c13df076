"""Label Studio interchange: export items as tasks plus a labelling config; import a JSON export.

Export writes ``tasks.json`` (one task per item; ``data.text``, ``data.item_id``, ``data.thread_title``,
``data.parent_text`` and ``data.kind``) and ``config.xml`` generated from the label schema: one
``<Choices>`` for sentiment and one per target, each target under a header showing its statement.

Import reads Label Studio's JSON export (a list of tasks, each with ``annotations[].result[]`` entries
``{"from_name", "to_name", "type": "choices", "value": {"choices": [...]}}``, ``completed_by`` and
``created_at``/``updated_at``) and turns each task's annotation into a label record. Errors name the
task (its id and item id) and the field.
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


# ---- export -----------------------------------------------------------------------------------
def make_tasks(items: Sequence[ItemContext]) -> list[dict[str, Any]]:
    """One Label Studio task per item (parent_text is empty for items that are not replies)."""
    return [{"data": {"text": c.text, "item_id": c.item_id, "thread_title": c.thread_title,
                      "parent_text": c.parent_text or "", "kind": c.kind}} for c in items]


def make_config(schema: LabelSchema) -> str:
    """A Label Studio labelling config (XML) for the schema's sentiment classes and stance targets."""
    lines = [
        "<View>",
        '  <Header value="$thread_title" size="4"/>',
        '  <Text name="parent" value="$parent_text" granularity="word"/>',
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
    lines.append('  <TextArea name="note" toName="text" placeholder="note (optional)" maxSubmissions="1" '
                 'editable="true" rows="2"/>')
    lines.append("</View>")
    return "\n".join(lines) + "\n"


def export_project(items: Sequence[ItemContext], schema: LabelSchema, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``tasks.json`` and ``config.xml`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tasks_path, config_path = out / "tasks.json", out / "config.xml"
    write_text_atomic(tasks_path, json.dumps(make_tasks(items), indent=2, ensure_ascii=False) + "\n")
    write_text_atomic(config_path, make_config(schema))
    return tasks_path, config_path


# ---- import -----------------------------------------------------------------------------------
@dataclass
class ImportResult:
    records: list[LabelRecord] = field(default_factory=list)
    unannotated: list[str] = field(default_factory=list)  # task descriptions without a usable annotation
    warnings: list[str] = field(default_factory=list)


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


def import_export(data: list[Any], schema: LabelSchema, source: str | Path, annotator: str | None = None,
                  completed_by: str | None = None) -> ImportResult:
    """Turn a Label Studio JSON export into label records (task order).

    Cancelled (skipped) annotations are ignored; ``completed_by`` keeps only that user's annotations
    (id, email or username). When a task still has several annotations the most recently updated one
    is used and a warning says so. ``annotator`` overrides the name taken from ``completed_by``.
    """
    result = ImportResult()
    seen: dict[str, str] = {}
    fields = [SENTIMENT_NAME, *schema.target_names]
    for index, task in enumerate(data):
        where = f"task #{index + 1}"
        if not isinstance(task, dict):
            raise UserError(f"{where}: expected an object, got {type(task).__name__}", source)
        if task.get("id") is not None:
            where = f"task {task['id']}"
        task_data = task.get("data")
        item_id = task_data.get("item_id") if isinstance(task_data, dict) else None
        if not isinstance(item_id, str) or not item_id:
            raise UserError(f"{where}: data.item_id is missing (export tasks with `threadstance labelstudio "
                            "export` so each task carries its item id)", source)
        where = f"{where} (item {item_id})"
        annotations = task.get("annotations") or []
        if not isinstance(annotations, list):
            raise UserError(f"{where}: 'annotations' must be a list", source)
        usable = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
        if completed_by is not None:
            usable = [a for a in usable if _user_matches(a.get("completed_by"), completed_by)]
        if not usable:
            result.unannotated.append(where)
            continue
        if len(usable) > 1:
            result.warnings.append(f"{where}: {len(usable)} annotations, using the most recently updated "
                                   "(pass --completed-by to choose a user)")
        ann = max(usable, key=lambda a: str(a.get("updated_at") or a.get("created_at") or ""))
        if item_id in seen:
            raise UserError(f"{where}: item {item_id!r} is annotated again (first in {seen[item_id]})", source)
        seen[item_id] = where
        values, note = _choices_by_field(ann, where, source, schema, fields)
        missing = [f for f in fields if f not in values]
        if missing:
            raise UserError(f"{where}, field {missing[0]!r}: no choice made (every field needs one; "
                            f"missing: {', '.join(missing)})", source)
        stamp = _iso(ann.get("updated_at")) or _iso(ann.get("created_at"))
        if stamp is None:
            raise UserError(f"{where}: the annotation has no valid updated_at/created_at timestamp", source)
        name = annotator or _user_name(ann.get("completed_by"))
        if not name:
            raise UserError(f"{where}: the annotation has no completed_by user; pass --annotator NAME", source)
        result.records.append(LabelRecord(
            item_id=item_id, sentiment=values[SENTIMENT_NAME],
            stance={t: values[t] for t in schema.target_names}, annotator=name, labelled_at=stamp,
            note=note))
    return result


def _choices_by_field(ann: dict[str, Any], where: str, source: str | Path, schema: LabelSchema,
                      fields: list[str]) -> tuple[dict[str, str], str | None]:
    """The chosen label per field and the optional note of one annotation."""
    results = ann.get("result")
    if not isinstance(results, list):
        raise UserError(f"{where}: annotation {ann.get('id', '?')} has no 'result' list", source)
    values: dict[str, str] = {}
    notes: list[str] = []
    for res in results:
        if not isinstance(res, dict):
            raise UserError(f"{where}: a result entry is not an object", source)
        name = res.get("from_name")
        if name == NOTE_NAME and res.get("type") == "textarea":
            text = res.get("value", {}).get("text") if isinstance(res.get("value"), dict) else None
            if not isinstance(text, list) or not all(isinstance(t, str) for t in text):
                raise UserError(f"{where}, field 'note': expected value.text to be a list of strings", source)
            notes.extend(t.strip() for t in text if t.strip())
            continue
        if name not in fields:
            raise UserError(f"{where}, field {name!r}: not in the label schema (expected one of "
                            f"{', '.join(fields)})", source)
        if res.get("type") != "choices":
            raise UserError(f"{where}, field {name!r}: result type {res.get('type')!r}, expected 'choices'",
                            source)
        value = res.get("value")
        choices = value.get("choices") if isinstance(value, dict) else None
        if not isinstance(choices, list) or len(choices) != 1 or not isinstance(choices[0], str):
            raise UserError(f"{where}, field {name!r}: expected exactly one choice, got {choices!r}", source)
        allowed = schema.sentiment_classes if name == SENTIMENT_NAME else schema.stance_classes
        if choices[0] not in allowed:
            raise UserError(f"{where}, field {name!r}: choice {choices[0]!r} is not one of "
                            f"{', '.join(allowed)}", source)
        if name in values and values[name] != choices[0]:
            raise UserError(f"{where}, field {name!r}: two different choices ({values[name]!r}, "
                            f"{choices[0]!r})", source)
        values[name] = choices[0]
    return values, " ".join(notes) or None
