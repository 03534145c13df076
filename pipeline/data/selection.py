"""Choosing items from the store for annotation or export: ``--filter key=value`` and item context.

Filters: ``kind=comment`` (comment | reply | paragraph), ``thread=ID``, ``item=ID``. Values of the same
key are alternatives (``--filter kind=comment --filter kind=reply``); different keys must all match.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config.settings import DEFAULT_STORE
from pipeline.errors import UserError
from pipeline.store.db import Store

FILTER_KEYS = {"kind": "kind", "thread": "thread_id", "item": "item_id"}
KINDS = ("comment", "reply", "paragraph")


@dataclass
class ItemContext:
    """An item with what an annotator needs to read it: the thread title and, for replies, the parent."""

    item: dict[str, Any]
    thread_title: str
    parent_text: str | None

    @property
    def item_id(self) -> str:
        return str(self.item["item_id"])

    @property
    def text(self) -> str:
        return str(self.item["text"])

    @property
    def kind(self) -> str:
        return str(self.item["kind"])


def parse_filters(specs: Sequence[str] | None) -> dict[str, set[str]]:
    """``["kind=comment", "thread=abc"]`` -> ``{"kind": {"comment"}, "thread": {"abc"}}``."""
    out: dict[str, set[str]] = {}
    for spec in specs or []:
        key, sep, value = spec.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not value:
            raise UserError(f"--filter {spec!r}: expected KEY=VALUE, e.g. kind=comment or thread=ID")
        if key not in FILTER_KEYS:
            raise UserError(f"--filter {spec!r}: unknown key {key!r}; use one of {', '.join(FILTER_KEYS)}")
        if key == "kind" and value not in KINDS:
            raise UserError(f"--filter {spec!r}: kind must be one of {', '.join(KINDS)}")
        out.setdefault(key, set()).add(value)
    return out


def matches(item: dict[str, Any], filters: dict[str, set[str]]) -> bool:
    return all(item[FILTER_KEYS[key]] in values for key, values in filters.items())


def select_items(store: Store, filters: dict[str, set[str]] | None = None) -> list[ItemContext]:
    """Items matching ``filters`` in thread and page order, each with its thread title and parent text."""
    filters = filters or {}
    threads = {t["thread_id"]: t["title"] for t in store.threads()}
    if "thread" in filters:
        unknown = sorted(filters["thread"] - set(threads))
        if unknown:
            raise UserError(f"--filter thread={unknown[0]}: no such thread in the store {store.path}")
    items = store.items()
    text_by_id = {it["item_id"]: it["text"] for it in items}
    return [ItemContext(item=it, thread_title=threads.get(it["thread_id"], ""),
                        parent_text=text_by_id.get(it["parent_id"]) if it.get("parent_id") else None)
            for it in items if matches(it, filters)]


def open_existing_store(db: str | Path | None) -> Store:
    """Open a store that must already exist (opening a missing path would create an empty one), read-only."""
    from pipeline.store.backend import store_exists

    path = db if db is not None else DEFAULT_STORE
    if not store_exists(path):
        raise UserError("no store here; run `threadstance ingest` first or pass --db", path)
    return Store.open_readonly(path)
