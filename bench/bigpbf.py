"""Reading a region out of a big OSM file: peak memory and time, pyosmium vs osmium-tool.

Usage (from the repository root)::

    PYTHONPATH=. python bench/bigpbf.py                 # 20 M-node file, both routes
    PYTHONPATH=. python bench/bigpbf.py --nodes 2e6     # a quick run on a small file
    PYTHONPATH=. python bench/bigpbf.py --unclipped     # + the old whole-file read

The file (:func:`write_grid_pbf`) is a synthetic street grid, written once with
pyosmium's ``SimpleWriter`` to ``bench/results/bigpbf/grid-<N>.osm.pbf`` (kept out
of git, reused by later runs): about 425 x 425 km of streets around Zhejiang
(lon 117.6-122.0, lat 27.6-31.4, i.e. much larger than a county), intersections
every 250 m, three shape nodes between two intersections (every 62.5 m), one
way per two blocks (9 nodes), so the node count is about ``7 x`` the number of
intersections. Every tenth row and column is ``highway=primary`` with
``maxspeed=60`` and ``highway=traffic_signals`` where two primaries cross, with a
``no_left_turn`` restriction there; every seventh other street is
``oneway=yes``; the rest ``residential``. All nodes belong to roads, the
worst case for a reader that looks at road nodes (a real extract also carries
buildings, landuse... which the C++ filters skip).

The region is a county-sized outline (an ellipse of 40 x 30 km, 64 vertices,
55 % of the way across the grid: 120.0 E 29.7 N on the 20 M-node file) grown by
the default routing halo (:func:`geo.osmclip.clip_area`, 10 km). Each route runs in a fresh child
interpreter (the parent waits for it with ``os.wait4`` and reports the child's
peak RSS and wall time):

* ``pyosmium``: ``load_network(settings, FILE, clip=..., clip_reader="pyosmium")``
  (streaming, three passes over the file, :mod:`geo.osmclip`);
* ``osmium-tool``: ``osmium extract --strategy complete_ways`` to a temporary
  file, then our reader on the extract (``clip_reader="osmium-tool"``); its peak
  RSS is the larger of the Python process and the ``osmium`` child;
* ``unclipped`` (``--unclipped`` only): today's whole-file reader, no clip.

Both clipped routes must give the same network (checked: node ids, edges, way
ids, lengths, signals, restrictions). Targets: peak RSS ≤ 2 GB and time ≤ 2 x the
osmium-tool route. Progress on stderr; a table and, last, one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "bigpbf"

#: South-west corner of the grid and its spacing.
ORIGIN = (117.6, 27.6)
BLOCK_M = 250.0
SHAPE_NODES = 3  # shape nodes between two intersections
BLOCKS_PER_WAY = 2
_M_PER_DEG_LAT = 110_574.0
_M_PER_DEG_LON = 111_320.0 * float(np.cos(np.radians(29.5)))
#: The county-sized region: semi-axes (km); its centre is 55 % of the way across the grid.
REGION_AXES_KM = (20.0, 15.0)


def log(message: str) -> None:
    print(f"[bigpbf] {message}", file=sys.stderr, flush=True)


def grid_side(n_nodes: int) -> int:
    """Intersections per side so that the grid has at least ``n_nodes`` nodes."""
    # nodes = I^2 + 2 I (I - 1) K
    k = SHAPE_NODES
    side = int(np.ceil((k + np.sqrt(k * k + (1 + 2 * k) * n_nodes)) / (1 + 2 * k)))
    while side * side + 2 * side * (side - 1) * k < n_nodes:
        side += 1
    return side


def write_grid_pbf(path: Path, n_nodes: int) -> dict[str, int]:
    """Write the street grid with at least ``n_nodes`` nodes; returns its counts.

    Nodes are written in id order (intersections row by row, then the shape nodes of
    the east-west streets, then of the north-south ones), then ways, then relations,
    as a sorted OSM file.
    """
    import osmium
    from osmium.osm.mutable import Node, Relation, Way

    side = grid_side(n_nodes)
    k = SHAPE_NODES
    dlon = BLOCK_M / _M_PER_DEG_LON
    dlat = BLOCK_M / _M_PER_DEG_LAT
    x0, y0 = ORIGIN
    n_cross = side * side
    n_h = side * (side - 1) * k  # shape nodes on east-west block sides
    base_h = n_cross + 1
    base_v = base_h + n_h

    def cross(r: int, c: int) -> int:
        return 1 + r * side + c

    def h_shape(r: int, c: int, j: int) -> int:  # between (r, c) and (r, c + 1)
        return base_h + (r * (side - 1) + c) * k + j

    def v_shape(r: int, c: int, j: int) -> int:  # between (r, c) and (r + 1, c)
        return base_v + (c * (side - 1) + r) * k + j

    def primary(i: int) -> bool:
        return i % 10 == 0

    signal = {"highway": "traffic_signals"}
    rng = np.random.default_rng(13)
    jitter = 0.04  # of a block: about 10 m, so that coordinates compress like real ones
    started = time.perf_counter()
    tmp = path.with_suffix(".tmp.pbf")
    counts = {"nodes": 0, "ways": 0, "relations": 0}
    with osmium.SimpleWriter(str(tmp), overwrite=True) as writer:
        for r in range(side):
            lon = x0 + (np.arange(side) + rng.uniform(-jitter, jitter, side)) * dlon
            lat = y0 + (r + rng.uniform(-jitter, jitter, side)) * dlat
            for c in range(side):
                tags = signal if primary(r) and primary(c) else {}
                location = (float(lon[c]), float(lat[c]))
                writer.add_node(Node(id=cross(r, c), location=location, tags=tags))
            if r % 200 == 0:
                log(f"   intersections: row {r:,} of {side:,}")
        step = 1.0 / (k + 1)
        for r in range(side):
            n = (side - 1) * k
            lon = (
                x0
                + (
                    np.repeat(np.arange(side - 1), k)
                    + np.tile(np.arange(1, k + 1), side - 1) * step
                )
                * dlon
            )
            lat = y0 + (r + rng.uniform(-jitter, jitter, n)) * dlat
            for i in range(n):
                c, j = divmod(i, k)
                writer.add_node(Node(id=h_shape(r, c, j), location=(float(lon[i]), float(lat[i]))))
            if r % 200 == 0:
                log(f"   east-west shape nodes: row {r:,} of {side:,}")
        for c in range(side):
            n = (side - 1) * k
            lat = (
                y0
                + (
                    np.repeat(np.arange(side - 1), k)
                    + np.tile(np.arange(1, k + 1), side - 1) * step
                )
                * dlat
            )
            lon = x0 + (c + rng.uniform(-jitter, jitter, n)) * dlon
            for i in range(n):
                r, j = divmod(i, k)
                writer.add_node(Node(id=v_shape(r, c, j), location=(float(lon[i]), float(lat[i]))))
            if c % 200 == 0:
                log(f"   north-south shape nodes: column {c:,} of {side:,}")
        counts["nodes"] = n_cross + 2 * n_h
        way_id = 0
        h_way: dict[tuple[int, int], int] = {}  # (row, end column) -> way id
        v_way: dict[tuple[int, int], int] = {}  # (start row, column) -> way id

        def tags_for(line: int, along: int) -> dict[str, str]:
            if primary(line):
                return {"highway": "primary", "maxspeed": "60", "name": f"干道{line}"}
            if line % 7 == 3:
                return {"highway": "residential", "oneway": "yes" if along % 2 else "-1"}
            return {"highway": "residential"}

        for r in range(side):
            for c0 in range(0, side - 1, BLOCKS_PER_WAY):
                c1 = min(c0 + BLOCKS_PER_WAY, side - 1)
                refs = []
                for c in range(c0, c1):
                    refs.append(cross(r, c))
                    refs.extend(h_shape(r, c, j) for j in range(k))
                refs.append(cross(r, c1))
                way_id += 1
                writer.add_way(Way(id=way_id, nodes=refs, tags=tags_for(r, c0)))
                if primary(r) and primary(c1):
                    h_way[(r, c1)] = way_id
        for c in range(side):
            for r0 in range(0, side - 1, BLOCKS_PER_WAY):
                r1 = min(r0 + BLOCKS_PER_WAY, side - 1)
                refs = []
                for r in range(r0, r1):
                    refs.append(cross(r, c))
                    refs.extend(v_shape(r, c, j) for j in range(k))
                refs.append(cross(r1, c))
                way_id += 1
                writer.add_way(Way(id=way_id, nodes=refs, tags=tags_for(c, r0)))
                if primary(c) and primary(r0):
                    v_way[(r0, c)] = way_id
            if c % 200 == 0:
                log(f"   ways: column {c:,} of {side:,}")
        counts["ways"] = way_id
        rel_id = 0
        for (r, c), from_way in h_way.items():
            if (to_way := v_way.get((r, c))) is None:
                continue
            rel_id += 1
            members = [("w", from_way, "from"), ("n", cross(r, c), "via"), ("w", to_way, "to")]
            tags = {"type": "restriction", "restriction": "no_left_turn"}
            writer.add_relation(Relation(id=rel_id, members=members, tags=tags))
        counts["relations"] = rel_id
    tmp.replace(path)
    log(
        f"   wrote {path} ({path.stat().st_size / 1e6:,.0f} MB: {counts['nodes']:,} nodes, "
        f"{counts['ways']:,} ways, {counts['relations']:,} relations) "
        f"in {time.perf_counter() - started:,.0f} s"
    )
    return counts


def region_outline(side: int) -> Any:
    """The county-sized ellipse (WGS84 shapely Polygon) on a grid of ``side`` intersections."""
    from shapely.geometry import Polygon

    extent_m = (side - 1) * BLOCK_M
    x, y = (
        ORIGIN[0] + 0.55 * extent_m / _M_PER_DEG_LON,
        ORIGIN[1] + 0.55 * extent_m / _M_PER_DEG_LAT,
    )
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    ax, ay = REGION_AXES_KM
    lon = x + ax * 1000 * np.cos(t) / _M_PER_DEG_LON
    lat = y + ay * 1000 * np.sin(t) / _M_PER_DEG_LAT
    return Polygon(np.column_stack([lon, lat]))


# --------------------------------------------------------------------------- measuring

_ARRAYS = ("node_ids", "lon", "lat", "u", "v", "way_id", "length_m", "signal", "restrictions")
_ROUTES = {"pyosmium": "pyosmium", "osmium-tool": "osmium-tool", "unclipped": None}


def child(route: str, pbf: Path, side: int, out: Path) -> None:
    """Run one route in this (fresh) interpreter; print a JSON line of figures."""
    import logging
    import resource

    import osmium  # noqa: F401  (imports are not timed)
    import osmnx.distance  # noqa: F401
    import shapely  # noqa: F401

    from geo.network import load_network
    from geo.osmclip import clip_area
    from geo.settings import Settings

    logging.basicConfig(level=logging.WARNING, format="[bigpbf]      %(name)s: %(message)s")
    logging.getLogger("geo.osmclip").setLevel(logging.INFO)
    settings = Settings(cache_dir=out.parent / "cache")
    clip = None if route == "unclipped" else clip_area(region_outline(side))
    reader = _ROUTES[route] or "auto"
    started = time.perf_counter()
    net = load_network(settings, pbf, clip=clip, clip_reader=reader, use_cache=False)
    seconds = time.perf_counter() - started
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    np.savez(out, **{k: getattr(net, k) for k in _ARRAYS})
    print(
        json.dumps(
            {
                "seconds": round(seconds, 2),
                "rss_python_gb": round(own / 1024**2, 3),
                "rss_tool_gb": round(kids / 1024**2, 3),
                "nodes": net.n_nodes,
                "edges": net.n_edges,
            }
        )
    )


def run_child(route: str, pbf: Path, side: int, work: Path) -> dict[str, Any]:
    """One route in a child interpreter: its figures, wall time and peak RSS (wait4)."""
    out = work / f"{route}.npz"
    cmd = [sys.executable, __file__, "--child", route, str(pbf), str(side), str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log(f"   {route}: {' '.join(cmd[1:])}")
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    lines = proc.stdout.read().splitlines()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{route} failed (exit {proc.returncode})")
    figures = json.loads(lines[-1])
    figures["wall_s"] = round(time.perf_counter() - started, 2)
    figures["rss_peak_gb"] = round(usage.ru_maxrss / 1024**2, 3)  # child and its children
    log(f"   {route}: {figures}")
    return figures


def same_network(work: Path) -> bool:
    a = np.load(work / "pyosmium.npz")
    b = np.load(work / "osmium-tool.npz")
    return all(np.array_equal(a[k], b[k]) for k in _ARRAYS)


def load() -> float:
    return os.getloadavg()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=float, default=20e6, help="grid size (default 20e6)")
    parser.add_argument("--pbf", type=Path, help="use this grid file instead of generating it")
    parser.add_argument("--unclipped", action="store_true", help="also the whole-file read")
    parser.add_argument("--repeat", type=int, default=1, help="runs per route (best time)")
    parser.add_argument("--child", nargs=4, metavar=("ROUTE", "PBF", "SIDE", "OUT"))
    args = parser.parse_args()
    if args.child:
        route, pbf, side, out = args.child
        child(route, Path(pbf), int(side), Path(out))
        return
    n_nodes = int(args.nodes)
    side = grid_side(n_nodes)
    pbf = args.pbf or RESULTS / f"grid-{n_nodes}.osm.pbf"
    if not pbf.exists():
        log(f"writing the {n_nodes:,}-node grid (once) to {pbf}")
        pbf.parent.mkdir(parents=True, exist_ok=True)
        write_grid_pbf(pbf, n_nodes)
    if shutil.which("osmium") is None:
        raise SystemExit("osmium-tool is not installed (apt-get install osmium-tool)")
    info = subprocess.run(
        ["osmium", "fileinfo", "--extended", "--json", str(pbf)],
        capture_output=True,
        text=True,
        check=True,
    )
    counts = json.loads(info.stdout)["data"]["count"]
    log(f"file {pbf}: {pbf.stat().st_size / 1e6:,.0f} MB, {counts}")
    routes = ["pyosmium", "osmium-tool", *(["unclipped"] if args.unclipped else [])]
    results: dict[str, dict[str, Any]] = {}
    loads = [load()]
    with TemporaryWork() as work:
        for route in routes:
            runs = [run_child(route, pbf, side, work) for _ in range(args.repeat)]
            loads.append(load())
            best = min(runs, key=lambda r: r["seconds"])
            best["rss_peak_gb"] = max(r["rss_peak_gb"] for r in runs)
            results[route] = best
        same = same_network(work)
    ours, tool = results["pyosmium"], results["osmium-tool"]
    ratio = ours["seconds"] / tool["seconds"]
    rows = [
        (
            "file",
            f"{pbf.stat().st_size / 1e6:,.0f} MB",
            f"{counts['nodes']:,} nodes, "
            f"{counts['ways']:,} ways, {counts['relations']:,} relations",
        ),
        ("region network", f"{ours['nodes']:,} nodes", f"{ours['edges']:,} directed edges"),
    ]
    for route, r in results.items():
        rows.append(
            (
                f"{route} time",
                f"{r['seconds']:.1f} s",
                f"wall {r['wall_s']:.1f} s with interpreter start",
            )
        )
        rows.append(
            (
                f"{route} peak RSS",
                f"{r['rss_peak_gb']:.2f} GB",
                f"python {r['rss_python_gb']:.2f} GB, osmium {r['rss_tool_gb']:.2f} GB",
            )
        )
    ok_rss = ours["rss_peak_gb"] <= 2.0
    rows.append(
        (
            "pyosmium / osmium-tool time",
            f"{ratio:.2f} x",
            f"target ≤ 2 x {'✓' if ratio <= 2 else '✗'}",
        )
    )
    rows.append(
        (
            "pyosmium peak RSS target",
            f"{ours['rss_peak_gb']:.2f} GB",
            f"≤ 2 GB {'✓' if ok_rss else '✗'}",
        )
    )
    rows.append(
        ("same network", str(same), "node ids, edges, way ids, lengths, signals, restrictions")
    )
    rows.append(
        (
            "load average",
            " / ".join(f"{x:.1f}" for x in loads),
            "1-min, before and after each route (2 cores)",
        )
    )
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"  {name:<{width}}  {value:>14}  {note}")
    print(
        json.dumps(
            {
                "file_mb": round(pbf.stat().st_size / 1e6, 1),
                "file_nodes": counts["nodes"],
                "file_ways": counts["ways"],
                "region_nodes": ours["nodes"],
                **{
                    f"{route}_{k}": v
                    for route, r in results.items()
                    for k, v in r.items()
                    if k in ("seconds", "wall_s", "rss_peak_gb")
                },
                "ratio": round(ratio, 2),
                "same_network": same,
                "load": [round(x, 2) for x in loads],
            }
        )
    )


class TemporaryWork:
    """A temporary folder under bench/results (big arrays; removed afterwards)."""

    def __enter__(self) -> Path:
        import tempfile

        RESULTS.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(dir=RESULTS, prefix="run-"))
        return self.path

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


if __name__ == "__main__":
    main()
