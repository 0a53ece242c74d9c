"""Travel times on arrays: densified CSR graphs, KD-tree snapping, multi-source Dijkstra.

The model (documented in README and docs/architecture.md):

* A :class:`Router` turns a :class:`~geo.network.RoadNetwork` into a directed
  scipy CSR graph of travel seconds for one mode. Edges longer than
  ``settings.segment_m`` are split into equal pieces so that points along long
  roads have a nearby node (this changes no node-to-node time).
* A point (village, facility, user location) reaches the network by an
  **access leg** to one of its ``access_candidates`` nearest nodes (KD-tree in
  the metric CRS): straight-line distance x ``detour_factor`` at the mode's
  ``access_kmh``. Candidates farther than ``access_max_m`` are not used. Two
  points closer than that may also be joined directly by such a leg.
* Travel from many points to their nearest target is one multi-source Dijkstra
  on the *reversed* graph from virtual target nodes (``min_only=True``), bounded
  by ``max_minutes``. Times above the bound are NaN ("unreachable"), never a
  magic number.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from pyproj import Transformer
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from geo._errors import NetworkError
from geo.network import RoadNetwork, mode_edges
from geo.settings import MODES, Settings, check_mode

logger = logging.getLogger(__name__)

_EPS = 1e-6  # seconds added to every weight: scipy treats explicit zeros as "no edge"

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class Access:
    """Access legs of P points to their K candidate nodes.

    ``node`` is -1 and ``seconds`` is inf where a candidate is missing or
    beyond ``access_max_m``. ``nearest_m`` is the distance to the nearest
    network node (flag points far from any road with it).
    """

    node: IntArray
    seconds: FloatArray
    nearest_m: FloatArray


@dataclass(frozen=True)
class NearestResult:
    """Per origin: seconds to the nearest target (NaN if unreachable) and its index (-1)."""

    seconds: FloatArray
    target: IntArray

    @property
    def minutes(self) -> FloatArray:
        return self.seconds / 60.0


class Router:
    """Travel times for one network and one mode.

    Parameters
    ----------
    net
        The road network.
    mode
        ``walk``, ``ebike`` or ``drive``.
    settings
        Speeds, access model, bounds and the metric CRS.
    """

    def __init__(self, net: RoadNetwork, mode: str, settings: Settings) -> None:
        started = time.perf_counter()
        self.net = net
        self.mode = check_mode(mode)
        settings = settings.with_(metric_crs=settings.metric_crs_for(net.lon, net.lat))
        self.settings = settings
        self.source = net.source
        self._to_metric = Transformer.from_crs("EPSG:4326", settings.metric_crs, always_xy=True)
        self._to_wgs84 = Transformer.from_crs(settings.metric_crs, "EPSG:4326", always_xy=True)
        bx, by = self._to_metric.transform(net.lon, net.lat)
        u, v, sec = mode_edges(net, mode, settings)
        if len(u) == 0:
            raise NetworkError(
                f"{net.source.description}: no road in this network can be used by {mode} "
                f"({MODES[mode]}); use a network with such roads"
            )
        x, y, u, v, sec = _densify(np.asarray(bx), np.asarray(by), u, v, sec, settings.segment_m)
        self.x, self.y = x, y
        self.n_nodes = len(x)
        # parallel edges keep their minimum; no self-loops; no zero weights
        u, v, sec = _simple_edges(u, v, sec)
        self.edge_u, self.edge_v, self.edge_seconds = u, v, sec
        self.graph = _csr(u, v, sec, self.n_nodes)
        self.graph_rev = _csr(v, u, sec, self.n_nodes)
        # snap only to nodes this mode can use
        self.snap_nodes = np.unique(np.concatenate([u, v]))
        self._tree = cKDTree(np.column_stack([x[self.snap_nodes], y[self.snap_nodes]]))
        self.access_mps = settings.access_kmh[mode] / 3.6
        self.access_max_m = settings.access_max_m(net.source.coarse)
        logger.info(
            "router %s: %d nodes (%d after splitting edges > %g m), %d directed edges in %.2f s",
            mode,
            net.n_nodes,
            self.n_nodes,
            settings.segment_m,
            len(u),
            time.perf_counter() - started,
        )

    # ------------------------------------------------------------------ geometry

    def to_metric(self, lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Project WGS84 lon/lat to the metric CRS."""
        x, y = self._to_metric.transform(np.asarray(lon, float), np.asarray(lat, float))
        return np.atleast_1d(np.asarray(x, float)), np.atleast_1d(np.asarray(y, float))

    def access_seconds(self, metres: ArrayLike) -> FloatArray:
        """Seconds of an access leg of the given straight-line length."""
        return np.asarray(metres, float) * self.settings.detour_factor / self.access_mps

    def leg_seconds(self, metres: ArrayLike) -> FloatArray:
        """Seconds of an access leg, ``inf`` beyond ``access_max_m`` (not usable)."""
        metres = np.asarray(metres, float)
        return np.where(metres <= self.access_max_m, self.access_seconds(metres), np.inf)

    def access_radius(self, seconds: ArrayLike) -> FloatArray:
        """Straight-line metres an access leg covers in ``seconds`` (capped)."""
        r = np.asarray(seconds, float) * self.access_mps / self.settings.detour_factor
        return np.minimum(r, self.access_max_m)

    def access(self, lon: ArrayLike, lat: ArrayLike) -> Access:
        """Candidate nodes and access-leg seconds for points."""
        x, y = self.to_metric(lon, lat)
        k = min(self.settings.access_candidates, len(self.snap_nodes))
        dist, idx = self._tree.query(np.column_stack([x, y]), k=k)
        dist = np.asarray(dist, float).reshape(len(x), k)
        idx = np.asarray(idx).reshape(len(x), k)
        node = self.snap_nodes[idx].astype(np.int64)
        seconds = self.leg_seconds(dist)
        ok = np.isfinite(seconds)
        return Access(np.where(ok, node, -1), seconds, dist[:, 0])

    # ------------------------------------------------------------------ core

    def _candidates(self, lon: ArrayLike, lat: ArrayLike) -> tuple[IntArray, IntArray, FloatArray]:
        """Every usable access leg: (point, node, seconds) for all snap nodes within
        ``access_max_m`` of each point — not only the nearest few, so that a point
        beside a fast road reaches it even when slower streets are closer."""
        x, y = self.to_metric(lon, lat)
        found = self._tree.query_ball_point(
            np.column_stack([x, y]), self.access_max_m, return_sorted=False
        )
        counts = np.fromiter((len(f) for f in found), dtype=np.int64, count=len(found))
        point = np.repeat(np.arange(len(x)), counts)
        if counts.sum() == 0:
            return point, np.empty(0, dtype=np.int64), np.empty(0)
        node = self.snap_nodes[np.concatenate([np.asarray(f, dtype=np.int64) for f in found])]
        seconds = self.access_seconds(np.hypot(self.x[node] - x[point], self.y[node] - y[point]))
        return point, node.astype(np.int64), seconds

    def _augmented(self, lon: ArrayLike, lat: ArrayLike, reverse: bool) -> tuple[csr_matrix, int]:
        """Graph plus one virtual node per point, joined to all its usable access nodes.

        With ``reverse`` the virtual nodes are sources in the reversed graph
        (paths *into* the points); otherwise sources in the forward graph. The
        virtual nodes are appended as extra CSR rows, so the graph itself is
        copied, not rebuilt.
        """
        point, real, w = self._candidates(lon, lat)
        n, p = self.n_nodes, len(np.atleast_1d(np.asarray(lon, float)))
        base = self.graph_rev if reverse else self.graph
        extra = np.bincount(point, minlength=p)  # point is sorted: rows in order
        indptr = np.concatenate([base.indptr, base.indptr[-1] + np.cumsum(extra)])
        data = np.concatenate([base.data, np.maximum(w, _EPS)])
        indices = np.concatenate([base.indices, real.astype(base.indices.dtype)])
        return csr_matrix((data, indices, indptr), shape=(n + p, n + p)), n

    def node_seconds_to(
        self, lon: ArrayLike, lat: ArrayLike, limit_s: float | None = None
    ) -> tuple[FloatArray, IntArray]:
        """Seconds from every node to the nearest of the given targets, and which target.

        Unreached nodes have ``inf`` seconds and target -1.
        """
        graph, n = self._augmented(lon, lat, reverse=True)
        p = graph.shape[0] - n
        limit = np.inf if limit_s is None else float(limit_s)
        dist, _, src = dijkstra(
            graph,
            directed=True,
            indices=np.arange(n, n + p),
            min_only=True,
            limit=limit,
            return_predecessors=True,
        )
        target = np.where(src[:n] >= 0, src[:n] - n, -1).astype(np.int64)
        return np.asarray(dist[:n], float), target

    def nearest(
        self,
        origin_lon: ArrayLike,
        origin_lat: ArrayLike,
        target_lon: ArrayLike,
        target_lat: ArrayLike,
        max_minutes: float | None = None,
    ) -> NearestResult:
        """Travel time from each origin to its nearest target (origin -> target).

        Parameters
        ----------
        origin_lon, origin_lat, target_lon, target_lat
            WGS84 coordinates.
        max_minutes
            Bound (default ``settings.max_minutes``); longer trips are NaN.

        Returns
        -------
        NearestResult
            Seconds (NaN where unreachable) and target index (-1 there).
        """
        limit = 60.0 * (self.settings.max_minutes if max_minutes is None else max_minutes)
        o_lon = np.atleast_1d(np.asarray(origin_lon, float))
        t_lon = np.atleast_1d(np.asarray(target_lon, float))
        if len(o_lon) == 0:
            return NearestResult(np.empty(0), np.empty(0, dtype=np.int64))
        if len(t_lon) == 0:
            return NearestResult(np.full(len(o_lon), np.nan), np.full(len(o_lon), -1))
        node_s, node_t = self.node_seconds_to(target_lon, target_lat, limit)
        seconds, node = self._best_node(origin_lon, origin_lat, node_s, limit)
        target = np.where(node >= 0, node_t[np.maximum(node, 0)], -1)
        # direct access leg to the straight-line nearest target
        direct_s, direct_t = self._direct(origin_lon, origin_lat, target_lon, target_lat)
        use_direct = direct_s < seconds
        seconds = np.where(use_direct, direct_s, seconds)
        target = np.where(use_direct, direct_t, target)
        unreachable = ~(seconds <= limit)
        return NearestResult(
            np.where(unreachable, np.nan, seconds),
            np.where(unreachable, -1, target).astype(np.int64),
        )

    def one_to_many(
        self,
        origin_lon: float,
        origin_lat: float,
        target_lon: ArrayLike,
        target_lat: ArrayLike,
        max_minutes: float | None = None,
    ) -> FloatArray:
        """Seconds from one origin to each target (NaN beyond ``max_minutes``).

        One forward Dijkstra from the origin's virtual node; each target then
        takes its best access node (exact, see :meth:`_best_node`) or the direct leg.
        """
        limit = 60.0 * (self.settings.max_minutes if max_minutes is None else max_minutes)
        t_lon = np.atleast_1d(np.asarray(target_lon, float))
        t_lat = np.atleast_1d(np.asarray(target_lat, float))
        if len(t_lon) == 0:
            return np.empty(0)
        graph, n = self._augmented([origin_lon], [origin_lat], reverse=False)
        node_s = dijkstra(graph, directed=True, indices=n, limit=limit)[:n]
        seconds, _ = self._best_node(t_lon, t_lat, node_s, limit)
        ox_, oy = self.to_metric([origin_lon], [origin_lat])
        tx, ty = self.to_metric(t_lon, t_lat)
        direct = np.hypot(tx - ox_[0], ty - oy[0])
        direct_s = self.leg_seconds(direct)
        seconds = np.minimum(seconds, direct_s)
        return np.where(seconds <= limit, seconds, np.nan)

    def _best_node(
        self, lon: ArrayLike, lat: ArrayLike, node_s: FloatArray, limit_s: float | None = None
    ) -> tuple[FloatArray, IntArray]:
        """Exact ``min_n (access(p, n) + node_s[n])`` per point, and the arg-min node (-1).

        The nearest candidates give an upper bound U; only nodes whose access leg
        alone is shorter than U can do better, so a ball query of that radius
        makes the minimum exact (not limited to the K nearest nodes).
        """
        acc = self.access(lon, lat)
        via = np.where(acc.node >= 0, acc.seconds + node_s[np.maximum(acc.node, 0)], np.inf)
        rows = np.arange(len(via))
        pick = np.argmin(via, axis=1)
        best_s = via[rows, pick]
        best_n = np.where(np.isfinite(best_s), acc.node[rows, pick], -1)
        x, y = self.to_metric(lon, lat)
        limit = self.settings.max_minutes * 60.0 if limit_s is None else float(limit_s)
        bound = np.where(np.isfinite(best_s), best_s, limit)
        radius = self.access_radius(bound)
        # search only nodes the Dijkstra reached: after a bounded search that is a
        # small set, and a small tree beats ball queries over the whole network
        reached = self.snap_nodes[np.isfinite(node_s[self.snap_nodes])]
        if len(reached) == 0:
            return best_s, best_n.astype(np.int64)
        if len(reached) < len(self.snap_nodes) // 4:
            nodes = reached
            tree = cKDTree(np.column_stack([self.x[reached], self.y[reached]]))
        else:
            nodes, tree = self.snap_nodes, self._tree
        found = tree.query_ball_point(np.column_stack([x, y]), radius, return_sorted=False)
        counts = np.fromiter((len(f) for f in found), dtype=np.int64, count=len(found))
        if counts.sum() == 0:
            return best_s, best_n.astype(np.int64)
        point = np.repeat(rows, counts)
        cand = nodes[np.concatenate([np.asarray(f, dtype=np.int64) for f in found])]
        total = self.access_seconds(np.hypot(self.x[cand] - x[point], self.y[cand] - y[point]))
        total += node_s[cand]
        # per point, the candidate with the smallest total (sort by point, then total)
        order = np.lexsort((total, point))
        first = np.ones(len(order), dtype=bool)
        first[1:] = point[order][1:] != point[order][:-1]
        win = order[first]
        better = total[win] < best_s[point[win]]
        best_s[point[win][better]] = total[win][better]
        best_n[point[win][better]] = cand[win][better]
        return best_s, best_n.astype(np.int64)

    def _direct(
        self, o_lon: ArrayLike, o_lat: ArrayLike, t_lon: ArrayLike, t_lat: ArrayLike
    ) -> tuple[FloatArray, IntArray]:
        ox_, oy = self.to_metric(o_lon, o_lat)
        tx, ty = self.to_metric(t_lon, t_lat)
        dist, idx = cKDTree(np.column_stack([tx, ty])).query(np.column_stack([ox_, oy]), k=1)
        seconds = self.leg_seconds(dist)
        return seconds, np.asarray(idx, dtype=np.int64)

    def matrix(
        self,
        origin_lon: ArrayLike,
        origin_lat: ArrayLike,
        target_lon: ArrayLike,
        target_lat: ArrayLike,
        max_minutes: float | None = None,
        batch: int = 64,
        progress: bool = False,
    ) -> pd.DataFrame:
        """All origin -> target pairs within ``max_minutes``.

        Targets join the graph at every node an access leg can reach; origins use
        their ``access_candidates`` nearest nodes (plus the direct leg), where
        :meth:`nearest` searches every node, so it can be marginally faster for a
        point far from the road.

        Returns
        -------
        pandas.DataFrame
            Columns ``origin`` and ``target`` (positional indices) and
            ``seconds``; pairs beyond the bound are absent.
        """
        from tqdm import tqdm

        limit = 60.0 * (self.settings.max_minutes if max_minutes is None else max_minutes)
        o_acc = self.access(origin_lon, origin_lat)
        graph, n = self._augmented(target_lon, target_lat, reverse=True)
        n_t = graph.shape[0] - n
        ox_, oy = self.to_metric(origin_lon, origin_lat)
        tx, ty = self.to_metric(target_lon, target_lat)
        frames = []
        starts = range(0, n_t, batch)
        for start in tqdm(starts, desc="路径计算 routing", disable=not progress, unit="batch"):
            stop = min(start + batch, n_t)
            dist = dijkstra(
                graph, directed=True, indices=np.arange(n + start, n + stop), limit=limit
            )
            dist = np.atleast_2d(dist)[:, :n]  # (targets in batch) x nodes
            safe = np.maximum(o_acc.node, 0)
            via = dist[:, safe] + np.where(o_acc.node >= 0, o_acc.seconds, np.inf)[None]
            best = via.min(axis=2)  # batch x origins
            direct = np.hypot(
                ox_[None, :] - tx[start:stop, None], oy[None, :] - ty[start:stop, None]
            )
            direct_s = self.leg_seconds(direct)
            best = np.minimum(best, direct_s)
            ti, oi = np.nonzero(best <= limit)
            frames.append(
                pd.DataFrame({"origin": oi, "target": ti + start, "seconds": best[ti, oi]})
            )
        if not frames:
            return pd.DataFrame({"origin": [], "target": [], "seconds": []})
        out = pd.concat(frames, ignore_index=True)
        return out.sort_values(["origin", "seconds", "target"], ignore_index=True)

    def node_seconds_from_each(
        self, lon: ArrayLike, lat: ArrayLike, limit_s: float
    ) -> list[tuple[IntArray, FloatArray]]:
        """For each target separately: the nodes that reach it within ``limit_s`` and their seconds.

        Used for per-facility isochrones; bounded Dijkstra keeps it cheap.
        """
        graph, n = self._augmented(lon, lat, reverse=True)
        out = []
        for i in range(graph.shape[0] - n):
            dist = dijkstra(graph, directed=True, indices=n + i, limit=limit_s)[:n]
            reached = np.flatnonzero(np.isfinite(dist))
            out.append((reached.astype(np.int64), dist[reached]))
        return out


