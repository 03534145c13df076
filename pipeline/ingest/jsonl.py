"""Parser for JSONL of already-split comments (for researchers who scraped elsewhere).

One JSON object per line:

=================  ========  ============================================================
field              required  meaning
=================  ========  ============================================================
``thread_id``      one of    stable thread id you choose (else derived from ``url``,
``url``            these     else from ``thread_title`` + date of the earliest comment)
``thread_title``   three
``text``           yes       the comment text
``author``         no        display name
``posted_at``      no        ISO 8601; a time without offset is read as Europe/London
``comment_id``     no        your id for the comment, so that replies can point at it
``parent``         no        ``comment_id`` of the comment this one replies to
=================  ========  ============================================================

Values are strings; ``thread_id``, ``comment_id`` and ``parent`` may also be integers. Comments keep
file order within a thread; ids become ``<thread>/c1``, ``<thread>/c1.r1`` … (see docs/formats.md).
"""
from __future__ import annotations

import json
import unicodedata
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

from pipeline.errors import ParseError
from pipeline.ingest.model import Item, Thread
from pipeline.ingest.normalize import london_iso, normalize_text, thread_id_from_title, thread_id_from_url

KNOWN_FIELDS = {"thread_id", "url", "thread_title", "text", "author", "posted_at", "comment_id", "parent"}
STRING_FIELDS = ("url", "thread_title", "text", "author", "posted_at")
ID_FIELDS = ("thread_id", "comment_id", "parent")  # strings, or integers (read as their decimal string)


def _check_types(rec: dict[str, Any], source: str, line: int) -> None:
    """Reject values of the wrong JSON type and strings that cannot be stored as UTF-8."""
    for key in STRING_FIELDS + ID_FIELDS:
        value = rec.get(key)
        if value is None:
            continue
        if key in ID_FIELDS and isinstance(value, int) and not isinstance(value, bool):
            rec[key] = value = str(value)
        if not isinstance(value, str):
            kind = "a string or an integer" if key in ID_FIELDS else "a string"
            raise ParseError(f"'{key}' must be {kind}, got {type(value).__name__}", source, line)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ParseError(f"'{key}' contains an unpaired surrogate (\\u{ord(value[exc.start]):04x})",
                             source, line) from exc
    if rec.get("url"):
        try:
            urlparse(rec["url"])
        except ValueError as exc:
            raise ParseError(f"malformed url {rec['url']!r}: {exc}", source, line) from exc


def _parse_time(value: Any, source: str, line: int) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ParseError(f"posted_at must be an ISO 8601 string, got {value!r}", source, line)
    try:
        return london_iso(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except (ValueError, OverflowError) as exc:
        raise ParseError(f"malformed posted_at {value!r} (expected ISO 8601: {exc})", source, line) from exc


def _check_thread_id(thread_id: str, source: str, line: int) -> None:
    """A given thread_id becomes the prefix of every item id: it must name something (a letter or a digit),
    without spaces around it or control characters, which would make ids that look equal but differ."""
    if not any(ch.isalnum() for ch in thread_id):
        raise ParseError(f"thread_id {thread_id!r} needs at least one letter or digit", source, line)
    if thread_id != thread_id.strip() or any(unicodedata.category(ch) == "Cc" for ch in thread_id):
        raise ParseError(f"thread_id {thread_id!r} has spaces around it or control characters", source, line)


def jsonl_lines(text: str) -> list[str]:
    """The lines of a JSONL text, split at newlines only: ``str.splitlines`` would also split inside strings
    at U+2028, U+2029 and U+0085, which JSON allows unescaped (``ensure_ascii=False`` output)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def parse_jsonl(text: str, source: str) -> list[Thread]:
    """Group JSONL comment records into threads; ParseError names the offending line."""
    records: list[tuple[int, dict[str, Any]]] = []
    for lineno, line in enumerate(jsonl_lines(text), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ParseError(f"invalid JSON: {exc.msg} (column {exc.colno})", source, lineno) from exc
        except RecursionError as exc:
            raise ParseError("invalid JSON: nested too deeply", source, lineno) from exc
        except ValueError as exc:  # e.g. an integer with more digits than Python converts
            raise ParseError(f"invalid JSON: {exc}", source, lineno) from exc
        if not isinstance(rec, dict):
            raise ParseError("each line must be a JSON object", source, lineno)
        unknown = set(rec) - KNOWN_FIELDS
        if unknown:
            raise ParseError(f"unknown field(s) {sorted(unknown)}; allowed: {sorted(KNOWN_FIELDS)}", source, lineno)
        _check_types(rec, source, lineno)
        if not isinstance(rec.get("text"), str) or not normalize_text(rec["text"]):
            raise ParseError("missing or empty 'text'", source, lineno)
        if not any(rec.get(k) for k in ("thread_id", "url", "thread_title")):
            raise ParseError("needs one of 'thread_id', 'url' or 'thread_title'", source, lineno)
        rec["posted_at"] = _parse_time(rec.get("posted_at"), source, lineno)
        records.append((lineno, rec))
    if not records:
        raise ParseError("no JSON records in file", source)

    groups: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for lineno, rec in records:
        key = rec.get("thread_id") or rec.get("url") or rec.get("thread_title")
        groups.setdefault(str(key), []).append((lineno, rec))

    threads = []
    for key, recs in groups.items():
        first = recs[0][1]
        dates = sorted(r["posted_at"][:10] for _, r in recs if r["posted_at"])
        if first.get("thread_id"):
            thread_id = str(first["thread_id"])
            _check_thread_id(thread_id, source, recs[0][0])
        elif first.get("url"):
            thread_id = thread_id_from_url(first["url"])
            if not thread_id.strip("/"):
                raise ParseError(f"url {first['url']!r} has no host or path to make a thread id from", source,
                                 recs[0][0])
        else:
            thread_id = thread_id_from_title(first["thread_title"], dates[0] if dates else None)
        thread = Thread(thread_id=thread_id, title=first.get("thread_title") or key, source=source,
                        url=first.get("url"))
        by_comment_id: dict[str, Item] = {}
        reply_counts: dict[str, int] = {}
        n_top = 0
        for position, (lineno, rec) in enumerate(recs):
            parent_key = rec.get("parent")
            if parent_key not in (None, ""):
                parent = by_comment_id.get(str(parent_key))
                if parent is None:
                    raise ParseError(f"parent {parent_key!r} is not the comment_id of an earlier comment in "
                                     "this thread", source, lineno)
                reply_counts[parent.item_id] = reply_counts.get(parent.item_id, 0) + 1
                item = Item(item_id=f"{parent.item_id}.r{reply_counts[parent.item_id]}", thread_id=thread_id,
                            kind="reply", position=position, depth=parent.depth + 1, parent_id=parent.item_id,
                            text=normalize_text(rec["text"]))
            else:
                n_top += 1
                item = Item(item_id=f"{thread_id}/c{n_top}", thread_id=thread_id, kind="comment",
                            position=position, depth=0, text=normalize_text(rec["text"]))
            item.author = normalize_text(str(rec["author"])) if rec.get("author") else None
            item.posted_at = rec["posted_at"]
            item.source_line = lineno
            if rec.get("comment_id") not in (None, ""):
                cid = str(rec["comment_id"])
                if cid in by_comment_id:
                    raise ParseError(f"duplicate comment_id {cid!r} in thread {thread_id!r}", source, lineno)
                by_comment_id[cid] = item
            thread.items.append(item)
        threads.append(thread)
    return threads
