"""The scheduled job's locks and log: one run at a time on a SQLite store (a file lock), workers side by side on
a shared PostgreSQL store (the store's locks), and timestamped log lines."""
from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


# ---- lock and log ---------------------------------------------------------------------------------
class LockHeld(Exception):
    """Another process holds the run lock."""

    def __init__(self, path: Path, holder: str) -> None:
        self.path, self.holder = path, holder
        super().__init__(f"another reclassify run holds the lock {path}" + (f" ({holder})" if holder else ""))


class RunLock:
    """An exclusive, non-blocking ``flock`` on a file, released when the process exits (even by kill -9).

    Plain ``fcntl`` rather than ``filelock`` on purpose: filelock's Unix lock is this same flock(2) call, and
    holding the descriptor ourselves lets the holder write its pid into the lock file, which "already
    running" (exit 75) reports. Linux/macOS only, like the cron job it guards.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise LockHeld(self.path, self.holder()) from exc
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} since {_now()}\n".encode())
        self.fd = fd

    def holder(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8").strip()
        except OSError:
            return ""

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class SharedStoreLock:
    """The job lock where workers share a PostgreSQL store: no file lock (workers on one or many machines
    run at once and claim batches of items); the inbox and the export are taken by one worker at a time
    (an advisory lock, :data:`INBOX_LOCK`), and each run holds its own run lock."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def acquire(self) -> None:
        return None

    def release(self) -> None:
        return None


INBOX_LOCK = 0  # advisory-lock key of the inbox and export step (run ids, the other keys, start at 1)


def job_lock(cfg: Any) -> RunLock | SharedStoreLock:
    """What admits a run of ``cfg`` (a ``ScheduleConfig``): the exclusive file lock for a SQLite store; for a store that workers share, nothing
    beyond the store's own locks."""
    from pipeline.store.backend import shares_work

    return SharedStoreLock(cfg.lock_file) if shares_work(cfg.store) else RunLock(cfg.lock_file)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class RunLog:
    """Timestamped lines appended to the log file (flushed per line), echoed to a callback."""

    def __init__(self, path: str | Path | None, echo: Callable[[str], None] | None = None) -> None:
        self.path = Path(path) if path else None
        self.echo = echo
        self.fh = None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def __call__(self, message: str, level: str = "info") -> None:
        from pipeline.ingest.paths import safe_text

        message = safe_text(message)  # a file name that is not UTF-8 is logged with \xNN escapes
        if self.fh:
            for line in message.splitlines() or [""]:
                self.fh.write(f"{_now()} [{os.getpid()}] {level.upper()} {line}\n")
            self.fh.flush()
        if self.echo:
            self.echo(message if level == "info" else f"{level}: {message}")

    def close(self) -> None:
        if self.fh:
            self.fh.close()
            self.fh = None
