"""skillcircle benchmark: coverage, isochrones, networkx baselines, PBF ingestion, web API, memory.

Run from the repository root (``PYTHONPATH=.`` makes this work tree's code win
over an installed copy)::

    PYTHONPATH=. python bench/run.py [--quick] [--full] [--osm FILE] [--profile DIR]

Prints a table (figures, targets, ✓/✗) and, as the last line, one JSON object
with every figure. All ratios compare two timings taken in the same run.
Workloads (see bench/README.md):

* ``coverage_s`` — :func:`geo.coverage.coverage_table` for the 3 modes (1,202
  villages x 7 layers each) on the ~200k-node synthetic Jiaxing graph of
  :mod:`synthetic`, Routers built beforehand; best of ``--repeat`` runs.
* ``nx_multisource_ratio`` — per layer, networkx ``multi_source_dijkstra_path_length``
  on the same (reversed, drive) graph with the same snapping vs ``Router.nearest``;
  results are checked to be equal (``nx_multisource_equal``).
* ``cookbook_ratio`` — osmnx-examples isochrone (``nx.ego_graph`` by travel time,
  union of 50 m node buffers) vs :func:`geo.isochrones.union_isochrone`, 30 min
  e-bike, on a sample of facilities.
* ``isochrone_p50_ms`` / ``isochrone_p95_ms`` — one facility's 30-min e-bike polygon.
* ``pbf_ratio`` — ``osmnx.graph_from_xml`` on an OSM XML vs
  :func:`geo.network.network_from_pbf` on the same data as ``.osm.pbf`` (~50k nodes).
* ``api_*`` — the real web app under waitress, closed-loop keep-alive clients.
* ``rss_1m_gb`` — with ``--full``: peak RSS of a child building a ~1M-node graph,
  a drive Router and one ``nearest()`` for 20k villages.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # this work tree's geo/ and web/ before an installed copy
    sys.path.insert(1, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
)

import geopandas as gpd  # noqa: E402
import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402
import shapely  # noqa: E402

from geo.coverage import coverage_table  # noqa: E402
from geo.isochrones import union_isochrone  # noqa: E402
from geo.network import RoadNetwork, network_from_osmnx_graph, network_from_pbf  # noqa: E402
from geo.routing import Router  # noqa: E402
from geo.settings import LAYERS, MODES, Settings  # noqa: E402

from synthetic import (  # noqa: E402
    SyntheticCity,
    jiaxing_city,
    random_places,
    subset_ways,
    synthetic_facilities,
    synthetic_villages,
    write_osm,
)

EPS = 1e-6  # geo.routing floors every weight at this (scipy drops explicit zeros)
ISO_MINUTES = 30.0


# --------------------------------------------------------------------------- reporting


@dataclass
class Report:
    """Rows of the printed table and the JSON figures."""

    rows: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def section(self, title: str) -> None:
        self.rows.append((f"[{title}]", "", "", "", ""))
        log(f"== {title}")

    def add(
        self,
        label: str,
        value: str,
        target: str = "",
        ok: bool | None = None,
        note: str = "",
    ) -> None:
        mark = "" if ok is None else ("✓" if ok else "✗")
        self.rows.append((label, value, target, mark, note))
        log(f"   {label}: {value} {target} {mark} {note}")

    def print_table(self) -> None:
        body = [r for r in self.rows if not r[0].startswith("[")]
        widths = [max(len(r[i]) for r in body) for i in range(4)]
        head = ("figure", "value", "target", "", "note")
        print(
            f"  {head[0]:<{widths[0]}}  {head[1]:>{widths[1]}}  {head[2]:<{widths[2]}}  "
            f"{head[3]:<{widths[3]}}  {head[4]}"
        )
        print("-" * (sum(widths) + 40))
        for label, value, target, mark, note in self.rows:
            if label.startswith("["):
                print(label)
                continue
            print(
                f"  {label:<{widths[0]}}  {value:>{widths[1]}}  {target:<{widths[2]}}  "
                f"{mark:<{widths[3]}}  {note}".rstrip()
            )


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def timed(func: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """Best wall time of ``repeat`` calls and the last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = func()
        best = min(best, time.perf_counter() - start)
    return best, out


