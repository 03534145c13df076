"""Text normalisation and stable ids shared by every input format."""
from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from urllib.parse import parse_qsl, urlparse
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")
_ZERO_WIDTH = re.compile(r"[\u200b\u200c\u200d\ufeff]")


def normalize_text(text: str) -> str:
    """NFC, zero-width characters removed, runs of spaces collapsed, lines stripped.

    Paragraphs (separated by blank lines) are joined by one blank line; line breaks inside a paragraph
    are kept. Wording, punctuation and case are untouched.
    """
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _ZERO_WIDTH.sub("", text)
    paragraphs: list[str] = []
    lines: list[str] = []
    for line in text.split("\n"):
        # str.split() splits on every Unicode whitespace character (NBSP, tabs, thin spaces …: the same
        # set as the regex class \s) and runs in C; this loop is the ingest hot path.
        line = " ".join(line.split())
        if line:
            lines.append(line)
        elif lines:
            paragraphs.append("\n".join(lines))
            lines = []
    if lines:
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


def slugify(text: str, max_len: int = 60) -> str:
    """Lower-case ASCII slug: 'Ofsted issues warning…' -> 'ofsted-issues-warning'."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(slug) > max_len:
        slug = slug[:max_len].rsplit("-", 1)[0]
    return slug or "untitled"


def thread_id_from_url(url: str) -> str:
    """Thread id from a URL's host and path, e.g. 'communitycare.co.uk/2016/06/28/ofsted-issues-warning'.

    A URL with no path (WordPress "plain" permalinks such as ``/?p=123``) uses its query instead,
    without ``utm_*`` tracking parameters: 'example.org/p-123'.
    """
    parsed = urlparse(url)
    host = parsed.netloc.lower().removeprefix("www.")
    path = "/".join(slugify(part, 80) for part in parsed.path.split("/") if part)
    if not path:
        query = [f"{key}-{value}" for key, value in parse_qsl(parsed.query) if not key.lower().startswith("utm_")]
        path = slugify("-".join(query), 80) if query else ""
    return f"{host}/{path}" if path else host


def thread_id_from_title(title: str, date: str | None) -> str:
    """Thread id when no URL is known: '<date>-<title slug>' or just the slug."""
    slug = slugify(title)
    return f"{date}-{slug}" if date else slug


FIRST_YEAR, LAST_YEAR = 1900, 2100  # posting dates outside these years are refused as malformed


def london_iso(dt: datetime) -> str:
    """ISO 8601 with the Europe/London offset for a naive local time (or any aware time)."""
    if not FIRST_YEAR <= dt.year <= LAST_YEAR:  # a typo or a placeholder date; it would break every period axis
        raise ValueError(f"year {dt.year} is outside {FIRST_YEAR}–{LAST_YEAR}")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=LONDON)
    return dt.astimezone(LONDON).isoformat()
