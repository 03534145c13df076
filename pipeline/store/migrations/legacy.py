"""The SQL of the schema versions written before the migrations moved to Alembic (stores up to v2 carry it,
tracked by ``PRAGMA user_version``). Kept to recognise, and in tests to build, stores of older versions;
never edited. The Alembic revisions ``0001`` and ``0002`` make the same schema on every back end."""
from __future__ import annotations

# Each entry migrated the schema from version i to i + 1.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE threads (
        thread_id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        standfirst TEXT,
        article_date TEXT,
        url TEXT,
        source TEXT NOT NULL,
        declared_comments INTEGER,
        first_ingested_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE items (
        item_id TEXT PRIMARY KEY,
        thread_id TEXT NOT NULL REFERENCES threads(thread_id),
        kind TEXT NOT NULL CHECK (kind IN ('comment', 'reply', 'paragraph')),
        parent_id TEXT,
        position INTEGER NOT NULL,
        depth INTEGER NOT NULL,
        author TEXT,
        posted_at TEXT,
        text TEXT NOT NULL,
        text_sha256 TEXT NOT NULL,
        flags TEXT NOT NULL DEFAULT '[]',
        revision INTEGER NOT NULL DEFAULT 1,
        first_seen_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX items_thread ON items(thread_id, position);
    CREATE TABLE item_revisions (
        item_id TEXT NOT NULL REFERENCES items(item_id),
        revision INTEGER NOT NULL,
        text TEXT NOT NULL,
        text_sha256 TEXT NOT NULL,
        replaced_at TEXT NOT NULL,
        PRIMARY KEY (item_id, revision)
    );
    CREATE TABLE sources (
        path TEXT PRIMARY KEY,
        sha256 TEXT NOT NULL,
        format TEXT NOT NULL,
        encoding TEXT NOT NULL,
        threads INTEGER NOT NULL,
        ingested_at TEXT NOT NULL
    );
    CREATE TABLE predictions (
        item_id TEXT NOT NULL REFERENCES items(item_id),
        model_version TEXT NOT NULL,
        text_sha256 TEXT NOT NULL,
        sentiment TEXT NOT NULL,
        record TEXT NOT NULL,
        run_id INTEGER,
        predicted_at TEXT NOT NULL,
        PRIMARY KEY (item_id, model_version)
    );
    CREATE TABLE runs (
        run_id INTEGER PRIMARY KEY AUTOINCREMENT,
        job TEXT NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        status TEXT NOT NULL,
        model_version TEXT,
        counts TEXT NOT NULL DEFAULT '{}',
        errors TEXT NOT NULL DEFAULT '[]'
    );
    """,
    # v2: a prediction belongs to one text revision of its item (issue 15: edited comments). The key
    # becomes (item_id, model_version, revision): an edit gets a new prediction, the old one stays as
    # history. Existing rows get the revision whose text they were made from (0 if it is unknown).
    """
    CREATE TABLE predictions_v2 (
        item_id TEXT NOT NULL REFERENCES items(item_id),
        model_version TEXT NOT NULL,
        revision INTEGER NOT NULL,
        text_sha256 TEXT NOT NULL,
        sentiment TEXT NOT NULL,
        record TEXT NOT NULL,
        run_id INTEGER,
        predicted_at TEXT NOT NULL,
        PRIMARY KEY (item_id, model_version, revision)
    );
    INSERT INTO predictions_v2(item_id, model_version, revision, text_sha256, sentiment, record, run_id,
                               predicted_at)
    SELECT p.item_id, p.model_version,
           COALESCE((SELECT i.revision FROM items i WHERE i.item_id = p.item_id AND i.text_sha256 = p.text_sha256),
                    (SELECT MAX(v.revision) FROM item_revisions v
                     WHERE v.item_id = p.item_id AND v.text_sha256 = p.text_sha256), 0),
           p.text_sha256, p.sentiment, p.record, p.run_id, p.predicted_at
    FROM predictions p;
    DROP TABLE predictions;
    ALTER TABLE predictions_v2 RENAME TO predictions;
    CREATE INDEX predictions_version ON predictions(model_version, item_id, revision);
    """,
]
LEGACY_VERSION = len(MIGRATIONS)
