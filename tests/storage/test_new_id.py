"""Ids: 32 hex characters, ordered by creation time, unique within and across processes
(the random part comes from a pool of OS random bytes that a forked child does not share)."""

from __future__ import annotations

import os
import time

from tocsin.storage.types import new_id


def test_ids_are_32_hex_characters_unique_and_ordered_by_time() -> None:
    first = [new_id() for _ in range(5000)]  # more than one pool of bytes
    time.sleep(0.002)
    later = new_id()
    assert len(set(first)) == len(first)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in first)
    assert max(i[:12] for i in first) < later[:12]


def test_a_forked_child_makes_other_ids_than_its_parent() -> None:
    new_id()  # the parent's pool holds bytes the child must not reuse
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.write(write, "".join(new_id()[12:] for _ in range(3)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 4096).decode()
    os.close(read)
    parent = "".join(new_id()[12:] for _ in range(3))
    assert len(child) == 60 and child != parent
