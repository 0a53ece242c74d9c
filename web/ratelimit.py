"""Rate-limit counters that every server process shares: a ``limits`` storage on SQLite.

flask-limiter keeps its counters in a ``limits`` storage. The in-memory one is
per process, so with ``skillcircle serve --workers 4`` a client would get four
times its limit. This storage (URI ``sqlite:///<file>``) keeps fixed-window
counters in one small SQLite file beside the store (WAL; ``synchronous=OFF``:
a counter lost in a power cut is harmless), so all workers on the machine count
together without another server. Larger deployments may pass a Redis or
memcached URI instead (``SKILLCIRCLE_RATELIMIT_STORAGE``); ``limits`` supports them.

A request costs one statement: flask-limiter increments a counter (exact: the
upsert returns the shared count) and then reads it back for the ``X-RateLimit-*``
headers; those reads are answered from what this thread's last increment or read
returned, for at most :data:`READ_CACHE_S` and never past the window's end.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from typing import Any

from limits.storage import Storage

#: Expired counters are removed every this many increments (per process).
PRUNE_EVERY = 1000
#: A thread's reads of a counter within this many seconds of its last increment or
#: read of it are answered without a query (the headers of one request).
READ_CACHE_S = 0.05
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS counters "
    "(key TEXT PRIMARY KEY, value INTEGER NOT NULL, expiry REAL NOT NULL)"
)


class SQLiteStorage(Storage):
    """Fixed-window counters in a SQLite file (``sqlite:///path/to/file``)."""

    STORAGE_SCHEME = ["sqlite"]  # noqa: RUF012 - the type limits declares

    def __init__(self, uri: str, wrap_exceptions: bool = False, **options: Any) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self.path = uri.removeprefix("sqlite:///")
        if not self.path or self.path == uri:
            raise ValueError(f"rate-limit storage {uri!r}: write sqlite:///<file>")
        self._local = threading.local()
        self._calls = 0
        self._conn().execute(_SCHEMA)

    @property
    def base_exceptions(self) -> type[Exception]:
        """The errors of this storage (``limits`` treats them as a storage failure)."""
        return sqlite3.Error

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            # a connection never crosses a fork (gunicorn forks the workers)
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=OFF")
            self._local.conn, self._local.pid = conn, os.getpid()
            self._local.seen = {}
        return conn

    def _seen(self, key: str) -> tuple[int, float] | None:
        """This thread's recent (count, expiry) of ``key``, if still valid."""
        seen: dict[str, tuple[int, float, float]] = getattr(self._local, "seen", {})
        hit = seen.get(key)
        if hit is None:
            return None
        value, expiry, at = hit
        if time.monotonic() - at > READ_CACHE_S or expiry <= time.time():
            seen.pop(key, None)
            return None
        return value, expiry

    def _remember(self, key: str, value: int, expiry: float) -> None:
        seen = self._local.__dict__.setdefault("seen", {})
        if len(seen) > 64:  # only the keys of the last requests matter
            seen.clear()
        seen[key] = (value, expiry, time.monotonic())

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add ``amount`` to a counter (a new window once it expired); its new value."""
        now = time.time()
        self._calls += 1
        if self._calls % PRUNE_EVERY == 0:
            self.prune()
        row = (
            self._conn()
            .execute(
                "INSERT INTO counters (key, value, expiry) VALUES (?1, ?2, ?3) "
                "ON CONFLICT(key) DO UPDATE SET "
                "value = CASE WHEN expiry <= ?4 THEN ?2 ELSE value + ?2 END, "
                "expiry = CASE WHEN expiry <= ?4 THEN ?3 ELSE expiry END "
                "RETURNING value, expiry",
                (key, amount, now + expiry, now),
            )
            .fetchone()
        )
        self._remember(key, int(row[0]), float(row[1]))
        return int(row[0])

    def _read(self, key: str) -> tuple[int, float] | None:
        """(count, expiry) of a live counter, or None."""
        hit = self._seen(key)
        if hit is not None:
            return hit
        row = (
            self._conn()
            .execute(
                "SELECT value, expiry FROM counters WHERE key = ? AND expiry > ?",
                (key, time.time()),
            )
            .fetchone()
        )
        if row is None:
            return None
        self._remember(key, int(row[0]), float(row[1]))
        return int(row[0]), float(row[1])

    def get(self, key: str) -> int:
        """A counter's value in its current window (0 when expired or absent)."""
        hit = self._read(key)
        return 0 if hit is None else hit[0]

    def get_expiry(self, key: str) -> float:
        """When a counter's window ends (epoch seconds; now when absent)."""
        hit = self._read(key)
        return time.time() if hit is None else hit[1]

    def check(self) -> bool:
        """Whether the counters file answers."""
        try:
            self._conn().execute("SELECT 1").fetchone()
        except sqlite3.Error:
            return False
        return True

    def reset(self) -> int | None:
        """Delete every counter; how many there were."""
        conn = self._conn()
        self._local.seen = {}
        return conn.execute("DELETE FROM counters").rowcount

    def clear(self, key: str) -> None:
        """Delete one counter."""
        conn = self._conn()
        self._local.seen.pop(key, None)
        conn.execute("DELETE FROM counters WHERE key = ?", (key,))

    def prune(self) -> int:
        """Remove expired counters (every :data:`PRUNE_EVERY` increments)."""
        return (
            self._conn().execute("DELETE FROM counters WHERE expiry <= ?", (time.time(),)).rowcount
        )
