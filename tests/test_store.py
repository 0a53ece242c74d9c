"""The store on both backends (SQLite file, PostgreSQL server): concurrent writers,
migrations, forks, data versions, recompute jobs and the published row, and what only a
server does (lost connections, passwords in URLs). The app-level paths of web.sync (two
apps on one store, an external recompute, gunicorn workers) run on both backends in
test_serving.py."""

from __future__ import annotations

import os
import threading

import pytest

import web
from web.store import SCHEMA_VERSION, Store, StoreError


def record(fid: str, name: str) -> dict:
    return {
        "id": fid,
        "layer": "training_institution",
        "county": "南湖区",
        "name": name,
        "lon": 120.75,
        "lat": 30.76,
    }


# ----------------------------------------------------------- concurrent writers


def test_concurrent_writers_get_distinct_ids_and_lose_nothing(database):
    """Writers on connections of their own (as server processes) at once: generated ids
    are distinct and gapless, every acknowledged write is stored with its audit entry,
    its data versions and (facility writes) its recompute job."""
    Store(database).close()  # migrated once before the race
    writers, rounds = 4, 8
    barrier = threading.Barrier(writers)
    acked: list[list[tuple[str, str]]] = [[] for _ in range(writers)]
    errors: list[BaseException] = []

    def write(k: int) -> None:
        store = Store(database)
        try:
            barrier.wait()
            for i in range(rounds):
                name = f"写者{k}-{i}"
                with store.write(None, "upload", "facility", name) as tx:
                    made = [tx.new_facility_id("TI-330402-A") for _ in range(2)]
                    for n, fid in enumerate(made):
                        tx.put_facility(record(fid, f"{name}-{n}"))
                    tx.put_facility(record(f"GIVEN-{k}-{i}", name))
                acked[k] += [(fid, f"{name}-{n}") for n, fid in enumerate(made)]
                acked[k].append((f"GIVEN-{k}-{i}", name))
                with store.write(None, "create", "course", name) as tx:  # content only
                    tx.insert_item(
                        "courses",
                        f"GIVEN-{k}-{i}",
                        {"title": name, "trade": "电工", "start_date": "2099-01-01", "seats": i},
                    )
        except BaseException as exc:  # reported below, with the thread's traceback
            errors.append(exc)
            raise
        finally:
            store.close()

    threads = [threading.Thread(target=write, args=(k,)) for k in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors

    everything = [pair for pairs in acked for pair in pairs]
    made = sorted(fid for fid, _ in everything if fid.startswith("TI-"))
    assert made == [f"TI-330402-A{n:03d}" for n in range(1, 2 * writers * rounds + 1)]
    store = Store(database)
    for fid, name in everything:
        assert store.facility(fid)["name"] == name
    assert store.facility_count() == len(everything) == 3 * writers * rounds
    writes = writers * rounds
    assert store.count_audit("upload") == store.count_audit("create") == writes
    assert store.data_versions() == {"facilities": writes, "content": 2 * writes, "items": writes}
    versions = store.conn.execute("SELECT facilities_version FROM jobs ORDER BY id").fetchall()
    assert [int(r[0]) for r in versions] == list(range(1, writes + 1))  # one job per write
    assert store.jobs_waiting() == writes
    courses = store.conn.execute("SELECT count(*) FROM courses").fetchone()[0]
    assert courses == writes


def test_processes_starting_together_migrate_once(database):
    starters = 4
    barrier = threading.Barrier(starters)
    versions: list[int] = []
    errors: list[BaseException] = []

    def start() -> None:
        barrier.wait()
        try:
            store = Store(database)
            versions.append(store.version)
            store.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(starters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert versions == [SCHEMA_VERSION] * starters
    store = Store(database)
    assert store.data_versions() == {"facilities": 0, "content": 0, "items": 0}  # seeded once
    if store.path is None:
        rows = store.conn.execute("SELECT version FROM schema_version ORDER BY version")
        assert [r[0] for r in rows] == list(range(1, SCHEMA_VERSION + 1))


def test_a_forked_process_has_its_own_connection(database):
    """A server worker forked from a process that used the store (gunicorn --preload)
    connects anew, and leaves the parent's connection working."""
    store = Store(database)
    with store.write(None, "create", "facility", "A") as tx:
        tx.put_facility(record("A", "甲"))
    parent_conn = id(store.conn)  # not a reference: the child drops the object
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports by its exit status
        code = 1
        try:
            assert id(store.conn) != parent_conn
            with store.write(None, "create", "facility", "B") as tx:
                tx.put_facility(record("B", "乙"))
            code = 0 if store.facility_count() == 2 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert id(store.conn) == parent_conn  # still open, still usable
    assert store.facility("B")["name"] == "乙" and store.data_versions()["facilities"] == 2


# -------------------------------------------------- data versions, jobs, publishing


def test_facilities_snapshot_is_one_point_in_time(database, monkeypatch):
    """A write committed between reading the version and reading the records is in
    neither: the records are those of the version returned."""
    store, other = Store(database), Store(database)
    with store.write(None, "create", "facility", "A") as tx:
        tx.put_facility(record("A", "甲"))
    read_records = Store.facility_records

    def records_after_a_concurrent_write(self):
        with other.write(None, "create", "facility", "B") as tx:  # another connection
            tx.put_facility(record("B", "乙"))
        return read_records(self)

    monkeypatch.setattr(Store, "facility_records", records_after_a_concurrent_write)
    records, version = store.facilities_snapshot()
    monkeypatch.undo()
    assert (version, [r["id"] for r in records]) == (1, ["A"])
    records, version = store.facilities_snapshot()
    assert (version, [r["id"] for r in records]) == (2, ["A", "B"])  # in insertion order


def test_jobs_publish_and_stale_jobs(database, monkeypatch):
    store = Store(database)
    jobs = []
    for fid, name in (("A", "甲"), ("B", "乙")):
        with store.write(None, "create", "facility", fid) as tx:
            tx.put_facility(record(fid, name))
        jobs.append(tx.job_id)
        assert tx.versions["facilities"] == len(jobs)
    with store.write(None, "create", "course", "1") as tx:
        course = {"title": "班", "trade": "电工", "start_date": "2099-01-01", "seats": 1}
        tx.insert_item("courses", "A", course)
    assert tx.job_id is None and "facilities" not in tx.versions  # content only
    assert store.data_versions() == {"facilities": 2, "content": 3, "items": 1}
    assert store.published() is None and store.jobs_waiting() == 2

    job = store.claim_job("worker-1")  # the newest covers the older one
    assert (job["id"], job["state"], job["worker"]) == (jobs[1], "running", "worker-1")
    assert store.claim_job("worker-2") == store.job(jobs[0])  # the older one is still queued
    # worker-1 died: its heartbeat ages, and its job is taken again
    store.conn.execute("UPDATE jobs SET heartbeat = 0 WHERE id = ?", (jobs[1],))
    again = store.claim_job("worker-3", stale_s=60)
    assert (again["id"], again["worker"]) == (jobs[1], "worker-3")
    assert isinstance(again["heartbeat"], float) and again["heartbeat"] > 1e9

    assert store.publish(2, "results-2")
    published = store.published()
    assert (published["facilities_version"], published["results_key"]) == (2, "results-2")
    assert not store.publish(1, "results-1")  # never back to older results
    assert store.published()["results_key"] == "results-2"
    store.finish_job(jobs[1], state="done", published_version=2, seconds=0.25, detail="{}")
    done = store.job(jobs[1])
    assert (done["state"], done["published_version"], done["seconds"]) == ("done", 2, 0.25)
    assert store.jobs_waiting() == 1  # worker-2's, still running


# ----------------------------------------------------------- PostgreSQL only


def test_password_is_in_no_message(postgres):
    url = postgres.new_database()
    store = Store(url)
    assert (
        store.location
        == f"postgresql://skillcircle@127.0.0.1:{postgres.port}/" + (url.rsplit("/", 1)[1])
    )
    wrong = url.replace(":pg-test-secret@", ":not-the-password@")
    with pytest.raises(StoreError, match="cannot connect") as raised:
        Store(wrong)
    assert str(raised.value).startswith(store.location)
    assert "not-the-password" not in str(raised.value)
    assert "password authentication failed" in str(raised.value)


def test_a_dropped_connection_is_replaced(postgres):
    """The server ends the session (restart, failover, idle timeout): the next call
    fails, the one after gets a new connection."""
    import psycopg

    store = Store(postgres.new_database())
    with store.write(None, "create", "facility", "A") as tx:
        tx.put_facility(record("A", "甲"))
    pid = store.conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    with psycopg.connect(postgres.url(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(psycopg.OperationalError):
        store.facility_count()
    assert store.facility_count() == 1
    assert store.conn.execute("SELECT pg_backend_pid()").fetchone()[0] != pid
    with store.write(None, "create", "facility", "B") as tx:
        tx.put_facility(record("B", "乙"))
    assert store.data_versions()["facilities"] == 2


def test_ratelimit_counters_are_per_database(postgres):
    ratelimit_file = web.ratelimit_file.__wrapped__  # the conftest keeps them in tmp
    one, two = Store(postgres.new_database()), Store(postgres.new_database())
    assert ratelimit_file(one) != ratelimit_file(two)
    assert ratelimit_file(one).parent.name == "instance"
    assert ratelimit_file(one) == ratelimit_file(Store(one.url))
