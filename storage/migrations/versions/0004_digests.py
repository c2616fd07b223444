"""digests as rows: a digest table, and each delivery's digest

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 11:15:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import tocsin.storage.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_OPEN = sa.text("status = 'OPEN'")


def upgrade() -> None:
    op.create_table(
        "digest",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=True),
        sa.Column("channel_kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("priority", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("period_start", tocsin.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("period_end", tocsin.storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("delivery_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("parts_sent", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["channel_id"], ["channel.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("digest", schema=None) as batch_op:
        batch_op.create_index(
            "uq_digest_open",
            ["channel_id", "priority"],
            unique=True,
            sqlite_where=_OPEN,
            postgresql_where=_OPEN,
        )
        batch_op.create_index("ix_digest_due", ["status", "period_start"], unique=False)
        batch_op.create_index(batch_op.f("ix_digest_delivery_id"), ["delivery_id"], unique=False)
    # Added in place (no table copy): on SQLite a copy of `delivery` would cascade.
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("digest_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True)
        )
        batch_op.create_index(batch_op.f("ix_delivery_digest_id"), ["digest_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_digest_id"))
        batch_op.drop_column("digest_id")
    with op.batch_alter_table("digest", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_digest_delivery_id"))
        batch_op.drop_index("ix_digest_due")
        batch_op.drop_index("uq_digest_open")
    op.drop_table("digest")
