"""Comments and replies of a WordPress comment list (``ol.commentlist`` with ``ul.children`` replies)."""
from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

from selectolax.lexbor import LexborHTMLParser, LexborNode

from pipeline.errors import ParseError
from pipeline.ingest.html_dom import (
    COMMENT_FURNITURE,
    COMMENT_LISTS,
    NON_TEXT_TAGS,
    UK_DATE,
    _ancestors,
    _children,
    _classes,
    _Ctx,
    _is_hidden,
    _text,
)
from pipeline.ingest.model import Item
from pipeline.ingest.normalize import (
    london_iso,
)
from pipeline.ingest.textdump import COMMENT_DATE, parse_comment_datetime


# ---- comments --------------------------------------------------------------------------------------
def _own(li: LexborNode, selector: str, ctx: _Ctx) -> list[LexborNode]:
    """Matches of ``selector`` inside comment ``li`` that do not belong to one of its replies."""
    return [node for node in li.css(selector) if ctx.owner.get(node.mem_id) == li.mem_id]


def _comment_skip(ctx: _Ctx) -> Callable[[LexborNode], bool]:
    def skip(node: LexborNode) -> bool:
        return (node.mem_id in ctx.comment_ids or node.tag in ("form", "footer", "nav", "aside", "header")
                or bool(_classes(node) & COMMENT_FURNITURE) or _is_hidden(node))
    return skip


def _parse_meta_date(text: str, ctx: _Ctx, line: int | None) -> str:
    m = COMMENT_DATE.search(text)
    if m:
        return parse_comment_datetime(m.group("date"), m.group("time"), ctx.source, line)
    m = UK_DATE.search(text)
    if m:
        hour, minute = int(m.group("hour")), int(m.group("minute"))
        ampm = (m.group("ampm") or "").replace(".", "").lower()
        if ampm and 1 <= hour <= 12:
            hour = hour % 12 + (12 if ampm == "pm" else 0)
        for fmt in ("%d %B %Y", "%d %b %Y"):
            try:
                day = datetime.strptime(f"{m.group('day')} {m.group('month')} {m.group('year')}", fmt)
                return london_iso(day.replace(hour=hour, minute=minute))
            except (ValueError, OverflowError):
                continue
    raise ParseError(f"malformed comment date {text!r} (expected e.g. 'June 28, 2016 at 1:00 pm' or "
                     "<time datetime=\"2016-06-28T13:00:00+01:00\">)", ctx.source, line)


def _comment_time(li: LexborNode, ctx: _Ctx, line: int | None) -> str | None:
    for node in _own(li, "time", ctx):
        value = (node.attributes.get("datetime") or "").strip()
        if value:
            try:
                return london_iso(datetime.fromisoformat(value.replace("Z", "+00:00")))
            except (ValueError, OverflowError) as exc:
                raise ParseError(f"malformed comment date <time datetime={value!r}> (expected ISO 8601: {exc})",
                                 ctx.source, line) from exc
        text = _text(node, lambda n: False)
        if text:
            return _parse_meta_date(text, ctx, line)
    for selector in (".comment-metadata", ".commentmetadata", ".comment-date", ".comment-time",
                     ".comment-meta"):
        for node in _own(li, selector, ctx):
            text = _text(node, lambda n: bool(_classes(n) & {"comment-author", "edit-link", "says"}))
            if text:
                return _parse_meta_date(text, ctx, line)
    return None


def _comment_author(li: LexborNode, ctx: _Ctx) -> str | None:
    for selector in (".comment-author .fn", "cite.fn", ".fn", ".comment-author-name", ".comment-author"):
        for node in _own(li, selector, ctx):
            text = _text(node, lambda n: "says" in _classes(n) or n.tag in NON_TEXT_TAGS).replace("\n", " ")
            text = re.sub(r"\s+says:?$", "", text).strip()
            if text:
                return text
    return None


def _comment_body(li: LexborNode, ctx: _Ctx) -> str:
    skip = _comment_skip(ctx)
    for selector in (".comment-content", ".comment-text", ".comment-body"):
        nodes = _own(li, selector, ctx)
        if nodes:
            return "\n\n".join(t for t in (_text(n, skip) for n in nodes) if t)
    return _text(li, skip)


def _comment_lis(lst: LexborNode) -> list[LexborNode]:
    return [c for c in _children(lst) if c.tag == "li"]


def _walk_comments(lst: LexborNode, parent: Item | None, out: list[Item], ctx: _Ctx) -> None:
    n = 0
    for li in _comment_lis(lst):
        if _classes(li) & {"pingback", "trackback"}:
            ctx.pingbacks += 1
            continue
        line = ctx.lines.line(li)
        author = _comment_author(li, ctx)
        posted = _comment_time(li, ctx, line)
        text = _comment_body(li, ctx)
        who = f"comment by {author!r}" if author else "comment"
        if not text:
            raise ParseError(f"{who} has no body (looked for .comment-content and the paragraphs of "
                             ".comment-body)", ctx.source, line)
        if posted is None:
            where = f"{ctx.source}:{line}" if line else ctx.source
            ctx.warnings.append(f"{where}: {who} has no date")
        n += 1
        if parent is None:
            item = Item(item_id=f"c{n}", thread_id="", kind="comment", position=0, depth=0, text=text,
                        author=author, posted_at=posted, source_line=line)
        else:
            item = Item(item_id=f"{parent.item_id}.r{n}", thread_id="", kind="reply", position=0,
                        depth=parent.depth + 1, text=text, parent_id=parent.item_id, author=author,
                        posted_at=posted, source_line=line)
        out.append(item)
        for sub in _own(li, "ul.children, ol.children", ctx):
            _walk_comments(sub, item, out, ctx)


def _index_comments(top: list[LexborNode], ctx: _Ctx) -> None:
    """One pass over the comment lists: which <li> are comments, and which comment owns each element.

    A comment is an ``li`` child of a top-level comment list or of a ``ul.children``/``ol.children``
    list inside a comment; an element belongs to its nearest enclosing comment.
    """
    stack: list[tuple[LexborNode, int | None, bool]] = [(lst, None, True) for lst in top]
    while stack:
        node, owner, is_list = stack.pop()
        for child in _children(node):
            if is_list and child.tag == "li":
                ctx.comment_ids.add(child.mem_id)
                child_owner = child.mem_id
            else:
                child_owner = owner
                if owner is not None:
                    ctx.owner[child.mem_id] = owner
            child_is_list = (child_owner is not None and child.tag in ("ul", "ol")
                             and "children" in _classes(child))
            stack.append((child, child_owner, child_is_list))


def _comments(tree: LexborHTMLParser, ctx: _Ctx) -> tuple[list[Item], list[LexborNode]]:
    lists = tree.css(", ".join(COMMENT_LISTS))
    list_ids = {lst.mem_id for lst in lists}
    top = [lst for lst in lists if not any(a.mem_id in list_ids for a in _ancestors(lst))]
    _index_comments(top, ctx)
    items: list[Item] = []
    for lst in top:
        _walk_comments(lst, None, items, ctx)
    return items, top
