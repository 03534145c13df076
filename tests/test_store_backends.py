"""The store on both back ends: the same tests on a SQLite file and on a real PostgreSQL server
(``store_location`` is parametrised; the PostgreSQL cluster comes from tests/pg_support.py)."""
from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from pipeline.ingest.model import Item, Thread
from pipeline.store.db import SCHEMA_VERSION, Store
from pipeline.store.load import ingest_file

FIXTURES = Path(__file__).parent / "fixtures"


def _thread(text: str = "Funding is a scandal.", tid: str = "t1") -> Thread:
    items = [Item(item_id=f"{tid}/p1", thread_id=tid, kind="paragraph", position=0, depth=0, text="Article body."),
             Item(item_id=f"{tid}/c1", thread_id=tid, kind="comment", position=1, depth=0, author="Sam",
                  posted_at="2024-01-02T10:00:00+00:00", text=text),
             Item(item_id=f"{tid}/c1/r1", thread_id=tid, kind="reply", parent_id=f"{tid}/c1", position=2, depth=1,
                  text="I agree.")]
    return Thread(thread_id=tid, title="Title", source="test", items=items)


def _row(item: dict, version: str = "m1", label: str = "neutral", run_id: int | None = None) -> tuple:
    record = {"model_version": version, "sentiment": {"label": label, "prob": 1.0, "probs": {label: 1.0}}, "stance": {}}
    return (item["item_id"], version, item["revision"], item["text_sha256"], label, json.dumps(record), run_id)


def test_a_new_store_has_the_current_schema_and_ingest_is_idempotent(store_location: str) -> None:
    with Store(store_location) as store:
        assert store.schema_version == SCHEMA_VERSION
        first = ingest_file(store, FIXTURES / "jsonl" / "comments.jsonl")
        second = ingest_file(store, FIXTURES / "jsonl" / "comments.jsonl")
        assert first.ok and first.counts.new > 0
        assert second.ok and second.skipped_unchanged
        with store.transaction():
            again = store.write_thread(_thread())
            same = store.write_thread(_thread())
        assert (again.new, same.new, same.unchanged, same.updated) == (3, 0, 3, 0)
        assert store.counts()["threads"] == first.counts.threads + 1


def test_an_edited_item_gets_the_next_revision_and_keeps_its_old_text(store_location: str) -> None:
    with Store(store_location) as store:
        with store.transaction():
            store.write_thread(_thread("First words."))
        with store.transaction():
            counts = store.write_thread(_thread("Edited words."))
        assert (counts.updated, counts.unchanged) == (1, 2)
        (item,) = store.items(item_ids=["t1/c1"])
        assert item["revision"] == 2 and item["text"] == "Edited words." and item["flags"] == []
        assert [(r["revision"], r["text"]) for r in store.revisions("t1/c1")] == [(1, "First words.")]


def test_predictions_are_keyed_by_item_revision_and_model_and_never_overwritten(store_location: str) -> None:
    with Store(store_location) as store:
        with store.transaction():
            store.write_thread(_thread())
        pending = store.pending_items("m1")
        assert [i["item_id"] for i in pending] == ["t1/p1", "t1/c1", "t1/c1/r1"]
        assert pending[2]["parent_text"] == "Funding is a scandal." and pending[2]["edited"] == 0
        with store.transaction():
            assert store.add_predictions([_row(i) for i in pending]) == 3
        with store.transaction():  # the same keys again, another label: kept as it was
            assert store.add_predictions([_row(i, label="negative") for i in pending]) == 0
        assert store.count_pending("m1") == 0 and store.count_pending("m2") == 3
        assert {h["sentiment"] for h in store.prediction_history("t1/c1")} == {"neutral"}
        with store.transaction():
            store.write_thread(_thread("Now it is edited."))
        assert store.count_stale_predictions("m1") == 1
        (edited,) = store.pending_items("m1")
        assert edited["item_id"] == "t1/c1" and edited["revision"] == 2 and edited["edited"] == 1
        with store.transaction():
            store.add_predictions([_row(edited, label="negative")])
        assert [h["revision"] for h in store.prediction_history("t1/c1", "m1")] == [1, 2]
        assert store.prediction_counts() == {"m1": 4}
        rows = {r["item_id"]: r for r in store.items_with_predictions("m1")}
        assert rows["t1/c1"]["sentiment"] == "negative" and rows["t1/c1"]["record"]["model_version"] == "m1"
        assert store.latest_model_version() == "m1" and store.predicted_item_ids("m1") == {"t1/p1", "t1/c1", "t1/c1/r1"}


