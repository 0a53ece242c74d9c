"""Serving at scale: ``skillcircle serve --workers N`` under a mixed load measured with wrk.

``python bench/serving.py [--workers 1 2 4] [--duration 30] [--connections 32]
[--soak 300] [--upload 50000]`` runs, for each worker count, the real server
(``skillcircle serve --workers N`` on the bundled data, a fresh SQLite store, the
warm results cache) and Debian's ``wrk`` (C, one thread: the load generator
shares the machine's two cores with the server) with a mix of

* ``GET /q/<code>`` 技能码 pages (40 %), ``GET /api/nearby`` at random points of
  the region (30 %), ``GET /q/<code>.png`` QR images (15 %) and ``GET /`` (15 %),

while a Python thread trickles admin writes through the API: a course every
second and a facility move every 20 seconds (recomputed by the recompute
process, never by a request worker). It reports requests per second, latency
percentiles (wrk's), errors (non-2xx and socket errors), how long each move
took to be served by every worker (``/api/version`` over fresh connections
until all answers name the new version), and that every acknowledged write is
in the store.

``--upload N`` then posts an N-row registry (random points in the region, one
city-wide token) and reports the peak resident memory of every server process
while the request runs. ``--soak S`` runs the mixed load for S seconds with the
writes and samples every server process's memory every 5 seconds (flat after
warm-up: compare the first and last quarter).

The public rate limit is raised for the run (one client address sends all the
load), but the limiter still counts every request in its shared store. Prints a
table per run and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FACILITY = "TS-330402-001"
MOVED = "TB-330402-001"
MOVES = [(120.80, 30.78), (120.790049, 30.76092)]

WRK_SCRIPT = r"""
local paths = {}
for line in io.lines("%(paths)s") do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1])
end
done = function(summary, latency, requests)
  local out = {
    requests = summary.requests, seconds = summary.duration / 1e6,
    errors = summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.status + summary.errors.timeout,
    status_errors = summary.errors.status, timeouts = summary.errors.timeout,
    p50_ms = latency:percentile(50) / 1000, p90_ms = latency:percentile(90) / 1000,
    p99_ms = latency:percentile(99) / 1000, max_ms = latency.max / 1000,
  }
  local parts = {}
  for k, v in pairs(out) do parts[#parts + 1] = string.format('"%%s": %%s', k, v) end
  io.write("WRKJSON {" .. table.concat(parts, ", ") .. "}\n")
end
"""


# --------------------------------------------------------------------------- server


class Server:
    """``skillcircle serve`` in a child process, with a fresh store and a city token."""

    def __init__(self, workers: int, tmp: Path, cache: Path, port: int) -> None:
        self.workers = workers
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.database = tmp / f"store-{workers}.sqlite3"
        env = {
            **os.environ,
            "SKILLCIRCLE_CACHE": str(cache),
            "SKILLCIRCLE_RATELIMIT_PUBLIC": "1000000 per second",
            "SKILLCIRCLE_RATELIMIT_ADMIN": "1000000 per minute",
            "SKILLCIRCLE_TILE_URL": "none",
        }
        from web.store import Store

        _, self.token = Store(self.database).create_token("bench", None)
        self.log = (tmp / f"serve-{workers}.log").open("w")
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "geo.cli", "serve", "--workers", str(workers)),
                *("--threads", "4", "--port", str(port), "--database", str(self.database)),
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=tmp,
        )
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited; see {self.log.name}")
            try:
                urllib.request.urlopen(self.base + "/api/version", timeout=5).close()
                return
            except OSError:
                time.sleep(0.3)
        raise SystemExit("server did not start in 600 s")

    def pids(self) -> list[int]:
        """The server's processes: the parent and its children (workers, recompute)."""
        found = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True
        ).stdout.split()
        return [self.proc.pid, *map(int, found)]

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    def versions(self, n: int = 8) -> set[int]:
        seen = set()
        for _ in range(n):
            with urllib.request.urlopen(self.base + "/api/version", timeout=10) as resp:
                seen.add(json.loads(resp.read())["facilities_version"])
        return seen

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


# --------------------------------------------------------------------------- load


