"""CPU time of process trees, from /proc (Linux): how much CPU a figure's requests cost each side (the app's
workers, the database server), to tell a CPU bound from a lock or a pool. Elsewhere every figure is 0."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from sqlalchemy import create_engine, text

from token_broker.store.database import normalize_url

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found += [int(child) for child in task.read_text().split()]
    return found


def _own_cpu(pid: int) -> float:
    """utime + stime of the process, and of its children that ended and were waited for."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return sum(int(value) for value in fields[11:15]) / TICKS


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by the process and all its descendants."""
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        total += _own_cpu(current)
        pending += _children(current)
    return total


def postmaster_pid(url: str) -> int:
    """The PostgreSQL server's main process: the parent of a backend of ours."""
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as connection:
            backend = int(connection.scalar(text("SELECT pg_backend_pid()")) or 0)
            # read while the backend lives: once the engine is disposed it exits, and a late read found no parent
            with contextlib.suppress(OSError, IndexError, ValueError):
                return int(Path(f"/proc/{backend}/stat").read_text().rpartition(")")[2].split()[1])
        return 0
    finally:
        engine.dispose()
