"""Load test of the real web app: waitress in a child process, keep-alive clients in threads.

The server half (``python bench/apiload.py serve --database FILE``) builds the app
exactly as ``skillcircle serve`` does (:func:`web.create_app`, the bundled
Jiaxing data via ``Study.load()``), with the public rate limit raised so that
the benchmark measures the app and not flask-limiter's 429s, and serves it with
waitress on 127.0.0.1 and a free port (printed as ``PORT <n>``). With
``--profile FILE`` every request runs under its own :mod:`cProfile` profiler
(waitress answers on several threads, which one profiler would miss) and the
merged statistics are written to ``FILE`` when the server gets SIGTERM.

The client half (:func:`run_load`) keeps ``clients`` HTTP/1.1 keep-alive
connections (:mod:`http.client`, one thread each) busy for a fixed duration,
each sending the next request as soon as the previous one is answered (a
closed loop), half ``GET /api/nearby?lon=..&lat=..&mode=ebike`` at random
points of the Jiaxing extent and half ``GET /q/<village code>`` for random
village codes.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

EXTENT = (120.3, 30.2, 121.3, 31.0)


@dataclass
class LoadResult:
    """Outcome of a load run; latencies in milliseconds."""

    requests: int
    errors: int
    seconds: float
    latencies_ms: np.ndarray
    by_kind: dict[str, np.ndarray]
    statuses: dict[int, int]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float, kind: str | None = None) -> float:
        values = self.latencies_ms if kind is None else self.by_kind[kind]
        return float(np.percentile(values, q)) if len(values) else float("nan")


# --------------------------------------------------------------------------- server


class _ProfiledApp:
    """WSGI middleware: profile each request on its own profiler, merge at the end."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.profiles: list[Any] = []
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
        try:
            result = self.app(environ, start_response)
            body = list(result)
            close = getattr(result, "close", None)
            if close is not None:
                close()
        finally:
            prof.disable()
            with self.lock:
                self.profiles.append(prof)
        return body

    def dump(self, path: str) -> None:
        import pstats

        with self.lock:
            profiles = list(self.profiles)
        if not profiles:
            return
        stats = pstats.Stats(profiles[0])
        for prof in profiles[1:]:
            stats.add(prof)
        stats.dump_stats(path)


def serve(database: str, threads: int, profile: str | None) -> None:
    """Start the app on a free port; print ``PORT <n>`` when ready."""
    import logging

    import waitress

    from web import create_app

    logging.basicConfig(level=logging.WARNING)
    app = create_app({"DATABASE": database, "RATELIMIT_PUBLIC": "100000 per second"})
    wsgi: Any = app
    profiled = None
    if profile:
        profiled = _ProfiledApp(app.wsgi_app)
        app.wsgi_app = profiled  # type: ignore[method-assign]
    server = waitress.create_server(wsgi, host="127.0.0.1", port=0, threads=threads)

    def stop(signum: int, frame: Any) -> None:
        if profiled is not None and profile:
            profiled.dump(profile)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    print(f"PORT {server.effective_port}", flush=True)  # type: ignore[union-attr]
    server.run()


def start_server(
    database: Path, threads: int = 4, profile: Path | None = None, timeout: float = 900.0
) -> tuple[subprocess.Popen[str], int, float]:
    """Start :func:`serve` in a child process; return it, its port and the start-up seconds."""
    cmd = [sys.executable, __file__, "serve", "--database", str(database)]
    cmd += ["--threads", str(threads)]
    if profile is not None:
        cmd += ["--profile", str(profile)]
    env = dict(os.environ)
    env["SKILLCIRCLE_RATELIMIT_PUBLIC"] = "100000 per second"
    started = time.perf_counter()
    errors = database.with_name("server.log")
    with errors.open("w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    assert proc.stdout is not None
    deadline = started + timeout
    while time.perf_counter() < deadline:
        line = proc.stdout.readline()
        if not line:
            tail = errors.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"web app exited during start-up (code {proc.wait()}):\n{tail}")
        if line.startswith("PORT "):
            return proc, int(line.split()[1]), time.perf_counter() - started
    proc.kill()
    raise RuntimeError("web app did not start in time")


def stop_server(proc: subprocess.Popen[str]) -> None:
    """SIGTERM the child (it writes its profile, if any) and wait for it."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --------------------------------------------------------------------------- client


def request_paths(codes: list[str], n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` (kind, path) pairs: alternately nearby at random points and 技能码 pages."""
    rng = np.random.default_rng(seed)
    lon = rng.uniform(EXTENT[0], EXTENT[2], n)
    lat = rng.uniform(EXTENT[1], EXTENT[3], n)
    pick = rng.integers(0, len(codes), n)
    out = []
    for i in range(n):
        if rng.random() < 0.5:
            out.append(("nearby", f"/api/nearby?lon={lon[i]:.5f}&lat={lat[i]:.5f}&mode=ebike"))
        else:
            out.append(("village", f"/q/{codes[pick[i]]}"))
    return out


def send(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[http.client.HTTPConnection, int, float]:
    """One request on a keep-alive connection: (connection to use next, status, ms).

    A failed request counts as status -1 and the connection is replaced.
    """
    t0 = time.perf_counter()
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        status = resp.status
    except (OSError, http.client.HTTPException):
        status = -1
        conn.close()
        conn = http.client.HTTPConnection(conn.host, conn.port, timeout=conn.timeout)
    return conn, status, (time.perf_counter() - t0) * 1e3


def run_load(
    port: int, codes: list[str], duration: float, clients: int = 8, seed: int = 0
) -> LoadResult:
    """Keep ``clients`` connections busy for ``duration`` seconds (closed loop)."""
    paths = request_paths(codes, 20_000, seed)
    lock = threading.Lock()
    lat_ms: list[float] = []
    kinds: list[str] = []
    statuses: dict[int, int] = {}
    errors = [0]
    start = time.perf_counter()
    deadline = start + duration

    def worker(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        i = index
        mine: list[tuple[str, float, int]] = []
        while time.perf_counter() < deadline:
            kind, path = paths[i % len(paths)]
            i += clients
            conn, status, ms = send(conn, "GET", path)
            mine.append((kind, ms, status))
        conn.close()
        with lock:
            for kind, ms, status in mine:
                lat_ms.append(ms)
                kinds.append(kind)
                statuses[status] = statuses.get(status, 0) + 1
                errors[0] += status != 200

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    values = np.array(lat_ms)
    kind_arr = np.array(kinds)
    return LoadResult(
        requests=len(values),
        errors=errors[0],
        seconds=elapsed,
        latencies_ms=values,
        by_kind={k: values[kind_arr == k] for k in ("nearby", "village")},
        statuses=statuses,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    srv = sub.add_parser("serve", help="run the app on a free port (prints PORT n)")
    srv.add_argument("--database", required=True)
    srv.add_argument("--threads", type=int, default=4)
    srv.add_argument("--profile", default=None)
    args = parser.parse_args()
    serve(args.database, args.threads, args.profile)


if __name__ == "__main__":
    main()
