"""Schema v1: threads, items with revisions, sources, predictions keyed by (item, model version), runs.

Revision ID: 0001
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

T, Int = sa.Text, sa.Integer


def upgrade() -> None:
    op.create_table(
        "threads", sa.Column("thread_id", T, primary_key=True), sa.Column("title", T, nullable=False),
        sa.Column("standfirst", T), sa.Column("article_date", T), sa.Column("url", T),
        sa.Column("source", T, nullable=False), sa.Column("declared_comments", Int),
        sa.Column("first_ingested_at", T, nullable=False), sa.Column("updated_at", T, nullable=False))
    op.create_table(
        "items", sa.Column("item_id", T, primary_key=True),
        sa.Column("thread_id", T, sa.ForeignKey("threads.thread_id"), nullable=False),
        sa.Column("kind", T, sa.CheckConstraint("kind IN ('comment', 'reply', 'paragraph')"), nullable=False),
        sa.Column("parent_id", T), sa.Column("position", Int, nullable=False), sa.Column("depth", Int, nullable=False),
        sa.Column("author", T), sa.Column("posted_at", T), sa.Column("text", T, nullable=False),
        sa.Column("text_sha256", T, nullable=False), sa.Column("flags", T, nullable=False, server_default="[]"),
        sa.Column("revision", Int, nullable=False, server_default="1"),
        sa.Column("first_seen_at", T, nullable=False), sa.Column("updated_at", T, nullable=False))
    op.create_index("items_thread", "items", ["thread_id", "position"])
    op.create_table(
        "item_revisions", sa.Column("item_id", T, sa.ForeignKey("items.item_id"), nullable=False),
        sa.Column("revision", Int, nullable=False), sa.Column("text", T, nullable=False),
        sa.Column("text_sha256", T, nullable=False), sa.Column("replaced_at", T, nullable=False),
        sa.PrimaryKeyConstraint("item_id", "revision"))
    op.create_table(
        "sources", sa.Column("path", T, primary_key=True), sa.Column("sha256", T, nullable=False),
        sa.Column("format", T, nullable=False), sa.Column("encoding", T, nullable=False),
        sa.Column("threads", Int, nullable=False), sa.Column("ingested_at", T, nullable=False))
    op.create_table(
        "predictions", sa.Column("item_id", T, sa.ForeignKey("items.item_id"), nullable=False),
        sa.Column("model_version", T, nullable=False), sa.Column("text_sha256", T, nullable=False),
        sa.Column("sentiment", T, nullable=False), sa.Column("record", T, nullable=False),
        sa.Column("run_id", Int), sa.Column("predicted_at", T, nullable=False),
        sa.PrimaryKeyConstraint("item_id", "model_version"))
    op.create_table(
        "runs", sa.Column("run_id", Int, primary_key=True, autoincrement=True), sa.Column("job", T, nullable=False),
        sa.Column("started_at", T, nullable=False), sa.Column("ended_at", T), sa.Column("status", T, nullable=False),
        sa.Column("model_version", T), sa.Column("counts", T, nullable=False, server_default="{}"),
        sa.Column("errors", T, nullable=False, server_default="[]"), sqlite_autoincrement=True)
