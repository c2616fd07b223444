"""The database tables. Table models never double as GraphQL types."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from tocsin.storage.types import UTCDateTime, new_id, utcnow


def _utc(nullable: bool = False, index: bool = False) -> Any:
    column: Column[datetime] = Column(UTCDateTime(), nullable=nullable, index=index)
    if nullable:
        return Field(default=None, sa_column=column)
    return Field(default_factory=utcnow, sa_column=column)


class ChannelRow(SQLModel, table=True):
    __tablename__ = "channel"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    kind: str = Field(max_length=16, index=True)
    name: str = Field(max_length=200)
    enabled: bool = True
    event_types: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    event_categories: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    min_priority: str = Field(default="INFO", max_length=16)
    metadata_match: dict[str, Any] | None = Field(
        default=None, sa_column=Column(JSON, nullable=True)
    )
    mode: str = Field(default="REALTIME", max_length=16)
    muted_until: datetime | None = _utc(nullable=True)
    max_retries: int = 3
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    "Non-secret fields of the kind (email recipients, SMTP host, chat id, header names)."
    secrets_ciphertext: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    "Fernet token of a JSON object holding every secret field; never leaves storage."
    secrets_set: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    hints: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    last_test: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = _utc()
    updated_at: datetime = _utc()


class ApiTokenRow(SQLModel, table=True):
    __tablename__ = "api_token"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    name: str = Field(max_length=200)
    role: str = Field(max_length=16)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = _utc()
    last_used_at: datetime | None = _utc(nullable=True)
    revoked_at: datetime | None = _utc(nullable=True)


class AuditEntryRow(SQLModel, table=True):
    __tablename__ = "audit_entry"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    at: datetime = _utc()
    actor: str = Field(max_length=200)
    action: str = Field(max_length=64, index=True)
    target: str | None = Field(default=None, max_length=200)
    details: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class EventTypeRow(SQLModel, table=True):
    __tablename__ = "event_type"

    name: str = Field(primary_key=True, max_length=64)
    category: str = Field(max_length=64)
    description: str = Field(default="", max_length=1000)
    default_priority: str = Field(max_length=16)
    enabled: bool = True
    built_in: bool = False
    dedup_window_seconds: int | None = None


class EventRow(SQLModel, table=True):
    __tablename__ = "event"
    __table_args__ = (
        UniqueConstraint("idempotency_key", name="uq_event_idempotency_key"),
        Index("ix_event_type_dedup", "type", "dedup_key", "created_at"),
        Index("ix_event_created_at", "created_at"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    type: str = Field(max_length=64, index=True)
    title: str = Field(max_length=500)
    detail: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    metadata_: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column("metadata", JSON, nullable=False)
    )
    priority: str = Field(max_length=16)
    dedup_key: str | None = Field(default=None, max_length=200)
    idempotency_key: str | None = Field(default=None, max_length=200)
    source: str | None = Field(default=None, max_length=200)
    deduplicated: bool = False
    occurred_at: datetime = _utc()
    created_at: datetime = _utc()


_QUEUED = text("status IN ('PENDING', 'RETRYING')")
"Deliveries waiting for a send: what ``ix_delivery_queue`` holds (``storage/claims.py``)."


class DeliveryRow(SQLModel, table=True):
    __tablename__ = "delivery"
    __table_args__ = (
        Index("ix_delivery_due", "status", "next_attempt_at"),
        # The queue in claim order: a claim reads its front, however long the backlog,
        # from the index alone (the channel, to skip a full channel's backlog, and the
        # status its condition names: SQLite would read the table for it otherwise).
        Index(
            "ix_delivery_queue",
            "next_attempt_at",
            "id",
            "channel_id",
            "status",
            sqlite_where=_QUEUED,
            postgresql_where=_QUEUED,
        ),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    event_id: str = Field(
        sa_column=Column(
            String(32),
            ForeignKey("event.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        )
    )
    channel_id: str | None = Field(
        default=None,
        sa_column=Column(
            String(32), ForeignKey("channel.id", ondelete="SET NULL"), nullable=True, index=True
        ),
    )
    channel_kind: str = Field(max_length=16)
    status: str = Field(default="PENDING", max_length=16)
    attempt_count: int = 0
    cycle_start: int = 0
    "attempt_count when the current retry budget began (retryDelivery starts a new one)."
    next_attempt_at: datetime | None = _utc(nullable=True)
    lease_expires_at: datetime | None = _utc(nullable=True)
    claim_token: str | None = Field(default=None, max_length=32)
    "Set by each claim: only the holder of the current claim may record the outcome."
    last_error: str | None = Field(default=None, max_length=500)
    last_status_code: int | None = None
    created_at: datetime = _utc()
    delivered_at: datetime | None = _utc(nullable=True)
    reason: str | None = Field(default=None, sa_column=Column(String(500), nullable=True))
    "Why routing suppressed it (muted, deduplicated); null for a delivery routing sent."
    digest_id: str | None = Field(default=None, max_length=32, index=True)
    "The digest this event's delivery is batched in, or that this delivery carries."


class DigestRow(SQLModel, table=True):
    """One channel's events of one priority in one period (``storage/digests.py``)."""

    __tablename__ = "digest"
    __table_args__ = (
        # At most one open digest per channel and priority, whoever writes at once.
        Index(
            "uq_digest_open",
            "channel_id",
            "priority",
            unique=True,
            sqlite_where=text("status = 'OPEN'"),
            postgresql_where=text("status = 'OPEN'"),
        ),
        Index("ix_digest_due", "status", "period_start"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    channel_id: str | None = Field(
        default=None,
        sa_column=Column(String(32), ForeignKey("channel.id", ondelete="SET NULL"), nullable=True),
    )
    channel_kind: str = Field(max_length=16)
    priority: str = Field(max_length=16)
    status: str = Field(default="OPEN", max_length=16)
    event_count: int = 0
    period_start: datetime = _utc()
    period_end: datetime | None = _utc(nullable=True)
    "When it was closed; None while it is open."
    delivery_id: str | None = Field(default=None, max_length=32, index=True)
    "The delivery that carries it, from its closing on."
    parts_sent: int = 0
    "Messages of it that went out, so that a retry resumes after them."


class DeliveryAttemptRow(SQLModel, table=True):
    __tablename__ = "delivery_attempt"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    delivery_id: str = Field(
        sa_column=Column(
            String(32),
            ForeignKey("delivery.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        )
    )
    number: int
    started_at: datetime = _utc()
    duration_ms: float
    ok: bool
    status_code: int | None = None
    error: str | None = Field(default=None, max_length=500)


class MetaRow(SQLModel, table=True):
    """Small facts about the installation (the encryption key check)."""

    __tablename__ = "meta"

    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(sa_column=Column(Text, nullable=False))
