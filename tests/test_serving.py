"""Serving at scale (web/sync.py, web/serving.py): several processes see one write, recompute
happens off the request path, kill -9 of a worker or of the recompute loses nothing."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from typing import Any

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


def _move(client: Any, token: str) -> Any:
    """PATCH the facility :data:`MOVED` to :data:`TO` with ``token`` (its county's)."""
    return client.patch(
        f"/api/admin/facilities/{MOVED}",
        json={"lon": TO[0], "lat": TO[1]},
        headers={"Authorization": f"Bearer {token}"},
    )


def test_two_workers_see_one_write(study, database):
    """Two app instances on one store (two server processes): a move through one is served
    by the other once it follows the published results."""
    one = make_app(study, database)  # recomputes inline, publishes
    two = make_app(study, database)  # a second process: only follows
    _, token = one.extensions["skillcircle.store"].create_token("南湖区总工会", "南湖区")
    before = two.test_client().get("/api/version").get_json()
    answer = _move(one.test_client(), token)
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
    # the switched study's lookup tables were built before it was served
    tables = set(two.extensions["skillcircle"]._tables)
    assert {("cards", None), ("village_codes", None), (None, None)} <= tables


def test_a_write_answers_at_once_and_its_job_publishes(study, database):
    app = make_app(study, database, RECOMPUTE="external")
    store: Store = app.extensions["skillcircle.store"]
    _, token = store.create_token("南湖区总工会", "南湖区")
    client = app.test_client()
    answer = _move(client, token).get_json()
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
    answer = _move(app.test_client(), token).get_json()
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
    stats = client.get("/api/stats").headers["ETag"]
    assert client.get("/api/stats", headers={"If-None-Match": stats}).status_code == 304
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
    assert "电工班" in changed.get_data(as_text=True)
    assert client.get("/api/stats", headers={"If-None-Match": stats}).status_code == 200
    # a course at a facility the page does not list changes neither the page nor its tag
    tag = changed.headers["ETag"]
    index = study.village_position("330402007024")
    shown = {f["id"] for s in study.village_card(index).sections for f in s.facilities}
    far = next(f for f in study.facilities["id"] if f not in shown and f.startswith("TS-"))
    _, city = store.create_token("市总工会", None)
    made = client.post(
        f"/api/admin/facilities/{far}/courses",
        json=course | {"title": "焊工班"},
        headers={"Authorization": f"Bearer {city}"},
    )
    assert made.status_code == 201
    same = client.get("/q/330402007024", headers={"If-None-Match": tag})
    assert same.status_code == 304 and same.headers["ETag"] == tag
    assert client.get("/api/stats", headers={"If-None-Match": stats}).status_code == 200
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


# --------------------------------------------------------------------------- latency


def test_the_follower_switches_with_its_timing_and_never_goes_back(study, database):
    """A publication by another process is served after one poll, with the switch's
    timing; an older version offered afterwards is refused (the version only moves on)."""
    from web import _put
    from web.sync import Served

    app = make_app(study, database, RECOMPUTE="external")
    store: Store = app.extensions["skillcircle.store"]
    _, token = store.create_token("南湖区总工会", "南湖区")
    old = app.extensions["skillcircle.served"]
    answer = _move(app.test_client(), token).get_json()
    done = Recomputer(Store(database), study).run_once()
    assert done is not None and done["state"] == "done"
    timing = json.loads(done["detail"])["timing"]
    # one layer moved: its isochrones for every mode and threshold, nothing else
    assert timing["isochrones"] == len(study.modes) * len(study.iso_minutes)
    assert timing["claimed_at"] <= timing["published_at"]
    follower = app.extensions["skillcircle.follower"]
    assert follower.poll_once() and _moved_to(app) == TO
    switch = follower.last_switch
    assert switch["facilities_version"] == answer["data_version"]
    assert timing["published_at"] <= switch["noticed_at"] <= switch["served_at"]
    version = app.test_client().get("/api/version").get_json()
    assert version["switch"]["facilities_version"] == answer["data_version"]
    assert version["process"] == os.getpid()
    # an older version (a late recompute thread, say) never replaces a newer one
    assert not _put(app, Served(old.study, old.facilities_version))
    assert app.extensions["skillcircle.served"].facilities_version == answer["data_version"]
    assert _moved_to(app) == TO and not follower.poll_once()


def test_memo_serves_the_previous_value_while_the_new_one_is_computed():
    import threading

    from web.memo import Memo

    memo = Memo()
    assert memo.get_or_stale("index", "v1", "/", lambda: "page 1") == ("page 1", True)
    release, started = threading.Event(), threading.Event()
    calls = []

    def slow() -> str:
        calls.append(1)
        started.set()
        release.wait(10)
        return "page 2"

    leader: list[tuple[str, bool]] = []
    thread = threading.Thread(
        target=lambda: leader.append(memo.get_or_stale("index", "v2", "/", slow))
    )
    thread.start()
    assert started.wait(10)
    # meanwhile: the previous version's value, marked not fresh; no second computation
    assert memo.get_or_stale("index", "v2", "/", slow) == ("page 1", False)
    release.set()
    thread.join(10)
    assert leader == [("page 2", True)]
    assert memo.get_or_stale("index", "v2", "/", slow) == ("page 2", True) and len(calls) == 1
    # a key never computed before: callers wait for the one computation
    gate = threading.Event()
    results: list[tuple[str, bool]] = []

    def first() -> str:
        gate.wait(10)
        return "other"

    one = threading.Thread(
        target=lambda: results.append(memo.get_or_stale("index", "v2", "/x", first))
    )
    two = threading.Thread(
        target=lambda: results.append(memo.get_or_stale("index", "v2", "/x", lambda: "twice"))
    )
    one.start()
    time.sleep(0.2)
    two.start()
    gate.set()
    one.join(10)
    two.join(10)
    assert results == [("other", True), ("other", True)]


def test_the_map_page_lags_a_move_by_one_rendering_and_says_so(study, database, monkeypatch):
    """While the page / of a new version renders, other visitors get the previous page
    with the previous version's ETag and X-Data-Version; then the new page, which shows
    the moved facility where it now is."""
    import threading

    from web import map as web_map

    app = make_app(study, database, RECOMPUTE="external")
    store: Store = app.extensions["skillcircle.store"]
    _, token = store.create_token("南湖区总工会", "南湖区")
    client = app.test_client()
    before = client.get("/")
    assert before.status_code == 200 and f"[{TO[0]}, {TO[1]}]" not in before.text
    answer = _move(client, token).get_json()
    Recomputer(Store(database), study).run_once()
    assert app.extensions["skillcircle.follower"].poll_once()  # testing: no warm
    rendering, release = threading.Event(), threading.Event()
    render = web_map._index

    def slow_index() -> str:
        rendering.set()
        release.wait(30)
        return render()

    monkeypatch.setattr(web_map, "_index", slow_index)
    shutil.rmtree(web_map.page_cache(study), ignore_errors=True)  # (rendered by a former run)
    fresh: list = []
    thread = threading.Thread(target=lambda: fresh.append(app.test_client().get("/")))
    thread.start()
    assert rendering.wait(30)
    stale = client.get("/")
    assert stale.data == before.data and stale.headers["ETag"] == before.headers["ETag"]
    assert stale.headers["X-Data-Version"] == before.headers["X-Data-Version"]
    # the API already answers with the new version
    api = client.get("/api/version")
    assert api.headers["X-Data-Version"] == str(answer["data_version"])
    release.set()
    thread.join(30)
    new = fresh[0]
    assert new.status_code == 200 and new.headers["X-Data-Version"] == str(answer["data_version"])
    assert new.headers["ETag"] != before.headers["ETag"]
    assert f"[{TO[0]}, {TO[1]}]" in new.text  # the facility's GeoJSON point, moved
    assert client.get("/").data == new.data


def test_qr_png_has_the_pixels_segno_draws():
    import zlib

    import segno

    from web.qr import png_bytes

    qr = segno.make("https://example.org/q/330402007024", error="m")
    png = png_bytes(qr, scale=8, border=4)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == qr.symbol_size(scale=8, border=4)
    start = png.index(b"IDAT") + 4
    raw = zlib.decompress(png[start : start + int.from_bytes(png[start - 8 : start - 4], "big")])
    stride = (width + 7) // 8 + 1
    rows = [raw[i * stride : (i + 1) * stride] for i in range(height)]
    assert all(r[0] == 0 for r in rows)  # no filter
    pixels = [[(r[1 + x // 8] >> (7 - x % 8)) & 1 for x in range(width)] for r in rows]  # 1 = light
    expected = [[1 - int(bool(v)) for v in row] for row in qr.matrix_iter(scale=8, border=4)]
    assert pixels == expected


def test_a_move_is_served_first_with_its_standard_isochrones_then_completed(
    study, database, tmp_path
):
    """The recompute loop publishes a move with the standard threshold's isochrones
    (maps, 技能码 pages) traced, then the other thresholds': meanwhile those answer 503
    (never the old facilities' isochrones), then exactly what tracing them gives."""
    import shapely

    from geo.results import layer_isochrone, missing_isochrones
    from geo.study import Study

    two = Study.load(study.settings, iso_minutes=(15, 30))
    app = make_app(two, database, RECOMPUTE="external")
    store: Store = app.extensions["skillcircle.store"]
    _, token = store.create_token("南湖区总工会", "南湖区")
    client = app.test_client()
    answer = _move(client, token).get_json()
    recomputer = Recomputer(Store(database), two)
    done = recomputer.run_once(defer=True)
    assert done is not None and done["state"] == "done"
    published = store.published()
    assert published is not None and published["results_key"].endswith("-partial")
    assert missing_isochrones(recomputer.study.results) == [
        ("training_base", mode, 15.0) for mode in two.modes
    ]
    follower = app.extensions["skillcircle.follower"]
    assert follower.poll_once() and _moved_to(app) == TO
    query = "/api/isochrones?layer=training_base&mode=drive&minutes="
    pending = client.get(query + "15")
    assert pending.status_code == 503 and int(pending.headers["Retry-After"]) >= 1
    assert pending.headers["X-Data-Version"] == str(answer["data_version"])
    standard = client.get(query + "30")
    assert standard.status_code == 200
    # the isochrones of the other layers are the complete ones, untouched
    assert (
        client.get("/api/isochrones?layer=technical_school&mode=drive&minutes=15").status_code
        == 200
    )
    facilities = app.extensions["skillcircle"].facilities
    expected30 = layer_isochrone(two.routers["drive"], facilities, "training_base", 30)
    got30 = shapely.geometry.shape(standard.get_json()["features"][0]["geometry"])
    assert got30.symmetric_difference(expected30).area < 0.01 * expected30.area
    # then the loop completes them: the same facilities version, every isochrone
    assert recomputer.complete_published()
    assert not store.published()["results_key"].endswith("-partial")
    assert not recomputer.complete_published()  # nothing left
    assert follower.poll_once() and not follower.poll_once()
    assert app.extensions["skillcircle.served"].facilities_version == answer["data_version"]
    assert "completed_at" in follower.last_switch
    complete = client.get(query + "15")
    assert complete.status_code == 200
    expected15 = layer_isochrone(two.routers["drive"], facilities, "training_base", 15)
    got15 = shapely.geometry.shape(complete.get_json()["features"][0]["geometry"])
    assert got15.symmetric_difference(expected15).area < 0.01 * expected15.area
    assert not expected15.equals(expected30)


def test_the_map_page_is_rendered_once_for_every_process(study, database, monkeypatch):
    """The recompute process renders the page / of results before it publishes them; the
    workers (other apps on the same results cache) read it instead of rendering it. A
    course leaves the page and its ETag as they were (it shows no course)."""
    from web import map as web_map
    from web.sync import Served

    recompute = make_app(study, database, RECOMPUTE="external")
    worker = make_app(study, database, RECOMPUTE="external")
    store: Store = recompute.extensions["skillcircle.store"]
    _, token = store.create_token("南湖区总工会", "南湖区")
    answer = _move(worker.test_client(), token).get_json()
    published: list[int] = []

    def prepare(served: Served) -> None:  # what serve's recompute process does, recorded
        published.append(int(Store(database).published()["facilities_version"]))
        web_map.prerender(recompute, served)

    done = Recomputer(Store(database), study, prepare=prepare).run_once()
    assert done is not None and done["state"] == "done"
    assert published == [answer["data_version"] - 1]  # rendered before it was published
    assert json.loads(done["detail"])["timing"]["prepare_s"] >= 0
    assert worker.extensions["skillcircle.follower"].poll_once()
    rendered: list[int] = []
    render = web_map._index
    monkeypatch.setattr(web_map, "_index", lambda: rendered.append(1) or render())
    client = worker.test_client()
    gzip_only = {"Accept-Encoding": "gzip"}
    page = client.get("/", headers=gzip_only)
    assert page.status_code == 200 and rendered == []  # read, not rendered
    assert page.headers["Content-Encoding"] == "gzip"
    assert page.headers["X-Data-Version"] == str(answer["data_version"])
    assert f"[{TO[0]}, {TO[1]}]" in client.get("/").text  # the moved facility, moved
    # a course: the same page, the same tag (304 to a phone that has it), nothing rendered
    course = {"title": "电工班", "trade": "电工", "start_date": "2099-01-01", "seats": 5}
    made = client.post(
        "/api/admin/facilities/TS-330402-001/courses",
        json=course,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert made.status_code == 201
    again = client.get("/", headers=gzip_only | {"If-None-Match": page.headers["ETag"]})
    assert again.status_code == 304 and again.headers["ETag"] == page.headers["ETag"]
    assert client.get("/", headers=gzip_only).data == page.data and rendered == []
    # a page nobody rendered (another mode) is rendered by its first visitor, once
    shutil.rmtree(web_map.page_cache(study), ignore_errors=True)  # (rendered by a former run)
    client.get("/?mode=walk")
    client.get("/?mode=walk")
    assert rendered == [1]


def test_a_failed_prepare_still_publishes(study, database):
    """If rendering the page fails, the job publishes anyway (the workers render it)."""
    app = make_app(study, database, RECOMPUTE="external")
    store: Store = app.extensions["skillcircle.store"]
    _, token = store.create_token("南湖区总工会", "南湖区")
    answer = _move(app.test_client(), token).get_json()

    def broken(served: Any) -> None:
        raise RuntimeError("no page today")

    done = Recomputer(Store(database), study, prepare=broken).run_once()
    assert done is not None and done["state"] == "done"
    assert done["published_version"] == answer["data_version"]


def test_a_single_process_answers_beyond_a_hundred_open_connections(study, database, tmp_path):
    """150 phones keep their connections open; the next visitor is still answered (waitress's
    own limit, 100 connections, left it waiting until one closed)."""
    import socket

    from web.serving import CONNECTIONS

    assert CONNECTIONS >= 150
    proc, base = start_server(study.settings.cache_dir, database, tmp_path)
    host, port = base.removeprefix("http://").split(":")
    held = [socket.create_connection((host, int(port)), timeout=10) for _ in range(150)]
    try:
        time.sleep(0.5)  # (accepted by now)
        with urllib.request.urlopen(base + "/api/version", timeout=10) as answer:
            assert answer.status == 200 and json.loads(answer.read())["facilities_version"] >= 1
    finally:
        for conn in held:
            conn.close()
        proc.terminate()
        proc.wait(timeout=30)


def test_followers_of_several_workers_switch_one_after_the_other(study, database, monkeypatch):
    """With ``SWITCH_STAGGER_S`` a follower waits a random part of it before reading new
    results (so a server's workers do not all read at once); then switches as always."""
    import random
    import threading

    import web.sync

    app = make_app(study, database, RECOMPUTE="external", SWITCH_STAGGER_S=0.4)
    store: Store = app.extensions["skillcircle.store"]
    _, token = store.create_token("南湖区总工会", "南湖区")
    _move(app.test_client(), token)
    Recomputer(Store(database), study).run_once()
    # (time and random are shared: other tests' background threads sleep too)
    me, sleep, uniform = threading.get_ident(), time.sleep, random.uniform
    waits: list[float] = []
    slept: list[float] = []

    def fake_uniform(lo: float, hi: float) -> float:
        if threading.get_ident() != me:
            return uniform(lo, hi)
        waits.append(hi)
        return hi / 2

    def fake_sleep(seconds: float) -> None:
        if threading.get_ident() != me:
            sleep(seconds)
        else:
            slept.append(seconds)

    monkeypatch.setattr(web.sync.random, "uniform", fake_uniform)
    monkeypatch.setattr(web.sync.time, "sleep", fake_sleep)
    assert app.extensions["skillcircle.follower"].poll_once() and _moved_to(app) == TO
    assert waits == [0.4] and slept == [0.2]
    assert not app.extensions["skillcircle.follower"].poll_once() and slept == [0.2]
