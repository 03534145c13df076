"""Output files written whole or not at all: a temporary file beside the target, renamed onto it on success.

A full disk (or any other write error) removes the temporary file, keeps what was at the target before, and
becomes one :class:`~pipeline.errors.UserError` line naming the target file.
"""
from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.errors import UserError


def output_error(exc: OSError, path: str | Path) -> UserError:
    """A one-line error naming the output file ``path`` (whatever file the OSError itself names)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return UserError("disk full: the output file could not be written; nothing was written there "
                         "(free space and rerun)", path)
    reason = exc.strerror or str(exc) or type(exc).__name__
    return UserError(f"cannot write the output file: {reason}; nothing was written there", path)


def _is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(16) == b"SQLite format 3\x00"
    except OSError:  # missing, a folder, unreadable: not a store this would overwrite
        return False


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _is_special_file(path: str | Path) -> bool:
    """Whether ``path`` exists and is not a regular file or folder: a device such as ``/dev/null`` or
    ``/dev/stdout``, a named pipe, a socket. Those are written straight through: renaming a temporary file
    onto ``/dev/null`` would replace the device with a plain file."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _write_target(path: str | Path) -> Path:
    """The file a write to ``path`` should replace: the file a symbolic link points to (renaming onto the link
    would replace the link itself), else ``path``."""
    path = Path(path)
    return Path(os.path.realpath(path)) if path.is_symlink() else path


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write; on success it is flushed to disk and renamed onto
    ``path`` (onto the file a symbolic link points to). On an error it is removed, ``path`` is left as it was, and an OSError becomes a UserError.
    A device or a pipe (``/dev/null``, ``/dev/stdout``) is yielded itself and written straight through."""
    shown_path = Path(path)
    if _is_special_file(shown_path):
        try:
            yield shown_path
        except OSError as exc:
            raise output_error(exc, shown_path) from exc
        return
    path = _write_target(shown_path)
    if _is_sqlite(path):  # `-o` mixed up with `--db` would replace a whole store with an export
        raise UserError("is a SQLite database (a store?): an output file never replaces one; choose another "
                        "output file", shown_path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)  # the rename itself survives a crash
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise output_error(exc, shown_path) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
