"""web/ratelimit.py: rate-limit counters shared by processes (a SQLite limits storage)."""

from __future__ import annotations

import multiprocessing

from limits import parse
from limits.strategies import FixedWindowRateLimiter

from web.ratelimit import SQLiteStorage


def _hit(uri: str, n: int, out: multiprocessing.Queue) -> None:
    limiter = FixedWindowRateLimiter(SQLiteStorage(uri))
    item = parse("50 per minute")
    out.put(sum(limiter.hit(item, "client-1") for _ in range(n)))


def test_processes_share_one_limit(tmp_path):
    uri = f"sqlite:///{tmp_path / 'limits.sqlite3'}"
    # spawned, not forked: a fork of the test process copies locks its other threads
    # (earlier tests' followers) may hold, and a child hung on one (CI, once)
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = ctx.Queue()
    workers = [ctx.Process(target=_hit, args=(uri, 30, out)) for _ in range(3)]
    for w in workers:
        w.start()
    allowed = sum(out.get(timeout=120) for _ in workers)
    for w in workers:
        w.join(30)
    assert allowed == 50  # 90 hits from three processes, one limit of 50


def test_window_expires_and_counts_reset(tmp_path, monkeypatch):
    import web.ratelimit as rl

    storage = SQLiteStorage(f"sqlite:///{tmp_path / 'l.sqlite3'}")
    clock = [1000.0]
    monkeypatch.setattr(rl.time, "time", lambda: clock[0])
    assert [storage.incr("k", 10) for _ in range(3)] == [1, 2, 3]
    assert storage.get("k") == 3 and storage.get_expiry("k") == 1010.0
    clock[0] = 1010.5
    assert storage.get("k") == 0
    assert storage.incr("k", 10) == 1 and storage.get_expiry("k") == 1020.5
    assert storage.prune() == 0 and storage.check()
    clock[0] = 2000.0
    assert storage.prune() == 1
    storage.incr("a", 10)
    storage.clear("a")
    assert storage.get("a") == 0


def test_reads_after_an_increment_cost_no_query_and_expire_quickly(tmp_path, monkeypatch):
    """The headers' reads of a request are answered from its increment; past
    READ_CACHE_S a read sees the other processes' increments again."""
    import web.ratelimit as rl

    uri = f"sqlite:///{tmp_path / 'l.sqlite3'}"
    one, two = SQLiteStorage(uri), SQLiteStorage(uri)
    assert one.incr("k", 60) == 1 and two.incr("k", 60) == 2  # increments are exact
    statements: list[str] = []
    one._conn().set_trace_callback(statements.append)
    assert one.get("k") == 1 and one.get_expiry("k") > 0 and statements == []
    monkeypatch.setattr(rl, "READ_CACHE_S", -1.0)
    assert one.get("k") == 2 and len(statements) == 1
    one.clear("k")
    assert one.get("k") == 0 and two.get("k") == 0
