"""The DOM helpers of the HTML parser: page-furniture detection, text collection, source line numbers."""
from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field

from selectolax.lexbor import LexborNode

from pipeline.ingest.normalize import (
    normalize_text,
)
from pipeline.ingest.textdump import FURNITURE_ANY

CONTENT_SELECTORS = (".entry-content", ".post-content", ".article-content", ".article-body",
                     "[itemprop=articleBody]", ".post-body", ".single-content", "article", "main",
                     "[role=main]")
TITLE_SELECTORS = ("h1.entry-title", "h1.post-title", "h1.article-title", "article h1", "main h1",
                   ".entry-title")
STANDFIRST_SELECTORS = (".standfirst", ".entry-summary", ".entry-subtitle", ".post-subtitle",
                        ".article-standfirst", ".strapline", ".subtitle", ".dek")
COMMENT_LISTS = ("ol.commentlist", "ol.comment-list", "ul.commentlist", "ul.comment-list")
COMMENTS_AREA = "#comments, .comments-area, #respond, .comment-respond, " + ", ".join(COMMENT_LISTS)
COMMENT_COUNT = re.compile(r"^\s*(\d{1,6}|one|no)\s+(responses?|comments?|thoughts?|replies|reply)\b",
                           re.IGNORECASE)
POSTED_ON = re.compile(r"^\s*posted on\s+(\d{1,2})/(\d{1,2})/(\d{4})\b", re.IGNORECASE)
UK_DATE = re.compile(r"\b(?P<day>\d{1,2})(?:st|nd|rd|th)?\s+(?P<month>[A-Z][a-z]+)\.?,?\s+(?P<year>\d{4}),?"
                     r"\s+(?:at\s+)?(?P<hour>\d{1,2})[:.](?P<minute>\d{2})\s*(?P<ampm>[ap]\.?m\.?)?",
                     re.IGNORECASE)

BLOCK_TAGS = frozenset({
    "address", "article", "aside", "blockquote", "caption", "dd", "details", "dialog", "div", "dl", "dt",
    "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
    "hr", "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table", "tbody", "td", "tfoot",
    "th", "thead", "tr", "ul"})
HEADING_TAGS = frozenset({"h2", "h3", "h4", "h5", "h6"})
# Never text: embedded or interactive content.
NON_TEXT_TAGS = frozenset({
    "script", "style", "noscript", "template", "svg", "math", "iframe", "button", "input", "select",
    "textarea", "option", "img", "picture", "video", "audio", "source", "canvas", "object", "embed",
    "head", "title", "meta", "link", "map"})
# Never article text: furniture containers (the headline has its own place).
FURNITURE_TAGS = NON_TEXT_TAGS | {"nav", "aside", "form", "figure", "figcaption", "header", "footer", "h1",
                                  "dialog", "label"}
# Words in class/id names (split on - and _) that mark page furniture.
FURNITURE_WORDS = frozenset({
    "share", "shares", "sharing", "sharedaddy", "social", "related", "relatedposts", "recommended",
    "cookie", "cookies", "consent", "gdpr", "newsletter", "subscribe", "subscription", "signup",
    "promo", "promotion", "advert", "adverts", "advertisement", "ad", "ads", "adsense", "dfp", "banner",
    "sponsor", "sponsored", "outbrain", "taboola", "addtoany", "a2a", "breadcrumb", "breadcrumbs", "nav",
    "navigation", "menu", "sidebar", "widget", "caption", "credit", "credits", "byline", "meta", "tags",
    "bio", "authorbox", "respond", "popup", "modal", "overlay", "screen", "sr", "hidden", "more",
    "pagination", "embed", "tweet", "twitter", "date", "dateline", "posted"})
# A class/id token with one of these words names a layout wrapper or state ("content-sidebar-wrap",
# "has-sidebar", "no-sidebar", "overflow-hidden"), never furniture itself.
LAYOUT_WORDS = frozenset({"wrap", "wrapper", "container", "layout", "has", "no", "with", "without", "overflow",
                          "is"})
FURNITURE_ROLES = frozenset({"navigation", "banner", "complementary", "contentinfo", "dialog",
                             "alertdialog", "search"})
# Inside a comment: everything but the body.
COMMENT_FURNITURE = frozenset({
    "comment-author", "comment-meta", "comment-metadata", "commentmetadata", "comment-date",
    "comment-time", "reply", "comment-reply-link", "comment-awaiting-moderation", "says", "children",
    "comment-likes", "edit-link", "comment-edit-link", "avatar", "vcard", "fn", "comment-footer",
    "comment-actions", "report-comment"})
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")
_RAW_TEXT_TAGS = ("script", "style", "textarea", "title", "xmp", "noscript")
_SPACE = (" ", "\t", "\n", "\r", "\f")
_TAG_END = ("", " ", "\t", "\n", "\r", "\f", "/", ">")  # what may follow a tag name or unquoted value
_IMPLIED_TAGS = frozenset({"html", "head", "body", "tbody"})  # lexbor adds these when the source omits them


# ---- small helpers ---------------------------------------------------------------------------------
def _tokens(node: LexborNode) -> list[str]:
    attrs = node.attributes
    return f"{attrs.get('class') or ''} {attrs.get('id') or ''}".lower().split()


def _classes(node: LexborNode) -> set[str]:
    return set((node.attributes.get("class") or "").lower().split())


def _is_hidden(node: LexborNode) -> bool:
    attrs = node.attributes
    style = (attrs.get("style") or "").replace(" ", "").lower()
    return ("hidden" in attrs or (attrs.get("aria-hidden") or "").lower() == "true"
            or "display:none" in style or "visibility:hidden" in style)


