"""Writing to the store: re-ingest is idempotent, changed text becomes a new revision, one file = one
transaction."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.errors import UserError
from pipeline.ingest.parse import parse_file
from pipeline.store.db import Store
from pipeline.store.load import ingest_file, ingest_paths


def _snapshot(store: Store) -> dict[str, list[tuple]]:
    return {table: [tuple(row) for row in store.conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2")]
            for table in ("threads", "items", "item_revisions", "sources")}


@pytest.fixture
def seed_copies(seeds_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "seeds"
    folder.mkdir()
    for path in sorted(seeds_dir.glob("*.txt")):
        shutil.copy(path, folder / path.name)
    return folder


def test_second_ingest_of_the_same_files_writes_nothing(seed_copies, fixtures_dir, tmp_path):
    inputs = [seed_copies, fixtures_dir / "html", fixtures_dir / "jsonl"]
    with Store(tmp_path / "store.sqlite") as store:
        first = ingest_paths(store, inputs)
        assert not first.failed
        counts, before = store.counts(), _snapshot(store)
        assert counts == {"threads": 10, "paragraph": 141, "comment": 29, "reply": 5}
        changes = store.conn.total_changes
        second = ingest_paths(store, inputs)
        assert not second.failed
        assert store.conn.total_changes == changes  # not a single row inserted, updated or deleted
        assert store.counts() == counts and _snapshot(store) == before  # incl. every updated_at
        assert all(f.skipped_unchanged and f.counts.new == f.counts.updated == 0 for f in second.files)
        assert second.total("comment") == first.total("comment")


def test_writing_an_identical_thread_again_changes_no_row(seeds_dir, tmp_path):
    _, threads = parse_file(sorted(seeds_dir.glob("*.txt"))[0])
    with Store(tmp_path / "store.sqlite") as store:
        with store.transaction():
            store.write_thread(threads[0])
        before, changes = _snapshot(store), store.conn.total_changes
        with store.transaction():
            counts = store.write_thread(threads[0])  # e.g. the same page ingested from another copy
        assert store.conn.total_changes == changes and _snapshot(store) == before
        assert (counts.new, counts.updated, counts.unchanged) == (0, 0, len(threads[0].items))


def test_changed_comment_text_becomes_revision_two_and_keeps_revision_one(seed_copies, tmp_path):
    path = next(seed_copies.glob("000_*.txt"))
    with Store(tmp_path / "store.sqlite") as store:
        assert ingest_file(store, path).ok
        thread_id = store.threads()[0]["thread_id"]
        lyla_id = f"{thread_id}/c2"
        old = store.items(item_ids=[lyla_id])[0]
        assert old["author"] == "Lyla" and old["revision"] == 1

        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("Its about time this extremely", "It's about time this extremely"),
                        encoding="utf-8")
        result = ingest_file(store, path)
        assert result.ok and not result.skipped_unchanged
        assert (result.counts.new, result.counts.updated) == (0, 1)

        new = store.items(item_ids=[lyla_id])[0]
        assert new["revision"] == 2 and new["text"].startswith("It's about time")
        revisions = store.revisions(lyla_id)
        assert [(r["revision"], r["text"]) for r in revisions] == [(1, old["text"])]
        assert revisions[0]["text_sha256"] == old["text_sha256"]
        others = [i for i in store.items(thread_id=thread_id) if i["item_id"] != lyla_id]
        assert {i["revision"] for i in others} == {1}
        assert store.conn.execute("SELECT COUNT(*) FROM item_revisions").fetchone()[0] == 1


def test_a_failure_while_writing_a_file_rolls_back_everything_from_it(seeds_dir, tmp_path, monkeypatch):
    path = sorted(seeds_dir.glob("*.txt"))[1]
    with Store(tmp_path / "store.sqlite") as store:
        def broken(*args, **kwargs):
            raise UserError("disk full (simulated)", path)

        monkeypatch.setattr(store, "record_source", broken)  # fails after the thread and items were written
        result = ingest_file(store, path)
        assert not result.ok and "disk full" in (result.error or "")
        assert store.counts() == {"threads": 0, "paragraph": 0, "comment": 0, "reply": 0}
        monkeypatch.undo()
        assert ingest_file(store, path).ok  # and the file goes in cleanly afterwards
        assert store.counts()["comment"] == 5
