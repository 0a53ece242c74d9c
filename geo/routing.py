"""Travel times on arrays: edge snapping, a state graph per mode, multi-source Dijkstra.

The model (documented in README and docs/architecture.md):

* **Snapping to edges**, as Valhalla and OSRM do. A point (village, facility,
  user location) snaps to the nearest road segment usable by the mode (an
  STRtree over the segments in a metric CRS chosen from the network), split
  virtually at the projected point. The *access leg* is only the straight line
  from the point to that projection, at the mode's ``access_kmh`` (times
  ``detour_factor`` on the bundled coarse network, whose local streets are
  missing). A point farther than ``access_max_m`` from every usable segment is
  unreachable (NaN), never joined to something farther. Like OSRM, a point
  whose nearest segment lies in a small disconnected piece of the network (an
  extract cut at its border, a parking lot) also gets the nearest segment of the
  largest strongly connected component as a second candidate.
* On a two-way segment a point can leave in both directions; on a one-way
  segment (drive) only along it, at both ends of a trip.
* **Walk and e-bike are node-based**: the search states are the road nodes.
  **Drive is edge-based** on OSM networks: the states are "at the start of
  directed edge e" and "at its end", and the arcs between the end of one edge
  and the start of the next carry a turn cost (OSRM's car turn function), the
  delay of a traffic signal at the junction, and are absent where an OSM turn
  restriction (``no_*``/``only_*``) forbids the turn or where it would be a
  U-turn away from a dead end. The coarse network has no turn data: node-based.
* Travel from many points to their nearest target is one multi-source Dijkstra
  on the *reversed* state graph from virtual target nodes (``min_only=True``),
  bounded by ``max_minutes``. Times above the bound are NaN ("unreachable"),
  never a magic number. Two points on the same directed edge (origin before
  target) also get the time along that edge.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import shapely
from cachetools import LRUCache
from numpy.typing import ArrayLike, NDArray
from pyproj import Transformer
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra

from geo._errors import NetworkError
from geo.network import RoadNetwork, mode_edges
from geo.settings import MODES, Settings, check_mode

logger = logging.getLogger(__name__)

_EPS = 1e-6  # seconds added to every weight: scipy treats explicit zeros as "no edge"

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class Snap:
    """Where P points join the network: C candidates (1 to 4 per point).

    Attributes
    ----------
    point
        Which point each candidate belongs to (sorted).
    edge
        The directed edge (index into ``Router.edge_u``/``edge_v``).
    t
        Position of the projection along the edge, 0 at its tail, 1 at its head.
    seconds
        The access leg (point -> projection).
    metres
        Its straight-line length.
    nearest_m
        Per point, the distance to the nearest usable segment (``inf`` if the
        network has none for the mode); flag points far from any road with it.
    """

    point: IntArray
    edge: IntArray
    t: FloatArray
    seconds: FloatArray
    metres: FloatArray
    nearest_m: FloatArray

    @property
    def n_points(self) -> int:
        """How many points were given (whether they snapped or not)."""
        return len(self.nearest_m)

    def one(self, i: int) -> Snap:
        """The candidates of point ``i`` alone, as point 0."""
        keep = self.point == i
        return Snap(
            np.zeros(int(keep.sum()), dtype=np.int64),
            self.edge[keep],
            self.t[keep],
            self.seconds[keep],
            self.metres[keep],
            self.nearest_m[i : i + 1],
        )


@dataclass(frozen=True)
class NearestResult:
    """Per origin: seconds to the nearest target (NaN if unreachable) and its index (-1)."""

    seconds: FloatArray
    target: IntArray

    @property
    def minutes(self) -> FloatArray:
        """The travel times in minutes (NaN where unreachable)."""
        return self.seconds / 60.0


def _points(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Coordinates as 1-d float arrays (a single point too)."""
    return np.atleast_1d(np.asarray(lon, float)), np.atleast_1d(np.asarray(lat, float))


