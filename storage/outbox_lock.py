"""Who delivers from a SQLite database: the one process holding an exclusive lock on a
file beside it (``tocsin.db.outbox-lock``), for as long as it runs.

SQLite has no ``SKIP LOCKED``, and a worker there treats the SENDING rows it finds at
start as its dead predecessor's. Both are only safe with a single deliverer per file, so a
second one is refused rather than left to re-send what the first is sending. The kernel
drops the lock when its holder dies, even by ``kill -9``: holding it proves that every
SENDING row in the file was left by a process that is gone. PostgreSQL needs none of this
(leases and ``FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from tocsin.errors import OutboxOwnedElsewhere

__all__ = ["OutboxLock", "OutboxOwnedElsewhere", "own_sqlite_outbox", "sqlite_database_path"]

SUFFIX = ".outbox-lock"


def sqlite_database_path(url: str | URL) -> Path | None:
    """The file of a SQLite URL; None for PostgreSQL and for an in-memory database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).resolve()


def _this_process() -> str:
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "python"
    return f"pid {os.getpid()}, {command[:200]}"


class OutboxLock:
    """The exclusive right to deliver from one SQLite database, until ``release()`` or the
    end of the process."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, database: Path) -> OutboxLock:
        """Take the lock without waiting; ``OutboxOwnedElsewhere`` names its holder."""
        path = database.with_name(database.name + SUFFIX)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # as the database's
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 300, 0).decode(errors="replace").strip() or "pid unknown"
            os.close(fd)
            raise OutboxOwnedElsewhere(
                f"another process ({holder}) delivers from {database}; only one may: stop "
                "it, or run this one as `tocsin serve --no-worker` (the API alone; several "
                "workers need PostgreSQL)"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, (_this_process() + "\n").encode(), 0)
        return cls(path, fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing the last descriptor drops the flock


def own_sqlite_outbox(url: str) -> OutboxLock | None:
    """Take the outbox lock of a SQLite URL now, for the life of the process (nothing to
    take for PostgreSQL or an in-memory database)."""
    path = sqlite_database_path(url)
    return OutboxLock.acquire(path) if path is not None else None
