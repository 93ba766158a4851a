"""Short SQLite writes on the caller's thread, for files committed without fsync.

An agent checkpoints every step. With a SQLite file in WAL mode at
``synchronous=NORMAL`` a checkpoint's commit appends a few pages to the WAL and does
not wait for the disk: about 30 µs. Handing it to a worker thread, as every other
blocking call of the runtime is, costs three times that on a two-core machine (the
hand-off, the wake-up, the result coming back to the event loop).

`InlineWriter` makes the write on the calling thread, but only when that cannot block:
its connection has a zero busy timeout, so when another connection holds the file's
write lock the transaction does not start and `InlineWriter.run` returns ``None``;
the caller then makes the same write through its pooled engine in a worker thread,
which waits for the lock as usual. Two threads never share the connection: a second
caller finds it taken and gets ``None`` too.

What can still take time on the calling thread is SQLite's WAL checkpoint, which the
committing connection runs once the WAL passes the store's threshold (16,384 pages,
thousands of steps apart) and which syncs the file to disk.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from typing import Any

Statement = tuple[str, Sequence[Any]]

_BUSY = ("database is locked", "database is busy", "database table is locked")


class InlineWriter:
    """One SQLite connection for transactions that run at once or not at all.

    Args:
        path: the database file (already migrated, in WAL mode).
    """

    def __init__(self, path: str) -> None:
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in (
            "PRAGMA busy_timeout=0",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA wal_autocheckpoint=16384",
        ):
            self._conn.execute(pragma)

    def run(self, statements: Sequence[Statement]) -> bool | None:
        """Run ``statements`` in one transaction if the write lock is free now.

        The transaction commits only if the first statement changes a row; otherwise it
        is rolled back and the rest are not run.

        Returns:
            ``True`` committed, ``False`` rolled back because the first statement
            changed nothing, ``None`` not run: the file or this connection is busy.

        Raises:
            sqlite3.IntegrityError: a statement broke a constraint (rolled back).
            sqlite3.Error: any other database error (rolled back).
        """
        if not self._lock.acquire(blocking=False):
            return None
        try:
            return self._transaction(statements)
        finally:
            self._lock.release()

    def _transaction(self, statements: Sequence[Statement]) -> bool | None:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            (first_sql, first_params), *rest = statements
            if conn.execute(first_sql, first_params).rowcount != 1:
                conn.execute("ROLLBACK")
                return False
            for sql, params in rest:
                conn.execute(sql, params)
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError) and _busy(exc):
                return None  # nothing was written; the caller waits in a worker thread
            raise
        return True

    def close(self) -> None:
        """Close the connection (waits for a transaction in progress on another thread)."""
        with self._lock:
            self._conn.close()


def _busy(exc: sqlite3.OperationalError) -> bool:
    return any(text in str(exc) for text in _BUSY)
