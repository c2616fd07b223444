"""the delivery queue as a partial index in claim order, so a claim reads the queue's
front instead of sorting the whole backlog

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 20:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_QUEUED = sa.text("status IN ('PENDING', 'RETRYING')")


def upgrade() -> None:
    op.create_index(
        "ix_delivery_queue",
        "delivery",
        ["next_attempt_at", "id", "channel_id", "status"],
        unique=False,
        sqlite_where=_QUEUED,
        postgresql_where=_QUEUED,
    )


def downgrade() -> None:
    op.drop_index("ix_delivery_queue", table_name="delivery")
