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
from dataclasses import dataclass
from datetime import date, datetime
from urllib.parse import urlparse

from selectolax.lexbor import LexborHTMLParser, LexborNode

from pipeline.errors import ParseError
from pipeline.ingest.html_comments import _comments
from pipeline.ingest.html_dom import (
    _HTML_SPACE,
    BLOCK_TAGS,
    COMMENT_COUNT,
    COMMENTS_AREA,
    CONTENT_SELECTORS,
    HEADING_TAGS,
    NON_TEXT_TAGS,
    POSTED_ON,
    STANDFIRST_SELECTORS,
    TITLE_SELECTORS,
    _Block,
    _children,
    _collect,
    _Ctx,
    _in_furniture,
    _inside,
    _is_furniture,
    _is_furniture_text,
    _is_hidden,
    _LineIndex,
    _text,
)
from pipeline.ingest.model import Thread
from pipeline.ingest.normalize import (
    LONDON,
    normalize_text,
    thread_id_from_title,
    thread_id_from_url,
)
from pipeline.ingest.textdump import SENTENCE_END


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


# ---- limits checked before the parse ------------------------------------------------------------------
# The HTML parser's time grows with the square of the nesting depth (1.4 s at 20,000, 22 s at 100,000)
# and the walk over the tree with the number of elements; a real article page nests a few dozen deep
# and holds a few thousand elements. Checked by one linear scan of the tags before anything is parsed.
MAX_HTML_DEPTH = 512
MAX_HTML_ELEMENTS = 250_000
MAX_HTML_CHARS = 32_000_000
_VOID = frozenset("area base br col embed hr img input keygen link meta param source track wbr".split())
# End tags the parser supplies itself (<li><li> are siblings): never counted as nesting
_IMPLIED_END = frozenset("p li dt dd option optgroup tr td th thead tbody tfoot colgroup caption rb rt rtc rp".split())
_FOREIGN = ("svg", "math")
_TAG = re.compile(r"<!--.*?(?:-->|\Z)|<(script|style|textarea|title|xmp|noembed|noframes)\b[^<>]*>.*?(?:</\1\s*>|\Z)"
                  r"|<(/?)([A-Za-z][^\s/<>]*)([^<>]*)", re.S | re.I)


@dataclass(frozen=True)
class HtmlShape:
    """How deep the elements of a page nest (an estimate of the parser's stack) and how many there are."""

    depth: int
    elements: int
    deepest_at: int  # character offset of the start tag that first reached ``depth``


def html_shape(text: str) -> HtmlShape:
    """Nesting depth and element count from the tags alone, in linear time.

    An end tag closes the innermost open element of its name and everything opened after it (as the
    parser does); an end tag with no open element of that name is ignored, so stray end tags cannot
    hide nesting. Void elements, self-closing SVG/MathML tags and elements whose end tag is implied never nest.
    Comments and the content of ``script``/``style``/``textarea``/``title`` are skipped.
    """
    stack: list[str] = []
    open_count: dict[str, int] = {}
    depth = elements = deepest_at = 0
    for match in _TAG.finditer(text):
        if match.group(1):
            elements += 1
            continue
        name = match.group(3)
        if name is None:
            continue
        name = name.lower()
        if match.group(2):  # an end tag
            if open_count.get(name):
                while True:
                    top = stack.pop()
                    open_count[top] -= 1
                    if top == name:
                        break
            continue
        elements += 1
        if name in _VOID or name in _IMPLIED_END:
            continue
        if match.group(4).rstrip().endswith("/") and (name in _FOREIGN or any(open_count.get(f) for f in _FOREIGN)):
            continue  # <path/> closes itself only in SVG / MathML; the parser ignores the slash in <div/>
        stack.append(name)
        open_count[name] = open_count.get(name, 0) + 1
        if len(stack) > depth:
            depth, deepest_at = len(stack), match.start()
    return HtmlShape(depth, elements, deepest_at)


def check_html_limits(text: str, source: str) -> None:
    """ParseError when the page is too big, has too many elements or nests too deeply to parse safely."""
    if len(text) > MAX_HTML_CHARS:
        raise ParseError(f"HTML page is {len(text):,} characters, the limit is {MAX_HTML_CHARS} characters: "
                         "not parsed (split the page or save it as JSONL)", source)
    shape = html_shape(text)
    if shape.depth > MAX_HTML_DEPTH:
        raise ParseError(f"HTML nested {shape.depth} deep, the limit is {MAX_HTML_DEPTH} (an article page nests a "
                         "few dozen deep): not parsed, the page is damaged or hostile", source,
                         text.count("\n", 0, shape.deepest_at) + 1)
    if shape.elements > MAX_HTML_ELEMENTS:
        raise ParseError(f"HTML page has {shape.elements:,} elements, the limit is {MAX_HTML_ELEMENTS}: not parsed "
                         "(split the page or save it as JSONL)", source)


# ---- entry point -----------------------------------------------------------------------------------
def parse_html(text: str, source: str) -> list[Thread]:
    """Split a WordPress-style article page into one Thread of paragraph, comment and reply items.

    The limits are checked here first; the parse then runs in a worker process with a memory and a time
    bound (:mod:`pipeline.ingest.bounded`).

    Raises:
        ParseError: too big or too deeply nested to parse (checked first), over the memory or time bound,
            no title, nothing to ingest, a comment without body or with a malformed date.
    """
    check_html_limits(text, source)
    from pipeline.ingest.bounded import run_bounded

    return [run_bounded(parse_html_here, (text, source), source, "HTML page", len(text))]


def parse_html_here(text: str, source: str) -> Thread:
    """The parse itself, in this process and without the memory and time bounds of :func:`parse_html`."""
    try:
        return _parse(text, source)
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
    thread.add_items([(b.text, b.flags, b.line) for b in paragraphs], comments, standfirst is not None)

    if declared is not None and declared != len(comments):
        skipped = f" ({ctx.pingbacks} pingbacks/trackbacks skipped)" if ctx.pingbacks else ""
        thread.warnings.append(f"{source}: the page declares {declared} responses but {len(comments)} "
                               f"were parsed{skipped}")
    return thread
