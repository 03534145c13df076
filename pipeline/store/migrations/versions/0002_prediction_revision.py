"""Schema v2: a prediction belongs to one text revision of its item (edited comments are classified again).

The key becomes (item_id, model_version, revision): an edit gets a new prediction, the old one stays as
history. Existing rows get the revision whose text they were made from (0 if it is unknown). The table
is rebuilt (new table, copy, drop, rename), which SQLite needs for a new primary key.

Revision ID: 0002
Revises: 0001
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

T, Int = sa.Text, sa.Integer


def upgrade() -> None:
    op.create_table(
        "predictions_v2", sa.Column("item_id", T, sa.ForeignKey("items.item_id"), nullable=False),
        sa.Column("model_version", T, nullable=False), sa.Column("revision", Int, nullable=False),
        sa.Column("text_sha256", T, nullable=False), sa.Column("sentiment", T, nullable=False),
        sa.Column("record", T, nullable=False), sa.Column("run_id", Int), sa.Column("predicted_at", T, nullable=False),
        sa.PrimaryKeyConstraint("item_id", "model_version", "revision", name="predictions_v2_pkey"))
    op.execute(
        "INSERT INTO predictions_v2(item_id, model_version, revision, text_sha256, sentiment, record, run_id, "
        "predicted_at) SELECT p.item_id, p.model_version, "
        "COALESCE((SELECT i.revision FROM items i WHERE i.item_id = p.item_id AND i.text_sha256 = p.text_sha256), "
        "(SELECT MAX(v.revision) FROM item_revisions v WHERE v.item_id = p.item_id "
        "AND v.text_sha256 = p.text_sha256), 0), "
        "p.text_sha256, p.sentiment, p.record, p.run_id, p.predicted_at FROM predictions p")
    op.drop_table("predictions")
    op.rename_table("predictions_v2", "predictions")
    op.create_index("predictions_version", "predictions", ["model_version", "item_id", "revision"])
