"""50 concurrent sign-ups for 10 seats on a real server (waitress on 127.0.0.1, its own
process) give exactly 10 registrations, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from signup import COURSE, solve
from test_faults import call, start_server

from web.store import Store

SCHOOL = "TS-330402-001"
SEATS, PEOPLE = 10, 50


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_50_concurrent_sign_ups_for_10_seats_give_exactly_10(study, tmp_path, request, backend):
    if backend == "postgresql":
        database = request.getfixturevalue("postgres").new_database()
    else:
        database = str(tmp_path / "store.sqlite3")
    proc, base = start_server(study.settings.cache_dir, database, tmp_path)
    try:
        store = Store(database)
        _, token = store.create_token("报名测试", None)
        status, course = call(
            "POST",
            f"{base}/api/admin/facilities/{SCHOOL}/courses",
            token,
            {**COURSE, "seats": SEATS},
        )
        assert status == 201, course
        bodies = []
        for i in range(PEOPLE):
            _, challenge = call("GET", f"{base}/api/register/challenge")
            bodies.append(
                {
                    "kind": "course",
                    "item_id": course["id"],
                    "name": f"工人{i}",
                    "phone": f"1380000{i:04d}",
                    "consent": True,
                    "challenge": {
                        "token": challenge["token"],
                        "answer": solve(challenge["question"]),
                    },
                }
            )
        start = threading.Barrier(PEOPLE)
        results: list[tuple[int, dict]] = []
        lock = threading.Lock()

        def sign_up(body: dict) -> None:
            start.wait()
            got = call("POST", f"{base}/api/registrations", body=body, timeout=60)
            with lock:
                results.append(got)

        threads = [threading.Thread(target=sign_up, args=(b,)) for b in bodies]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        statuses = sorted(status for status, _ in results)
        assert statuses == [201] * SEATS + [409] * (PEOPLE - SEATS)
        assert {got["error"] for status, got in results if status == 409} == {"full"}
        codes = {got["code"] for status, got in results if status == 201}
        assert len(codes) == SEATS
        assert sorted(got["seats_left"] for status, got in results if status == 201) == list(
            range(SEATS)
        )
        assert store.registration_states() == {"active": SEATS}
        _, found = call("GET", f"{base}/api/search?kind=course")
        (item,) = [i for i in found["items"] if i["id"] == course["id"]]
        assert (item["seats_left"], item["registered"]) == (0, SEATS)
        # one more, after the rush: still full, nothing written
        _, challenge = call("GET", f"{base}/api/register/challenge")
        late = {**bodies[0], "phone": "13999999999"}
        late["challenge"] = {"token": challenge["token"], "answer": solve(challenge["question"])}
        assert call("POST", f"{base}/api/registrations", body=late)[0] == 409
        assert store.registration_states() == {"active": SEATS}
    finally:
        proc.terminate()
        proc.wait(30)