def gcj02_hint(
    router: Router, lon: ArrayLike, lat: ArrayLike, min_gain_m: float = 100.0
) -> tuple[float, float] | None:
    """Do these "WGS84" points look like unconverted GCJ-02 (高德/腾讯) coordinates?

    Compares the median distance to the nearest road node of the points as given
    and after a GCJ-02 -> WGS84 conversion (a shift of ~500 m in Jiaxing). Returns
    ``(as_given_m, if_converted_m)`` when the conversion would bring them at least
    ``min_gain_m`` and half closer to the roads, else None.
    """
    from geo.coords import gcj02_to_wgs84, in_china

    lon = np.atleast_1d(np.asarray(lon, float))
    lat = np.atleast_1d(np.asarray(lat, float))
    inside = in_china(lon, lat)
    if not inside.any():
        return None
    given = float(np.median(router.access(lon[inside], lat[inside]).nearest_m))
    c_lon, c_lat = gcj02_to_wgs84(lon[inside], lat[inside])
    converted = float(np.median(router.access(c_lon, c_lat).nearest_m))
    if converted < 0.5 * given and given - converted >= min_gain_m:
        return given, converted
    return None


def _simple_edges(
    u: IntArray, v: IntArray, seconds: FloatArray
) -> tuple[IntArray, IntArray, FloatArray]:
    """Drop self-loops and keep the *minimum* weight of parallel edges.

    scipy would *sum* duplicate entries when building a CSR matrix, and treats
    explicit zeros as missing edges, so weights are floored at a microsecond.
    """
    order = np.lexsort((seconds, v, u))
    u, v, seconds = u[order], v[order], seconds[order]
    first = np.ones(len(u), dtype=bool)
    first[1:] = (u[1:] != u[:-1]) | (v[1:] != v[:-1])
    keep = first & (u != v)
    return u[keep], v[keep], np.maximum(seconds[keep], _EPS)


