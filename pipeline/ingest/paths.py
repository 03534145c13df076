"""Which files a path argument stands for, and how a file name is shown.

Folders are walked without following symbolic links out of them: a link whose target lies outside the
folder, or that points nowhere, is refused with a reason instead of being read (the inbox of the
scheduled job refuses every link). File names are bytes on Linux; one that is not UTF-8 reaches Python
with surrogate escapes (``caf\\udce9.txt``), which cannot be printed, logged or stored as text, so it is
shown with backslash escapes (``caf\\xe9.txt``) while the file itself is still opened by its real name.
"""
from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

SKIPPED_SUFFIXES = (".md",)  # notes beside the data (README.md), never ingested from a folder


def safe_text(text: str) -> str:
    """``text`` with any surrogate escapes (undecodable bytes of a file name) as ``\\xNN`` escapes."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        try:
            return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:  # a surrogate no file name produces: escape it as a code point
            return text.encode("utf-8", "backslashreplace").decode("utf-8")


def shown(path: str | os.PathLike[str]) -> str:
    """A path as printable, storable text: itself when its name is UTF-8, else with ``\\xNN`` escapes."""
    return safe_text(os.fspath(path))


@dataclass(frozen=True)
class Refused:
    """A folder entry that is not read, and why (one line naming it)."""

    path: Path
    reason: str

    @property
    def message(self) -> str:
        return f"{shown(self.path)}: {self.reason}"


def _link_target(path: Path) -> str:
    try:
        return shown(os.readlink(path))
    except OSError:
        return "?"


def _within(target: str, root: str) -> bool:
    return target == root or target.startswith(root.rstrip(os.sep) + os.sep)


def scan_paths(paths: Iterable[str | os.PathLike[str]], links: Literal["inside", "refuse"] = "inside"
               ) -> tuple[list[Path], list[Refused]]:
    """Files to read for ``paths``, and the folder entries refused.

    A file given by name is read as given (a link named on the command line is followed). A folder is
    walked recursively, sorted, skipping hidden names and ``*.md``; symbolic links in it are read only
    with ``links="inside"`` and only when they lead to a file inside the folder: a link leading out of it
    or pointing nowhere is refused, and ``links="refuse"`` refuses every link (the inbox).
    """
    files: list[Path] = []
    refused: list[Refused] = []
    for p in map(Path, paths):
        try:
            is_dir = p.is_dir()
        except OSError:  # e.g. a name too long: reading it fails later with a clear per-file error
            is_dir = False
        if not is_dir:
            files.append(p)
            continue
        found: list[Path] = []
        root = os.path.realpath(p)

        def unreadable(exc: OSError, p: Path = p) -> None:
            refused.append(Refused(Path(exc.filename or p), f"cannot read folder: {exc.strerror or exc}"))

        for folder, dirs, names in os.walk(p, onerror=unreadable):
            dirs.sort()
            for name in sorted([*dirs, *names]):
                entry = Path(folder) / name
                if name.startswith(".") or not entry.is_symlink():
                    if name in names and not name.startswith(".") and entry.suffix.lower() not in SKIPPED_SUFFIXES:
                        found.append(entry)
                    continue
                if name in dirs:
                    dirs.remove(name)  # os.walk does not descend into links; say so for each one
                target = _link_target(entry)
                if links == "refuse":
                    refused.append(Refused(entry, f"symbolic link (→ {target}): links in this folder are never "
                                                  "followed; put the file itself there"))
                elif not entry.exists():
                    refused.append(Refused(entry, f"dangling symbolic link (→ {target}): it points to nothing; "
                                                  "skipped"))
                elif not _within(os.path.realpath(entry), root):
                    refused.append(Refused(entry, f"symbolic link leads out of {shown(p)} (→ {target}): not "
                                                  "followed; copy the file into the folder instead"))
                elif entry.is_file() and entry.suffix.lower() not in SKIPPED_SUFFIXES:
                    found.append(entry)  # a link to a file inside the folder: read like the file itself
        files.extend(sorted(found))
    return files, refused


def open_below(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> int:
    """A read-only descriptor of ``path``, a regular file below the folder ``root``, opened without following
    any symbolic link below ``root``: each folder and then the file is opened with ``O_NOFOLLOW`` relative
    to the one before, so a folder or file swapped for a link at any moment (after a scan, between two
    checks) is refused at its open instead of being read through. A FIFO or device is refused without
    blocking. The caller closes the descriptor.

    Raises:
        OSError: ``ELOOP`` for a link (``ENOTDIR`` for a folder that became one), ``EINVAL`` for a
            non-regular file, or whatever opening failed with.
    """
    parts = Path(path).relative_to(root).parts  # ValueError: not below root
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = inner
        file_fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(file_fd).st_mode):
        os.close(file_fd)
        raise OSError(errno.EINVAL, "not a regular file")
    return file_fd


def first_link_below(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path | None:
    """The first symbolic link on the way from ``root`` (excluded) down to ``path``, or None: what to move
    when ``path`` must leave a folder without anything behind a link being moved with it."""
    current = Path(root)
    for part in Path(path).relative_to(root).parts:
        current = current / part
        if current.is_symlink():
            return current
    return None