class Router:
    """Travel times for one network and one mode.

    One class on purpose (~600 lines in sections: geometry and snapping, the state
    graph core, queries): the arrays it builds once — the node or edge-based state
    graph and its reverse, the segment STRtrees, the snap memo — are what every
    query (:meth:`nearest`, :meth:`one_to_many`, :meth:`matrix`,
    :meth:`matrix_chunks`, the isochrone seeds) works on, and snapping, virtual
    nodes and the arrive step must follow one rule for all of them (a poster and
    the 技能码 page it opens give the same minutes). The pure pieces (CSR building,
    projection, turn arcs, chunking) are module functions.

    Parameters
    ----------
    net
        The road network.
    mode
        ``walk``, ``ebike`` or ``drive``.
    settings
        Speeds, access model, turn model, bounds and the metric CRS.
    """

    def __init__(self, net: RoadNetwork, mode: str, settings: Settings) -> None:
        started = time.perf_counter()
        self.net = net
        self.mode = check_mode(mode)
        # the CRS is pinned in the router's settings: everything it measures agrees
        self.metric_crs = settings.metric_crs_for(net.lon, net.lat)
        settings = settings.with_(metric_crs=self.metric_crs)
        self.settings = settings
        self.source = net.source
        self._to_metric = Transformer.from_crs("EPSG:4326", self.metric_crs, always_xy=True)
        self._to_wgs84 = Transformer.from_crs(self.metric_crs, "EPSG:4326", always_xy=True)
        bx, by = self._to_metric.transform(net.lon, net.lat)
        self.x, self.y = np.asarray(bx, float), np.asarray(by, float)
        self.n_nodes = net.n_nodes
        u, v, sec, idx = mode_edges(net, mode, settings)
        if len(u) == 0:
            raise NetworkError(
                f"{net.source.description}: no road in this network can be used by {mode} "
                f"({MODES[mode]}); use a network with such roads"
            )
        # parallel edges keep their minimum; no self-loops
        u, v, sec, idx = _simple_edges(u, v, sec, idx)
        self.edge_u, self.edge_v, self.edge_seconds = u, v, sec
        self.edge_m = net.length_m[idx]
        self.edge_way = _way_ids(net)[idx]
        self.edge_based = mode == "drive" and not net.source.coarse
        if self.edge_based:
            # one state per directed edge: "at its end, having driven it"; a turn arc
            # e -> f costs the turn and the drive along f
            e = len(u)
            self.exit = np.arange(e, dtype=np.int64)
            self.n_states = e
            t_from, t_to, t_sec = turn_arcs(self, net, settings)
            self.n_turns = len(t_from)
            a_u, a_v = t_from, t_to
            a_s, a_m = t_sec + sec[t_to], self.edge_m[t_to]
            # the ways into edge f: from the end of each edge that may turn into it
            order = np.argsort(t_to, kind="stable")
            self._entry_state, self._entry_cost = t_from[order], t_sec[order]
            self._entry_ptr = np.concatenate([[0], np.cumsum(np.bincount(t_to, minlength=e))])
        else:
            self.exit = v
            self.n_states = self.n_nodes
            self.n_turns = 0
            self._entry_state, self._entry_cost = u, np.zeros(len(u))
            self._entry_ptr = np.arange(len(u) + 1)
            a_u, a_v, a_s, a_m = u, v, sec, self.edge_m
        self.arc_u, self.arc_v = a_u, a_v
        self.arc_seconds, self.arc_m = np.maximum(a_s, _EPS), a_m
        self.graph = _csr(a_u, a_v, self.arc_seconds, self.n_states)
        self.graph_rev = _csr(a_v, a_u, self.arc_seconds, self.n_states)
        self.coarse = net.source.coarse
        self.detour = settings.detour_factor if self.coarse else 1.0
        self.access_mps = settings.access_kmh[mode] / 3.6
        self.access_max_m = settings.access_max_m(self.coarse)
        self._build_segments()
        self._snap_memo: LRUCache[bytes, Snap] = LRUCache(maxsize=64)
        self._memo_lock = threading.Lock()
        logger.info(
            "router %s: %d nodes, %d directed edges, %d segments%s in %.2f s",
            mode,
            self.n_nodes,
            len(u),
            len(self.seg_a),
            f", {self.n_turns} turns (edge-based)" if self.edge_based else "",
            time.perf_counter() - started,
        )

    # ------------------------------------------------------------------ geometry

    def to_metric(self, lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Project WGS84 lon/lat to the router's metric CRS."""
        x, y = self._to_metric.transform(np.asarray(lon, float), np.asarray(lat, float))
        return _points(x, y)

    def to_wgs84(self, x: ArrayLike, y: ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Project metric coordinates back to WGS84 lon/lat."""
        lon, lat = self._to_wgs84.transform(np.asarray(x, float), np.asarray(y, float))
        return _points(lon, lat)

    def access_seconds(self, metres: ArrayLike) -> FloatArray:
        """Seconds of an access leg of the given straight-line length."""
        return np.asarray(metres, float) * self.detour / self.access_mps

    def access_radius(self, seconds: ArrayLike) -> FloatArray:
        """Straight-line metres an access leg covers in ``seconds`` (capped)."""
        r = np.asarray(seconds, float) * self.access_mps / self.detour
        return np.minimum(r, self.access_max_m)

    def _build_segments(self) -> None:
        """Undirected segments of the usable edges, their directed edges, and STRtrees."""
        a = np.minimum(self.edge_u, self.edge_v)
        b = np.maximum(self.edge_u, self.edge_v)
        pair = pd.DataFrame({"a": a, "b": b, "fwd": self.edge_u == a, "e": np.arange(len(a))})
        table = pair.pivot_table(index=["a", "b"], columns="fwd", values="e", aggfunc="min")
        self.seg_a = table.index.get_level_values("a").to_numpy(np.int64)
        self.seg_b = table.index.get_level_values("b").to_numpy(np.int64)
        self.seg_fwd = _column(table, True)  # edge a -> b, or -1
        self.seg_bwd = _column(table, False)  # edge b -> a, or -1
        coords = np.stack(
            [
                np.column_stack([self.x[self.seg_a], self.y[self.seg_a]]),
                np.column_stack([self.x[self.seg_b], self.y[self.seg_b]]),
            ],
            axis=1,
        )
        self._segments: NDArray[np.object_] = np.asarray(shapely.linestrings(coords))
        self._tree = shapely.STRtree(self._segments)
        # the largest strongly connected component of the node graph (OSRM snaps to
        # it as well when the nearest segment lies in a small piece)
        node_graph = _csr(self.edge_u, self.edge_v, np.ones(len(self.edge_u)), self.n_nodes)
        _, label = connected_components(node_graph, directed=True, connection="strong")
        used = np.unique(np.concatenate([self.edge_u, self.edge_v]))
        main = np.bincount(label[used]).argmax()
        seg_main = (label[self.seg_a] == main) & (label[self.seg_b] == main)
        self._main_index = np.flatnonzero(seg_main)
        self._main_tree = (
            shapely.STRtree(self._segments[self._main_index])
            if len(self._main_index) < len(self.seg_a)
            else None
        )
        self._seg_main = seg_main

    def snap(self, lon: ArrayLike, lat: ArrayLike) -> Snap:
        """Snap points to their nearest usable segment (and to the main component's).

        Returns
        -------
        Snap
            Candidates within ``access_max_m``: per snapped segment, one candidate
            per direction the mode may travel it.
        """
        x, y = self.to_metric(lon, lat)
        p = len(x)
        points: NDArray[np.object_] = np.asarray(shapely.points(x, y))
        (pi, si), dist = self._tree.query_nearest(points, return_distance=True, all_matches=False)
        nearest = np.full(p, np.inf)
        nearest[pi] = dist
        seg = np.full(p, -1, dtype=np.int64)
        seg[pi] = si
        pts, segs = [np.arange(p)[seg >= 0]], [seg[seg >= 0]]
        if self._main_tree is not None and len(pi):
            off = pi[~self._seg_main[si]]
            if len(off):
                qi, mi = self._main_tree.query_nearest(
                    points[off],
                    all_matches=False,
                    max_distance=self.access_max_m,
                )
                pts.append(off[qi])
                segs.append(self._main_index[mi])
        point = np.concatenate(pts)
        seg_i = np.concatenate(segs)
        t, metres = _project(x[point], y[point], self, seg_i)
        ok = metres <= self.access_max_m
        point, seg_i, t, metres = point[ok], seg_i[ok], t[ok], metres[ok]
        fwd, bwd = self.seg_fwd[seg_i], self.seg_bwd[seg_i]
        c_point = np.concatenate([point[fwd >= 0], point[bwd >= 0]])
        c_edge = np.concatenate([fwd[fwd >= 0], bwd[bwd >= 0]])
        c_t = np.concatenate([t[fwd >= 0], 1.0 - t[bwd >= 0]])
        c_m = np.concatenate([metres[fwd >= 0], metres[bwd >= 0]])
        order = np.argsort(c_point, kind="stable")
        c_m = c_m[order]
        return Snap(
            c_point[order], c_edge[order], c_t[order], self.access_seconds(c_m), c_m, nearest
        )

    def snap_targets(self, lon: ArrayLike, lat: ArrayLike) -> Snap:
        """:meth:`snap`, remembered for the last few point sets (the same facilities
        are asked for again and again by the web pages, the same villages by every
        layer of a coverage table)."""
        lon, lat = (np.ascontiguousarray(a) for a in _points(lon, lat))
        key = hashlib.sha1(lon.tobytes() + b"|" + lat.tobytes()).digest()
        with self._memo_lock:  # the web app asks from several threads
            found = self._snap_memo.get(key)
        if found is None:
            found = self.snap(lon, lat)
            with self._memo_lock:
                self._snap_memo[key] = found
        return found

    def access(self, lon: ArrayLike, lat: ArrayLike) -> Snap:
        """Alias of :meth:`snap` (``.nearest_m`` is the distance to the road)."""
        return self.snap(lon, lat)

    # ------------------------------------------------------------------ core

    def entries(self, edge: IntArray) -> tuple[IntArray, IntArray, FloatArray]:
        """The ways into the start of each given edge: (which edge of ``edge``, state,
        extra seconds). Node-based: the edge's tail node; edge-based: the end of every
        edge that may turn into it, with the turn's cost."""
        start, stop = self._entry_ptr[edge], self._entry_ptr[edge + 1]
        which = np.repeat(np.arange(len(edge)), stop - start)
        pos = np.arange(len(which)) - np.repeat(
            np.cumsum(stop - start) - (stop - start), stop - start
        )
        pos = start[which] + pos
        return which, self._entry_state[pos], self._entry_cost[pos]

    def _seeds(
        self, snap: Snap, reverse: bool
    ) -> tuple[IntArray, IntArray, FloatArray, FloatArray]:
        """Arcs between each point's virtual node and the state graph: (point, state,
        seconds, metres along the network).

        Forward (a trip *from* the point): to the end of its edge, after the rest
        of the edge. Reverse (a trip *to* the point, searched backwards): from each
        way into its edge, then the part of the edge before the point.
        """
        c = self.edge_seconds[snap.edge]
        m = self.edge_m[snap.edge]
        if not reverse:
            rest = 1.0 - snap.t
            return snap.point, self.exit[snap.edge], snap.seconds + rest * c, rest * m
        which, state, turn = self.entries(snap.edge)
        t = snap.t[which]
        return snap.point[which], state, snap.seconds[which] + t * c[which] + turn, t * m[which]

    def _augmented(self, snap: Snap, reverse: bool, metres: bool = False) -> tuple[Any, ...]:
        """State graph plus one virtual node per point, appended as extra CSR rows.

        With ``reverse`` the virtual nodes are sources in the reversed graph
        (trips *into* the points); otherwise in the forward graph. With ``metres``
        also the same matrix with arc lengths (for route distances).
        """
        point, state, w, m = self._seeds(snap, reverse)
        # one arc per (point, state): keep the fastest
        order = np.lexsort((w, state, point))
        point, state, w, m = point[order], state[order], w[order], m[order]
        first = np.ones(len(point), dtype=bool)
        first[1:] = (point[1:] != point[:-1]) | (state[1:] != state[:-1])
        point, state, w, m = point[first], state[first], w[first], m[first]
        n, p = self.n_states, snap.n_points
        base = self.graph_rev if reverse else self.graph
        extra = np.bincount(point, minlength=p)
        indptr = np.concatenate([base.indptr, base.indptr[-1] + np.cumsum(extra)])
        indices = np.concatenate([base.indices, state.astype(base.indices.dtype)])
        graph = csr_matrix(
            (np.concatenate([base.data, np.maximum(w, _EPS)]), indices, indptr),
            shape=(n + p, n + p),
        )
        if not metres:
            return graph, n
        lengths = self._arc_lengths(reverse)
        meters = csr_matrix(
            (np.concatenate([lengths.data, m]), indices, indptr), shape=(n + p, n + p)
        )
        return graph, n, meters

    def _arc_lengths(self, reverse: bool) -> csr_matrix:
        """Arc lengths in metres, in the same CSR layout as ``graph``/``graph_rev``."""
        key = "_len_rev" if reverse else "_len_fwd"
        if key not in self.__dict__:
            a, b = (self.arc_v, self.arc_u) if reverse else (self.arc_u, self.arc_v)
            # same construction as the time matrix, so the layouts agree entry by entry
            lengths = csr_matrix((self.arc_m + 0.0, (a, b)), shape=(self.n_states,) * 2)
            timing = self.graph_rev if reverse else self.graph
            if not (
                np.array_equal(lengths.indptr, timing.indptr)
                and np.array_equal(lengths.indices, timing.indices)
            ):
                lengths = _align(lengths, timing)
            self.__dict__[key] = lengths
        out: csr_matrix = self.__dict__[key]
        return out

    def state_seconds_to(
        self, lon: ArrayLike, lat: ArrayLike, limit_s: float | None = None
    ) -> tuple[FloatArray, IntArray, Snap]:
        """Seconds from every state to the nearest of the given targets, which target,
        and the targets' snap. Unreached states have ``inf`` seconds and target -1."""
        snap = self.snap_targets(lon, lat)
        # ties (co-located targets) go to the first target, whatever else is in the
        # search: a nanosecond per position, far below any reported precision
        graph, n = self._augmented(replace(snap, seconds=snap.seconds + snap.point * 1e-9), True)
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
        return np.asarray(dist[:n], float), target, snap

    def state_seconds_from_each(
        self, lon: ArrayLike, lat: ArrayLike, limit_s: float
    ) -> tuple[list[FloatArray], Snap]:
        """For each target separately: seconds from every state to it (``inf`` beyond
        ``limit_s``), and the targets' snap. Used for per-facility isochrones."""
        snap = self.snap(lon, lat)
        graph, n = self._augmented(snap, reverse=True)
        out = [
            np.asarray(dijkstra(graph, directed=True, indices=n + i, limit=limit_s)[:n], float)
            for i in range(graph.shape[0] - n)
        ]
        return out, snap

    def _arrive(
        self, snap: Snap, state_s: FloatArray, reverse: bool
    ) -> tuple[IntArray, FloatArray]:
        """Per way of each candidate: (point, trip seconds through the state graph).

        ``reverse``: ``state_s`` are seconds *from* states to a target; the point
        travels to the end of its edge first. Otherwise ``state_s`` are seconds
        from a source *to* states; the trip enters the point's edge at its start.
        """
        point, state, seconds, _ = self._seeds(snap, not reverse)
        return point, seconds + state_s[state]

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
        limit = self._limit(max_minutes)
        o_lon = np.atleast_1d(np.asarray(origin_lon, float))
        t_lon = np.atleast_1d(np.asarray(target_lon, float))
        if len(o_lon) == 0:
            return NearestResult(np.empty(0), np.empty(0, dtype=np.int64))
        if len(t_lon) == 0:
            return NearestResult(np.full(len(o_lon), np.nan), np.full(len(o_lon), -1))
        state_s, state_t, t_snap = self.state_seconds_to(target_lon, target_lat, limit)
        # remembered: a coverage table asks from the same villages once per layer
        o_snap = self.snap_targets(origin_lon, origin_lat)
        _, total = self._arrive(o_snap, state_s, reverse=True)
        which = state_t[self.exit[o_snap.edge]]
        seconds, target = _min_per_point(o_snap.point, total, which, len(o_lon))
        pairs = self._same_edge(o_snap, t_snap)
        if self.coarse:
            pairs = pd.concat(
                [pairs, self._direct_pairs(origin_lon, origin_lat, target_lon, target_lat)]
            )
        if len(pairs):
            best = pairs.sort_values(["seconds", "target"]).drop_duplicates("origin")
            o = best["origin"].to_numpy(np.int64)
            better = best["seconds"].to_numpy() < seconds[o]
            seconds[o[better]] = best["seconds"].to_numpy()[better]
            target[o[better]] = best["target"].to_numpy(np.int64)[better]
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

        One forward Dijkstra from the origin's virtual node; each target is then
        reached at the start of its edge (or along the origin's own edge).
        """
        limit = self._limit(max_minutes)
        t_lon, t_lat = _points(target_lon, target_lat)
        if len(t_lon) == 0:
            return np.empty(0)
        o_snap = self.snap([origin_lon], [origin_lat])
        graph, n = self._augmented(o_snap, reverse=False)
        state_s = np.asarray(dijkstra(graph, directed=True, indices=n, limit=limit)[:n], float)
        t_snap = self.snap_targets(t_lon, t_lat)
        point, total = self._arrive(t_snap, state_s, reverse=False)
        seconds, _ = _min_per_point(point, total, point, len(t_lon))
        # arrays, not frames: this is the per-request path of the web pages
        _, target, direct, _ = self._same_edge_arrays(o_snap, t_snap)
        np.minimum.at(seconds, target, direct)
        if self.coarse:
            ox_, oy = self.to_metric([origin_lon], [origin_lat])
            tx, ty = self.to_metric(t_lon, t_lat)
            d = np.hypot(tx - ox_[0], ty - oy[0])
            near = d <= self.access_max_m
            seconds[near] = np.minimum(seconds[near], self.access_seconds(d[near]))
        return np.where(seconds <= limit, seconds, np.nan)

    def matrix(
        self,
        origin_lon: ArrayLike,
        origin_lat: ArrayLike,
        target_lon: ArrayLike,
        target_lat: ArrayLike,
        max_minutes: float | None = None,
        batch: int = 64,
        progress: bool = False,
        metres: bool = False,
    ) -> pd.DataFrame:
        """All origin -> target pairs within ``max_minutes``.

        One bounded reverse Dijkstra per target (in batches); origins and targets
        snap by the same rule, so swapping them gives the reverse trips. For many
        origins and targets at once (a province), :meth:`matrix_chunks` gives the
        same pairs a slice of the targets at a time.

        Parameters
        ----------
        metres
            Also return the route length (``metres``): along the network from the
            origin's projection to the target's, access legs excluded (as Valhalla
            and OSRM report it); straight line x detour for direct legs.

        Returns
        -------
        pandas.DataFrame
            Columns ``origin`` and ``target`` (positional indices), ``seconds``
            (and ``metres``); pairs beyond the bound are absent.
        """
        origins = self._origins(origin_lon, origin_lat)
        t_lon, t_lat = _points(target_lon, target_lat)
        limit = self._limit(max_minutes)
        return self._pairs(origins, t_lon, t_lat, limit, batch, progress, metres)

    def matrix_chunks(
        self,
        origin_lon: ArrayLike,
        origin_lat: ArrayLike,
        target_lon: ArrayLike,
        target_lat: ArrayLike,
        max_minutes: float | None = None,
        *,
        budget: int | None = None,
        metres: bool = False,
    ) -> Iterator[tuple[slice, pd.DataFrame]]:
        """:meth:`matrix` a slice of the targets at a time (:func:`target_chunks`).

        Yields ``(slice of the targets, their pairs)``, target indices counted in
        all targets: together the pairs of :meth:`matrix` (a target's pairs do not
        depend on the other targets), without holding them all at once. The
        origins are snapped once.
        """
        origins = self._origins(origin_lon, origin_lat)
        t_lon, t_lat = _points(target_lon, target_lat)
        limit = self._limit(max_minutes)
        for part in target_chunks(len(t_lon), len(origins[1]), budget):
            pairs = self._pairs(origins, t_lon[part], t_lat[part], limit, 64, False, metres)
            pairs["target"] += part.start
            yield part, pairs

    def _origins(self, lon: ArrayLike, lat: ArrayLike) -> tuple[Snap, FloatArray, FloatArray, Any]:
        """The origins' snap, metric coordinates and points, made once per matrix."""
        x, y = self.to_metric(lon, lat)
        x, y = np.atleast_1d(x), np.atleast_1d(y)
        return self.snap(lon, lat), x, y, shapely.points(x, y)

    def _pairs(
        self,
        origins: tuple[Snap, FloatArray, FloatArray, Any],
        target_lon: FloatArray,
        target_lat: FloatArray,
        limit: float,
        batch: int,
        progress: bool,
        metres: bool,
    ) -> pd.DataFrame:
        """The pairs of :meth:`matrix` from snapped origins to these targets."""
        from tqdm import tqdm

        o_snap, o_x, o_y, o_points = origins
        t_snap = self.snap(target_lon, target_lat)
        built = self._augmented(t_snap, reverse=True, metres=metres)
        graph, n = built[0], built[1]
        n_t = graph.shape[0] - n
        o_states = self.exit[o_snap.edge]
        o_rest, o_rest_m = self._seeds(o_snap, reverse=False)[2:]
        frames = []
        starts = range(0, n_t, batch)
        for start in tqdm(starts, desc="路径计算 routing", disable=not progress, unit="batch"):
            stop = min(start + batch, n_t)
            found = dijkstra(  # type: ignore[call-overload]  # scipy-stubs: bool overloads
                graph,
                directed=True,
                indices=np.arange(n + start, n + stop),
                limit=limit,
                return_predecessors=metres,
            )
            dist = np.atleast_2d(found[0] if metres else found)
            via = dist[:, o_states] + o_rest[None, :]  # batch x candidates
            # per (target, origin) the fastest candidate within the bound; only the
            # candidates within it are looked at (a province has ~50k per target,
            # most beyond a 30-minute bound). Ties go to the first candidate.
            row, cand = np.nonzero(via <= limit)
            secs = via[row, cand]
            point = o_snap.point[cand]
            order = np.lexsort((secs, point, row))
            first = np.ones(len(order), dtype=bool)
            first[1:] = (row[order][1:] != row[order][:-1]) | (
                point[order][1:] != point[order][:-1]
            )
            win = order[first]
            frame = pd.DataFrame(
                {"origin": point[win], "target": start + row[win], "seconds": secs[win]}
            )
            if metres:
                pred = np.atleast_2d(found[1])
                lengths_m = np.empty(len(win))
                for r in np.unique(row[win]):
                    mine = row[win] == r
                    lengths = _tree_metres(pred[r], built[2], n + start + int(r))
                    c = cand[win][mine]
                    lengths_m[mine] = o_rest_m[c] + lengths[o_states[c]]
                frame["metres"] = lengths_m
            frames.append(frame)
        pairs = self._same_edge(o_snap, t_snap, metres=metres)
        if self.coarse:
            tx, ty = self.to_metric(target_lon, target_lat)
            direct = self._direct_xy(o_x, o_y, tx, ty, metres=metres, o_points=o_points)
            pairs = pd.concat([pairs, direct])
        frames.append(pairs)
        columns = ["origin", "target", "seconds", *(["metres"] if metres else [])]
        found_any = [f for f in frames if len(f)]
        if not found_any:
            return pd.DataFrame({c: [] for c in columns})
        out = pd.concat(found_any, ignore_index=True)
        out = out[out["seconds"] <= limit][columns]
        out = out.sort_values("seconds").drop_duplicates(["origin", "target"])
        out = out.astype({"origin": np.int64, "target": np.int64})
        return out.sort_values(["origin", "seconds", "target"], ignore_index=True)

    # ------------------------------------------------------------------ pieces

    def _limit(self, max_minutes: float | None) -> float:
        return 60.0 * (self.settings.max_minutes if max_minutes is None else max_minutes)

    def _same_edge(self, o_snap: Snap, t_snap: Snap, metres: bool = False) -> pd.DataFrame:
        """Trips that stay on one directed edge: origin at or before the target."""
        origin, target, seconds, length = self._same_edge_arrays(o_snap, t_snap)
        out = pd.DataFrame({"origin": origin, "target": target, "seconds": seconds})
        if metres:
            out["metres"] = length
        return out

    def _same_edge_arrays(
        self, o_snap: Snap, t_snap: Snap
    ) -> tuple[IntArray, IntArray, FloatArray, FloatArray]:
        """:meth:`_same_edge` as arrays (origin, target, seconds, metres)."""
        order = np.argsort(t_snap.edge, kind="stable")
        t_edge = t_snap.edge[order]
        lo = np.searchsorted(t_edge, o_snap.edge, side="left")
        hi = np.searchsorted(t_edge, o_snap.edge, side="right")
        o = np.repeat(np.arange(len(o_snap.edge)), hi - lo)
        t = order[np.arange(len(o)) - np.repeat(np.cumsum(hi - lo) - (hi - lo), hi - lo) + lo[o]]
        ahead = t_snap.t[t] >= o_snap.t[o]
        o, t = o[ahead], t[ahead]
        edge = o_snap.edge[o]
        frac = t_snap.t[t] - o_snap.t[o]
        seconds = o_snap.seconds[o] + t_snap.seconds[t] + frac * self.edge_seconds[edge]
        return o_snap.point[o], t_snap.point[t], seconds, frac * self.edge_m[edge]

    def _direct_pairs(
        self,
        o_lon: ArrayLike,
        o_lat: ArrayLike,
        t_lon: ArrayLike,
        t_lat: ArrayLike,
        metres: bool = False,
    ) -> pd.DataFrame:
        """Coarse network only: straight access legs between points (local roads are
        missing there), within ``access_max_m``."""
        ox_, oy = self.to_metric(o_lon, o_lat)
        tx, ty = self.to_metric(t_lon, t_lat)
        return self._direct_xy(ox_, oy, tx, ty, metres=metres)

    def _direct_xy(
        self,
        ox_: FloatArray,
        oy: FloatArray,
        tx: FloatArray,
        ty: FloatArray,
        metres: bool = False,
        o_points: Any = None,
    ) -> pd.DataFrame:
        """:meth:`_direct_pairs` of points already in the metric CRS (``o_points``: the
        origins as shapely points, if made already)."""
        tree = shapely.STRtree(np.asarray(shapely.points(tx, ty)))
        o_points = shapely.points(ox_, oy) if o_points is None else o_points
        (oi, ti) = tree.query(o_points, predicate="dwithin", distance=self.access_max_m)
        d = np.hypot(ox_[oi] - tx[ti], oy[oi] - ty[ti])
        out = pd.DataFrame({"origin": oi, "target": ti, "seconds": self.access_seconds(d)})
        if metres:
            out["metres"] = d * self.detour
        return out


def turn_arcs(
    router: Router, net: RoadNetwork, settings: Settings
) -> tuple[IntArray, IntArray, FloatArray]:
    """Allowed turns ``e -> f`` (edge indices, head of e = tail of f) and their seconds.

    The cost follows OSRM's car profile: at a junction of more than two roads a
    sigmoid of the turn angle (``turn_penalty_s``, asymmetric by ``turn_bias``:
    turns across traffic cost more) plus, for a turn across oncoming traffic,
    ``oncoming_turn_penalty_s`` tapered by its sharpness (roundabouts are not
    told apart), ``u_turn_penalty_s`` on top for a U-turn,
    and ``signal_delay_s`` where the junction node has traffic signals. U-turns
    are allowed only at dead ends; OSM turn restrictions remove turns.
    """
    u, v = router.edge_u, router.edge_v
    e_count = len(u)
    order = np.argsort(u, kind="stable")
    out_deg = np.bincount(u, minlength=router.n_nodes)
    first_out = np.concatenate([[0], np.cumsum(out_deg)[:-1]])
    reps = out_deg[v]
    e = np.repeat(np.arange(e_count), reps)
    k = np.arange(len(e)) - np.repeat(np.concatenate([[0], np.cumsum(reps)[:-1]]), reps)
    f = order[first_out[v[e]] + k]
    via = v[e]
    # distinct neighbours of each node in the drive graph
    a, b = np.minimum(u, v), np.maximum(u, v)
    pairs = np.unique(np.column_stack([a, b]), axis=0)
    roads = np.bincount(pairs.ravel(), minlength=router.n_nodes)
    is_u = v[f] == u[e]
    keep = ~is_u | (roads[via] == 1)
    # turn angle, positive to the right (x east, y north)
    dx1, dy1 = router.x[v[e]] - router.x[u[e]], router.y[v[e]] - router.y[u[e]]
    dx2, dy2 = router.x[v[f]] - router.x[u[f]], router.y[v[f]] - router.y[u[f]]
    angle = -np.degrees(np.arctan2(dx1 * dy2 - dy1 * dx2, dx1 * dx2 + dy1 * dy2))
    angle = np.where(is_u, 180.0, angle)
    bias = settings.turn_bias
    right = settings.turn_penalty_s / (1 + np.exp(-((13 / bias) * angle / 180 - 6.5 * bias)))
    left = settings.turn_penalty_s / (1 + np.exp(-((13 * bias) * -angle / 180 - 6.5 / bias)))
    cost = np.where((roads[via] > 2) | is_u, np.where(angle >= 0, right, left), 0.0)
    # a turn across oncoming traffic (left, in right-hand traffic) at a junction
    # also waits for a gap (OSRM's oncoming_turn_penalty, tapered by sharpness)
    crosses = (angle < 0) & ~is_u & (roads[via] > 2)
    sharpness = 1 / (1 + np.exp(-(13 * np.abs(angle) / 180 - 3.25)))
    cost = cost + np.where(crosses, settings.oncoming_turn_penalty_s * sharpness, 0.0)
    cost = cost + np.where(is_u, settings.u_turn_penalty_s, 0.0)
    signal = getattr(net, "signal", None)
    if signal is not None and len(signal):
        cost = cost + np.where(signal[via], settings.signal_delay_s, 0.0)
    keep &= _allowed_by_restrictions(router, net, e, f, via)
    return e[keep], f[keep], cost[keep]


def _allowed_by_restrictions(
    router: Router, net: RoadNetwork, e: IntArray, f: IntArray, via: IntArray
) -> NDArray[np.bool_]:
    """False for turns an OSM ``type=restriction`` relation forbids (via a node)."""
    rules = getattr(net, "restrictions", None)
    allowed = np.ones(len(e), dtype=bool)
    if rules is None or len(rules) == 0:
        return allowed
    way = router.edge_way
    turns = pd.DataFrame({"from": way[e], "via": via, "to": way[f]})
    rules = pd.DataFrame(np.asarray(rules, np.int64), columns=["from", "via", "to", "only"])
    keys = ["from", "via", "to"]
    no = pd.MultiIndex.from_frame(rules.loc[rules["only"] == 0, keys])
    only = rules.loc[rules["only"] == 1]
    named = pd.MultiIndex.from_frame(only[keys])
    guarded = pd.MultiIndex.from_frame(only[["from", "via"]])
    banned = pd.MultiIndex.from_frame(turns[keys]).isin(no)
    limited = pd.MultiIndex.from_frame(turns[["from", "via"]]).isin(guarded)
    listed = pd.MultiIndex.from_frame(turns[keys]).isin(named)
    return ~banned & (~limited | listed)


def _way_ids(net: RoadNetwork) -> IntArray:
    way = getattr(net, "way_id", None)
    if way is None or len(way) != net.n_edges:
        return np.full(net.n_edges, -1, dtype=np.int64)
    return np.asarray(way, np.int64)


def _column(table: pd.DataFrame, key: bool) -> IntArray:
    if key not in table:
        return np.full(len(table), -1, dtype=np.int64)
    return table[key].fillna(-1).to_numpy(np.int64)


def _project(
    x: FloatArray, y: FloatArray, router: Router, seg: IntArray
) -> tuple[FloatArray, FloatArray]:
    """Fraction along segments (from ``seg_a``) of the projections of points, and distance."""
    ax, ay = router.x[router.seg_a[seg]], router.y[router.seg_a[seg]]
    dx, dy = router.x[router.seg_b[seg]] - ax, router.y[router.seg_b[seg]] - ay
    length2 = dx * dx + dy * dy
    t = np.where(
        length2 > 0, ((x - ax) * dx + (y - ay) * dy) / np.where(length2 > 0, length2, 1), 0
    )
    t = np.clip(t, 0.0, 1.0)
    return t, np.hypot(ax + t * dx - x, ay + t * dy - y)


#: At most this many (origin, target) pairs per :meth:`Router.matrix` call in
#: :func:`target_chunks` (about 100 MB of pairs in the worst case).
PAIR_BUDGET = 4_000_000


def target_chunks(n_targets: int, n_origins: int, budget: int | None = None) -> list[slice]:
    """Slices of the targets so that one :meth:`Router.matrix` call per slice returns
    at most ``budget`` (default :data:`PAIR_BUDGET`) pairs even if every origin
    reaches every target: a province's 25,000 villages x 2,000 facilities would
    otherwise be tens of millions of pairs at once. A matrix's pairs of a target
    do not depend on the other targets, so the slices' pairs together are the
    whole matrix's. Slices hold whole Dijkstra batches (64) where they can; a
    region as small as Jiaxing gets one slice.
    """
    budget = PAIR_BUDGET if budget is None else budget
    size = budget // max(n_origins, 1)
    size = max(size // 64 * 64 if size >= 64 else size, 1)
    return [slice(a, min(a + size, n_targets)) for a in range(0, n_targets, size)]


def _min_per_point(
    point: IntArray, value: FloatArray, label: IntArray, n: int
) -> tuple[FloatArray, IntArray]:
    """Per point (``point`` sorted), the smallest ``value`` and its ``label`` (inf / -1)."""
    best = np.full(n, np.inf)
    which = np.full(n, -1, dtype=np.int64)
    if len(point) == 0:
        return best, which
    order = np.lexsort((value, point))
    first = np.ones(len(order), dtype=bool)
    first[1:] = point[order][1:] != point[order][:-1]
    win = order[first]
    best[point[win]] = value[win]
    which[point[win]] = np.where(np.isfinite(value[win]), label[win], -1)
    return best, which


def _tree_metres(pred: NDArray[np.int32], lengths: csr_matrix, root: int) -> FloatArray:
    """Metres from every state to ``root`` along a shortest-path tree (pointer jumping).

    ``pred`` are scipy's predecessors of a search from ``root``; ``lengths`` the
    arc lengths in the searched graph's layout (arc ``pred[s] -> s``).
    """
    n = lengths.shape[0]
    parent: IntArray = np.asarray(pred, np.int64)
    reached = np.flatnonzero(parent >= 0)
    acc = np.zeros(n)
    if len(reached):
        acc[reached] = _lookup(lengths, parent[reached], reached)
    jump = np.where(parent >= 0, parent, root)
    jump[root] = root
    for _ in range(64):  # depth doubles each round: 2**64 arcs is beyond any tree
        if (jump == root).all():
            break
        acc = acc + acc[jump]
        jump = jump[jump]
    return acc[:n]


def _lookup(matrix: csr_matrix, rows: IntArray, cols: IntArray) -> FloatArray:
    """Entries ``matrix[rows[i], cols[i]]`` of a CSR matrix with sorted indices."""
    n = matrix.shape[1]
    row_of = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
    keys = row_of * n + matrix.indices
    pos = np.searchsorted(keys, rows * n + cols)
    return np.asarray(matrix.data[pos], float)


def _align(values: csr_matrix, layout: csr_matrix) -> csr_matrix:
    """``values`` re-laid in the sparsity pattern of ``layout`` (same set of entries)."""
    values.sort_indices()
    row_of = np.repeat(np.arange(layout.shape[0], dtype=np.int64), np.diff(layout.indptr))
    data = _lookup(values, row_of, layout.indices.astype(np.int64))
    return csr_matrix((data, layout.indices, layout.indptr), shape=layout.shape)


def gcj02_hint(
    router: Router, lon: ArrayLike, lat: ArrayLike, min_gain_m: float = 100.0
) -> tuple[float, float] | None:
    """Do these "WGS84" points look like unconverted GCJ-02 (高德/腾讯) coordinates?

    Compares the median distance to the nearest road of the points as given and
    after a GCJ-02 -> WGS84 conversion (a shift of ~500 m in Jiaxing). Returns
    ``(as_given_m, if_converted_m)`` when the conversion would bring them at least
    ``min_gain_m`` and half closer to the roads, else None.
    """
    from geo.coords import gcj02_to_wgs84, in_china

    lon, lat = _points(lon, lat)
    inside = in_china(lon, lat)
    if not inside.any():
        return None
    given = float(np.median(router.snap(lon[inside], lat[inside]).nearest_m))
    c_lon, c_lat = gcj02_to_wgs84(lon[inside], lat[inside])
    converted = float(np.median(router.snap(c_lon, c_lat).nearest_m))
    if converted < 0.5 * given and given - converted >= min_gain_m:
        return given, converted
    return None


def _simple_edges(
    u: IntArray, v: IntArray, seconds: FloatArray, idx: IntArray
) -> tuple[IntArray, IntArray, FloatArray, IntArray]:
    """Drop self-loops and keep the *minimum* weight of parallel edges.

    scipy would *sum* duplicate entries when building a CSR matrix, and treats
    explicit zeros as missing edges, so weights are floored at a microsecond.
    """
    order = np.lexsort((seconds, v, u))
    u, v, seconds, idx = u[order], v[order], seconds[order], idx[order]
    first = np.ones(len(u), dtype=bool)
    first[1:] = (u[1:] != u[:-1]) | (v[1:] != v[:-1])
    keep = first & (u != v)
    return u[keep], v[keep], np.maximum(seconds[keep], _EPS), idx[keep]


def _csr(u: IntArray, v: IntArray, seconds: FloatArray, n: int) -> csr_matrix:
    """CSR matrix of arcs that contain no duplicates."""
    graph = csr_matrix((np.maximum(seconds, _EPS), (u, v)), shape=(n, n))
    graph.sort_indices()
    return graph


def settings_summary(settings: Settings, mode: str) -> dict[str, Any]:
    """Parameters of a run, for file metadata."""
    return {
        "mode": mode,
        "minutes": settings.minutes,
        "max_minutes": settings.max_minutes,
        "access_kmh": settings.access_kmh[mode],
        "detour_factor": settings.detour_factor,
        "walk_kmh": settings.walk_kmh,
        "ebike_kmh": settings.ebike_kmh,
    }


__all__ = ["NearestResult", "Router", "Snap", "settings_summary", "turn_arcs"]