def _csr(u: IntArray, v: IntArray, seconds: FloatArray, n: int) -> csr_matrix:
    """CSR matrix of edges that contain no duplicates (see :func:`_simple_edges`)."""
    return csr_matrix((np.maximum(seconds, _EPS), (u, v)), shape=(n, n))


def _densify(
    x: FloatArray, y: FloatArray, u: IntArray, v: IntArray, seconds: FloatArray, segment_m: float
) -> tuple[FloatArray, FloatArray, IntArray, IntArray, FloatArray]:
    """Split edges longer than ``segment_m`` into equal pieces with shared new nodes.

    Both directions of a two-way road share the same intermediate nodes, so a
    point snapped to one of them can travel either way.
    """
    a, b = np.minimum(u, v), np.maximum(u, v)
    forward = u <= v
    frame = pd.DataFrame({"a": a, "b": b, "fwd": forward, "s": seconds})
    frame = frame[frame["a"] != frame["b"]]
    pair = frame.groupby(["a", "b", "fwd"], sort=True)["s"].min().unstack("fwd")
    for col in (True, False):
        if col not in pair:
            pair[col] = np.nan
    a = pair.index.get_level_values("a").to_numpy(np.int64)
    b = pair.index.get_level_values("b").to_numpy(np.int64)
    s_ab = pair[True].to_numpy(float)
    s_ba = pair[False].to_numpy(float)
    length = np.hypot(x[b] - x[a], y[b] - y[a])
    pieces = np.maximum(1, np.ceil(length / segment_m)).astype(np.int64)
    n0 = len(x)
    n_new = int((pieces - 1).sum())
    # intermediate node coordinates
    seg_of_new = np.repeat(np.arange(len(a)), pieces - 1)
    first_new = n0 + np.concatenate([[0], np.cumsum(pieces - 1)[:-1]]) if len(a) else np.array([])
    step = np.arange(n_new) - np.repeat(first_new - n0, pieces - 1) + 1  # 1..pieces-1
    frac = step / pieces[seg_of_new]
    new_x = x[a[seg_of_new]] + frac * (x[b[seg_of_new]] - x[a[seg_of_new]])
    new_y = y[a[seg_of_new]] + frac * (y[b[seg_of_new]] - y[a[seg_of_new]])
    # chain nodes for each piece: start = a or previous new node, end = next new node or b
    seg_of_piece = np.repeat(np.arange(len(a)), pieces)
    k = np.arange(int(pieces.sum())) - np.repeat(
        np.concatenate([[0], np.cumsum(pieces)[:-1]]), pieces
    )
    base = np.repeat(first_new, pieces) if len(a) else np.array([], dtype=np.int64)
    start = np.where(k == 0, a[seg_of_piece], base + k - 1)
    last = k == pieces[seg_of_piece] - 1
    end = np.where(last, b[seg_of_piece], base + k)
    s_f = (s_ab / pieces)[seg_of_piece]
    s_b = (s_ba / pieces)[seg_of_piece]
    has_f, has_b = ~np.isnan(s_f), ~np.isnan(s_b)
    out_u = np.concatenate([start[has_f], end[has_b]]).astype(np.int64)
    out_v = np.concatenate([end[has_f], start[has_b]]).astype(np.int64)
    out_s = np.concatenate([s_f[has_f], s_b[has_b]])
    return (
        np.concatenate([x, new_x]),
        np.concatenate([y, new_y]),
        out_u,
        out_v,
        out_s,
    )


def settings_summary(settings: Settings, mode: str) -> dict[str, Any]:
    """Parameters of a run, for file metadata."""
    return {
        "mode": mode,
        "minutes": settings.minutes,
        "max_minutes": settings.max_minutes,
        "access_kmh": settings.access_kmh[mode],
        "detour_factor": settings.detour_factor,
        "segment_m": settings.segment_m,
        "walk_kmh": settings.walk_kmh,
        "ebike_kmh": settings.ebike_kmh,
    }


__all__ = ["Access", "NearestResult", "Router", "settings_summary"]
