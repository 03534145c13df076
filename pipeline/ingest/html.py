"""Parser for WordPress-style article pages saved as HTML (Community Care and most news blogs).

What is read (with selectolax/lexbor, a real HTML parser):

* title: ``h1.entry-title`` (or another post-title ``h1``), else ``<title>`` without the site suffix;
* canonical URL: ``link[rel=canonical]``, else ``og:url``; it gives the thread id, else title + date do;
* standfirst: visible standfirst markup only (``.standfirst``, ``.entry-summary``, ``.entry-subtitle`` …),
  never ``<meta name=description>``;
* article body: the post content (``.entry-content``, ``.post-content``, ``[itemprop=articleBody]``,
  else ``article``/``main``): ``p`` paragraphs, ``h2``–``h6`` sub-headings (flag ``heading``; so is a
  short ``<p>`` that is all bold), ``ul``/``ol`` lists (flag ``list``, one ``• item`` per line);
* comments: ``ol.commentlist`` / ``ol.comment-list`` of ``li`` comments, with ``ul.children`` /
  ``ol.children`` lists for replies; author from ``.comment-author .fn`` (``cite.fn``, ``b.fn``), time
  from ``time[datetime]`` or the comment-meta text ("June 28, 2016 at 1:00 pm"), body from
  ``.comment-content`` or the paragraphs of ``.comment-body``. Pingbacks and trackbacks are skipped.

Page furniture never becomes an item: ``script``/``style``/``nav``/``aside``/``form``/``figure``
elements, elements whose class or id names sharing, related links, cookie banners, newsletters, promos,
captions and credits, the reply form, and the same furniture lines the text parser drops ("Picture: …",
"More from Community Care", "Social Work Watch" …).

Items use the text parser's ids and fields: ``p0`` standfirst, ``p1``… body, ``c1``… comments,
``c1.r1``, ``c1.r1.r1`` … replies. Line numbers (for errors and ``source_line``) are found by locating
each element's start tag in the source text, in document order.
"""
from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from urllib.parse import urlparse

from selectolax.lexbor import LexborHTMLParser, LexborNode

from pipeline.errors import ParseError
from pipeline.ingest.model import Item, Thread
from pipeline.ingest.normalize import (
    LONDON,
    london_iso,
    normalize_text,
    thread_id_from_title,
    thread_id_from_url,
)
from pipeline.ingest.textdump import COMMENT_DATE, FURNITURE_ANY, SENTENCE_END, parse_comment_datetime

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


# ---- page metadata ---------------------------------------------------------------------------------
def _title(tree: LexborHTMLParser, area: set[int]) -> tuple[LexborNode | None, str]:
    for selector in TITLE_SELECTORS:
        for node in tree.css(selector):
            if _inside(node, area) or _in_furniture(node):
                continue
            text = _text(node, lambda n: False).replace("\n", " ")
            if text:
                return node, text
    node = tree.css_first("title")
    if node is None:
        return None, ""
    title = normalize_text(node.text()).replace("\n", " ")
    site = tree.css_first('meta[property="og:site_name"]')
    site_name = normalize_text(site.attributes.get("content") or "") if site else ""
    for sep in (" | ", " – ", " — ", " - "):
        if site_name and title.endswith(sep + site_name):
            return None, title[: -len(sep + site_name)].strip()
    if " | " in title:
        title = title.rsplit(" | ", 1)[0].strip()
    return None, title


def _canonical(tree: LexborHTMLParser) -> str | None:
    candidates = [n.attributes.get("href") for n in tree.css("link[rel~=canonical]")]
    candidates += [n.attributes.get("content") for n in tree.css('meta[property="og:url"]')]
    for url in candidates:
        url = (url or "").strip()
        try:
            parsed = urlparse(url)
        except ValueError:
            continue
        if parsed.scheme in ("http", "https") and parsed.netloc:
            return url
    return None


def _to_london_date(value: str) -> str | None:
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        return (dt.astimezone(LONDON) if dt.tzinfo else dt).date().isoformat()
    except (ValueError, OverflowError):
        return None


