"""Ingest stage: read and parse input files into threads of items (writing them is :mod:`pipeline.store.load`)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pipeline.errors import UserError
from pipeline.ingest.model import Thread
from pipeline.ingest.paths import scan_paths
from pipeline.ingest.reader import FORMATS, RawInput, detect_format, read_input


def parse_raw(raw: RawInput, fmt: str = "auto") -> list[Thread]:
    """Parse a decoded file in the given format (``auto`` detects it)."""
    fmt = detect_format(raw) if fmt == "auto" else fmt
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}; choose one of auto, {', '.join(FORMATS)}", raw.path)
    if fmt == "text":
        from pipeline.ingest.textdump import parse_text

        return [parse_text(raw.text, raw.path)]
    if fmt == "html":
        from pipeline.ingest.html import parse_html

        return parse_html(raw.text, raw.path)
    from pipeline.ingest.jsonl import parse_jsonl

    return parse_jsonl(raw.text, raw.path)


def parse_file(path: str | Path, fmt: str = "auto", nofollow_below: str | Path | None = None
               ) -> tuple[RawInput, list[Thread]]:
    raw = read_input(path, nofollow_below)
    return raw, parse_raw(raw, fmt)


def expand_paths(paths: Sequence[str | Path]) -> list[Path]:
    """Files as given; folders expand to their files (sorted, hidden ones and ``*.md`` skipped).

    Symbolic links that leave a folder or point nowhere are left out; :func:`pipeline.ingest.paths.scan_paths`
    also says which and why.
    """
    return scan_paths(paths)[0]
