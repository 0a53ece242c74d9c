"""Serving at scale: ``skillcircle serve --workers N`` under a mixed load, at an offered
rate (h2load) and at saturation (wrk).

``python bench/serving.py [--workers 1 2 4] [--duration 30] [--rate 300]
[--connections 32] [--soak 300] [--upload 50000]`` runs, for each worker count,
the real server (``skillcircle serve --workers N`` on the bundled data, a fresh
SQLite store, the warm results cache) with a mix of

* ``GET /q/<code>`` 技能码 pages (40 %), ``GET /api/nearby`` at random points of
  the region (30 %), ``GET /q/<code>.png`` QR images (15 %) and ``GET /`` (15 %),

twice, the load generator sharing the machine's two cores with the server:

1. **at the offered rate** (``--rate``, default 300 requests per second: issue 14's
   target) with nghttp2's ``h2load`` (C; 100 connections each sending 3 requests
   per second, their starts spread over a third of a second, so the requests come
   evenly, whatever the answers' times: latency is the server's, not a queue of the
   generator's making — see :func:`run_rate`);
2. **at saturation** with Debian's ``wrk`` (C, one thread, ``--connections`` 32 in a
   closed loop: each connection sends its next request when the answer came), which
   measures the most requests per second; its latency is mostly the queue of 32
   requests (on average 32 / req/s).

Meanwhile a Python thread trickles admin writes through the API: a course every
second and a facility move every ``--move-every`` seconds (default 20; recomputed
by the recompute process, never by a request worker). It reports requests per
second, latency percentiles, errors (non-2xx and socket errors), how long each
move took to be served by every worker (``/api/version`` over fresh connections
until every worker process has answered with the new version), each move's
stages (the write, the claim, the recompute by part from the job's ``timing``,
the page rendered for the workers, the publication, then per worker: noticing it,
reading the results, the switch, the first answer seen, the map page ready after
the switch and the completed isochrones), and that every acknowledged write is in
the store.

``--upload N`` then posts an N-row registry (random points in the region, one
city-wide token) and reports the peak resident memory of every server process
while the request runs. ``--soak S`` runs the mixed load (at the offered rate, or
wrk's with ``--rate 0``) for S seconds with the writes and samples every server
process's memory every 5 seconds (flat after warm-up: compare the first and last
quarter).

The public rate limit is raised for the run (one client address sends all the
load), but the limiter still counts every request in its shared store. Prints a
table per load and, last, one JSON line.
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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FACILITY = "TS-330402-001"
MOVED = "TB-330402-001"
MOVES = [(120.80, 30.78), (120.790049, 30.76092)]

#: What wrk asks for, as every browser and phone does (``--accept-encoding identity``:
#: uncompressed answers, as before the server compressed).
ENCODING = "gzip"

WRK_SCRIPT = r"""
wrk.headers["Accept-Encoding"] = "%(encoding)s"
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

    def __init__(
        self, workers: int, tmp: Path, cache: Path, port: int, threads: int = 4, name: str = ""
    ) -> None:
        self.workers = workers
        self.cache = cache
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        # a store of its own per run: the soak must not inherit an upload's 50,000 rows
        self.database = tmp / f"store-{name or workers}.sqlite3"
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
                *("--threads", str(threads), "--port", str(port), "--database", str(self.database)),
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

    def worker_pids(self) -> set[int]:
        """The processes that answer requests: the parent alone (one worker), else its
        children but the recompute process (the one that claims jobs)."""
        if self.workers == 1:
            return {self.proc.pid}
        from web.store import Store

        store = Store(self.database)  # (held: its connection closes with it)
        claimed = store.conn.execute(
            "SELECT worker FROM jobs WHERE worker IS NOT NULL ORDER BY id DESC LIMIT 1"
        ).fetchone()
        recompute = int(claimed["worker"].rsplit(":", 1)[1]) if claimed else None
        return {p for p in self.pids()[1:] if p != recompute}

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
        return {answer["facilities_version"] for answer in self.version_answers(n)}

    def version_answers(self, n: int = 8) -> list[dict[str, Any]]:
        """``/api/version`` over ``n`` fresh connections at once (the kernel spreads them
        over the workers), each with the client's clock (``seen_at``): a round takes
        one answer's time, not n (each waits behind the load in its worker's queue)."""

        def ask(_: int) -> dict[str, Any]:
            with urllib.request.urlopen(self.base + "/api/version", timeout=10) as resp:
                answer: dict[str, Any] = json.loads(resp.read())
            answer["seen_at"] = time.time()
            return answer

        with ThreadPoolExecutor(n) as pool:
            return list(pool.map(ask, range(n)))

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
    script.write_text(WRK_SCRIPT % {"paths": paths, "encoding": ENCODING}, encoding="utf-8")
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


