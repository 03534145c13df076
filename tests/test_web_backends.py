"""The dashboard over both store back ends while the store changes, and over a PostgreSQL store (a real
throw-away server, tests/pg_support.py): the same rows show the same pages as in a SQLite file, threads
written after the start appear without holding up a request, and nothing is written to the server."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner
from web_support import XSS_THREAD, build_store, cached_store

from pipeline.cli.main import app as cli_app
from pipeline.web.app import create_app

REPO = Path(__file__).resolve().parent.parent


def _sqlite_twin(url: str, path: Path) -> Path:
    """A SQLite store holding exactly the rows of the PostgreSQL store at ``url`` (same schema, row by row)."""
    import sqlite3

    from pipeline.store.db import Store

    Store(path).close()  # the current schema
    with psycopg.connect(url) as pg, sqlite3.connect(path) as lite:
        for table in ("threads", "items", "item_revisions", "sources", "runs", "predictions"):
            cur = pg.execute(f"SELECT * FROM {table}")
            names = [c.name for c in cur.description]
            lite.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                             cur.fetchall())
    return path


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory, seeds_dir: Path, smoke_model: Path,
           postgres_server) -> tuple[str, Path, Path]:
    """(PostgreSQL URL, a SQLite copy of it, the model): the web tests' store (seeds, a hostile thread, an edit)
    built by real ingest and reclassify runs on the server."""
    _, model = cached_store(tmp_path_factory.getbasetemp(), seeds_dir, smoke_model)
    root = tmp_path_factory.mktemp("web_pg")
    url = build_store(root, seeds_dir, smoke_model, postgres_server.new_database())
    return url, _sqlite_twin(url, root / "twin.sqlite"), model


def _client(store: str | Path, model: Path) -> TestClient:
    return TestClient(create_app(store, model, n_boot=200))


def _records(client: TestClient, query: str = "") -> list[dict]:
    keep = ("item_id", "thread_id", "kind", "parent_id", "author", "posted_at", "text", "sentiment", "stance")
    rows = [json.loads(line) for line in client.get("/items.jsonl" + query).text.splitlines()]
    return [{k: r.get(k) for k in keep} for r in rows]


def _count(html: str) -> int:
    return int(re.search(r'id="item-count">([\d,]+)<', html).group(1).replace(",", ""))


def test_a_postgresql_store_shows_the_same_pages_as_its_sqlite_twin(stores) -> None:
    url, sqlite_store, model = stores
    pg, lite = _client(url, model), _client(sqlite_store, model)
    assert pg.app.state.dash.index.counts() == lite.app.state.dash.index.counts()
    assert pg.app.state.dash.index.counts()["classified"] > 100
    assert _records(pg) == _records(lite)  # every classified item with its labels, probabilities and evidence
    filtered = "?target=funding&label=none&kind=comment&sort=confidence"
    assert _records(pg, filtered) == _records(lite, filtered)
    for page in ("/items?q=agency+staff+budget", "/items?sort=thread&page=2", "/threads", f"/thread?id={XSS_THREAD}"):
        a, b = pg.get(page), lite.get(page)
        assert a.status_code == b.status_code == 200, page
        strip = re.compile(r"<footer>.*?</footer>|\d+(\.\d+)? ?(ms|s)\b", re.S)
        assert strip.sub("", a.text) == strip.sub("", b.text), page
    assert pg.get("/trends.csv").text == lite.get("/trends.csv").text
    assert "edited · revision 2" in pg.get(f"/thread?id={XSS_THREAD}").text
    footer = re.search(r"<footer>(.*?)</footer>", pg.get("/").text, re.S).group(1)
    assert "postgresql://" in footer and ":***@" in footer and url.split(":")[2].split("@")[0] not in footer


def _ingest(store: str, *files: Path) -> None:
    result = CliRunner().invoke(cli_app, ["ingest", "--db", store, *map(str, files)], catch_exceptions=False)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_dashboard_sees_threads_written_after_it_started(backend, request, tmp_path: Path, seeds_dir: Path,
                                                              smoke_model: Path) -> None:
    store = str(tmp_path / "store.sqlite") if backend == "sqlite" else \
        request.getfixturevalue("postgres_server").new_database()
    _ingest(store, sorted(seeds_dir.glob("*.txt"))[0])
    client = _client(store, smoke_model)
    before = _count(client.get("/items").text)
    page = tmp_path / "late.jsonl"
    page.write_text(json.dumps({"thread_id": "late-thread", "thread_title": "Posted after the dashboard started",
                                "text": "Ofsted got this one wrong again.", "comment_id": "1"}) + "\n")
    _ingest(store, page)
    deadline = time.monotonic() + 20  # PostgreSQL reports its write counters within about a second
    while "late-thread" not in client.get("/threads").text:
        assert time.monotonic() < deadline, "the dashboard never saw the new thread"
        time.sleep(0.5)
    assert _count(client.get("/items").text) == before + 1
    assert "Posted after the dashboard started" in client.get("/thread?id=late-thread").text
    assert _count(client.get("/items?q=got+this+one+wrong").text) == 1  # the text index was rebuilt too


def test_serving_a_postgresql_store_never_writes_to_it(stores) -> None:
    url, _, model = stores

    client = _client(url, model)
    with psycopg.connect(url) as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        counts = {t: conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}
    for page in ("/", "/items", "/threads", "/trends", "/suggest", "/items.csv"):
        assert client.get(page).status_code == 200, page
    with psycopg.connect(url) as conn:
        assert {t: conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables} == counts
        # the dashboard's session is read-only: a write through it is refused by the server
        mirror = client.app.state.dash.index.source
        with pytest.raises(Exception, match="read-only transaction"):
            mirror._db().exec_driver_sql("INSERT INTO runs (job, started_at, status) VALUES ('x', 'now', 'ok')")


def test_serve_on_an_empty_postgresql_database_says_there_is_no_store(postgres_server, monkeypatch, capsys) -> None:
    from conftest import cli

    url = postgres_server.new_database()
    code, _, err = cli(["serve", "--db", url], monkeypatch, capsys)
    assert code == 2 and "no store in this database" in err and ":***@" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_request_during_a_rebuild_gets_the_previous_index_at_once(tmp_path: Path, seeds_dir: Path,
                                                                   smoke_model: Path, monkeypatch) -> None:
    import threading

    import pipeline.web.state as state

    store = str(tmp_path / "store.sqlite")
    _ingest(store, sorted(seeds_dir.glob("*.txt"))[0])
    client = _client(store, smoke_model)
    before = _count(client.get("/items").text)
    release = threading.Event()

    class SlowIndex(state.BrowseIndex):
        def refresh(self, model_version):  # noqa: ANN001, ANN202
            assert release.wait(30)
            return super().refresh(model_version)

    monkeypatch.setattr(state, "BrowseIndex", SlowIndex)
    page = tmp_path / "late.jsonl"
    page.write_text(json.dumps({"thread_id": "late-thread", "text": "Funding was cut again.", "comment_id": "1"}) + "\n")
    _ingest(store, page)
    start = time.monotonic()
    assert _count(client.get("/items").text) == before  # the rebuild is waiting: the old index answers
    assert _count(client.get("/items").text) == before
    assert time.monotonic() - start < 10
    release.set()
    deadline = time.monotonic() + 20
    while _count(client.get("/items").text) != before + 1:
        assert time.monotonic() < deadline, "the rebuilt index never replaced the old one"
        time.sleep(0.2)


def _predict_into(store: str, model: Path, out: Path, *files: Path) -> None:
    result = CliRunner().invoke(cli_app, ["predict", *map(str, files), "--db", store, "--model", str(model),
                                          "--format", "jsonl", "-o", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def test_label_next_and_trends_follow_new_predictions(tmp_path: Path, seeds_dir: Path, smoke_model: Path) -> None:
    store = str(tmp_path / "store.sqlite")
    _predict_into(store, smoke_model, tmp_path / "first.jsonl", sorted(seeds_dir.glob("*.txt"))[0])
    client = _client(store, smoke_model)
    dash = client.app.state.dash
    ranked, csv = len(dash.ranking()), client.get("/trends.csv").text
    page = tmp_path / "late.jsonl"
    page.write_text("".join(json.dumps({"thread_id": "late", "text": t, "comment_id": str(i),
                                        "posted_at": f"2031-05-0{i + 1}T10:00:00"}) + "\n"
                            for i, t in enumerate(["Ofsted got this one wrong.", "Managers ignore us."])))
    _predict_into(store, smoke_model, tmp_path / "late.out.jsonl", page)
    deadline = time.monotonic() + 20
    while len(dash.ranking()) != ranked + 2:  # cached per index: a rebuilt index gets a new key
        assert time.monotonic() < deadline, "label next never showed the new items"
        client.get("/")
        time.sleep(0.3)
    assert client.get("/trends.csv").text != csv and "2031-05" in client.get("/trends.csv").text


def test_the_dashboard_reconnects_when_postgresql_drops_its_session(postgres_server, tmp_path: Path, seeds_dir: Path,
                                                                     smoke_model: Path) -> None:
    url = postgres_server.new_database()
    _ingest(url, sorted(seeds_dir.glob("*.txt"))[0])
    client = _client(url, smoke_model)
    with psycopg.connect(url, autocommit=True) as admin:  # end the dashboard's server session
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                      "AND pid <> pg_backend_pid()")
    page = tmp_path / "late.jsonl"
    page.write_text(json.dumps({"thread_id": "after-drop", "text": "Funding was cut.", "comment_id": "1"}) + "\n")
    _ingest(url, page)
    deadline = time.monotonic() + 20
    while "after-drop" not in client.get("/threads").text:
        assert time.monotonic() < deadline, "the dashboard never reconnected"
        time.sleep(0.5)


@pytest.mark.parametrize(("url", "message"), [
    ("postgresql://u@h:abc/db?password=secret", "not a PostgreSQL URL"),
    ("postgresql://u@127.0.0.1:1/db?password=secret&sslmode=disable", "cannot reach the PostgreSQL store"),
])
def test_serve_masks_a_password_given_as_a_query_parameter(url, message, monkeypatch, capsys) -> None:
    from conftest import cli

    code, _, err = cli(["serve", "--db", url], monkeypatch, capsys)
    assert code == 2 and message in err and "password=***" in err and "secret" not in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
