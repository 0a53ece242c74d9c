"""Soak test: the real server under a bounded mixed load, with admin writes, watching memory.

``python bench/soak.py [--duration 120] [--clients 6]`` starts the web app on the
bundled Jiaxing data (waitress, as ``skillcircle serve``; see ``apiload.py``),
then for ``--duration`` seconds (at most 300; it stops by itself) keeps
``--clients`` keep-alive connections busy with a mix of

* ``GET /`` (the map page), ``GET /api/nearby`` at random points,
  ``GET /q/<code>`` 技能码 pages and ``GET /q/<code>.png`` QR images,

while one more client trickles admin writes: a course added every second and a
facility moved every 20 seconds (which recomputes its layer). The server's
resident memory is sampled every 5 seconds from ``/proc``. Afterwards every
acknowledged course is checked to be stored. Prints a table and, as the last
line, one JSON object (``rps``, ``p50_ms``, ``p99_ms``, ``errors``,
``admin_writes``, ``admin_lost``, ``rss_start_mb``, ``rss_end_mb``, ...).
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from apiload import EXTENT, send, start_server, stop_server

from geo.places import load_villages
from web.store import Store

FACILITY = "TS-330402-001"
MOVED = "TB-330402-001"
MOVES = [(120.80, 30.78), (120.790049, 30.76092)]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=120.0)
    parser.add_argument("--clients", type=int, default=6)
    args = parser.parse_args()
    duration = min(args.duration, 300.0)

    tmp = Path(tempfile.mkdtemp(prefix="skillcircle-soak-"))
    database = tmp / "store.sqlite3"
    _, token = Store(database).create_token("soak", None)
    proc, port, startup = start_server(database)
    codes = list(load_villages()["village_code"])
    rng = np.random.default_rng(7)
    lock = threading.Lock()
    samples: dict[str, list[float]] = {}
    statuses: dict[int, int] = {}
    acked: list[str] = []
    admin_errors = [0]
    deadline = time.perf_counter() + duration

    def record(kind: str, ms: float, status: int) -> None:
        with lock:
            samples.setdefault(kind, []).append(ms)
            statuses[status] = statuses.get(status, 0) + 1

    def reader(seed: int) -> None:
        local = np.random.default_rng(seed)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while time.perf_counter() < deadline:
            pick = local.random()
            code = codes[int(local.integers(len(codes)))]
            if pick < 0.05:
                kind, path = "map", "/"
            elif pick < 0.50:
                lon = local.uniform(EXTENT[0], EXTENT[2])
                lat = local.uniform(EXTENT[1], EXTENT[3])
                kind, path = "nearby", f"/api/nearby?lon={lon:.5f}&lat={lat:.5f}&mode=ebike"
            elif pick < 0.85:
                kind, path = "village", f"/q/{code}"
            else:
                kind, path = "qr_png", f"/q/{code}.png"
            conn, status, ms = send(conn, "GET", path)
            record(kind, ms, status)
        conn.close()

    def admin() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        n = moves = 0
        next_move = time.perf_counter() + 20
        while time.perf_counter() < deadline:
            n += 1
            if time.perf_counter() >= next_move:
                lon, lat = MOVES[moves % len(MOVES)]  # alternate: every move is a change
                moves += 1
                kind, method = "admin_move", "PATCH"
                path, body = f"/api/admin/facilities/{MOVED}", {"lon": lon, "lat": lat}
                next_move += 20
            else:
                kind, method = "admin_course", "POST"
                path = f"/api/admin/facilities/{FACILITY}/courses"
                body = {"title": f"压测班{n:05d}", "trade": "电工", "start_date": "2099-01-01"}
                body["seats"] = n
            t0 = time.perf_counter()
            conn, status, ms = send(conn, method, path, json.dumps(body), headers)
            record(kind, ms, status)
            if kind == "admin_course" and status == 201:
                acked.append(str(body["title"]))
            elif status >= 400 or status < 0:
                admin_errors[0] += 1
            time.sleep(max(0.0, 1.0 - (time.perf_counter() - t0)))
        conn.close()

    rss = [(0.0, rss_mb(proc.pid))]
    started = time.perf_counter()
    threads = [
        threading.Thread(target=reader, args=(int(rng.integers(1 << 30)),))
        for _ in range(args.clients)
    ]
    threads.append(threading.Thread(target=admin))
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(5)
        rss.append((time.perf_counter() - started, rss_mb(proc.pid)))
    elapsed = time.perf_counter() - started
    stored = {item["title"] for item in Store(database).items("courses", FACILITY)}
    lost = [title for title in acked if title not in stored]
    stop_server(proc)

    everything = np.concatenate([np.array(v) for v in samples.values()])
    errors = sum(count for status, count in statuses.items() if status != 200 and status != 201)
    # memory: compare the mean of the first and last quarter of the samples (after warm-up)
    mem = np.array([m for _, m in rss])
    quarter = max(1, len(mem) // 4)
    figures = {
        "duration_s": round(elapsed, 1),
        "startup_s": round(startup, 1),
        "requests": len(everything),
        "rps": round(len(everything) / elapsed, 1),
        "p50_ms": round(float(np.percentile(everything, 50)), 1),
        "p99_ms": round(float(np.percentile(everything, 99)), 1),
        "errors": int(errors),
        "admin_writes": len(acked),
        "admin_lost": len(lost),
        "rss_start_mb": round(float(mem[1 : quarter + 1].mean()), 1),
        "rss_end_mb": round(float(mem[-quarter:].mean()), 1),
        "rss_max_mb": round(float(mem.max()), 1),
    }
    print(f"{'kind':<14}{'n':>7}{'p50 ms':>10}{'p99 ms':>10}")
    for kind, values in sorted(samples.items()):
        arr = np.array(values)
        print(
            f"{kind:<14}{len(arr):>7}{np.percentile(arr, 50):>10.1f}{np.percentile(arr, 99):>10.1f}"
        )
    print(f"statuses {dict(sorted(statuses.items()))}")
    print("rss MB over time: " + ", ".join(f"{t:.0f}s {m:.0f}" for t, m in rss))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
