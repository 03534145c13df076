"""The records ingest produces: a thread (article page) and its items."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ItemKind = Literal["comment", "reply", "paragraph"]


@dataclass
class Item:
    """One classifiable unit: a comment, a reply or an article paragraph.

    Args:
        item_id: Stable, readable id: ``<thread>/c3``, ``<thread>/c1.r1``, ``<thread>/p7``.
        thread_id: The thread this item belongs to.
        kind: ``comment`` (top level), ``reply`` or ``paragraph`` (article body; ``p0`` is the standfirst).
        position: 0-based order of the item within its thread (paragraphs first, then comments).
        depth: 0 for paragraphs and top-level comments, 1 for a reply, 2 for a reply to a reply, ...
        parent_id: The item replied to, for replies.
        author: Comment author as shown on the page; None for paragraphs.
        posted_at: ISO 8601 timestamp with offset (Europe/London), or None.
        text: Unicode NFC, whitespace normalised, wording untouched; paragraphs separated by a blank line.
        flags: Markers such as ``truncated``, ``heading``, ``standfirst``, ``list``.
        source_line: 1-based line in the input file where the item starts (for error messages).
    """

    item_id: str
    thread_id: str
    kind: ItemKind
    position: int
    depth: int
    text: str
    parent_id: str | None = None
    author: str | None = None
    posted_at: str | None = None
    flags: list[str] = field(default_factory=list)
    source_line: int | None = None


@dataclass
class Thread:
    """An article page and the items split from it.

    Args:
        thread_id: Stable id: a slug of the URL path when the URL is known, else of title + date.
        title: Article headline.
        standfirst: The summary line under the headline, if any.
        article_date: ISO date (YYYY-MM-DD) of the article when known.
        source: The input path or URL it came from.
        url: Canonical URL, when the input carries one.
        declared_comments: The "N Responses" count the page declares, if any.
        items: Paragraphs, comments and replies in page order.
        warnings: Non-fatal problems found while parsing (e.g. a count mismatch).
    """

    thread_id: str
    title: str
    source: str
    standfirst: str | None = None
    article_date: str | None = None
    url: str | None = None
    declared_comments: int | None = None
    items: list[Item] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def count(self, kind: str) -> int:
        return sum(1 for item in self.items if item.kind == kind)

    def add_items(self, paragraphs: list[tuple[str, list[str], int | None]], comments: list[Item],
                  has_standfirst: bool) -> None:
        """Append the items in page order with their ids: paragraphs (``p0`` = the standfirst, else from
        ``p1``) as (text, flags, source line), then the parsed comments and replies, ids prefixed by the thread."""
        position = len(self.items)
        for index, (text, flags, line) in enumerate(paragraphs):
            p_index = index if has_standfirst else index + 1
            self.items.append(Item(item_id=f"{self.thread_id}/p{p_index}", thread_id=self.thread_id,
                                   kind="paragraph", position=position, depth=0, text=text, flags=flags,
                                   source_line=line))
            position += 1
        for item in comments:
            item.thread_id = self.thread_id
            item.item_id = f"{self.thread_id}/{item.item_id}"
            item.parent_id = f"{self.thread_id}/{item.parent_id}" if item.parent_id else None
            item.position = position
            position += 1
            self.items.append(item)