def run_rate(base: str, tmp: Path, duration: float, rate: int, connections: int) -> dict[str, Any]:
    """The mix at a constant offered rate (``rate`` requests per second in all), with
    nghttp2's ``h2load`` (HTTP/1.1, ``connections`` connections each sending
    ``rate / connections`` requests per second, its per-request log read back).

    Unlike wrk's closed loop (each connection waits for its answer before sending
    the next: latency there is the queue of ``connections`` requests, 32 / 471 req/s
    = 68 ms on average whatever the server does), the requests come at the rate a
    city's phones would send them. Each connection sends one every 1 / (rate /
    connections) seconds (333 ms at 300 and 100); the connections are opened one
    after the other over that period (``-r 1 --rate-period``), so their requests
    interleave instead of arriving as one burst per period. An answer slower than the
    period would delay its connection's next request, a delay h2load does not count:
    ``max_ms`` below it shows none did. ``worst_ms_per_second``: the slowest answer
    of each second (where the tail happened, e.g. at a move).
    """
    paths = tmp / "paths.txt"
    if not paths.exists():
        paths.write_text("\n".join(request_paths(20_000)) + "\n", encoding="utf-8")
    uris = tmp / "uris.txt"
    uris.write_text(
        "".join(base + line + "\n" for line in paths.read_text().splitlines()), encoding="utf-8"
    )
    log = tmp / "h2load.log"
    log.unlink(missing_ok=True)  # (h2load appends)
    per = max(1, round(rate / connections))
    subprocess.run(
        [
            *("h2load", "--h1", "-c", str(connections), "--rps", str(per)),
            # connections opened at the request rate: their timers are spread over the
            # first 1 / per seconds, not all firing at once
            *("-r", "1", "--rate-period", f"{max(1, round(1000 / (per * connections)))}ms"),
            *("-n", str(int(per * connections * duration))),
            *("-i", str(uris), "--log-file", str(log)),
            *("-H", f"Accept-Encoding: {ENCODING}"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = np.loadtxt(log, dtype=np.int64, ndmin=2)
    started_us, status, took_us = rows[:, 0], rows[:, 1], rows[:, 2]
    ms = took_us / 1000
    seconds = (started_us.max() - started_us.min()) / 1e6
    per_second = (started_us - started_us.min()) // 1_000_000
    worst = [float(ms[per_second == s].max()) for s in np.unique(per_second)]
    return {
        "offered_rps": per * connections,
        "requests": len(rows),
        "seconds": round(float(seconds), 2),
        "rps": len(rows) / seconds,
        "errors": int((status >= 400).sum() + (status <= 0).sum()),
        "status_errors": int((status >= 400).sum()),
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
        "worst_ms_per_second": [round(w) for w in worst],
    }


class Writer(threading.Thread):
    """A course every second, a facility move every ``move_every`` seconds (each watched
    in a thread of its own); remembers what was acked and how long each move took
    until every worker served it, and its stages."""

    def __init__(self, server: Server, move_every: float = 20.0) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.move_every = move_every
        self.stop = threading.Event()
        self.courses: list[str] = []
        self.moves: list[float] = []
        self.stages: list[dict[str, Any]] = []
        self.watching: list[threading.Thread] = []
        self.failed = 0

    def run(self) -> None:
        i = moves = 0
        next_move = time.monotonic() + 5
        while not self.stop.is_set():
            title = f"压测班{i:05d}"
            body = {"title": title, "trade": "电工", "start_date": "2099-01-01", "seats": 30}
            code, _ = self.server.call("POST", f"/api/admin/facilities/{FACILITY}/courses", body)
            if code == 201:
                self.courses.append(title)
            else:
                self.failed += 1
            if time.monotonic() >= next_move:  # watched in a thread: courses go on
                watch = threading.Thread(target=self._move, args=(moves,), daemon=True)
                watch.start()
                self.watching.append(watch)
                moves += 1
                next_move = time.monotonic() + self.move_every
            i += 1
            self.stop.wait(1.0)
        for watch in self.watching:
            watch.join(150)

    def _move(self, k: int) -> None:
        lon, lat = MOVES[k % len(MOVES)]
        # the moves alternate between two places: without this the recompute process
        # would find each place's map page from the last time instead of rendering it
        shutil.rmtree(self.server.cache / "pages", ignore_errors=True)
        started = time.monotonic()
        sent_at = time.time()
        code, answer = self.server.call(
            "PATCH", f"/api/admin/facilities/{MOVED}", {"lon": lon, "lat": lat}
        )
        acked_at = time.time()
        if code != 200:
            self.failed += 1
            return
        target = answer["data_version"]
        first_seen: dict[int, float] = {}  # process -> when the client first saw the target
        switches: dict[int, dict[str, Any]] = {}
        while time.monotonic() - started < 120:
            answers = self.server.version_answers()
            for a in answers:  # (a later move may already be served: it includes this one)
                if a["facilities_version"] >= target:
                    first_seen.setdefault(a.get("process", 0), a["seen_at"])
                if (a.get("switch") or {}).get("facilities_version") == target:
                    switches[a.get("process", 0)] = a["switch"]
            if "process" in answers[0]:  # every worker process has answered with it
                done = self.server.worker_pids() <= set(first_seen)
            else:  # (a server that does not say which process answers: one round)
                done = min(a["facilities_version"] for a in answers) >= target
            if done:
                self.moves.append(time.monotonic() - started)
                break
            time.sleep(0.05)
        else:
            self.moves.append(float("inf"))
            return
        # the maps are warmed after the switch: wait (a little) for every process's warm_s
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not all(
            "warm_s" in sw and "completed_at" in sw for sw in switches.values()
        ):
            time.sleep(0.5)
            for a in self.server.version_answers(4):
                if (a.get("switch") or {}).get("facilities_version") == target:
                    switches[a.get("process", 0)] = a["switch"]
        self.stages.append(
            move_stages(self.server, answer["job"]["id"], sent_at, acked_at, first_seen, switches)
        )

    def lost(self) -> int:
        from web.store import Store

        stored = {c["title"] for c in Store(self.server.database).items("courses", FACILITY)}
        return len(set(self.courses) - stored)


def move_stages(
    server: Server,
    job_id: int,
    sent_at: float,
    acked_at: float,
    first_seen: dict[int, float],
    switches: dict[int, dict[str, Any]],
) -> dict[str, Any]:
    """One move's pipeline, in seconds: the admin write (request to answer), the wait for
    the recompute process to claim the job, the recompute by part (job ``timing``),
    the publication, then per worker process: noticing the publication, reading the
    results, the switch, the first answer a client saw with the new version, and the
    maps warmed after the switch (not on the way of the switch)."""
    from web.store import Store

    job = Store(server.database).job(job_id) or {}
    detail = json.loads(job.get("detail") or "{}")
    timing = detail.get("timing", {})
    out: dict[str, Any] = {
        "write_s": round(acked_at - sent_at, 3),
        "layers": detail.get("layers"),
        "job_seconds": job.get("seconds"),
    }
    if "claimed_at" in timing:
        out["claim_wait_s"] = round(timing["claimed_at"] - acked_at, 3)
        out["recompute"] = {k: v for k, v in timing.items() if not k.endswith("_at")}
        out["published_after_s"] = round(timing["published_at"] - sent_at, 3)
    workers = {}
    for pid, seen in first_seen.items():
        sw = switches.get(pid, {})
        row: dict[str, Any] = {"first_answer_after_s": round(seen - sent_at, 3)}
        if "noticed_at" in sw and "published_at" in timing:
            row["notice_s"] = round(sw["noticed_at"] - timing["published_at"], 3)
            row["read_s"] = sw.get("read_s")
            row["served_after_s"] = round(sw["served_at"] - sent_at, 3)
            row["warm_after_switch_s"] = sw.get("warm_s")
            if "completed_at" in sw:
                row["complete_after_s"] = round(sw["completed_at"] - sent_at, 3)
        workers[str(pid)] = row
    out["workers"] = workers
    return out


def print_stages(stages: list[dict[str, Any]]) -> None:
    for i, st in enumerate(stages):
        rec = st.get("recompute", {})
        parts = ", ".join(f"{k} {v:g}" for k, v in rec.items())
        print(
            f"  move {i}: write {st['write_s']} s, claim wait {st.get('claim_wait_s')} s, "
            f"published {st.get('published_after_s')} s after the request "
            f"(job {st.get('job_seconds')} s)"
        )
        print(f"    recompute ({', '.join(st.get('layers') or [])}): {parts}")
        for pid, w in st["workers"].items():
            print(
                f"    worker {pid}: noticed {w.get('notice_s')} s after publication, "
                f"read {w.get('read_s')} s, served {w.get('served_after_s')} s, first answer "
                f"{w['first_answer_after_s']} s after the request; maps warmed "
                f"{w.get('warm_after_switch_s')} s after the switch; all isochrones "
                f"{w.get('complete_after_s')} s after the request"
            )


# --------------------------------------------------------------------------- runs


def under_writes(
    server: Server, move_every: float, load: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """``load()`` while a :class:`Writer` writes; its result with the writes' outcome."""
    writer = Writer(server, move_every)
    writer.start()
    result = load()
    writer.stop.set()
    writer.join(150)
    result.update(
        admin_writes=len(writer.courses) + len(writer.moves),
        admin_failed=writer.failed,
        admin_lost=writer.lost(),
        move_visible_s=[round(m, 2) for m in writer.moves],
        move_stages=writer.stages,
    )
    return result


def mixed_run(workers: int, args: argparse.Namespace, tmp: Path, cache: Path) -> dict[str, Any]:
    """One server of ``workers`` processes: the mix at the offered rate (the target's
    measure), then at saturation (wrk's closed loop), each with the writes."""
    server = Server(workers, tmp, cache, args.port, args.threads)
    try:
        run_wrk(server.base, tmp, 5, args.connections)  # warm-up: memos, connections
        result: dict[str, Any] = {"workers": workers}
        if args.rate:
            result["rate"] = under_writes(
                server,
                args.move_every,
                lambda: run_rate(server.base, tmp, args.duration, args.rate, args.rate_connections),
            )
        result["saturation"] = under_writes(
            server,
            args.move_every,
            lambda: run_wrk(server.base, tmp, args.duration, args.connections),
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
    workers = args.soak_workers or args.workers[-1]
    server = Server(workers, tmp, cache, args.port, args.threads, name=f"soak-{workers}")
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(5.0):
            samples.append(sum(rss_mb(p) for p in server.pids()))

    def load() -> dict[str, Any]:
        if args.rate:
            return run_rate(server.base, tmp, args.soak, args.rate, args.rate_connections)
        return run_wrk(server.base, tmp, args.soak, args.connections)

    try:
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        result = under_writes(server, args.move_every, load)
        done.set()
        quarter = max(1, len(samples) // 4)
        result.update(
            workers=workers,
            rss_first_quarter_mb=round(float(np.mean(samples[:quarter])), 1),
            rss_last_quarter_mb=round(float(np.mean(samples[-quarter:])), 1),
            rss_samples_mb=[round(s) for s in samples],
        )
        return result
    finally:
        server.stop()


def print_runs(runs: list[dict[str, Any]]) -> None:
    print(
        f"{'workers':>7} {'req/s':>7} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max ms':>7} "
        f"{'errors':>6} {'writes':>6} {'lost':>4}  move visible (s)"
    )
    for r in runs:
        print(
            f"{r['workers']:>7} {r['rps']:>7.0f} {r['p50_ms']:>7.1f} {r['p90_ms']:>7.1f} "
            f"{r['p99_ms']:>7.1f} {r['max_ms']:>7.0f} {r['errors']:>6} {r['admin_writes']:>6} "
            f"{r['admin_lost']:>4}  {r['move_visible_s']}"
        )
        print_stages(r["move_stages"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument(
        "--rate", type=int, default=300, help="offered requests per second (0: wrk only)"
    )
    parser.add_argument(
        "--rate-connections", type=int, default=100, help="h2load's connections at --rate"
    )
    parser.add_argument("--connections", type=int, default=32, help="wrk's connections")
    parser.add_argument("--accept-encoding", default="gzip", help="wrk's Accept-Encoding")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker")
    parser.add_argument("--move-every", type=float, default=20.0, help="seconds between moves")
    parser.add_argument("--upload", type=int, default=0, help="rows of a registry upload")
    parser.add_argument("--soak", type=float, default=0.0, help="seconds of soak (0: none)")
    parser.add_argument(
        "--soak-workers", type=int, default=0, help="workers of the soak (default: the last)"
    )
    parser.add_argument("--port", type=int, default=8731)
    parser.add_argument("--cache", type=Path, default=None, help="results cache (warm)")
    args = parser.parse_args()
    global ENCODING
    ENCODING = args.accept_encoding
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk (Debian package wrk)")
    if args.rate and shutil.which("h2load") is None:
        raise SystemExit("--rate needs h2load (Debian package nghttp2-client); or --rate 0")
    tmp = Path(tempfile.mkdtemp(prefix="skillcircle-serving-"))
    cache = args.cache or Path(os.environ.get("SKILLCIRCLE_CACHE", tmp / "cache"))
    runs = [mixed_run(w, args, tmp, cache) for w in args.workers]
    if args.rate:
        print(
            f"offered {args.rate} req/s (h2load, {args.rate_connections} connections, open loop):"
        )
        print_runs([r["rate"] | {"workers": r["workers"]} for r in runs])
    print(f"saturation (wrk, {args.connections} connections, closed loop):")
    print_runs([r["saturation"] | {"workers": r["workers"]} for r in runs])
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