def test_a_failed_transaction_leaves_nothing_behind(store_location: str) -> None:
    with Store(store_location) as store:
        with pytest.raises(RuntimeError), store.transaction():
            store.write_thread(_thread())
            raise RuntimeError("killed half way")
        assert store.counts()["threads"] == 0 and store.items() == []


def test_runs_are_recorded_and_a_run_whose_process_ended_is_marked_killed(store_location: str) -> None:
    abandoned = Store(store_location)
    dead = abandoned.start_run("reclassify", "m1")
    abandoned.close()  # the process is gone: its connection (and, on PostgreSQL, its run lock) with it
    with Store(store_location) as store:
        run_id = store.start_run("reclassify")
        assert store.mark_abandoned_runs("reclassify", by_run=run_id) == [dead]
        store.update_run(run_id, status="ok", ended_at="2024-01-01T00:00:00+00:00", model_version="m1",
                         counts={"classified": 3}, errors=[])
        runs = store.runs()
        assert [(r["run_id"], r["status"]) for r in runs] == [(run_id, "ok"), (dead, "killed")]
        assert runs[0]["counts"] == {"classified": 3} and "killed" in runs[1]["errors"][0]
        assert store.latest_model_version() == "m1"


def test_reading_opens_read_only_and_the_store_refuses_writes(store_location: str) -> None:
    with Store(store_location) as store, store.transaction():
        store.write_thread(_thread())
    with Store.open_readonly(store_location) as store:
        assert store.read_only and len(store.items()) == 3
        with pytest.raises(Exception, match="read-only"), store.transaction():
            store.write_thread(_thread("changed"))


def test_a_store_written_by_the_previous_version_migrates_in_place(tmp_path: Path) -> None:
    """tests/fixtures/store_schema_v2.sqlite was written by threadstance before the Alembic migrations."""
    path = tmp_path / "old.sqlite"
    shutil.copy(FIXTURES / "store_schema_v2.sqlite", path)
    with sqlite3.connect(path) as conn:
        before = {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
                  for t in ("threads", "items", "item_revisions", "sources", "predictions", "runs")}
    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.prediction_counts() == {"m1": 3} and store.count_pending("m1") == len(before["items"]) - 3
        assert store.runs()[0]["counts"] == {"classified": 3}
    with sqlite3.connect(path) as conn:
        after = {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in before}
    assert after == before


def test_a_schema_v1_store_is_stamped_and_upgraded_by_the_migrations(tmp_path: Path) -> None:
    from pipeline.store.db import MIGRATIONS

    path = tmp_path / "v1.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(MIGRATIONS[0])
        conn.execute("PRAGMA user_version = 1")
    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == f"{SCHEMA_VERSION:04d}"
        columns = [row[1] for row in conn.execute("PRAGMA table_info(predictions)")]
    assert "revision" in columns


def test_claims_on_postgresql_skip_items_another_worker_holds(postgres_server) -> None:
    url = postgres_server.new_database()
    with Store(url) as a, Store(url) as b:
        with a.transaction():
            a.write_thread(_thread())
        items = a.pending_items("m1")
        with a.claim("m1", items[:2]) as mine:
            assert [i["item_id"] for i in mine] == ["t1/p1", "t1/c1"]
            with b.claim("m1", items) as theirs:  # the first two are locked by a: skipped, not waited for
                assert [i["item_id"] for i in theirs] == ["t1/c1/r1"]
                with b.transaction():
                    b.add_predictions([_row(i) for i in theirs])
            with a.transaction():
                a.add_predictions([_row(i) for i in mine])
        with b.claim("m1", items) as rest:  # everything is stored now: nothing left to claim
            assert rest == []
        assert a.count_pending("m1") == 0 and a.prediction_counts() == {"m1": 3}
