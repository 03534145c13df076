"""A real PostgreSQL server for the tests: a throw-away cluster made by ``pg_virtualenv`` (Debian's
postgresql-common; ``scripts/install_postgres.sh`` installs it), kept for the test session, one fresh
database per test. Without it the PostgreSQL half of the store tests is skipped with the reason, unless
``THREADSTANCE_REQUIRE_POSTGRES=1`` (``scripts/test.sh``, CI) makes that an error."""
from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REQUIRE_ENV = "THREADSTANCE_REQUIRE_POSTGRES"
_counter = itertools.count(1)


class PostgresServer:
    """``pg_virtualenv -t`` (its cluster files in a temporary folder even as root, so test sessions side by
    side do not meet) running ``sh`` that writes the cluster's PG* variables and waits on its stdin: the
    cluster lives until :meth:`stop` closes that stdin, then pg_virtualenv removes it."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="ts-pg-"))
        env_file = self.folder / "env"
        self.proc = subprocess.Popen(
            ["pg_virtualenv", "-t", "sh", "-c", 'env | grep "^PG" > "$0.tmp" && mv "$0.tmp" "$0"; read _', str(env_file)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.folder)
        deadline = time.time() + 120
        while not env_file.exists():
            if self.proc.poll() is not None or time.time() > deadline:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                self.stop()
                raise RuntimeError(f"pg_virtualenv did not start a cluster: {err.strip()[-500:]}")
            time.sleep(0.1)
        self.env = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)

    def url(self, database: str | None = None) -> str:
        e = self.env
        return (f"postgresql://{e['PGUSER']}:{e['PGPASSWORD']}@{e.get('PGHOST', 'localhost')}:{e['PGPORT']}/"
                f"{database or e.get('PGDATABASE', 'postgres')}")

    def new_database(self) -> str:
        """A URL of a new, empty database."""
        import psycopg

        name = f"ts_{os.getpid()}_{next(_counter)}"
        with psycopg.connect(self.url().replace("postgresql://", "postgresql://", 1), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.proc.poll() is None:
            if self.proc.stdin:
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


def start_or_skip() -> PostgresServer:
    """A running server, or a skip naming why there is none (an error where one is required)."""
    reason = None
    if not shutil.which("pg_virtualenv"):
        reason = "no PostgreSQL server: pg_virtualenv is not installed (run scripts/install_postgres.sh)"
    else:
        try:
            return PostgresServer()
        except (RuntimeError, OSError) as exc:
            reason = f"no PostgreSQL server: {exc}"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1)")
    pytest.skip(reason)
