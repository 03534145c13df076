"""Write parsed input files into the store: one transaction per file, each failure isolated to its file."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import UserError
from pipeline.ingest.parse import parse_file
from pipeline.ingest.paths import safe_text, scan_paths, shown
from pipeline.ingest.reader import detect_format
from pipeline.store.db import Store, WriteCounts, store_error
from pipeline.store.sqlite import DB_ERRORS


@dataclass
class FileResult:
    """The outcome of ingesting one file."""

    path: str
    ok: bool
    fmt: str = ""
    encoding: str = ""
    skipped_unchanged: bool = False
    counts: WriteCounts = field(default_factory=WriteCounts)
    kinds: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    thread_ids: list[str] = field(default_factory=list)
    item_ids: list[str] = field(default_factory=list)  # the file's items, in file order


@dataclass
class IngestReport:
    files: list[FileResult] = field(default_factory=list)

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if not f.ok]

    def total(self, key: str) -> int:
        return sum(f.kinds.get(key, 0) for f in self.files if f.ok)


def ingest_file(store: Store, path: str | Path, fmt: str = "auto", nofollow_below: str | Path | None = None
                ) -> FileResult:
    """Parse then write one file atomically; a UserError leaves the store untouched. ``nofollow_below`` (the
    inbox): no symbolic link below that folder is followed, even one swapped in after the scan."""
    name = shown(path)  # printable and storable even when the file name is not UTF-8
    result = FileResult(path=name, ok=False)
    try:
        raw, threads = parse_file(path, fmt, nofollow_below)
        result.fmt = fmt if fmt != "auto" else detect_format(raw)
        result.encoding = raw.encoding
        result.warnings.extend(raw.warnings)
        if store.source_unchanged(name, raw.sha256):
            result.skipped_unchanged = True
            for thread in threads:
                result.counts.threads += 1
                result.counts.unchanged += len(thread.items)
                result.thread_ids.append(thread.thread_id)
                result.item_ids.extend(item.item_id for item in thread.items)
                for kind in ("paragraph", "comment", "reply"):
                    result.kinds[kind] = result.kinds.get(kind, 0) + thread.count(kind)
            result.kinds["threads"] = len(threads)
            result.ok = True
            return result
        with store.transaction():
            for thread in threads:
                result.counts.add(store.write_thread(thread))
                result.warnings.extend(thread.warnings)
                result.thread_ids.append(thread.thread_id)
                result.item_ids.extend(item.item_id for item in thread.items)
                for kind in ("paragraph", "comment", "reply"):
                    result.kinds[kind] = result.kinds.get(kind, 0) + thread.count(kind)
            result.kinds["threads"] = len(threads)
            store.record_source(name, raw.sha256, result.fmt, raw.encoding, len(threads))
        result.ok = True
    except UserError as exc:
        result.error = str(exc)
    except RecursionError:
        result.error = f"{name}: nested too deeply to parse"
    except MemoryError:
        result.error = f"{name}: too large to parse in memory"
    except OSError as exc:
        result.error = f"{name}: cannot read or write: {exc.strerror or exc}"
    except DB_ERRORS as exc:
        result.error = str(store_error(exc, store.path))
    except Exception as exc:  # any other parser failure: skip this file, keep going with the rest
        result.error = f"{name}: could not be parsed ({type(exc).__name__}: {exc})"
    if not result.ok:
        result.error = safe_text(result.error or "")  # an exception may quote an undecodable file name
        result.counts = WriteCounts()
        result.thread_ids = []
        result.item_ids = []
        result.kinds = {}
    return result


def ingest_paths(store: Store, paths: Sequence[str | Path], fmt: str = "auto",
                 on_file: Callable[[FileResult], None] | None = None) -> IngestReport:
    """Ingest many files; each failure is recorded and the rest still get ingested."""
    report = IngestReport()
    files, refused = scan_paths(paths)
    for link in refused:  # links out of a folder, dangling links: one failed entry each, nothing read
        report.files.append(FileResult(path=shown(link.path), ok=False, error=link.message))
        if on_file:
            on_file(report.files[-1])
    for path in files:
        result = ingest_file(store, path, fmt)
        report.files.append(result)
        if on_file:
            on_file(result)
    return report
