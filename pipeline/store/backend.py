"""Where a store lives: the one seam where the database back end is chosen.

A store location is a SQLite file path (the default, ``work/threadstance.sqlite``) or a PostgreSQL URL
(``postgresql://user@host:port/db``, driver psycopg 3). :func:`backend_for` returns the back end that
opens it; everything above (:class:`pipeline.store.db.Store`, the migrations, the jobs) speaks SQLAlchemy
Core through the connection it returns and asks the back end only what differs:

* how to connect (SQLite: WAL, ``BEGIN IMMEDIATE``, read-only / immutable opening of a file);
* whether several workers may classify the same store at once (:attr:`Backend.shares_work`: PostgreSQL
  claims batches with ``SELECT … FOR UPDATE SKIP LOCKED``; SQLite admits one run by its file lock);
* session locks (PostgreSQL advisory locks: a live run holds one, so a run found ``running`` whose lock
  is free belonged to a killed process).
"""
from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from pipeline.store.sqlite import StoreError, store_error

if TYPE_CHECKING:
    from pipeline.store.mirror import BrowseSource

URL_SCHEMES = ("postgresql://", "postgresql+psycopg://", "postgres://")
CONNECT_TIMEOUT = 15  # seconds to wait for a PostgreSQL server to answer a connection
LOCK_SPACE = 0x7473  # advisory-lock namespace of threadstance ("ts"); the second key is a run id or job code


def is_url(location: str | Path) -> bool:
    """Whether ``location`` names a PostgreSQL database rather than a SQLite file."""
    return isinstance(location, str) and location.startswith(URL_SCHEMES)


def shown(location: str | Path) -> str:
    """The location for messages, logs and pages: a URL with its password masked (in the user part and in a
    ``password=`` query parameter)."""
    if not is_url(location):
        return str(location)
    masked = re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", str(location))
    return re.sub(r"([?&]password=)[^&]*", r"\1***", masked, flags=re.IGNORECASE)


def store_exists(location: str | Path) -> bool:
    """Whether a store is there to read: a SQLite file exists; a PostgreSQL URL is always tried (a server
    that cannot be reached or a database without the schema is reported when it is opened)."""
    return is_url(location) or Path(location).is_file()


def shares_work(location: str | Path) -> bool:
    """Whether several reclassify workers may run on this store at once (see :attr:`Backend.shares_work`)."""
    return backend_for(location).shares_work


def backend_for(location: str | Path) -> Backend:
    return PostgresBackend(str(location)) if is_url(location) else SQLiteBackend(Path(location))


class Backend:
    """What differs between the back ends. ``path`` names the store in messages."""

    name = ""
    shares_work = False  # several workers may classify at once, claiming batches
    claim_clause = ""  # appended to the claiming SELECT
    path: Path | str

    def open(self, read_only: bool) -> tuple[sa.Connection, bool]:
        """A connection in autocommit mode (transactions are explicit) and whether it is read-only."""
        raise NotImplementedError

    def writable(self) -> bool:
        return True

    def begin_sql(self) -> str:
        return "BEGIN"

    def try_lock(self, conn: sa.Connection, key: int) -> bool:
        """Take a session lock on ``key`` without waiting; True when taken (always, where not needed)."""
        return True

    def unlock(self, conn: sa.Connection, key: int) -> None:
        """Release a lock taken by :meth:`try_lock`."""

    def lock_is_free(self, conn: sa.Connection, key: int) -> bool:
        """Whether no other session holds ``key`` (SQLite: the run's file lock already says so: True)."""
        return True

    def browse_source(self) -> BrowseSource:
        """Where the dashboard's browse index reads this store from (:mod:`pipeline.store.mirror`)."""
        raise NotImplementedError