def _article_date(tree: LexborHTMLParser, area: set[int]) -> str | None:
    """Publication date: article meta tags, the post header's <time>, or 'Posted on DD/MM/YYYY'."""
    for selector, attr in (('meta[property="article:published_time"]', "content"),
                           ('meta[itemprop="datePublished"]', "content"),
                           ("time.entry-date[datetime]", "datetime"), ("time.published[datetime]", "datetime"),
                           (".entry-meta time[datetime]", "datetime"), (".posted-on time[datetime]", "datetime"),
                           ("article header time[datetime]", "datetime"),
                           ('[itemprop="datePublished"][datetime]', "datetime")):
        for node in tree.css(selector):
            if _inside(node, area):
                continue
            found = _to_london_date(node.attributes.get(attr) or "")
            if found:
                return found
    for node in tree.css(".entry-meta, .posted-on, .post-meta, .byline, .post-date, .entry-date"):
        if _inside(node, area):
            continue
        m = POSTED_ON.match(_text(node, lambda n: False))
        if m:
            try:
                return date(int(m.group(3)), int(m.group(2)), int(m.group(1))).isoformat()
            except ValueError:
                continue
    return None


def _standfirst(tree: LexborHTMLParser, area: set[int], title: str) -> tuple[LexborNode | None, str | None]:
    for selector in STANDFIRST_SELECTORS:
        for node in tree.css(selector):
            if node.tag in NON_TEXT_TAGS or _is_hidden(node) or _inside(node, area) or _in_furniture(node):
                continue
            text = _text(node)
            if text and text != title and not _is_furniture_text(text):
                return node, text
    return None, None


def _content_container(tree: LexborHTMLParser, area: set[int]) -> LexborNode | None:
    for selector in CONTENT_SELECTORS:
        for node in tree.css(selector):
            if not _inside(node, area) and not _in_furniture(node) and not _is_hidden(node):
                return node
    return tree.body


def _declared_count(tree: LexborHTMLParser, lists: list[LexborNode]) -> int | None:
    candidates = tree.css("#comments-title, .comments-title, #comments h2, #comments h3, #comments h4, "
                          ".comments-area h2, .comments-area h3, .comments-area h4")
    for lst in lists:
        sibling = lst.prev
        while sibling is not None:
            if not sibling.tag.startswith("-"):
                candidates.append(sibling)
            sibling = sibling.prev
    for node in candidates:
        m = COMMENT_COUNT.match(_text(node, lambda n: False))
        if m:
            word = m.group(1).lower()
            return int(word) if word.isdigit() else {"one": 1, "no": 0}[word]
    return None


# ---- article body ----------------------------------------------------------------------------------
def _is_bold_heading(node: LexborNode, text: str) -> bool:
    """A short <p> whose text is all <strong>/<b>: a sub-heading in many WordPress posts."""
    if "\n" in text or len(text.split()) > 12 or SENTENCE_END.search(text):
        return False
    if node.css_first("strong, b") is None:
        return False
    rest = _text(node, lambda n: n.tag in ("strong", "b") or _is_furniture(n))
    return not rest


def _list_lines(node: LexborNode) -> list[str]:
    lines: list[str] = []
    for li in _children(node):
        if _is_furniture(li):
            continue
        own = _text(li, lambda n: n.tag in ("ul", "ol") or _is_furniture(n)).replace("\n", " ")
        if own:
            lines.append(own)
        for sub in _children(li):
            if sub.tag in ("ul", "ol") and not _is_furniture(sub):
                lines.extend(_list_lines(sub))
    return lines


def _table_text(node: LexborNode) -> str:
    rows = []
    for tr in node.css("tr"):
        cells = [_text(c).replace("\n", " ") for c in tr.css("th, td")]
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)


