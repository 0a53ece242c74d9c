"""Province scale: wall time and peak memory of every command on one region pack.

Runs the real command line (``skillcircle --region CODE ...``, this work tree's
code) as child processes, one after the other, and measures each:

* **wall** — from start to exit (for ``serve``: to the line "serving on");
* **CPU** — user + system seconds of the process and its children (``wait4``;
  for ``serve``: psutil at "serving on"): unlike wall time, hardly affected by
  other processes sharing the cores;
* **peak RSS** — the largest process's peak, from ``wait4``'s ``ru_maxrss``
  (what ``/usr/bin/time -v`` prints as "Maximum resident set size"; for
  ``serve`` the server's ``VmHWM`` before it is stopped);
* **tree MB** — the sum of the proportional set sizes (PSS: a page shared by
  several processes counts in part) of the child and all its descendants,
  sampled every 0.2 s (psutil), whose maximum matters for the Dask run
  (scheduler, nanny and worker processes) and for ``serve`` (its recompute
  process is a fork of the server).

Commands: ``coverage`` per mode (walk, ebike, drive; all layers), ``stats --by
county`` (XLSX) and ``--by town`` (CSV), ``export --county`` (XLSX), ``coverage
--dask --workers 2`` (walk), and ``serve`` twice — cold (an empty results cache:
``Study.load`` computes every mode, isochrone and 技能码 card) and warm (the
results read back) — with requests to ``/``, ``/q/<code>``, ``/api/nearby`` and
``/api/stats`` (each twice: first answer, then memoised), timed with their
sizes. Load averages (``os.getloadavg``) are printed before and after each
command: other processes on the machine slow the figures down.

Usage (from the repository root; the pack must exist, see ``skillcircle region
build``)::

    PYTHONPATH=. python bench/province.py --region 330000 [--county 临安区]
        [--only coverage,stats,export,dask,serve] [--workdir DIR]

Prints a table and, as the last line, one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
STEPS = ("coverage", "stats", "export", "dask", "serve")


@dataclass
class Run:
    """One measured command."""

    name: str
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    tree_pss_mb: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    status: int
    note: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)


def pss(proc: psutil.Process) -> int:
    """Proportional set size (pages shared with other processes, e.g. a forked child's
    copy-on-write pages, count in part), else RSS."""
    try:
        return int(proc.memory_full_info().pss)
    except (AttributeError, psutil.AccessDenied):
        return int(proc.memory_info().rss)


class TreeSampler(threading.Thread):
    """Largest sum of memory (PSS) over a process and its descendants, sampled."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.peak = pid, every, 0
        self.done = threading.Event()

    def run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self.done.is_set():
            total = 0
            try:
                for proc in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                        total += pss(proc)
            except psutil.NoSuchProcess:
                return
            self.peak = max(self.peak, total)
            self.done.wait(self.every)


def skillcircle() -> list[str]:
    """The console script of this interpreter (this work tree's code via PYTHONPATH)."""
    script = Path(sys.executable).with_name("skillcircle")
    if script.exists():
        return [str(script)]
    found = shutil.which("skillcircle")
    if found is None:
        sys.exit("skillcircle is not installed in this environment: pip install -e .")
    return [found]


