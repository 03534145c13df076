"""Reading input files: binary/empty checks, encoding fallback and format detection."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ParseError

FORMATS = ("text", "html", "jsonl")
EXTENSIONS = {".txt": "text", ".text": "text", ".html": "html", ".htm": "html", ".xhtml": "html",
              ".jsonl": "jsonl", ".ndjson": "jsonl"}
BINARY_EXTENSIONS = {".pdf", ".docx", ".doc", ".xlsx", ".zip", ".gz", ".png", ".jpg", ".jpeg", ".gif",
                     ".parquet", ".sqlite", ".db"}


@dataclass
class RawInput:
    """A decoded input file."""

    path: str
    text: str
    encoding: str
    sha256: str


def read_input(path: str | Path) -> RawInput:
    """Read and decode a file: UTF-8 (BOM allowed) first, then cp1252; ParseError on anything else."""
    p = Path(path)
    if not p.exists():
        raise ParseError("file not found", p)
    if p.is_dir():
        raise ParseError("is a folder, not a file", p)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ParseError(f"cannot read file: {exc.strerror or exc}", p) from exc
    if not data.strip():
        raise ParseError("file is empty", p)
    head = data[:8192]
    if b"\x00" in head:
        raise ParseError("looks like a binary file (NUL bytes), not text, HTML or JSONL", p)
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        return RawInput(str(p), text, "utf-8" if encoding == "utf-8-sig" else encoding,
                        hashlib.sha256(data).hexdigest())
    raise ParseError("cannot decode the file as UTF-8 or cp1252", p)


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