def _article_blocks(container: LexborNode, skip_ids: set[int], lines: _LineIndex) -> list[_Block]:
    blocks: list[_Block] = []
    run: list[str] = []  # inline content directly inside a container (text without a <p>)
    run_line: list[int | None] = [None]

    def add(text: str, flags: list[str], line: int | None) -> None:
        text = normalize_text(text)
        if text and not _is_furniture_text(text):
            blocks.append(_Block(text, flags, line))

    def flush() -> None:
        text = normalize_text("".join(run))
        run.clear()
        for para in text.split("\n\n"):
            add(para, [], run_line[0])

    def walk(node: LexborNode) -> None:
        for child in node.iter(include_text=True):
            tag = child.tag
            if tag == "-text":
                if not run:
                    run_line[0] = lines.line(node)
                run.append(_HTML_SPACE.sub(" ", child.text_content or ""))
                continue
            if tag.startswith("-") or child.mem_id in skip_ids:
                continue
            if tag == "figure" and not _is_hidden(child):  # Gutenberg puts tables in <figure>
                for table in child.css("table"):
                    flush()
                    add(_table_text(table), [], lines.line(table))
            if _is_furniture(child):
                continue
            if tag not in BLOCK_TAGS:
                if not run:
                    run_line[0] = lines.line(child)
                if tag == "br":
                    run.append("\n")
                else:
                    _collect(child, run, _is_furniture)
                continue
            flush()
            line = lines.line(child)
            if tag == "p":
                text = _text(child)
                add(text, ["heading"] if _is_bold_heading(child, text) else [], line)
            elif tag in HEADING_TAGS:
                add(_text(child).replace("\n", " "), ["heading"], line)
            elif tag in ("ul", "ol"):
                items = _list_lines(child)
                add("\n".join(f"• {item}" for item in items), ["list"], line)
            elif tag == "table":
                add(_table_text(child), [], line)
            elif tag == "pre":
                add(_text(child), [], line)
            elif tag != "hr":
                walk(child)
                flush()

    walk(container)
    flush()
    return blocks


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
                raise ParseError(f"malformed comment date <time datetime={value!r}> (expected ISO 8601)",
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


# ---- entry point -----------------------------------------------------------------------------------
def parse_html(text: str, source: str) -> list[Thread]:
    """Split a WordPress-style article page into one Thread of paragraph, comment and reply items.

    Raises:
        ParseError: no title, nothing to ingest, a comment without body or with a malformed date.
    """
    try:
        return [_parse(text, source)]
    except RecursionError as exc:
        raise ParseError("HTML is nested too deeply to parse", source) from exc


def _parse(text: str, source: str) -> Thread:
    try:
        tree = LexborHTMLParser(text)
    except (ValueError, UnicodeError) as exc:  # e.g. lone surrogates in a str built in code
        raise ParseError(f"cannot parse as HTML: {exc}", source) from exc
    if tree.root is None or tree.body is None:
        raise ParseError("cannot parse as HTML (no document body)", source)
    ctx = _Ctx(source=source, lines=_LineIndex(text, tree.root))
    area = {n.mem_id for n in tree.css(COMMENTS_AREA)}

    title_node, title = _title(tree, area)
    if not title:
        raise ParseError("no article title found (looked for h1.entry-title, article h1 and <title>)", source,
                         1)
    url = _canonical(tree)
    article_date = _article_date(tree, area)
    sf_node, standfirst = _standfirst(tree, area, title)
    container = _content_container(tree, area)
    skip_ids = {n.mem_id for n in (title_node, sf_node) if n is not None}
    blocks = _article_blocks(container, skip_ids, ctx.lines) if container is not None else []
    if blocks and blocks[0].text == title:
        blocks.pop(0)
    comments, lists = _comments(tree, ctx)
    declared = _declared_count(tree, lists)
    if not blocks and not comments and standfirst is None:
        raise ParseError("no article text or comments found (looked for .entry-content, article and "
                         "ol.commentlist / ol.comment-list)", source)

    first_date = comments[0].posted_at[:10] if comments and comments[0].posted_at else None
    thread_id = thread_id_from_url(url) if url else thread_id_from_title(title, article_date or first_date)
    thread = Thread(thread_id=thread_id, title=title, source=source, standfirst=standfirst,
                    article_date=article_date, url=url, declared_comments=declared, warnings=ctx.warnings)
    paragraphs: list[_Block] = []
    if standfirst is not None:
        paragraphs.append(_Block(standfirst, ["standfirst"], ctx.lines.line(sf_node)))
    paragraphs.extend(blocks)
    position = 0
    for index, block in enumerate(paragraphs):
        p_index = index if standfirst is not None else index + 1
        thread.items.append(Item(item_id=f"{thread_id}/p{p_index}", thread_id=thread_id, kind="paragraph",
                                 position=position, depth=0, text=block.text, flags=block.flags,
                                 source_line=block.line))
        position += 1
    for item in comments:
        item.thread_id = thread_id
        item.item_id = f"{thread_id}/{item.item_id}"
        item.parent_id = f"{thread_id}/{item.parent_id}" if item.parent_id else None
        item.position = position
        position += 1
        thread.items.append(item)

    if declared is not None and declared != len(comments):
        skipped = f" ({ctx.pingbacks} pingbacks/trackbacks skipped)" if ctx.pingbacks else ""
        thread.warnings.append(f"{source}: the page declares {declared} responses but {len(comments)} "
                               f"were parsed{skipped}")
    return thread
