"""API tokens: created once, stored as SHA-256 hashes, resolved to a Principal per request."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from pydantic import SecretStr
from sqlalchemy import func, select, update
from sqlmodel import col

from tocsin.resolvers import validation as check
from tocsin.resolvers.audit import record_audit
from tocsin.resolvers.context import Principal
from tocsin.resolvers.problems import Problem, ProblemError, Problems
from tocsin.storage.database import Database
from tocsin.storage.enums import Role
from tocsin.storage.tables import ApiTokenRow
from tocsin.storage.types import utcnow

TOKEN_PREFIX = "tcs_"  # noqa: S105  (a prefix, not a secret)
CACHE_SECONDS = 5.0
LAST_USED_RESOLUTION = 60.0
BOOTSTRAP_NAME = "bootstrap"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass(slots=True)
class _Cached:
    principal: Principal | None
    expires: float


class TokenResolver:
    """Maps a bearer token to a Principal; caches for a few seconds so a request costs no
    query, and writes ``lastUsedAt`` at most once a minute per token."""

    def __init__(self, db: Database, bootstrap: SecretStr | None) -> None:
        self._db = db
        self._bootstrap_hash = hash_token(bootstrap.get_secret_value()) if bootstrap else None
        self._cache: dict[str, _Cached] = {}
        self._last_written: dict[str, float] = {}

    async def resolve(self, token: str) -> Principal | None:
        if not token or len(token) > 200:
            return None
        digest = hash_token(token)
        if self._bootstrap_hash and hmac.compare_digest(digest, self._bootstrap_hash):
            return Principal(name=BOOTSTRAP_NAME, role=Role.ADMIN)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is None or cached.expires < now:
            cached = _Cached(await self._lookup(digest), now + CACHE_SECONDS)
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = cached
        if cached.principal is not None:
            await self._touch(cached.principal, now)
        return cached.principal

    def forget(self) -> None:
        self._cache.clear()

    async def _lookup(self, digest: str) -> Principal | None:
        async with self._db.read() as session:
            row = await session.scalar(
                select(ApiTokenRow).where(
                    col(ApiTokenRow.token_hash) == digest, col(ApiTokenRow.revoked_at).is_(None)
                )
            )
        if row is None:
            return None
        return Principal(name=row.name, role=Role(row.role), token_id=row.id)

    async def _touch(self, principal: Principal, now: float) -> None:
        token_id = principal.token_id
        if token_id is None or now - self._last_written.get(token_id, -1e9) < LAST_USED_RESOLUTION:
            return
        self._last_written[token_id] = now
        async with self._db.write() as session:
            await session.execute(
                update(ApiTokenRow)
                .where(col(ApiTokenRow.id) == token_id)
                .values(last_used_at=utcnow())
            )


async def create_token(
    *, db: Database, actor: str, name: str, role: Role
) -> tuple[str | None, ApiTokenRow | None, list[Problem]]:
    """A new token: its value (shown once), its row, or the problems with the input."""
    problems = Problems()
    name = name.strip()
    check.check_name(problems, "name", name)
    if problems:
        return None, None, problems.items
    token = generate_token()
    row = ApiTokenRow(name=name, role=role.value, token_hash=hash_token(token))
    async with db.write() as session:
        session.add(row)
        record_audit(
            session,
            actor=actor,
            action="token.create",
            target=row.id,
            details={"name": name, "role": role.value},
        )
    return token, row, []


async def revoke_token(*, db: Database, tokens: TokenResolver, actor: str, token_id: str) -> bool:
    try:
        async with db.write() as session:
            row = await session.get(ApiTokenRow, token_id, with_for_update=True)
            if row is None or row.revoked_at is not None:
                raise ProblemError([])
            row.revoked_at = utcnow()
            record_audit(
                session,
                actor=actor,
                action="token.revoke",
                target=row.id,
                details={"name": row.name, "role": row.role},
            )
    except ProblemError:
        return False
    tokens.forget()
    return True


async def list_tokens(db: Database) -> list[ApiTokenRow]:
    async with db.read() as session:
        stmt = select(ApiTokenRow).where(col(ApiTokenRow.revoked_at).is_(None))
        return list((await session.scalars(stmt.order_by(col(ApiTokenRow.id)))).all())


async def count_tokens(db: Database) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(ApiTokenRow)) or 0)
