"""Parser for plain-text dumps of article pages (the format of ``../shared/seeds/*.txt``).

Layout understood: page furniture lines, the title, an optional "Posted on DD/MM/YYYY" line, the
standfirst, body paragraphs (blank-line separated, sub-headings and bullet lists included), then a
comment section opened by "N Responses to TITLE" with numbered comment headers
(``  1. AUTHOR June 28, 2016 at 1:00 pm #``) and reply headers (``    • AUTHOR … #``).
"""
from __future__ import annotations

import calendar
import functools
import re
from dataclasses import dataclass
from datetime import datetime

from pipeline.errors import ParseError
from pipeline.ingest.model import Item, Thread
from pipeline.ingest.normalize import london_iso, normalize_text, thread_id_from_title

# Lines that are page furniture, never article text (matched against the stripped line).
FURNITURE = [re.compile(p, re.IGNORECASE) for p in (
    r"^(picture|photo|image|illustration|credit|main image)s?\s*:",
    r"^cookie consent\b", r"^connecting to linkedin", r"^(social care )?logo$", r"^.+\blogo$",
    r"^news & social media$", r"^more from community care$", r"^source\s*:",
    r"^social work watch$", r"^take part in our survey\b", r"^register your email address\b",
    r"^(share|tweet|email) this\b", r"^related (articles|stories)$", r"^advertisement$",
    r"^sign up (for|to) (our|the) .*newsletter", r"^subscribe\b.*\bnewsletter",
    r"^leave a reply$", r"^cancel reply$",
)]
FURNITURE_ANY = re.compile("|".join(f"(?:{p.pattern})" for p in FURNITURE), re.IGNORECASE)
CREDIT = FURNITURE[0]
RESPONSES = re.compile(r"^\s*(\d+|one|no)\s+(responses?|comments?)\s+(to|on)\s+(.+?)\s*$", re.IGNORECASE)
POSTED_ON = re.compile(r"^posted on\s+(\d{1,2})/(\d{1,2})/(\d{4})\b", re.IGNORECASE)
_DATE = r"(?P<date>[A-Z][a-z]+\.? \d{1,2},? \d{4})\s+at\s+(?P<time>\d{1,2}[:.]\d{2}\s*[ap]\.?m\.?)"
COMMENT_HEAD = re.compile(r"^ {0,3}(?P<num>\d+)\.\s+(?P<rest>.*?)\s*#\s*$")
REPLY_HEAD = re.compile(r"^(?P<indent>\s*)[•·]\s+(?P<rest>.*?)\s*#\s*$")
AUTHOR_DATE = re.compile(r"^(?P<author>.+?)\s+" + _DATE + r"$")
COMMENT_DATE = re.compile(_DATE)  # "June 28, 2016 at 1:00 pm" anywhere in a string (HTML comment meta)
BULLET = re.compile(r"^\s*[•·▪◦\-\*]\s+")
SENTENCE_END = re.compile(r"[.!?:;…]['’\"”)]*$")
_MONTHS = {name.lower(): i for names in (calendar.month_name, calendar.month_abbr)
           for i, name in enumerate(names) if name}
_AMPM = re.compile(r"\s*([ap])m$", re.IGNORECASE)
_CLEAN_DATE = re.compile(r"^([A-Z]+) ([0-9]{1,2}) ([0-9]{4}) ([0-9]{1,2}):([0-9]{2}) ([AP])M$")
# A long last comment at the very end of a dump with no page footer after it is the pattern of a
# save taken before a collapsed ("read more") comment was expanded; it is flagged as truncated.
TRUNCATION_MIN_CHARS = 1000


@dataclass
class _Block:
    line: int  # 1-based line of the block's first line
    lines: list[str]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @functools.cached_property
    def normalized(self) -> str:
        return normalize_text(self.text)


def _blocks(lines: list[str], start: int, end: int) -> list[_Block]:
    blocks: list[_Block] = []
    current: _Block | None = None
    for i in range(start, end):
        if lines[i].strip():
            if current is None:
                current = _Block(i + 1, [])
                blocks.append(current)
            current.lines.append(lines[i])
        else:
            current = None
    return blocks


def _is_furniture(line: str) -> bool:
    return FURNITURE_ANY.search(line.strip()) is not None


def _is_heading(block: _Block) -> bool:
    if len(block.lines) != 1 or BULLET.match(block.lines[0]):
        return False
    line = block.lines[0].strip()
    return len(line.split()) <= 12 and not SENTENCE_END.search(line)


def parse_comment_datetime(date: str, time: str, path: str, line: int | None) -> str:
    """'June 28, 2016' + '1:00 pm' -> '2016-06-28T13:00:00+01:00'; ParseError naming the line if invalid."""
    clean = f"{date.replace(',', '').replace('.', '')} {time.replace('.', ':', 1).replace('.', '')}"
    clean = _AMPM.sub(r" \1m", clean).upper()
    fast = _CLEAN_DATE.match(clean)  # the usual shape, without strptime (the ingest hot path)
    if fast and fast.group(1).lower() in _MONTHS and 1 <= int(fast.group(4)) <= 12 and int(fast.group(5)) < 60:
        hour = int(fast.group(4)) % 12 + (12 if fast.group(6) == "P" else 0)
        try:
            return london_iso(datetime(int(fast.group(3)), _MONTHS[fast.group(1).lower()], int(fast.group(2)),
                                       hour, int(fast.group(5))))
        except ValueError as exc:
            raise ParseError(f"malformed date in comment header: {date!r} at {time!r} ({exc})", path,
                             line) from exc
    for fmt in ("%B %d %Y %I:%M %p", "%b %d %Y %I:%M %p"):
        try:
            return london_iso(datetime.strptime(clean, fmt))
        except ValueError:
            continue
    raise ParseError(f"malformed date in comment header: {date!r} at {time!r}", path, line)


