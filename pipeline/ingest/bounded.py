"""Run a parser in a child process with a memory and a time limit.

lexbor, the HTML parser, is fast on real pages, but hostile markup can make its tree builder allocate
without bound or work for minutes: unclosed formatting elements that differ in their attributes are
opened again inside every later block (490 KB of ``<div><b id=N>x</div>`` asked for 19 GB and was
killed by the kernel). The checks made before the parse (size, element count, nesting) catch the plain
cases with a line number; this is the bound for everything else. A page over a limit is refused with one
:class:`ParseError`, the worker is replaced, and the next file is parsed as usual.

One worker process (a new interpreter that imports only the parser) is started at the first bounded parse
and reused, so a folder of pages pays its start-up (0.08 s measured here) once.
"""
from __future__ import annotations

import atexit
import os
import resource
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection, Pipe
from pathlib import Path
from typing import Any

from pipeline.errors import ParseError, UserError

MAX_PARSE_SECONDS = 60.0
BASE_MEMORY = 1 << 30  # the worker's interpreter and modules, with room to spare
MEMORY_PER_CHAR = 64  # a real page needs a few bytes of tree per character of markup


def memory_limit(n_chars: int) -> int:
    """Address-space limit, in bytes, for parsing ``n_chars`` characters."""
    return BASE_MEMORY + MEMORY_PER_CHAR * n_chars


def _serve(conn: Any) -> None:
    """Worker loop: ``(limit, fn, args)`` in; ``("ok", result)``, ``("user", (message, path, line))``,
    ``("memory", None)`` or ``("error", text)`` out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the terminal is the parent's to handle
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    while True:
        try:
            limit, fn, args = conn.recv()
        except (EOFError, OSError):
            return
        cap = min(x for x in (limit, soft, hard) if x != resource.RLIM_INFINITY)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
        try:
            reply: tuple[str, Any] = ("ok", fn(*args))
        except UserError as exc:
            reply = ("user", (exc.message, exc.path, exc.line))
        except MemoryError:
            reply = ("memory", None)
        except Exception as exc:  # noqa: BLE001 - reported to the parent as one line
            reply = ("error", f"{type(exc).__name__}: {str(exc)[:200]}")
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))  # the reply is about as big as the page
        del args
        conn.send(reply)
        if reply[0] in ("memory", "error"):
            return  # a parser that failed half way (often a failed allocation) is not trusted with the next page


class _Worker:
    """``python -m pipeline.ingest.bounded FD``: a fresh interpreter, so nothing of this process (threads,
    locks, the caller's ``__main__``) is copied or re-run in it."""

    def __init__(self) -> None:
        self.conn, child = Pipe()
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])  # importable even when not installed
        env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
        # -P: a folder called "pipeline" in the working directory must not shadow the package (3.11+)
        safe = ["-P"] if sys.version_info >= (3, 11) else []
        self.proc = subprocess.Popen([sys.executable, *safe, "-m", "pipeline.ingest.bounded", str(child.fileno())],
                                     pass_fds=[child.fileno()], env=env, stdin=subprocess.DEVNULL)
        child.close()

    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def exitcode(self) -> int | None:
        return self.proc.poll()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.conn.close()


_worker: _Worker | None = None
_lock = threading.Lock()


@atexit.register
def _stop() -> None:
    if _worker is not None:
        _worker.close()


def run_bounded(fn: Callable[..., Any], args: tuple, source: str, what: str, n_chars: int,
                seconds: float | None = None) -> Any:
    """``fn(*args)`` in the worker, under :func:`memory_limit` of ``n_chars`` and ``seconds`` (default
    :data:`MAX_PARSE_SECONDS`). ``fn`` must be a module-level function; a :class:`UserError` it raises is
    raised here. Over a limit, or if the worker dies: a :class:`ParseError` naming ``source``."""
    global _worker
    seconds = MAX_PARSE_SECONDS if seconds is None else seconds
    limit = memory_limit(n_chars)
    gib = f"{limit / 2**30:.1f} GiB"
    with _lock:
        if _worker is None or not _worker.alive():
            _worker = _Worker()
        worker = _worker
        try:
            worker.conn.send((limit, fn, args))
            if worker.conn.poll(seconds):
                status, payload = worker.conn.recv()
            else:
                status, payload = "timeout", None
        except (EOFError, OSError):  # the worker died: the kernel's OOM killer, or a crash in C code
            status, payload = "died", None
        except BaseException:  # e.g. KeyboardInterrupt: its reply must never be read as the next page's
            _worker = None
            worker.close()
            raise
        if status not in ("ok", "user"):  # the worker is stopped or has exited; a new one starts next time
            _worker = None
            worker.close()
    if status == "ok":
        return payload
    if status == "user":
        message, path, line = payload
        raise ParseError(message, path, line)
    if status == "timeout":
        raise ParseError(f"{what} took more than {seconds:g} s to parse: not parsed (damaged or hostile markup; "
                         "a real page takes well under a second)", source)
    if status == "memory":
        raise ParseError(f"{what} needs more than {gib} of memory to parse: not parsed (damaged or hostile "
                         "markup)", source)
    if status == "died":
        raise ParseError(f"{what} stopped the parser (exit code {worker.exitcode}; memory limit {gib}): not "
                         "parsed (damaged or hostile markup)", source)
    raise ParseError(f"cannot parse {what}: {payload} (memory limit {gib})", source)


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1])))
