"""Reading input files: binary/empty checks, encoding fallback and format detection."""
from __future__ import annotations

import errno
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import ParseError
from pipeline.ingest.paths import first_link_below, open_below, shown

FORMATS = ("text", "html", "jsonl")
EXTENSIONS = {".txt": "text", ".text": "text", ".html": "html", ".htm": "html", ".xhtml": "html",
              ".jsonl": "jsonl", ".ndjson": "jsonl"}
BINARY_EXTENSIONS = {".pdf", ".docx", ".doc", ".xlsx", ".zip", ".gz", ".png", ".jpg", ".jpeg", ".gif",
                     ".parquet", ".sqlite", ".db"}


@dataclass
class RawInput:
    """A decoded input file; ``warnings`` name damage found while decoding (file and byte offset)."""

    path: str
    text: str
    encoding: str
    sha256: str
    warnings: list[str] = field(default_factory=list)


_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")


def _utf8_with_damage(data: bytes) -> tuple[str, list[int]] | None:
    """Decode ``data`` as UTF-8 when it clearly is UTF-8 apart from a few broken bytes.

    Returns the text (each broken sequence becomes U+FFFD, a cut final character is dropped) and the
    byte offsets of the damage, or None when the bytes do not look like UTF-8 at all.
    """
    bad: list[int] = []
    pos = 0
    while True:
        try:
            data[pos:].decode("utf-8")
            break
        except UnicodeDecodeError as exc:
            bad.append(pos + exc.start)
            pos = pos + exc.end
            if len(bad) > 8:
                break
    if not bad:
        return data.decode("utf-8"), []
    truncated_tail = False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        truncated_tail = exc.reason == "unexpected end of data" and len(bad) == 1
    if truncated_tail:  # a file cut in the middle of its last character
        return data[: bad[0]].decode("utf-8"), bad
    # Broken bytes mid-file: still UTF-8 if it holds valid multi-byte sequences and few errors.
    if len(bad) <= 8 and len(_UTF8_MULTIBYTE.findall(data)) > len(bad):
        return data.decode("utf-8", errors="replace"), bad
    return None


def decode_bytes(data: bytes, path: str | Path) -> tuple[str, str, list[str]]:
    """(text, encoding, warnings) for a file's bytes.

    UTF-8 (BOM allowed) first. A file that is UTF-8 except for a cut final character or a few broken
    bytes stays UTF-8, with each damaged byte offset reported, and is never re-decoded as cp1252 (which
    would store mojibake and change thread ids). Anything else is detected with charset-normalizer.
    """
    body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    offset = len(data) - len(body)
    decoded = _utf8_with_damage(body)
    if decoded is not None:
        text, bad = decoded
        warnings = []
        if bad:
            where = ", ".join(str(offset + b) for b in bad[:8])
            what = ("cut final UTF-8 character dropped" if len(bad) == 1 and bad[0] >= len(body) - 3
                    and not text.endswith("\ufffd") else "invalid UTF-8 replaced by U+FFFD")
            warnings.append(f"{path}: damaged UTF-8 at byte offset {where}: {what}")
        return text, "utf-8", warnings
    from charset_normalizer import from_bytes

    # English news text: take the cleanest candidate that a Western encoding explains (Windows-1252
    # first, charset-normalizer groups code pages that give the same text), with no control characters;
    # a guess among Cyrillic or DOS code pages is refused instead.
    candidates = []
    for match in from_bytes(body):
        for name in {match.encoding, *getattr(match, "could_be_from_charset", [])}:
            if name in _WESTERN:
                candidates.append((round(match.chaos, 2), _WESTERN.index(name), name))
    for _, _, encoding in sorted(candidates):
        try:
            text = body.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
        if not _CONTROL.search(text):
            return text, encoding, [f"{path}: not valid UTF-8, decoded as {encoding} (detected)"]
    bad = _first_bad_utf8(body) + len(data) - len(body)
    raise ParseError(f"cannot decode the file: not UTF-8 (first bad byte at offset {bad}) and no Western "
                     "encoding fits; convert it to UTF-8", path)


_WESTERN = ["cp1252", "latin_1", "iso8859_15", "cp1250", "iso8859_2"]
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _first_bad_utf8(data: bytes) -> int:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start
    return -1


def read_input(path: str | Path, nofollow_below: str | Path | None = None) -> RawInput:
    """Read and decode a file (see :func:`decode_bytes`); ParseError for missing, empty or binary files.

    With ``nofollow_below`` (the inbox folder) no symbolic link below that folder is followed, even one
    that replaced the file or one of its folders after the folder was scanned
    (:func:`pipeline.ingest.paths.open_below`): such a file is refused, never read through the link.
    """
    p, name = Path(path), shown(path)  # the file is opened by its real name, named by a printable one
    try:
        if nofollow_below is not None:
            try:
                fd = open_below(nofollow_below, p)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR) or first_link_below(nofollow_below, p) is not None:
                    raise ParseError("is a symbolic link, or lies in a folder that is one: links below "
                                     f"{shown(nofollow_below)} are never followed", name) from exc
                if exc.errno == errno.EINVAL:
                    raise ParseError("is not a regular file (a pipe, socket or device): not read", name) from exc
                raise
            with os.fdopen(fd, "rb") as fh:
                data = fh.read()
        else:
            if not p.exists():
                raise ParseError("file not found", name)
            if p.is_dir():
                raise ParseError("is a folder, not a file", name)
            data = p.read_bytes()
    except OSError as exc:
        raise ParseError(f"cannot read file: {exc.strerror or exc}", name) from exc
    if not data.strip():
        raise ParseError("file is empty", name)
    head = data[:8192]
    if b"\x00" in head:
        raise ParseError("looks like a binary file (NUL bytes), not text, HTML or JSONL", name)
    nul_at = data.find(b"\x00")
    if nul_at >= 0:
        raise ParseError(f"NUL byte at byte offset {nul_at}: the file is damaged or binary, not text", name)
    text, encoding, warnings = decode_bytes(data, name)
    return RawInput(name, text, encoding, hashlib.sha256(data).hexdigest(), warnings)


def detect_format(raw: RawInput) -> str:
    """Format from the extension, else from the content; ParseError when neither tells."""
    ext = Path(raw.path).suffix.lower()
    if ext in EXTENSIONS:
        return EXTENSIONS[ext]
    if ext in BINARY_EXTENSIONS:
        raise ParseError(f"unknown format: '{ext}' files are not supported (use text, HTML or JSONL)", raw.path)
    start = raw.text.lstrip()[:512].lower()
    if start.startswith(("<!doctype html", "<html", "<article", "<body", "<div", "<?xml")):
        return "html"
    if start.startswith("{"):
        return "jsonl"
    if ext in ("", ".md", ".dump"):
        return "text"
    raise ParseError(f"unknown format: cannot tell what '{ext}' contains; pass --format text|html|jsonl",
                     raw.path)
