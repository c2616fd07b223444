"""retention: an index on event.created_at, so pruning finds old events without a scan

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-03 11:20:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_event_created_at", "event", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_event_created_at", table_name="event")