def environment(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["SKILLCIRCLE_CACHE"] = str(cache)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.pop("SKILLCIRCLE_REGION", None)
    return env


def measure(name: str, argv: list[str], env: dict[str, str]) -> Run:
    """Run one command to its end; wall time, peak RSS (wait4) and sampled tree RSS."""
    print(f"  running {name}: {' '.join(argv[1:])}", file=sys.stderr, flush=True)
    before = os.getloadavg()
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    sampler = TreeSampler(proc.pid)
    sampler.start()
    output = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    sampler.done.set()
    sampler.join()
    lines = [ln for ln in output.decode(errors="replace").splitlines() if ln.strip()]
    if proc.returncode:
        print("\n".join(lines[-20:]), file=sys.stderr)
    note = next((ln for ln in reversed(lines) if "->" in ln), lines[-1] if lines else "")
    return Run(
        name=name,
        wall_s=round(wall, 1),
        cpu_s=round(usage.ru_utime + usage.ru_stime, 1),
        peak_rss_mb=round(usage.ru_maxrss / 1024),
        tree_pss_mb=round(max(sampler.peak, usage.ru_maxrss * 1024) / 2**20),
        load_before=tuple(round(x, 2) for x in before),  # type: ignore[arg-type]
        load_after=tuple(round(x, 2) for x in os.getloadavg()),  # type: ignore[arg-type]
        status=proc.returncode,
        note=note.strip()[:120],
    )


def get(port: int, path: str) -> dict[str, Any]:
    """One GET on a fresh connection: status, bytes, milliseconds."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.perf_counter()
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    ms = (time.perf_counter() - started) * 1000
    conn.close()
    return {"path": path, "status": resp.status, "bytes": len(body), "ms": round(ms, 1)}


def hwm_mb(pid: int) -> float:
    """Peak resident size so far (``VmHWM``) of a live process, MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def browser_load(url: str) -> dict[str, Any]:
    """Open ``url`` in headless Chromium (Debian ``chromium`` + ``chromium-driver``):
    milliseconds to DOMContentLoaded and to the load event, and the number of
    Leaflet paths drawn (one per village circle and area). Needs selenium."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = shutil.which("chromium") or "chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.set_page_load_timeout(600)
        started = time.perf_counter()
        driver.get(url)
        wall = (time.perf_counter() - started) * 1000
        timing = driver.execute_script(
            "var t = performance.timing; return [t.domContentLoadedEventEnd - t.navigationStart,"
            " t.loadEventEnd - t.navigationStart];"
        )
        heap = driver.execute_script(
            "return performance.memory ? performance.memory.usedJSHeapSize : null;"
        )
    finally:
        driver.quit()
    return {
        "url": url,
        "dom_ms": timing[0],
        "load_ms": timing[1],
        "wall_ms": round(wall),
        "js_heap_mb": None if heap is None else round(heap / 2**20),
    }


def serve(
    name: str,
    region: str,
    env: dict[str, str],
    database: Path,
    paths: list[str],
    browser: bool = False,
) -> Run:
    """Start ``skillcircle serve`` on a free port, time start-up and a few requests."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = [*skillcircle(), "--region", region, "serve", "--port", str(port)]
    argv += ["--database", str(database)]
    print(f"  running {name}: {' '.join(argv[1:])}", file=sys.stderr, flush=True)
    before = os.getloadavg()
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    sampler = TreeSampler(proc.pid)
    sampler.start()
    lines: list[str] = []
    assert proc.stdout is not None
    for raw in proc.stdout:
        line = raw.decode(errors="replace").rstrip()
        lines.append(line)
        if "serving on" in line:
            break
    ready = time.perf_counter() - started
    load_after = os.getloadavg()
    try:  # CPU seconds of the start-up: the server and its children so far
        cpu = psutil.Process(proc.pid).cpu_times()
        ready_cpu = cpu.user + cpu.system + cpu.children_user + cpu.children_system
        ready_cpu += sum(
            c.cpu_times().user + c.cpu_times().system
            for c in psutil.Process(proc.pid).children(recursive=True)
        )
    except psutil.NoSuchProcess:
        ready_cpu = float("nan")
    # keep draining the server's output so that it never blocks on a full pipe
    drain = threading.Thread(target=lambda: [None for _ in proc.stdout or ()], daemon=True)
    drain.start()
    requests = []
    if proc.poll() is None:
        time.sleep(1.0)  # waitress binds after printing the line
        for path in paths:
            for _ in range(2):  # the first answer, then the memoised one
                requests.append(get(port, path))
        if browser:
            requests.append({"browser": browser_load(f"http://127.0.0.1:{port}/")})
    startup_hwm = hwm_mb(proc.pid) if proc.poll() is None else float("nan")
    proc.send_signal(signal.SIGTERM)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    sampler.done.set()
    sampler.join()
    if "serving on" not in (lines[-1] if lines else ""):
        print("\n".join(lines[-20:]), file=sys.stderr)
    return Run(
        name=name,
        wall_s=round(ready, 1),
        cpu_s=round(ready_cpu, 1),
        peak_rss_mb=round(max(usage.ru_maxrss / 1024, startup_hwm)),
        tree_pss_mb=round(sampler.peak / 2**20),
        load_before=tuple(round(x, 2) for x in before),  # type: ignore[arg-type]
        load_after=tuple(round(x, 2) for x in load_after),  # type: ignore[arg-type]
        status=0 if "serving on" in (lines[-1] if lines else "") else 1,
        note=next((ln for ln in lines if "ready in" in ln), "").strip(),
        requests=requests,
    )


def sample_request_paths(region: str, env: dict[str, str]) -> list[str]:
    """/, a 技能码 page, nearby at that village, stats by county and by town."""
    code = (
        "import sys; from geo.settings import Settings; from geo.places import load_villages;"
        "v = load_villages(None, Settings.for_region(sys.argv[1])); r = v.iloc[len(v) // 2];"
        "print(r['village_code'], r.geometry.x, r.geometry.y)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, region], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    village, lon, lat = out[-3], float(out[-2]), float(out[-1])
    return [
        "/",
        f"/q/{village}",
        f"/api/nearby?lon={lon:.5f}&lat={lat:.5f}&mode=ebike",
        "/api/stats?mode=walk&by=county",
        "/api/stats?mode=walk&by=town",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--region", default="330000", help="region pack code or folder")
    parser.add_argument("--county", default=None, help="county for export (default: the first)")
    parser.add_argument("--only", default=",".join(STEPS), help="comma-separated steps")
    parser.add_argument("--workdir", type=Path, default=None, help="outputs and caches")
    parser.add_argument(
        "--browser", action="store_true", help="also load the map page in headless Chromium"
    )
    args = parser.parse_args(argv)
    steps = [s for s in args.only.split(",") if s]
    unknown = set(steps) - set(STEPS)
    if unknown:
        parser.error(f"unknown steps {sorted(unknown)}; use {','.join(STEPS)}")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="sc-province-"))
    work.mkdir(parents=True, exist_ok=True)
    env = environment(work / "cache")
    base = [*skillcircle(), "--region", args.region]
    county = args.county
    if county is None:
        from geo.region import load_region, resolve_region

        county = load_region(resolve_region(args.region)).counties[0].name
    started = time.perf_counter()
    runs: list[Run] = []
    if "coverage" in steps:
        for mode in ("walk", "ebike", "drive"):
            out = work / f"coverage_{mode}.csv"
            runs.append(
                measure(
                    f"coverage {mode}", [*base, "coverage", "--mode", mode, "--out", str(out)], env
                )
            )
    if "stats" in steps:
        runs.append(
            measure(
                "stats --by county", [*base, "stats", "--out", str(work / "stats_county.xlsx")], env
            )
        )
        runs.append(
            measure(
                "stats --by town",
                [*base, "stats", "--by", "town", "--out", str(work / "stats_town.csv")],
                env,
            )
        )
    if "export" in steps:
        out = work / "export.xlsx"
        runs.append(
            measure(
                f"export --county {county}",
                [*base, "export", "--county", county, "--out", str(out)],
                env,
            )
        )
    if "dask" in steps:
        out = work / "coverage_dask.csv"
        argv_ = [*base, "coverage", "--dask", "--workers", "2", "--out", str(out)]
        runs.append(measure("coverage --dask --workers 2 (walk)", argv_, env))
    if "serve" in steps:
        paths = sample_request_paths(args.region, env)
        cold = environment(work / "cache-serve")
        shutil.rmtree(work / "cache-serve", ignore_errors=True)
        runs.append(
            serve("serve, cold (no results cache)", args.region, cold, work / "cold.sqlite3", paths)
        )
        warm = work / "warm.sqlite3"
        runs.append(
            serve("serve, warm (results cache)", args.region, cold, warm, paths, args.browser)
        )
    total = time.perf_counter() - started

    print(f"\nregion {args.region}, outputs in {work}, {total:.0f} s in all")
    head = (
        f"{'command':40} {'wall s':>8} {'CPU s':>7} {'peak RSS MB':>12} {'tree PSS MB':>12}"
        "  load 1-min"
    )
    print(head)
    print("-" * len(head))
    for run in runs:
        flag = "" if run.status == 0 else f"  FAILED ({run.status})"
        print(
            f"{run.name:40} {run.wall_s:8.1f} {run.cpu_s:7.1f} {run.peak_rss_mb:12.0f}"
            f" {run.tree_pss_mb:12.0f}  "
            f"{run.load_before[0]:.2f} -> {run.load_after[0]:.2f}{flag}"
        )
        for req in run.requests:
            if "browser" in req:
                b = req["browser"]
                print(
                    f"    Chromium: map page DOMContentLoaded {b['dom_ms']:,} ms, load event "
                    f"{b['load_ms']:,} ms, JS heap {b['js_heap_mb']} MB"
                )
                continue
            print(
                f"    GET {req['path']:56} {req['status']} {req['bytes']:>11,} B"
                f" {req['ms']:9.1f} ms"
            )
    print(
        json.dumps(
            {"region": args.region, "total_s": round(total, 1), "runs": [asdict(r) for r in runs]},
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()
