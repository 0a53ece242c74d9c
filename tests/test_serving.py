"""Serving at scale (web/sync.py, web/serving.py): several processes see one write, recompute
happens off the request path, kill -9 of a worker or of the recompute loses nothing."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import signal
import subprocess
import time
import urllib.request

import pytest
from test_faults import call, start_server
from webapp import make_app

from web.serving import wait_until
from web.store import Store
from web.sync import Recomputer

MOVED = "TB-330402-001"
TO = (120.79, 30.761)


def _moved_to(app) -> tuple[float, float]:
    row = app.extensions["skillcircle"].facility_row(MOVED)
    return round(row.geometry.x, 6), round(row.geometry.y, 6)


def test_two_workers_see_one_write(study, database):
    """Two app instances on one store (two server processes): a move through one is served
    by the other once it follows the published results."""
    one = make_app(study, database)  # recomputes inline, publishes
    two = make_app(study, database)  # a second process: only follows
    _, token = one.extensions["skillcircle.store"].create_token("南湖区总工会", "南湖区")
    headers = {"Authorization": f"Bearer {token}"}
    before = two.test_client().get("/api/version").get_json()
    answer = one.test_client().patch(
        f"/api/admin/facilities/{MOVED}", json={"lon": TO[0], "lat": TO[1]}, headers=headers
    )
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["job"]["state"] == "done" and body["recomputed"]["layers"] == ["training_base"]
    assert body["data_version"] == before["facilities_version"] + 1
    assert _moved_to(two) != TO
    assert two.extensions["skillcircle.follower"].poll_once()
    assert _moved_to(two) == TO == _moved_to(one)
    after = two.test_client().get("/api/version")
    assert after.get_json()["facilities_version"] == body["data_version"]
    assert after.headers["X-Data-Version"] == str(body["data_version"])
    village = two.test_client().get("/api/villages/330402007024").get_json()
    again = one.test_client().get("/api/villages/330402007024").get_json()
    assert village == again  # the same results, read from the cache the recompute wrote
    assert not two.extensions["skillcircle.follower"].poll_once()  # nothing newer


def test_a_write_answers_at_once_and_its_job_publishes(study, database):
    app = make_app(study, database, RECOMPUTE="external")
    store: Store = app.extensions["skillcircle.store"]
    _, token = store.create_token("南湖区总工会", "南湖区")
    client = app.test_client()
    answer = client.patch(
        f"/api/admin/facilities/{MOVED}",
        json={"lon": TO[0], "lat": TO[1]},
        headers={"Authorization": f"Bearer {token}"},
    ).get_json()
    job = answer["job"]
    assert job["state"] == "queued" and "recomputed" not in answer
    version = client.get("/api/version").get_json()
    assert version["latest_facilities_version"] == answer["data_version"]
    assert version["facilities_version"] == answer["data_version"] - 1  # still the old one
    assert version["jobs_waiting"] == 1 and _moved_to(app) != TO
    # the recompute process (here: another Recomputer on the same store) does the work
    Recomputer(Store(database), study).run_once()
    done = client.get(job["url"], headers={"Authorization": f"Bearer {token}"}).get_json()
    assert done["state"] == "done" and done["published_version"] == answer["data_version"]
    assert app.extensions["skillcircle.follower"].poll_once() and _moved_to(app) == TO
    unknown = client.get("/api/admin/jobs/999999", headers={"Authorization": f"Bearer {token}"})
    assert unknown.status_code == 404 and unknown.is_json


def _claim_and_hang(database: str, study) -> None:
    """A recompute process that takes the job and never finishes it (until kill -9)."""
    import geo.study

    geo.study.Study.with_facilities = lambda *a, **k: time.sleep(3600)  # type: ignore[method-assign]
    Recomputer(Store(database), study, stale_s=1.0).run_once()


def test_kill_9_of_the_recompute_keeps_the_previous_version_and_loses_nothing(study, database):
    app = make_app(study, database, RECOMPUTE="external")
    store: Store = app.extensions["skillcircle.store"]
    _, token = store.create_token("南湖区总工会", "南湖区")
    answer = (
        app.test_client()
        .patch(
            f"/api/admin/facilities/{MOVED}",
            json={"lon": TO[0], "lat": TO[1]},
            headers={"Authorization": f"Bearer {token}"},
        )
        .get_json()
    )
    child = multiprocessing.get_context("fork").Process(
        target=_claim_and_hang, args=(database, study)
    )
    child.start()
    assert wait_until(lambda: store.job(answer["job"]["id"])["state"] == "running", 30)
    os.kill(child.pid, signal.SIGKILL)
    child.join(10)
    # the acknowledged write is in the store; the old version is still served
    assert store.facility(MOVED)["lon"] == TO[0]
    assert not app.extensions["skillcircle.follower"].poll_once() and _moved_to(app) != TO
    # a new recompute process takes the job again once its heartbeat is stale
    time.sleep(1.2)
    finished = Recomputer(Store(database), study, stale_s=1.0).run_once()
    assert finished is not None and finished["state"] == "done"
    assert app.extensions["skillcircle.follower"].poll_once() and _moved_to(app) == TO


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


def _versions(base: str, n: int) -> set[int]:
    seen = set()
    for _ in range(n):  # new connections: the kernel spreads them over the workers
        with urllib.request.urlopen(base + "/api/version", timeout=10) as response:
            seen.add(json.loads(response.read())["facilities_version"])
    return seen


@pytest.mark.slow
def test_gunicorn_workers_follow_a_move_and_survive_kill_9(study, database, tmp_path):
    """``serve --workers 2`` as a real server: a move is answered at once and is served by
    every worker within seconds; kill -9 of a worker and of the recompute process lose
    no acknowledged write, and the server keeps answering."""
    Store(database)  # created before the server forks (so the test can make a token)
    _, token = Store(database).create_token("南湖区总工会", "南湖区")
    proc, base = start_server(study.settings.cache_dir, database, tmp_path, workers=2)
    try:
        move = {"lon": TO[0], "lat": TO[1]}
        code, answer = call("PATCH", f"{base}/api/admin/facilities/{MOVED}", token, move)
        assert code == 200 and answer["job"]["state"] in ("queued", "running")
        target = answer["data_version"]
        assert wait_until(lambda: _versions(base, 8) == {target}, 60), "not every worker moved"
        assert wait_until(lambda: Store(database).job(answer["job"]["id"])["worker"], 30)
        # kill -9 one worker: gunicorn starts another, which catches up
        recompute = Store(database).job(answer["job"]["id"])["worker"]
        workers = [p for p in _children(proc.pid) if not recompute.endswith(f":{p}")]
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)
        assert wait_until(lambda: _versions(base, 6) == {target}, 60)
        # kill -9 the recompute process (the one that did the first job): nothing
        # acknowledged is lost, the supervisor starts another, which publishes the next write
        recompute_pid = int(Store(database).job(answer["job"]["id"])["worker"].rsplit(":", 1)[1])
        assert recompute_pid in _children(proc.pid)
        os.kill(recompute_pid, signal.SIGKILL)
        code, second = call(
            "PATCH", f"{base}/api/admin/facilities/{MOVED}", token, {"lon": 120.77, "lat": 30.75}
        )
        assert code == 200
        assert Store(database).facility(MOVED)["lon"] == 120.77  # acknowledged: stored
        assert wait_until(lambda: _versions(base, 8) == {second["data_version"]}, 90)
        assert recompute_pid not in _children(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_answers_carry_an_etag_and_revalidate_cheaply(study, database):
    app = make_app(study, database)
    client = app.test_client()
    first = client.get("/q/330402007024")
    tag = first.headers["ETag"]
    assert first.status_code == 200 and first.headers["Cache-Control"] == "public, no-cache"
    again = client.get("/q/330402007024", headers={"If-None-Match": tag})
    assert again.status_code == 304 and not again.data and again.headers["ETag"] == tag
    assert client.get("/api/stats", headers={"If-None-Match": tag}).status_code == 304
    qr = client.get("/q/330402007024.png")
    assert qr.headers["Cache-Control"] == "public, max-age=86400"
    # a new course changes what pages show: the old tag no longer matches
    store: Store = app.extensions["skillcircle.store"]
    _, token = store.create_token("南湖区总工会", "南湖区")
    course = {"title": "电工班", "trade": "电工", "start_date": "2099-01-01", "seats": 5}
    made = client.post(
        "/api/admin/facilities/TS-330402-001/courses",
        json=course,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert made.status_code == 201 and "no-store" in made.headers["Cache-Control"]
    changed = client.get("/q/330402007024", headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["ETag"] != tag
    assert "ETag" not in client.get("/api/admin/whoami").headers


def test_an_oversized_upload_is_refused_and_nothing_is_written(study, database):
    app = make_app(study, database, UPLOAD_MAX_ROWS=3)
    store: Store = app.extensions["skillcircle.store"]
    _, token = store.create_token("南湖区总工会", "南湖区")
    rows = "".join(f"样例{i},120.76,30.75\n" for i in range(4))
    before = store.data_versions()
    answer = app.test_client().post(
        "/api/admin/facilities/upload",
        data={
            "file": (io.BytesIO(("名称,经度,纬度\n" + rows).encode()), "名录.csv"),
            "crs": "wgs84",
        },
        headers={"Authorization": f"Bearer {token}"},
        content_type="multipart/form-data",
    )
    assert answer.status_code == 413
    body = answer.get_json()
    assert "4 rows, more than the 3 one file may hold" in body["message"]
    assert body["committed"] is False and store.data_versions() == before