def _furniture_name(node: LexborNode) -> bool:
    """Class/id/role says page furniture (share buttons, related links, cookie banner, promo …)."""
    if (node.attributes.get("role") or "").lower() in FURNITURE_ROLES:
        return True
    for token in _tokens(node):
        words = set(re.split(r"[-_]+", token))
        if words & LAYOUT_WORDS:
            continue
        if token.startswith("comment") or words & FURNITURE_WORDS:
            return True
    return False


def _is_furniture(node: LexborNode) -> bool:
    return node.tag in FURNITURE_TAGS or _is_hidden(node) or _furniture_name(node)


def _is_furniture_text(text: str) -> bool:
    """Every line is a furniture line (as in text dumps), or the block is a 'Posted on …' byline."""
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if len(lines) == 1 and POSTED_ON.match(lines[0]) and len(lines[0].split()) <= 12:
        return True
    return bool(lines) and all(FURNITURE_ANY.search(line) for line in lines)


def _children(node: LexborNode) -> list[LexborNode]:
    return [c for c in node.iter(include_text=False) if not c.tag.startswith("-")]


def _ancestors(node: LexborNode) -> list[LexborNode]:
    out = []
    parent = node.parent
    while parent is not None:
        out.append(parent)
        parent = parent.parent
    return out


def _inside(node: LexborNode, ids: set[int]) -> bool:
    """The node or one of its ancestors is one of ``ids`` (mem_ids)."""
    return node.mem_id in ids or any(a.mem_id in ids for a in _ancestors(node))


def _in_furniture(node: LexborNode) -> bool:
    """An ancestor below <body> is furniture (related-post boxes carry their own titles and summaries)."""
    return any(a.tag in ("nav", "aside", "footer", "form") or _furniture_name(a) for a in _ancestors(node)
               if a.tag not in ("body", "html"))


def _collect(node: LexborNode, parts: list[str], skip: Callable[[LexborNode], bool]) -> None:
    """Append the text under ``node``: <br> is a line break, block elements are paragraph breaks."""
    for child in node.iter(include_text=True):
        tag = child.tag
        if tag == "-text":
            parts.append(_HTML_SPACE.sub(" ", child.text_content or ""))
            continue
        if tag.startswith("-") or tag in NON_TEXT_TAGS or skip(child):
            continue
        if tag == "br":
            parts.append("\n")
            continue
        block = tag in BLOCK_TAGS
        if block:
            parts.append("\n\n")
        _collect(child, parts, skip)
        if block:
            parts.append("\n\n")


def _text(node: LexborNode, skip: Callable[[LexborNode], bool] = _is_furniture) -> str:
    parts: list[str] = []
    _collect(node, parts, skip)
    return normalize_text("".join(parts))


class _LineIndex:
    """1-based source lines of elements: each start tag is located in the source in document order.

    Elements with an ``id`` are found by it (which also re-synchronises the search); text inside
    ``<script>``/``<style>`` is jumped over. Best effort: an element not found has no line.
    """

    def __init__(self, text: str, root: LexborNode) -> None:
        lower = text.translate(_ASCII_LOWER)
        self._starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self._pos: dict[int, int] = {}
        cursor = 0
        for node in root.traverse(include_text=False):
            tag = node.tag
            if tag.startswith("-") or tag in _IMPLIED_TAGS:
                continue
            pos = -1
            ident = node.attributes.get("id")
            if ident:
                pos = self._find_id(lower, ident.lower(), cursor)
                if pos < 0:
                    pos = self._find_id(lower, ident.lower(), 0)
            if pos < 0:
                pos = self._find_tag(lower, tag, cursor)
            if pos < 0:
                continue
            self._pos[node.mem_id] = pos
            cursor = pos + 1
            if tag in _RAW_TEXT_TAGS:
                end = lower.find("</" + tag, pos)
                cursor = end if end >= 0 else cursor

    @staticmethod
    def _find_id(lower: str, ident: str, start: int) -> int:
        """Position of the '<' of the start tag carrying ``id=ident`` at or after ``start``, else -1."""
        at = lower.find(ident, start)
        while at >= 0:
            quote = lower[at - 1:at]
            quoted = quote in ("'", '"')
            head = at - 1 if quoted else at
            closing = lower[at + len(ident):at + len(ident) + 1]
            if (lower[head - 3:head] == "id=" and lower[head - 4:head - 3] in _SPACE
                    and (closing == quote if quoted else closing in _TAG_END)):
                tag_start = lower.rfind("<", 0, head)
                if tag_start >= start or start == 0:
                    return tag_start
            at = lower.find(ident, at + 1)
        return -1

    @staticmethod
    def _find_tag(lower: str, tag: str, cursor: int) -> int:
        key = "<" + tag
        at = lower.find(key, cursor)
        while at >= 0:
            if lower[at + len(key):at + len(key) + 1] in _TAG_END:
                return at
            at = lower.find(key, at + 1)
        return -1

    def line(self, node: LexborNode | None) -> int | None:
        if node is None:
            return None
        pos = self._pos.get(node.mem_id)
        return bisect_right(self._starts, pos) if pos is not None else None


@dataclass
class _Block:
    text: str
    flags: list[str]
    line: int | None


@dataclass
class _Ctx:
    source: str
    lines: _LineIndex
    comment_ids: set[int] = field(default_factory=set)
    owner: dict[int, int] = field(default_factory=dict)  # element mem_id -> mem_id of the comment <li> it is in
    pingbacks: int = 0
    warnings: list[str] = field(default_factory=list)