def request_paths(n: int, seed: int = 1) -> list[str]:
    import geopandas as gpd

    from geo.settings import Settings

    settings = Settings()
    codes = gpd.read_file(settings.villages_path)["village_code"].astype(str).to_numpy()
    min_lon, min_lat, max_lon, max_lat = settings.region.bounds
    rng = np.random.default_rng(seed)
    out = []
    for kind in rng.choice(4, size=n, p=[0.40, 0.30, 0.15, 0.15]):
        if kind == 0:
            out.append(f"/q/{rng.choice(codes)}")
        elif kind == 1:
            lon = rng.uniform(min_lon + 0.2, max_lon - 0.2)
            lat = rng.uniform(min_lat + 0.2, max_lat - 0.2)
            out.append(f"/api/nearby?lon={lon:.5f}&lat={lat:.5f}&mode=ebike")
        elif kind == 2:
            out.append(f"/q/{rng.choice(codes)}.png")
        else:
            out.append("/")
    return out


def run_wrk(base: str, tmp: Path, duration: float, connections: int) -> dict[str, Any]:
    paths = tmp / "paths.txt"
    if not paths.exists():
        paths.write_text("\n".join(request_paths(20_000)) + "\n", encoding="utf-8")
    script = tmp / "mix.lua"
    script.write_text(WRK_SCRIPT % {"paths": paths}, encoding="utf-8")
    out = subprocess.run(
        [
            *("wrk", "-t1", f"-c{connections}", f"-d{int(duration)}s", "--timeout", "10s"),
            *("--latency", "-s", str(script), base),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = re.search(r"WRKJSON (\{.*\})", out)
    if found is None:
        raise SystemExit(f"wrk printed no summary:\n{out}")
    result: dict[str, Any] = json.loads(found.group(1))
    result["rps"] = result["requests"] / result["seconds"]
    return result


class Writer(threading.Thread):
    """A course every second, a facility move every 20 seconds; remembers what was acked
    and how long each move took until every worker served it."""

    def __init__(self, server: Server) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.stop = threading.Event()
        self.courses: list[str] = []
        self.moves: list[float] = []
        self.failed = 0

    def run(self) -> None:
        i = 0
        next_move = time.monotonic() + 5
        while not self.stop.is_set():
            title = f"压测班{i:05d}"
            body = {"title": title, "trade": "电工", "start_date": "2099-01-01", "seats": 30}
            code, _ = self.server.call("POST", f"/api/admin/facilities/{FACILITY}/courses", body)
            if code == 201:
                self.courses.append(title)
            else:
                self.failed += 1
            if time.monotonic() >= next_move:
                self._move(len(self.moves))
                next_move = time.monotonic() + 20
            i += 1
            self.stop.wait(1.0)

    def _move(self, k: int) -> None:
        lon, lat = MOVES[k % len(MOVES)]
        started = time.monotonic()
        code, answer = self.server.call(
            "PATCH", f"/api/admin/facilities/{MOVED}", {"lon": lon, "lat": lat}
        )
        if code != 200:
            self.failed += 1
            return
        target = answer["data_version"]
        while time.monotonic() - started < 120:
            if self.server.versions() == {target}:
                self.moves.append(time.monotonic() - started)
                return
            time.sleep(0.1)
        self.moves.append(float("inf"))

    def lost(self) -> int:
        from web.store import Store

        stored = {c["title"] for c in Store(self.server.database).items("courses", FACILITY)}
        return len(set(self.courses) - stored)


# --------------------------------------------------------------------------- runs


def mixed_run(workers: int, args: argparse.Namespace, tmp: Path, cache: Path) -> dict[str, Any]:
    server = Server(workers, tmp, cache, args.port)
    try:
        run_wrk(server.base, tmp, 5, args.connections)  # warm-up: memos, connections
        writer = Writer(server)
        writer.start()
        result = run_wrk(server.base, tmp, args.duration, args.connections)
        writer.stop.set()
        writer.join(150)
        result.update(
            workers=workers,
            admin_writes=len(writer.courses) + len(writer.moves),
            admin_failed=writer.failed,
            admin_lost=writer.lost(),
            move_visible_s=[round(m, 2) for m in writer.moves],
        )
        if args.upload and workers == args.workers[-1]:
            result.update(upload_run(server, args.upload, tmp))
        return result
    finally:
        server.stop()


def upload_run(server: Server, rows: int, tmp: Path) -> dict[str, Any]:
    """Post an N-row registry and watch every server process's memory meanwhile."""
    import geopandas as gpd

    from geo.settings import Settings

    villages = gpd.read_file(Settings().villages_path)
    rng = np.random.default_rng(7)
    pick = rng.integers(0, len(villages), rows)
    lon = villages.geometry.x.to_numpy()[pick] + rng.normal(0, 0.002, rows)
    lat = villages.geometry.y.to_numpy()[pick] + rng.normal(0, 0.002, rows)
    lines = ["名称,经度,纬度,工种"] + [
        f"压测机构{i:06d},{x:.6f},{y:.6f},电工"
        for i, (x, y) in enumerate(zip(lon, lat, strict=True))
    ]
    path = tmp / "registry.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    peaks = {pid: rss_mb(pid) for pid in server.pids()}
    before = dict(peaks)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for pid in server.pids():
                peaks[pid] = max(peaks.get(pid, 0.0), rss_mb(pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    out = subprocess.run(
        [
            *("curl", "-s", "-o", str(tmp / "upload.json"), "-w", "%{http_code}"),
            *("-H", f"Authorization: Bearer {server.token}", "-F", f"file=@{path}"),
            *("-F", "crs=wgs84", "-F", "layer=training_institution"),
            server.base + "/api/admin/facilities/upload",
        ],
        capture_output=True,
        text=True,
    )
    seconds = time.monotonic() - started
    done.set()
    sampler.join()
    body = json.loads((tmp / "upload.json").read_text() or "{}")
    return {
        "upload_rows": rows,
        "upload_status": int(out.stdout or 0),
        "upload_s": round(seconds, 2),
        "upload_added": body.get("added"),
        "upload_peak_rss_mb": round(max(peaks[p] - 0 for p in peaks), 1),
        "upload_rss_mb_by_process": {
            str(p): [round(before.get(p, 0.0), 1), round(v, 1)] for p, v in peaks.items()
        },
    }


def soak_run(args: argparse.Namespace, tmp: Path, cache: Path) -> dict[str, Any]:
    workers = args.workers[-1]
    server = Server(workers, tmp, cache, args.port)
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(5.0):
            samples.append(sum(rss_mb(p) for p in server.pids()))

    try:
        writer = Writer(server)
        writer.start()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        result = run_wrk(server.base, tmp, args.soak, args.connections)
        done.set()
        writer.stop.set()
        writer.join(150)
        quarter = max(1, len(samples) // 4)
        result.update(
            workers=workers,
            admin_writes=len(writer.courses) + len(writer.moves),
            admin_lost=writer.lost(),
            move_visible_s=[round(m, 2) for m in writer.moves],
            rss_first_quarter_mb=round(float(np.mean(samples[:quarter])), 1),
            rss_last_quarter_mb=round(float(np.mean(samples[-quarter:])), 1),
            rss_samples_mb=[round(s) for s in samples],
        )
        return result
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--upload", type=int, default=0, help="rows of a registry upload")
    parser.add_argument("--soak", type=float, default=0.0, help="seconds of soak (0: none)")
    parser.add_argument("--port", type=int, default=8731)
    parser.add_argument("--cache", type=Path, default=None, help="results cache (warm)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk (Debian package wrk)")
    tmp = Path(tempfile.mkdtemp(prefix="skillcircle-serving-"))
    cache = args.cache or Path(os.environ.get("SKILLCIRCLE_CACHE", tmp / "cache"))
    runs = [mixed_run(w, args, tmp, cache) for w in args.workers]
    print(
        f"{'workers':>7} {'req/s':>7} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} "
        f"{'errors':>6} {'writes':>6} {'lost':>4}  move visible (s)"
    )
    for r in runs:
        print(
            f"{r['workers']:>7} {r['rps']:>7.0f} {r['p50_ms']:>7.1f} {r['p90_ms']:>7.1f} "
            f"{r['p99_ms']:>7.1f} {r['errors']:>6} {r['admin_writes']:>6} {r['admin_lost']:>4}  "
            f"{r['move_visible_s']}"
        )
    summary: dict[str, Any] = {"runs": runs, "load": os.getloadavg()}
    if args.soak:
        summary["soak"] = soak_run(args, tmp, cache)
        s = summary["soak"]
        print(
            f"soak {args.soak:.0f} s: {s['rps']:.0f} req/s, p99 {s['p99_ms']:.1f} ms, "
            f"errors {s['errors']}, writes {s['admin_writes']} lost {s['admin_lost']}, "
            f"RSS {s['rss_first_quarter_mb']} -> {s['rss_last_quarter_mb']} MB"
        )
    print(json.dumps(summary, ensure_ascii=False))


if __name__ == "__main__":
    main()
