"""Faults: kill -9 the server during a stream of admin updates, and the CLI during an export.

Every update that got a 2xx must be there after a restart, nothing half-applied
(each stored row has its audit entry and vice versa), and an export killed while
writing leaves no partial file under its name.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import openpyxl
import pytest

from web.store import Store

HELPER = Path(__file__).parent / "helpers" / "serve_app.py"
FACILITY = "TS-330402-001"
MOVED = "TB-330402-001"
POINTS = [(120.80, 30.78), (120.79, 30.761), (120.77, 30.75)]


def start_server(
    cache: Path, database: Path, tmp: Path, workers: int = 1
) -> tuple[subprocess.Popen[bytes], str]:
    """The app on a real server (waitress; gunicorn with ``workers`` > 1) in a child process."""
    port_file = tmp / f"port-{time.monotonic_ns()}"
    args = [str(HELPER), str(cache), str(database), str(port_file), str(workers)]
    with (tmp / "server.log").open("ab") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            [sys.executable, *args],
            stdout=log,
            stderr=log,
        )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited: {(tmp / 'server.log').read_text()[-2000:]}")
        if port_file.exists() and port_file.read_text():
            base = f"http://127.0.0.1:{port_file.read_text()}"
            try:
                urllib.request.urlopen(base + "/api/layers", timeout=5).close()
                return proc, base
            except OSError:
                pass
        time.sleep(0.1)
    proc.kill()
    pytest.fail("server did not start in 180 s")


def call(
    method: str, url: str, token: str | None = None, body: dict | None = None, timeout: float = 30
) -> tuple[int, dict]:
    """One JSON request to a running server (``token``: bearer, if any): status, body."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def test_kill_9_during_admin_updates_loses_nothing_acknowledged(study, tmp_path):
    database = tmp_path / "store.sqlite3"
    proc, base = start_server(study.settings.cache_dir, database, tmp_path)
    _, token = Store(database).create_token("断电测试", None)
    acked: list[str] = []
    moves: list[tuple[float, float]] = []
    failed = threading.Event()

    def stream() -> None:
        for i in range(100_000):
            try:
                if i % 15 == 7:  # now and then a move, which recomputes a layer for seconds
                    lon, lat = POINTS[(i // 15) % len(POINTS)]
                    url = f"{base}/api/admin/facilities/{MOVED}"
                    code, _ = call("PATCH", url, token, {"lon": lon, "lat": lat})
                    if code == 200:
                        moves.append((lon, lat))
                    continue
                title = f"断电测试班{i:05d}"
                code, _ = call(
                    "POST",
                    f"{base}/api/admin/facilities/{FACILITY}/courses",
                    token,
                    {"title": title, "trade": "电工", "start_date": "2099-01-01", "seats": i},
                )
                if code == 201:
                    acked.append(title)
                elif code >= 500:
                    failed.set()
            except (OSError, http.client.HTTPException):  # the server is gone (an answer
                return  # cut off mid-body, IncompleteRead, acknowledges nothing)

    writer = threading.Thread(target=stream)
    writer.start()
    deadline = time.monotonic() + 60
    while (len(acked) < 40 or not moves) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    writer.join(timeout=60)
    assert not failed.is_set()
    assert len(acked) >= 40 and moves

    proc, base = start_server(study.settings.cache_dir, database, tmp_path)
    try:
        code, listing = call("GET", f"{base}/api/admin/facilities/{FACILITY}/courses", token)
        assert code == 200
        stored = {item["title"] for item in listing["items"]}
        assert set(acked) <= stored  # every acknowledged update survived
        assert len(stored - set(acked)) <= 1  # at most the one in flight at the kill
        # nothing half-applied: rows and audit entries match one to one
        store = Store(database)
        course_ids = {str(item["id"]) for item in listing["items"]}
        audited = {
            e["entity_id"]
            for e in store.audit(limit=100_000)
            if e["entity"] == "course" and e["action"] == "create"
        }
        assert course_ids == audited
        # the moved facility is where the last acknowledged move (or a later one) put it
        code, fac = call("GET", f"{base}/api/facilities/{MOVED}", token)
        assert (fac["lon"], fac["lat"]) in POINTS
        assert POINTS.index((fac["lon"], fac["lat"])) >= 0 and moves[-1] in POINTS
        # ...and the coverage served after the restart was computed for that place
        code, village = call("GET", f"{base}/api/villages/330402007024", token)
        assert village["modes"]["walk"]["layers"]["training_base"]["minutes"] is not None
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_kill_9_during_export_leaves_no_partial_file(tmp_path, study):
    out = tmp_path / "全市.xlsx"
    env = {**os.environ, "SKILLCIRCLE_CACHE": str(study.settings.cache_dir)}
    args = ["export", "--county", "all", "--mode", "ebike", "--format", "xlsx", "--out", str(out)]
    proc = subprocess.Popen(
        [sys.executable, "-c", "from geo.cli import main; main()", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # kill the moment the writer opens its temporary directory
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if list(tmp_path.glob(f".{out.name}.*.tmp")):
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.002)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the export finished before it could be killed"
    assert not out.exists()  # no partial file under the real name
    # the next export succeeds and clears leftovers older than the stale limit
    leftovers = list(tmp_path.glob(f".{out.name}.*.tmp"))
    for leftover in leftovers:
        os.utime(leftover, (0, 0))
    done = subprocess.run(
        [sys.executable, "-c", "from geo.cli import main; main()", *args],
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr.decode()[-1000:]
    assert openpyxl.load_workbook(out).sheetnames[:2] == ["汇总", "未覆盖村"]
    assert not list(tmp_path.glob(f".{out.name}.*.tmp"))