class SQLiteBackend(Backend):
    """One SQLite file, WAL mode. Opened read-only (``mode=ro``; ``immutable=1`` in a folder this process
    cannot write) when the file or its folder is not writable."""

    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path

    def writable(self) -> bool:
        """Whether this process may write the store file and create its ``-wal`` / ``-shm`` files beside it."""
        return os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK)

    def begin_sql(self) -> str:
        return "BEGIN IMMEDIATE"

    def browse_source(self) -> BrowseSource:
        from pipeline.store.mirror import AttachedFile

        return AttachedFile(self.path)

    def _engine(self, connect: Any) -> sa.Connection:
        def creator() -> sqlite3.Connection:
            conn = connect()
            conn.row_factory = sqlite3.Row  # ``store.conn`` rows read by name, as before
            return conn

        engine = sa.create_engine("sqlite://", creator=creator, poolclass=sa.pool.StaticPool)
        return engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def open(self, read_only: bool) -> tuple[sa.Connection, bool]:
        if read_only or (self.path.is_file() and not self.writable()):
            return self._open_readonly(), True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the store's folder: {exc.strerror or exc}", self.path) from exc
        try:
            conn = self._engine(lambda: sqlite3.connect(self.path, timeout=30, isolation_level=None))
        except sa.exc.DBAPIError as exc:
            raise StoreError(f"cannot open the SQLite store: {exc.orig}", self.path) from exc
        try:
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
                conn.exec_driver_sql(f"PRAGMA {pragma}")
        except sa.exc.DBAPIError as exc:
            conn.close()
            conn.engine.dispose()
            if "readonly" in str(exc.orig).lower() and self.path.is_file():  # read-only in a way os.access missed
                return self._open_readonly(), True
            raise store_error(exc, self.path) from exc
        return conn, False

    def _open_readonly(self) -> sa.Connection:
        """``mode=ro``; ``immutable=1`` when the folder is not writable, so no ``-shm`` file can be made, and
        no other process has unsaved changes in a ``-wal`` file."""
        wal = self.path.with_name(self.path.name + "-wal")
        folder_writable = os.access(self.path.parent, os.W_OK)
        modes = ["mode=ro"] if folder_writable or (wal.is_file() and wal.stat().st_size) else []
        if not folder_writable:
            modes.append("immutable=1")
        uri = self.path.resolve().as_uri()
        for i, mode in enumerate(modes):
            conn = None
            try:
                conn = self._engine(lambda m=mode: sqlite3.connect(f"{uri}?{m}", uri=True, timeout=30,
                                                                   isolation_level=None))
                conn.exec_driver_sql("SELECT COUNT(*) FROM sqlite_master").fetchone()
            except sa.exc.DBAPIError as exc:
                if conn is not None:
                    conn.close()
                    conn.engine.dispose()
                if i == len(modes) - 1:
                    raise store_error(exc, self.path) from exc
                continue
            return conn
        raise StoreError("cannot open the store read-only", self.path)


class PostgresBackend(Backend):
    """A PostgreSQL database (psycopg 3). Several workers share the work: batches are claimed with
    ``FOR UPDATE SKIP LOCKED``, and each run holds an advisory lock while it lives."""

    name = "postgresql"
    shares_work = True
    claim_clause = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str) -> None:
        self.url = re.sub(r"^(postgresql|postgres)(\+psycopg)?://", "postgresql+psycopg://", url)
        self.path = shown(url)

    def open(self, read_only: bool) -> tuple[sa.Connection, bool]:
        args: dict[str, Any] = {"options": "-c default_transaction_read_only=on"} if read_only else {}
        if "connect_timeout=" not in self.url:  # a server that does not answer is an error, not a hang
            args["connect_timeout"] = CONNECT_TIMEOUT
        try:
            engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool, connect_args=args)
            conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except sa.exc.DBAPIError as exc:
            raise store_error(exc, self.path) from exc
        except (sa.exc.ArgumentError, ValueError) as exc:  # ValueError: e.g. a port that is not a number
            raise StoreError(f"not a PostgreSQL URL ({exc})", self.path) from exc
        return conn, read_only

    def browse_source(self) -> BrowseSource:
        from pipeline.store.mirror import PostgresMirror

        return PostgresMirror(lambda: self.open(True)[0], self.path)

    def try_lock(self, conn: sa.Connection, key: int) -> bool:
        return bool(conn.execute(sa.text("SELECT pg_try_advisory_lock(:s, :k)"), {"s": LOCK_SPACE, "k": key}).scalar())

    def unlock(self, conn: sa.Connection, key: int) -> None:
        conn.execute(sa.text("SELECT pg_advisory_unlock(:s, :k)"), {"s": LOCK_SPACE, "k": key})

    def lock_is_free(self, conn: sa.Connection, key: int) -> bool:
        if not self.try_lock(conn, key):
            return False
        self.unlock(conn, key)
        return True