def profiled(func: Callable[[], Any], path: Path | None) -> Any:
    """Run ``func`` under cProfile when ``path`` is given; write stats and a top-25 text."""
    if path is None:
        return func()
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    out = prof.runcall(func)
    prof.dump_stats(path)
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(25)
    path.with_suffix(".txt").write_text(text.getvalue())
    log(f"   profile written to {path} (+ .txt)")
    return out


def _fmt_s(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 0.1 else f"{seconds * 1e3:.1f} ms"


# --------------------------------------------------------------------------- sections


def bench_coverage(
    report: Report,
    routers: dict[str, Router],
    villages: gpd.GeoDataFrame,
    facilities: gpd.GeoDataFrame,
    repeat: int,
    profile: Path | None,
    key: str = "coverage_s",
    target: bool = True,
) -> None:
    """All villages x 7 layers x 3 modes with prebuilt Routers."""
    per_mode: dict[str, float] = {}
    covered: dict[str, float] = {}

    def run_all() -> None:
        for mode, router in routers.items():
            start = time.perf_counter()
            table = coverage_table(router, villages, facilities)
            took = time.perf_counter() - start
            per_mode[mode] = min(per_mode.get(mode, float("inf")), took)
            covered[mode] = float(table["covered"].mean())

    coverage_table(routers["walk"], villages.head(5), facilities)  # warm imports
    total, _ = timed(run_all, repeat)
    report.figures[key] = round(total, 3)
    label = f"{len(villages):,} villages x {len(LAYERS)} layers x {len(routers)} modes"
    report.add(
        "coverage_table, 3 modes",
        _fmt_s(total),
        "≤ 2 s" if target else "",
        total <= 2.0 if target else None,
        f"{label}; best of {repeat}",
    )
    for mode, took in per_mode.items():
        report.add(f"  {mode}", _fmt_s(took), note=f"covered within 30 min: {covered[mode]:.0%}")
    if profile is not None:
        profiled(run_all, profile / f"{key}.prof")


def nx_reversed(router: Router) -> nx.DiGraph:
    """The Router's state graph reversed (arcs v -> u), as networkx needs for times *to*
    targets (for drive: the edge-expanded graph with turn costs)."""
    graph = nx.DiGraph()
    graph.add_nodes_from(range(router.n_states))
    graph.add_weighted_edges_from(
        zip(
            router.arc_v.tolist(),
            router.arc_u.tolist(),
            router.arc_seconds.tolist(),
            strict=True,
        )
    )
    return graph


def bench_nx_multisource(
    report: Report,
    router: Router,
    villages: gpd.GeoDataFrame,
    facilities: gpd.GeoDataFrame,
) -> None:
    """networkx multi-source Dijkstra per layer vs Router.nearest, same snapping, same answers."""
    settings = router.settings
    limit = settings.max_minutes * 60.0
    n = router.n_states
    v_lon = villages.geometry.x.to_numpy(float)
    v_lat = villages.geometry.y.to_numpy(float)
    build, graph = timed(lambda: nx_reversed(router))
    v_snap = router.snap(v_lon, v_lat)
    # a village leaves along its edge, to that edge's end state
    v_state = router.exit[v_snap.edge]
    v_rest = v_snap.seconds + (1 - v_snap.t) * router.edge_seconds[v_snap.edge]
    router.nearest(v_lon[:10], v_lat[:10], v_lon[:3], v_lat[:3])  # warm-up
    t_ours = t_nx = 0.0
    nodes_equal = villages_equal = True
    max_diff = 0.0
    for layer in LAYERS:
        group = facilities[facilities["layer"] == layer]
        f_lon = group.geometry.x.to_numpy(float)
        f_lat = group.geometry.y.to_numpy(float)
        took, res = timed(
            lambda f_lon=f_lon, f_lat=f_lat: router.nearest(v_lon, v_lat, f_lon, f_lat)
        )
        t_ours += took
        # same snapping as the Router: a virtual source per facility, joined to each
        # way into the edge it snapped to, by leg + the part of the edge before it
        f_snap = router.snap(f_lon, f_lat)
        point, real, leg, _ = router._seeds(f_snap, reverse=True)
        virt = n + point
        for a, b, w in zip(
            virt.tolist(), real.tolist(), np.maximum(leg, EPS).tolist(), strict=True
        ):
            if not graph.has_edge(a, b) or graph[a][b]["weight"] > w:
                graph.add_edge(a, b, weight=w)
        sources = set(virt.tolist())

        def baseline(sources: set[int] = sources) -> tuple[np.ndarray, np.ndarray]:
            dist = nx.multi_source_dijkstra_path_length(graph, sources, cutoff=limit)
            node_s = np.full(n, np.inf)
            for node, sec in dist.items():
                if node < n:
                    node_s[node] = sec
            via = np.full(len(v_lon), np.inf)
            np.minimum.at(via, v_snap.point, v_rest + node_s[v_state])
            return node_s, via

        took, (node_s, via_nx) = timed(baseline)
        t_nx += took
        graph.remove_nodes_from(range(n, n + len(f_lon)))
        # check 1: state times equal those of the Router's own multi-source search
        ours_node, _, _ = router.state_seconds_to(f_lon, f_lat, limit)
        fin = np.isfinite(ours_node)
        same = bool(np.array_equal(fin, np.isfinite(node_s))) and bool(
            np.allclose(ours_node[fin], node_s[fin], rtol=1e-9, atol=1e-6)
        )
        nodes_equal &= same
        # check 2: villages' times from the networkx state times (plus trips along one
        # edge, the Router's own step) equal Router.nearest
        along = router._same_edge(v_snap, f_snap)
        if len(along):
            np.minimum.at(via_nx, along["origin"].to_numpy(), along["seconds"].to_numpy())
        via_nx = np.where(via_nx <= limit, via_nx, np.nan)
        villages_equal &= bool(
            np.allclose(via_nx, res.seconds, rtol=1e-9, atol=1e-6, equal_nan=True)
        )
        both = np.isfinite(via_nx) & np.isfinite(res.seconds)
        if both.any():
            max_diff = max(max_diff, float(np.abs(via_nx[both] - res.seconds[both]).max()))
    gc.collect()
    ratio = t_nx / t_ours
    equal = nodes_equal and villages_equal
    report.figures["nx_multisource_ratio"] = round(ratio, 1)
    report.figures["nx_multisource_equal"] = equal
    report.add(
        "Router.nearest, 7 layers", _fmt_s(t_ours), note=f"{len(villages):,} villages, drive"
    )
    report.add(
        "networkx multi_source_dijkstra, 7 layers",
        _fmt_s(t_nx),
        note=f"snapping precomputed; + {build:.1f} s graph build (excluded)",
    )
    report.add("ratio networkx / ours", f"{ratio:.1f} x")
    report.add(
        "results equal",
        str(equal).lower(),
        note=f"node times {nodes_equal}, village times {villages_equal}, "
        f"max |diff| {max_diff:.2g} s",
    )


def nx_forward(router: Router) -> nx.DiGraph:
    """The Router's graph with osmnx-style node ``x``/``y`` (metric) and edge ``time``."""
    graph = nx.DiGraph()
    graph.add_nodes_from(
        (i, {"x": x, "y": y})
        for i, (x, y) in enumerate(zip(router.x.tolist(), router.y.tolist(), strict=True))
    )
    graph.add_weighted_edges_from(
        zip(
            router.edge_u.tolist(),
            router.edge_v.tolist(),
            router.edge_seconds.tolist(),
            strict=True,
        ),
        weight="time",
    )
    return graph


def cookbook_isochrone(graph: nx.DiGraph, center: int, hull: bool = False) -> Any:
    """The osmnx-examples recipe (13-isolines-isochrones): ego graph by travel time,
    then the reached nodes' 50 m buffers unioned (``make_iso_polys`` node part) or,
    with ``hull``, their convex hull."""
    sub = nx.ego_graph(graph, center, radius=ISO_MINUTES * 60, distance="time")
    node_points = [shapely.Point(d["x"], d["y"]) for _, d in sub.nodes(data=True)]
    series = gpd.GeoSeries(node_points)
    if hull:
        return series.union_all().convex_hull
    return series.buffer(50).union_all()


def bench_isochrones(
    report: Report,
    router: Router,
    facilities: gpd.GeoDataFrame,
    n_cookbook: int,
    n_iso: int,
    profile: Path | None,
) -> None:
    """Per-facility 30-minute isochrones: latency percentiles and the cookbook ratio."""
    rng = np.random.default_rng(7)
    lon = facilities.geometry.x.to_numpy(float)
    lat = facilities.geometry.y.to_numpy(float)
    union_isochrone(router, lon[:1], lat[:1], ISO_MINUTES)  # warm-up

    pick = rng.choice(len(facilities), n_iso, replace=False)
    times = []
    for i in pick:
        took, _ = timed(lambda i=i: union_isochrone(router, lon[i : i + 1], lat[i : i + 1], 30.0))
        times.append(took * 1e3)
    p50, p95 = float(np.percentile(times, 50)), float(np.percentile(times, 95))
    report.figures["isochrone_p50_ms"] = round(p50, 1)
    report.figures["isochrone_p95_ms"] = round(p95, 1)
    report.add(
        "union_isochrone p50", f"{p50:.1f} ms", "≤ 50 ms", p50 <= 50, f"{n_iso} facilities, ebike"
    )
    report.add("union_isochrone p95", f"{p95:.1f} ms")
    if profile is not None:

        def loop() -> None:
            for i in pick:
                union_isochrone(router, lon[i : i + 1], lat[i : i + 1], ISO_MINUTES)

        profiled(loop, profile / "isochrone.prof")

    build, graph = timed(lambda: nx_forward(router))
    sample = rng.choice(len(facilities), n_cookbook, replace=False)
    snap = router.snap(lon[sample], lat[sample])  # ox.nearest_nodes, untimed
    first = np.unique(snap.point, return_index=True)[1]
    centers = router.edge_v[snap.edge[first]]
    t_ours = t_book = t_hull = 0.0
    area_ours, area_book = [], []
    for i, center in zip(sample, centers, strict=True):
        took, poly = timed(lambda i=i: union_isochrone(router, lon[i : i + 1], lat[i : i + 1], 30))
        t_ours += took
        took, book = timed(lambda c=int(center): cookbook_isochrone(graph, c))
        t_book += took
        took, _ = timed(lambda c=int(center): cookbook_isochrone(graph, c, hull=True))
        t_hull += took
        metric = shapely.transform(
            poly, lambda c: np.column_stack(router.to_metric(c[:, 0], c[:, 1]))
        )
        area_ours.append(metric.area / 1e6)
        area_book.append(book.area / 1e6)
    gc.collect()
    n_all = len(facilities)
    ratio = t_book / t_ours
    report.figures["cookbook_ratio"] = round(ratio, 1)
    report.figures["cookbook_hull_ratio"] = round(t_hull / t_ours, 1)
    scale = n_all / n_cookbook
    note = f"{n_cookbook} random facilities, x{scale:.0f} to all {n_all}"
    report.add("ours, all facilities (est.)", _fmt_s(t_ours * scale), note=note)
    report.add(
        "cookbook ego_graph + node buffers (est.)",
        _fmt_s(t_book * scale),
        note=f"same sample; + {build:.1f} s nx graph build (excluded)",
    )
    report.add("cookbook ratio", f"{ratio:.1f} x", "≥ 30 x", ratio >= 30)
    report.add(
        "  cookbook convex-hull variant ratio",
        f"{t_hull / t_ours:.1f} x",
        note="ego_graph + convex hull of reached nodes",
    )
    report.add(
        "  mean area ours / cookbook",
        f"{np.mean(area_ours):.0f} / {np.mean(area_book):.0f} km²",
        note="ours: reached edges + legs (≤ 50 m); cookbook: 50 m node buffers",
    )


def bench_pbf(report: Report, city: SyntheticCity, nodes: int, profile: Path | None) -> None:
    """osmnx.graph_from_xml on OSM XML vs geo.network.network_from_pbf on the same data."""
    import osmnx as ox

    ox.settings.use_cache = False
    ox.settings.log_console = False
    ways = subset_ways(city, nodes)
    with tempfile.TemporaryDirectory(prefix="skillcircle-bench-") as tmp:
        xml, pbf = Path(tmp) / "subset.osm", Path(tmp) / "subset.osm.pbf"
        n_nodes, n_ways = write_osm(city, ways, xml)
        write_osm(city, ways, pbf)
        size_xml, size_pbf = xml.stat().st_size / 1e6, pbf.stat().st_size / 1e6
        t_ox, graph = timed(
            lambda: ox.graph_from_xml(xml, simplify=False, retain_all=True, bidirectional=False)
        )
        t_conv, from_ox = timed(lambda: network_from_osmnx_graph(graph, city.net.source))
        network_from_pbf(pbf)  # warm imports
        t_pbf, ours = timed(lambda: network_from_pbf(pbf), 3)
        if profile is not None:
            profiled(lambda: network_from_pbf(pbf), profile / "pbf.prof")
    same = (
        ours.n_nodes == from_ox.n_nodes
        and ours.n_edges == from_ox.n_edges
        and bool(np.isclose(ours.length_m.sum(), from_ox.length_m.sum(), rtol=1e-9))
    )
    ratio = t_ox / t_pbf
    report.figures["pbf_ratio"] = round(ratio, 1)
    report.figures["pbf_same_network"] = same
    report.add(
        "files",
        f"{n_nodes:,} nodes",
        note=f"{n_ways:,} ways; XML {size_xml:.1f} MB, PBF {size_pbf:.1f} MB",
    )
    report.add(
        "osmnx.graph_from_xml",
        _fmt_s(t_ox),
        note=f"simplify=False, retain_all; to RoadNetwork + {_fmt_s(t_conv)}",
    )
    report.add("network_from_pbf (pyosmium)", _fmt_s(t_pbf), note="best of 3")
    report.add("pbf ratio", f"{ratio:.1f} x", "≥ 5 x", ratio >= 5)
    report.add(
        "same network",
        str(same).lower(),
        note=f"{ours.n_nodes:,} nodes, {ours.n_edges:,} directed edges each",
    )


def bench_api(report: Report, duration: float, clients: int, profile: Path | None) -> None:
    """The real app under waitress; closed-loop keep-alive clients."""
    from apiload import run_load, start_server, stop_server

    from geo.places import load_villages

    codes = load_villages()["village_code"].astype(str).tolist()
    with tempfile.TemporaryDirectory(prefix="skillcircle-bench-") as tmp:
        prof_file = profile / "api.prof" if profile is not None else None
        proc, port, startup = start_server(Path(tmp) / "store.sqlite3", profile=prof_file)
        try:
            run_load(port, codes, 2.0, clients=2, seed=99)  # warm-up: templates, caches
            res = run_load(port, codes, duration, clients=clients)
        finally:
            stop_server(proc)
    p50, p99 = res.pct(50), res.pct(99)
    report.figures.update(
        api_rps=round(res.rps, 1),
        api_p50_ms=round(p50, 1),
        api_p99_ms=round(p99, 1),
        api_errors=res.errors,
    )
    ok = p99 <= 100 and res.rps >= 300
    report.add("server start-up", _fmt_s(startup), note="create_app + Study.load (cached)")
    report.add(
        "throughput",
        f"{res.rps:.0f} req/s",
        "≥ 300 req/s",
        res.rps >= 300,
        f"{res.requests:,} requests in {res.seconds:.0f} s, {clients} clients, waitress 4 threads",
    )
    report.add("latency p50", f"{p50:.1f} ms")
    report.add("latency p99", f"{p99:.1f} ms", "≤ 100 ms at ≥ 300 req/s", ok)
    for kind, label in (("nearby", "/api/nearby"), ("village", "/q/<code>")):
        report.add(
            f"  {label} p50 / p99",
            f"{res.pct(50, kind):.1f} / {res.pct(99, kind):.1f} ms",
            note=f"{len(res.by_kind[kind]):,} requests",
        )
    report.add(
        "non-200 responses", str(res.errors), note=f"statuses {dict(sorted(res.statuses.items()))}"
    )
    if prof_file is not None:
        import io
        import pstats

        text = io.StringIO()
        pstats.Stats(str(prof_file), stream=text).sort_stats("cumulative").print_stats(25)
        prof_file.with_suffix(".txt").write_text(text.getvalue())


def rss_child(nodes: int, villages: int) -> None:
    """Child: build a ~``nodes`` graph, a drive Router and one nearest(); print JSON."""
    started = time.perf_counter()
    city = jiaxing_city(nodes, seed=11)
    net = city.net
    del city
    built = time.perf_counter() - started
    router = Router(net, "drive", Settings())
    routed = time.perf_counter() - started - built
    vil = synthetic_villages(net, villages, seed=12)
    fac = synthetic_facilities(net, seed=13)
    start = time.perf_counter()
    res = router.nearest(
        vil.geometry.x.to_numpy(),
        vil.geometry.y.to_numpy(),
        fac.geometry.x.to_numpy(),
        fac.geometry.y.to_numpy(),
    )
    nearest_s = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = {
        "nodes": net.n_nodes,
        "edges": net.n_edges,
        "build_s": round(built, 2),
        "router_s": round(routed, 2),
        "nearest_s": round(nearest_s, 2),
        "reached": int(np.isfinite(res.seconds).sum()),
        "peak_rss_gb": round(peak_kb / 1024**2, 3),
    }
    print(json.dumps(out))


def bench_rss(report: Report, nodes: int, villages: int) -> None:
    """Run :func:`rss_child` in a fresh interpreter and read its peak RSS."""
    cmd = [sys.executable, __file__, "--rss-child", str(nodes), "--rss-villages", str(villages)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    gb = data["peak_rss_gb"]
    report.figures["rss_1m_gb"] = gb
    report.add(
        "peak RSS",
        f"{gb:.2f} GB",
        "≤ 4 GB",
        gb <= 4,
        f"{data['nodes']:,} nodes / {data['edges']:,} edges; build {data['build_s']} s, "
        f"Router {data['router_s']} s, nearest() for {villages:,} villages {data['nearest_s']} s",
    )


def bench_osm_file(report: Report, path: Path, repeat: int, profile: Path | None) -> None:
    """coverage_s on a real OSM file with villages/facilities spread over its nodes."""
    from geo.network import load_network

    settings = Settings()
    took, net = timed(lambda: load_network(settings, path, use_cache=False))
    report.add(
        "network",
        f"{net.n_nodes:,} nodes",
        note=f"{net.n_edges:,} directed edges; {path.name} read in {_fmt_s(took)} (no cache)",
    )
    villages, facilities = random_places(net)
    routers = {m: Router(net, m, settings) for m in MODES}
    bench_coverage(
        report, routers, villages, facilities, repeat, profile, key="osm_coverage_s", target=False
    )
    report.figures["osm_nodes"] = net.n_nodes
    report.figures["osm_edges"] = net.n_edges


# --------------------------------------------------------------------------- main

SECTIONS = ("coverage", "nx", "isochrones", "dask", "pbf", "api", "rss", "osm")


def bench_dask(
    report: Report,
    net: RoadNetwork,
    villages: gpd.GeoDataFrame,
    facilities: gpd.GeoDataFrame,
    routers: dict[str, Router],
) -> None:
    """Partitioned coverage (one task per county, exact halo) on LocalClusters of 1 and 2
    workers, against the single-process table; ``max_minutes`` 60 keeps halos county-sized."""
    import warnings

    from geo.partition import dask_client, halo_m, partitioned_coverage

    settings = Settings(max_minutes=60)
    mode = "ebike"
    single = coverage_table(Router(net, mode, settings), villages, facilities)
    report.add("halo (ebike, max 60 min)", f"{halo_m(net, mode, settings) / 1000:.1f} km")
    times = {}
    for workers in (1, 2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            client = dask_client(workers=workers)
            try:
                took, table = timed(
                    lambda client=client: partitioned_coverage(
                        net, villages, facilities, mode, settings, client=client
                    )
                )
            finally:
                client.close()
                client.cluster.close()
        same = table.drop(columns="geometry").equals(single.drop(columns="geometry"))
        times[workers] = took
        report.figures[f"dask_{workers}w_s"] = round(took, 2)
        report.figures["dask_equal"] = bool(report.figures.get("dask_equal", True) and same)
        report.add(
            f"Dask LocalCluster, {workers} worker(s)",
            _fmt_s(took),
            note=f"7 county partitions incl. sub-graph shipping; equal to single process: {same}",
        )
    report.figures["dask_speedup_2w"] = round(times[1] / times[2], 2)
    report.add("speed-up 2 vs 1 worker", f"{times[1] / times[2]:.2f} x", note="2-core machine")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, shorter load test")
    parser.add_argument("--full", action="store_true", help="also the ~1M-node peak-RSS run")
    parser.add_argument("--osm", type=Path, default=None, help="also coverage_s on this OSM file")
    parser.add_argument("--nodes", type=int, default=200_000, help="synthetic graph size")
    parser.add_argument("--only", default=None, help=f"comma list of {', '.join(SECTIONS)}")
    parser.add_argument("--profile", type=Path, default=None, help="write cProfile stats here")
    parser.add_argument("--api-clients", type=int, default=8)
    parser.add_argument("--rss-child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--rss-villages", type=int, default=20_000, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child is not None:
        rss_child(args.rss_child, args.rss_villages)
        return
    only = set(args.only.split(",")) if args.only else set(SECTIONS)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    repeat = 2 if args.quick else 3
    n_cookbook = 5 if args.quick else 20
    duration = 15.0 if args.quick else 45.0
    started = time.perf_counter()

    report = Report()
    report.figures.update(
        {
            key: None
            for key in (
                "coverage_s",
                "cookbook_ratio",
                "nx_multisource_ratio",
                "nx_multisource_equal",
                "isochrone_p50_ms",
                "isochrone_p95_ms",
                "pbf_ratio",
                "api_rps",
                "api_p50_ms",
                "api_p99_ms",
                "api_errors",
                "rss_1m_gb",
            )
        }
    )
    report.figures["quick"] = args.quick

    need_city = only & {"coverage", "nx", "isochrones", "dask", "pbf"}
    if need_city:
        report.section("synthetic Jiaxing graph")
        took, city = timed(lambda: jiaxing_city(args.nodes))
        net: RoadNetwork = city.net
        villages = synthetic_villages(net)
        facilities = synthetic_facilities(net)
        settings = Settings()
        t_routers, routers = timed(lambda: {m: Router(net, m, settings) for m in MODES})
        info = city.info
        report.add(
            "graph",
            f"{net.n_nodes:,} nodes",
            note=f"{net.n_edges:,} directed edges; grid {info['grid']}, block {info['block_m']} m, "
            f"arterials every {info['arterial_every_m']} m, {info['bridges']} bridges",
        )
        report.add("generated in", _fmt_s(took), note=f"{info['ways']:,} ways")
        report.add(
            "3 Routers built in",
            _fmt_s(t_routers),
            note=f"{len(villages):,} villages, {len(facilities)} facilities",
        )
        report.figures.update(nodes=net.n_nodes, edges=net.n_edges)
        if "coverage" in only:
            report.section("coverage (all villages x 7 layers x 3 modes)")
            bench_coverage(report, routers, villages, facilities, repeat, args.profile)
        if "nx" in only:
            report.section("nearest facility per layer: networkx vs Router.nearest")
            bench_nx_multisource(report, routers["drive"], villages, facilities)
        if "isochrones" in only:
            report.section("30-minute isochrones, ebike")
            bench_isochrones(report, routers["ebike"], facilities, n_cookbook, 50, args.profile)
        if "dask" in only:
            report.section("partitioned coverage on Dask: 1 vs 2 workers")
            bench_dask(report, net, villages, facilities, routers)
        del routers
        gc.collect()
        if "pbf" in only:
            report.section("OSM ingestion: osmnx XML vs our PBF reader")
            bench_pbf(report, city, 50_000, args.profile)
        del city, net
        gc.collect()
    if "api" in only:
        report.section("web API (waitress, bundled Jiaxing data)")
        bench_api(report, duration, args.api_clients, args.profile)
    if args.full and "rss" in only:
        report.section("memory: ~1M-node graph (child process)")
        bench_rss(report, 1_000_000, 20_000)
    if args.osm is not None and "osm" in only:
        report.section(f"coverage on {args.osm.name}")
        bench_osm_file(report, args.osm, repeat, args.profile)
    report.figures["total_s"] = round(time.perf_counter() - started, 1)
    print()
    report.print_table()
    print(json.dumps(report.figures, ensure_ascii=False))


if __name__ == "__main__":
    main()