def parse_text(text: str, source: str) -> Thread:
    """Split a text page dump into a Thread with paragraph, comment and reply items.

    Raises:
        ParseError: no title, a comment header without body, or a malformed header date.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    section = next((i for i, line in enumerate(lines) if RESPONSES.match(line)), None)
    article_end = section if section is not None else len(lines)

    article = [b for b in _blocks(lines, 0, article_end)
               if not all(_is_furniture(line) for line in b.lines) and not CREDIT.search(b.lines[-1].strip())
               and b.normalized]  # e.g. a line of zero-width spaces is not text
    if not article:
        raise ParseError("no article title found (the file has no text outside page furniture)", source, 1)
    title_block = article.pop(0)
    title = title_block.normalized.replace("\n", " ")

    article_date = None
    if article and POSTED_ON.match(article[0].lines[0].strip()):
        m = POSTED_ON.match(article.pop(0).lines[0].strip())
        assert m is not None
        try:
            article_date = datetime(int(m.group(3)), int(m.group(2)), int(m.group(1))).date().isoformat()
        except ValueError as exc:
            raise ParseError(f"malformed 'Posted on' date: {exc}", source, title_block.line + 1) from exc

    paragraphs: list[tuple[_Block, list[str]]] = []
    standfirst = None
    if len(article) > 1:  # the block under the headline is the standfirst (it may look like a heading)
        sf_block = article.pop(0)
        standfirst = sf_block.normalized
        paragraphs.append((sf_block, ["standfirst"]))
    for block in article:
        flags = []
        if all(BULLET.match(line) for line in block.lines):
            flags.append("list")
        elif _is_heading(block):
            flags.append("heading")
        paragraphs.append((block, flags))

    comments, declared, comment_warnings = _parse_comments(lines, section, source) if section is not None \
        else ([], None, [])
    first_date = comments[0].posted_at[:10] if comments and comments[0].posted_at else None
    thread_id = thread_id_from_title(title, article_date or first_date)
    thread = Thread(thread_id=thread_id, title=title, source=source, standfirst=standfirst,
                    article_date=article_date, declared_comments=declared, warnings=comment_warnings)

    thread.add_items([(b.normalized, flags, b.line) for b, flags in paragraphs], comments, standfirst is not None)

    if declared is not None and declared != len(comments):
        thread.warnings.append(f"{source}: the page declares {declared} responses but {len(comments)} "
                               "were parsed")
    return thread


def _parse_comments(lines: list[str], section: int, source: str) -> tuple[list[Item], int | None, list[str]]:
    """Parse the comment section; item ids are relative ('c1', 'c1.r1') until the thread id is known."""
    m = RESPONSES.match(lines[section])
    assert m is not None
    count_word = m.group(1).lower()
    declared = {"one": 1, "no": 0}.get(count_word) if not count_word.isdigit() else int(count_word)

    items: list[Item] = []
    body: list[str] = []
    current: Item | None = None
    stack: list[tuple[int, Item]] = []  # (indent, item) of open ancestors, for reply parents
    reply_counts: dict[str, int] = {}
    n_top = 0

    def close(next_line: int) -> None:
        if current is None:
            return
        text = normalize_text("\n".join(body))
        if not text:
            raise ParseError(f"comment header for {current.author!r} has no body", source, current.source_line)
        current.text = text

    for i in range(section + 1, len(lines)):
        raw = lines[i]
        head = COMMENT_HEAD.match(raw)
        reply = None if head else REPLY_HEAD.match(raw)
        if not head and not reply:
            if current is None and raw.strip():
                raise ParseError("text in the comment section before the first comment header", source, i + 1)
            body.append(raw)
            continue
        close(i + 1)
        body = []
        rest = (head or reply).group("rest")  # type: ignore[union-attr]
        ad = AUTHOR_DATE.match(rest.strip())
        if not ad:
            raise ParseError(f"malformed date in comment header: {rest.strip()!r} "
                             "(expected 'AUTHOR Month D, YYYY at H:MM am/pm #')", source, i + 1)
        posted = parse_comment_datetime(ad.group("date"), ad.group("time"), source, i + 1)
        author = normalize_text(ad.group("author"))
        if head:
            n_top += 1
            current = Item(item_id=f"c{n_top}", thread_id="", kind="comment", position=0, depth=0, text="",
                           author=author, posted_at=posted, source_line=i + 1)
            stack = [(-1, current)]
        else:
            indent = len(reply.group("indent").expandtabs(4))  # type: ignore[union-attr]
            if not stack:
                raise ParseError("reply header before any comment", source, i + 1)
            while len(stack) > 1 and stack[-1][0] >= indent:
                stack.pop()
            parent = stack[-1][1]
            reply_counts[parent.item_id] = reply_counts.get(parent.item_id, 0) + 1
            current = Item(item_id=f"{parent.item_id}.r{reply_counts[parent.item_id]}", thread_id="",
                           kind="reply", position=0, depth=parent.depth + 1, text="", parent_id=parent.item_id,
                           author=author, posted_at=posted, source_line=i + 1)
            stack.append((indent, current))
        items.append(current)
    close(len(lines))
    if current is not None:
        ends_in_item = bool(lines) and lines[-1].strip() != ""  # no newline, no footer after the item
        if ends_in_item and len(current.text) >= TRUNCATION_MIN_CHARS:
            current.flags.append("truncated")
    warnings = []
    for item in items:
        if "truncated" in item.flags:
            warnings.append(f"{source}:{item.source_line}: comment by {item.author!r} looks truncated "
                            "(the dump ends inside it)")
    return items, declared, warnings
