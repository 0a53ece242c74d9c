"""A deterministic Jiaxing-scale synthetic street network, villages and facilities.

The generator (:func:`jiaxing_city`) lays a street grid over the Jiaxing extent
(lon 120.3-121.3, lat 30.2-31.0, about 96 x 89 km) and returns OSM-like *ways*
plus the :class:`~geo.network.RoadNetwork` built from them, so that the same
data can be written as OSM XML / PBF (:func:`write_osm`) and routed directly:

* **Grid.** ``NX x NY`` intersections, the block size chosen so that the network
  has about ``target_nodes`` nodes. Every block side carries ``shape_nodes``
  intermediate (degree-2) shape points, as OSM ways do, so the ratio of
  directed edges to nodes is about 2.5 like a real street graph.
* **Jitter.** Intersections move by up to ±25 % of a block, shape points by up to
  ±8 % across their street; nodes on arterial lines move only *along* the line.
* **Missing blocks.** Each local block side is dropped with probability
  ``missing`` (default 10 %), merging neighbouring blocks; nodes left without a
  road are removed.
* **Arterials.** Every ``round(arterial_m / block)``-th row and column is a
  straight arterial, alternately ``highway=primary`` (``maxspeed=60``) and
  ``secondary`` (drive speed 40 km/h by class). Local streets are
  ``residential`` (70 %), ``unclassified`` (20 %) or ``tertiary`` (10 %), and
  ``oneway_share`` (3 %) of local ways are ``oneway=yes`` in a random direction.
  ``geo.network.mode_edges`` turns this into per-mode speeds: walk/e-bike use a
  uniform speed and ignore ``oneway``; drive uses the class speed (or
  ``maxspeed``) and respects ``oneway``.
* **Water gaps.** Two meandering river bands, 300 m wide — one running
  east-west near lat 30.55, one north-south near lon 120.95 — remove every node
  inside them and every block side crossing them, except on *bridge* lines:
  every fourth arterial crossing the river plus two local streets.
* **Ways.** Runs of kept block sides along a row or column are cut into ways of
  2-8 block sides (arterials up to 12), each with one set of tags.

Villages (:func:`synthetic_villages`) and facilities (:func:`synthetic_facilities`)
are placed near random network nodes with small offsets (villages <= 120 m,
facilities <= 80 m), counties by the nearest of seven seed points; they have the
columns and dtypes of :func:`geo.places.load_villages` and
:func:`geo.facilities.load_facilities`. Everything is drawn from one seeded
``numpy.random.Generator``; the same arguments give the same data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from numpy.typing import NDArray

from geo.facilities import LAYER_PREFIXES, facilities_from_records
from geo.network import NetworkSource, RoadNetwork
from geo.settings import LAYERS, Settings

#: The Jiaxing extent (min lon, min lat, max lon, max lat).
EXTENT = (120.3, 30.2, 121.3, 31.0)
_M_PER_DEG_LAT = 110_900.0
_M_PER_DEG_LON = 111_320.0 * np.cos(np.radians(30.6))

#: Facilities per layer, as in the bundled ``data/facilities.geojson`` (516 in all).
LAYER_COUNTS: dict[str, int] = {
    "technical_school": 16,
    "training_institution": 123,
    "evaluation_org": 32,
    "training_base": 10,
    "master_studio": 189,
    "village_station": 110,
    "experience_site": 36,
}

#: Rough seats of the seven counties; a point belongs to the nearest one.
COUNTY_SEEDS: dict[str, tuple[float, float]] = {
    "南湖区": (120.78, 30.75),
    "秀洲区": (120.62, 30.82),
    "嘉善县": (120.92, 30.86),
    "海盐县": (120.93, 30.52),
    "海宁市": (120.62, 30.45),
    "平湖市": (121.08, 30.70),
    "桐乡市": (120.45, 30.65),
}

_TRADES = ("电工", "焊工", "育婴员", "保育师", "中式烹调师", "美容师", "电子商务师", "茶艺师")

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


@dataclass
class SyntheticCity:
    """A synthetic network with its OSM-like ways.

    ``way_ptr`` indexes ``way_nodes`` (network node indices, in way order); the
    OSM id of node ``i`` is ``net.node_ids[i]``, of way ``w`` is ``w + 1``.
    """

    net: RoadNetwork
    way_ptr: IntArray
    way_nodes: IntArray
    way_highway: NDArray[np.str_]
    way_oneway: NDArray[np.bool_]
    way_maxspeed: FloatArray
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_ways(self) -> int:
        return len(self.way_highway)


def _river_side(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Signed distances (m) of points to the centre lines of the two rivers."""
    c1 = 30.55 + 0.03 * np.sin(2 * np.pi * (lon - 120.3) / 0.37)
    c2 = 120.95 + 0.03 * np.sin(2 * np.pi * (lat - 30.2) / 0.29)
    return (lat - c1) * _M_PER_DEG_LAT, (lon - c2) * _M_PER_DEG_LON


def jiaxing_city(
    target_nodes: int = 200_000,
    seed: int = 0,
    *,
    shape_nodes: int = 1,
    missing: float = 0.10,
    arterial_m: float = 1500.0,
    oneway_share: float = 0.03,
    river_width_m: float = 300.0,
    extent: tuple[float, float, float, float] = EXTENT,
) -> SyntheticCity:
    """Generate the synthetic street network (see the module docstring).

    Parameters
    ----------
    target_nodes
        Approximate number of network nodes.
    seed
        Seed of the random generator.
    shape_nodes, missing, arterial_m, oneway_share, river_width_m
        Shape points per block side, share of dropped local block sides,
        arterial spacing, share of one-way local ways, river width.
    extent
        ``(min_lon, min_lat, max_lon, max_lat)``.

    Returns
    -------
    SyntheticCity
        The network and its ways.
    """
    from osmnx.distance import great_circle

    rng = np.random.default_rng(seed)
    lon0, lat0, lon1, lat1 = extent
    width_m = (lon1 - lon0) * _M_PER_DEG_LON
    height_m = (lat1 - lat0) * _M_PER_DEG_LAT
    k = shape_nodes
    n_inter = target_nodes / (1 + 2 * k * (1 - missing))
    nx_ = round(float(np.sqrt(n_inter * width_m / height_m)))
    ny_ = round(n_inter / nx_)
    block_m = width_m / (nx_ - 1)
    art = max(2, round(arterial_m / block_m))
    art_off = art // 2
    rows_art = np.arange(ny_) % art == art_off
    cols_art = np.arange(nx_) % art == art_off

    # ---- node positions: intersections, then horizontal and vertical shape points
    ix, iy = np.meshgrid(np.arange(nx_), np.arange(ny_))  # (ny, nx)
    dlon, dlat = (lon1 - lon0) / (nx_ - 1), (lat1 - lat0) / (ny_ - 1)
    jx = rng.uniform(-0.25, 0.25, ix.shape) * ~cols_art[None, :]
    jy = rng.uniform(-0.25, 0.25, iy.shape) * ~rows_art[:, None]
    edge_x = (ix == 0) | (ix == nx_ - 1)
    edge_y = (iy == 0) | (iy == ny_ - 1)
    i_lon = lon0 + (ix + np.where(edge_x, 0, jx)) * dlon
    i_lat = lat0 + (iy + np.where(edge_y, 0, jy)) * dlat
    frac = np.arange(1, k + 1) / (k + 1)
    # horizontal shape points, shape (ny, nx-1, k)
    h_lon = i_lon[:, :-1, None] + frac * (i_lon[:, 1:, None] - i_lon[:, :-1, None])
    h_lat = i_lat[:, :-1, None] + frac * (i_lat[:, 1:, None] - i_lat[:, :-1, None])
    h_lat = h_lat + rng.uniform(-0.08, 0.08, h_lat.shape) * dlat * ~rows_art[:, None, None]
    # vertical shape points, shape (nx, ny-1, k)
    v_lon = i_lon.T[:, :-1, None] + frac * (i_lon.T[:, 1:, None] - i_lon.T[:, :-1, None])
    v_lat = i_lat.T[:, :-1, None] + frac * (i_lat.T[:, 1:, None] - i_lat.T[:, :-1, None])
    v_lon = v_lon + rng.uniform(-0.08, 0.08, v_lon.shape) * dlon * ~cols_art[:, None, None]
    lon = np.concatenate([i_lon.ravel(), h_lon.ravel(), v_lon.ravel()])
    lat = np.concatenate([i_lat.ravel(), h_lat.ravel(), v_lat.ravel()])
    base_h = nx_ * ny_
    base_v = base_h + ny_ * (nx_ - 1) * k

    # ---- the fine node sequence of every row (ny, F) and column (nx, G)
    f_row = np.empty((ny_, (nx_ - 1) * (k + 1) + 1), dtype=np.int64)
    f_row[:, :: k + 1] = np.arange(nx_ * ny_).reshape(ny_, nx_)
    h_ids = base_h + np.arange(ny_ * (nx_ - 1) * k).reshape(ny_, nx_ - 1, k)
    for j in range(k):
        f_row[:, 1 + j :: k + 1] = h_ids[:, :, j]
    f_col = np.empty((nx_, (ny_ - 1) * (k + 1) + 1), dtype=np.int64)
    f_col[:, :: k + 1] = np.arange(nx_ * ny_).reshape(ny_, nx_).T
    v_ids = base_v + np.arange(nx_ * (ny_ - 1) * k).reshape(nx_, ny_ - 1, k)
    for j in range(k):
        f_col[:, 1 + j :: k + 1] = v_ids[:, :, j]

    # ---- water: nodes inside a band, block sides crossing one
    d1, d2 = _river_side(lon, lat)
    half = river_width_m / 2
    wet1, wet2 = np.abs(d1) < half, np.abs(d2) < half

    def side_hits(fine: NDArray[np.int64], d: FloatArray, wet: NDArray[np.bool_]) -> NDArray:
        a, b = fine[:, :-1], fine[:, 1:]
        seg = (np.sign(d[a]) != np.sign(d[b])) | wet[a] | wet[b]
        return seg.reshape(fine.shape[0], -1, k + 1).any(axis=2)  # (lines, sides)

    # bridges: every 4th arterial plus two local lines per river
    art_cols, art_rows = np.flatnonzero(cols_art), np.flatnonzero(rows_art)
    bridge_cols = np.zeros(nx_, dtype=bool)  # cross river 1 (east-west band)
    bridge_cols[art_cols[::4]] = True
    bridge_cols[rng.choice(np.flatnonzero(~cols_art), 2, replace=False)] = True
    bridge_rows = np.zeros(ny_, dtype=bool)  # cross river 2 (north-south band)
    bridge_rows[art_rows[::4]] = True
    bridge_rows[rng.choice(np.flatnonzero(~rows_art), 2, replace=False)] = True

    keep_row = ~(side_hits(f_row, d1, wet1) | (side_hits(f_row, d2, wet2) & ~bridge_rows[:, None]))
    keep_col = ~((side_hits(f_col, d1, wet1) & ~bridge_cols[:, None]) | side_hits(f_col, d2, wet2))
    keep_row &= ~((rng.random(keep_row.shape) < missing) & ~rows_art[:, None])
    keep_col &= ~((rng.random(keep_col.shape) < missing) & ~cols_art[:, None])

    # ---- ways: runs of kept sides, cut into pieces
    local_classes = np.array(["residential", "unclassified", "tertiary"])
    ways: list[IntArray] = []
    w_hwy: list[str] = []
    w_one: list[bool] = []
    w_max: list[float] = []
    for fine, keep, is_art in ((f_row, keep_row, rows_art), (f_col, keep_col, cols_art)):
        art_rank = np.cumsum(is_art) - 1
        for line in range(fine.shape[0]):
            kept = keep[line]
            sides = np.flatnonzero(kept)
            if len(sides) == 0:
                continue
            # split into runs of consecutive sides
            breaks = np.flatnonzero(np.diff(sides) != 1) + 1
            for run in np.split(sides, breaks):
                start = 0
                while start < len(run):
                    size = int(rng.integers(2, 13 if is_art[line] else 9))
                    piece = run[start : start + size]
                    start += size
                    first, last = piece[0] * (k + 1), (piece[-1] + 1) * (k + 1)
                    nodes = fine[line, first : last + 1]
                    if is_art[line]:
                        primary = art_rank[line] % 2 == 0
                        w_hwy.append("primary" if primary else "secondary")
                        w_max.append(60.0 if primary else np.nan)
                        w_one.append(False)
                    else:
                        w_hwy.append(str(rng.choice(local_classes, p=[0.7, 0.2, 0.1])))
                        w_max.append(np.nan)
                        one = bool(rng.random() < oneway_share)
                        if one and rng.random() < 0.5:
                            nodes = nodes[::-1]
                        w_one.append(one)
                    ways.append(nodes)

    # ---- keep used nodes only, renumber
    lengths = np.array([len(w) for w in ways], dtype=np.int64)
    flat = np.concatenate(ways)
    used = np.unique(flat)
    new_index = np.full(len(lon), -1, dtype=np.int64)
    new_index[used] = np.arange(len(used))
    way_nodes = new_index[flat]
    way_ptr = np.concatenate([[0], np.cumsum(lengths)])
    lon, lat = lon[used], lat[used]

    # ---- directed edges: consecutive nodes within each way
    seg_way = np.repeat(np.arange(len(ways)), lengths - 1)
    not_last = np.ones(len(way_nodes), dtype=bool)
    not_last[way_ptr[1:] - 1] = False
    a, b = way_nodes[not_last], way_nodes[np.roll(not_last, 1)]
    one = np.array(w_one)[seg_way]
    hwy = np.array(w_hwy)[seg_way]
    mx = np.array(w_max)[seg_way]
    two = ~one
    u = np.concatenate([a, b[two]])
    v = np.concatenate([b, a[two]])
    length = np.asarray(great_circle(lat[u], lon[u], lat[v], lon[v]), float)
    n_e = len(u)
    net = RoadNetwork(
        lon=lon,
        lat=lat,
        u=u,
        v=v,
        length_m=length,
        highway=np.concatenate([hwy, hwy[two]]).astype(str),
        maxspeed_kmh=np.concatenate([mx, mx[two]]),
        oneway=np.concatenate([one, one[two]]),
        no_foot=np.zeros(n_e, dtype=bool),
        no_bicycle=np.zeros(n_e, dtype=bool),
        no_motor=np.zeros(n_e, dtype=bool),
        source=NetworkSource("synthetic", f"bench/synthetic.py seed {seed}, {len(lon):,} nodes"),
        node_ids=np.arange(1, len(lon) + 1, dtype=np.int64),
    )
    info = {
        "grid": f"{nx_} x {ny_}",
        "block_m": round(block_m),
        "arterial_every_m": round(art * block_m),
        "bridges": int(bridge_cols.sum() + bridge_rows.sum()),
        "ways": len(ways),
        "oneway_ways": int(np.sum(w_one)),
    }
    return SyntheticCity(
        net=net,
        way_ptr=way_ptr,
        way_nodes=way_nodes,
        way_highway=np.array(w_hwy, dtype=str),
        way_oneway=np.array(w_one, dtype=bool),
        way_maxspeed=np.array(w_max, dtype=float),
        info=info,
    )


def _road_nodes(net: RoadNetwork) -> IntArray:
    """Nodes that some edge uses."""
    used = np.zeros(net.n_nodes, dtype=bool)
    used[net.u] = True
    used[net.v] = True
    return np.flatnonzero(used)


def _near_nodes(
    net: RoadNetwork,
    nodes: IntArray,
    n: int,
    max_offset_m: float,
    rng: np.random.Generator,
) -> tuple[FloatArray, FloatArray]:
    """``n`` points at random ``nodes`` of ``net``, moved by up to ``max_offset_m``."""
    pick = rng.choice(nodes, n, replace=len(nodes) < n)
    angle = rng.uniform(0, 2 * np.pi, n)
    dist = max_offset_m * np.sqrt(rng.uniform(0, 1, n))
    lon = net.lon[pick] + dist * np.cos(angle) / _M_PER_DEG_LON
    lat = net.lat[pick] + dist * np.sin(angle) / _M_PER_DEG_LAT
    return lon, lat


def _county(lon: FloatArray, lat: FloatArray) -> NDArray[np.int64]:
    seeds = np.array(list(COUNTY_SEEDS.values()))
    dx = (lon[:, None] - seeds[None, :, 0]) * _M_PER_DEG_LON
    dy = (lat[:, None] - seeds[None, :, 1]) * _M_PER_DEG_LAT
    return np.argmin(np.hypot(dx, dy), axis=1)


def synthetic_villages(net: RoadNetwork, n: int = 1202, seed: int = 1) -> gpd.GeoDataFrame:
    """``n`` villages near random nodes, with the columns of ``load_villages``.

    Codes are 12 digits: county adcode, a town number (a 10 x 10 grid cell of
    the extent) and a running number.
    """
    rng = np.random.default_rng(seed)
    lon, lat = _near_nodes(net, _road_nodes(net), n, 120.0, rng)
    names = list(COUNTY_SEEDS)
    county = [names[i] for i in _county(lon, lat)]
    lon_min, lat_min = lon.min(), lat.min()
    cell = (
        np.minimum(9, ((lat - lat_min) / (np.ptp(lat) + 1e-9) * 10).astype(int)) * 10
        + np.minimum(9, ((lon - lon_min) / (np.ptp(lon) + 1e-9) * 10).astype(int))
        + 1
    )
    adcodes = Settings().region.adcodes
    town_code = [f"{adcodes[c]}{t:03d}" for c, t in zip(county, cell, strict=True)]
    counter: dict[str, int] = {}
    codes = []
    for tc in town_code:
        counter[tc] = counter.get(tc, 0) + 1
        codes.append(f"{tc}{counter[tc]:03d}")
    frame = pd.DataFrame(
        {
            "village_code": codes,
            "village_name": [f"合成村{i + 1:04d}" for i in range(n)],
            "town": [f"{c}合成镇{t:03d}" for c, t in zip(county, cell, strict=True)],
            "county": county,
            "location_quality": "point_synthetic",
            "lon": lon,
            "lat": lat,
        }
    )
    return gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(lon, lat), crs="EPSG:4326")


def synthetic_facilities(
    net: RoadNetwork, counts: dict[str, int] | None = None, seed: int = 2
) -> gpd.GeoDataFrame:
    """Facilities per layer (default :data:`LAYER_COUNTS`) near random nodes.

    Built with :func:`geo.facilities.facilities_from_records`, so columns and
    dtypes are those of ``load_facilities``.
    """
    rng = np.random.default_rng(seed)
    counts = dict(LAYER_COUNTS if counts is None else counts)
    names = list(COUNTY_SEEDS)
    records: list[dict[str, Any]] = []
    nodes = _road_nodes(net)
    for layer in LAYERS:
        n = counts.get(layer, 0)
        if n == 0:
            continue
        lon, lat = _near_nodes(net, nodes, n, 80.0, rng)
        county = _county(lon, lat)
        for i in range(n):
            trades = rng.choice(_TRADES, int(rng.integers(1, 4)), replace=False).tolist()
            records.append(
                {
                    "id": f"{LAYER_PREFIXES[layer]}-SYN-{i + 1:04d}",
                    "layer": layer,
                    "name": f"合成{LAYERS[layer]}{i + 1:03d}",
                    "county": names[county[i]],
                    "trades": trades,
                    "capacity": int(rng.integers(50, 500)),
                    "source": "synthetic (bench/synthetic.py)",
                    "is_sample": True,
                    "location_quality": "synthetic",
                    "lon": float(lon[i]),
                    "lat": float(lat[i]),
                }
            )
    return facilities_from_records(records, bounds=None, label="synthetic facilities")


def random_places(
    net: RoadNetwork, n_villages: int = 1202, seed: int = 3
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Villages and facilities spread over any network's nodes (for ``--osm FILE``)."""
    return synthetic_villages(net, n_villages, seed), synthetic_facilities(net, seed=seed + 1)


def subset_ways(city: SyntheticCity, target_nodes: int) -> NDArray[np.int64]:
    """Indices of the ways lying entirely in a central box holding about ``target_nodes``."""
    net = city.net
    share = min(1.0, target_nodes / net.n_nodes)
    half = np.sqrt(share) / 2
    lo_lon, hi_lon = np.quantile(net.lon, [0.5 - half, 0.5 + half])
    lo_lat, hi_lat = np.quantile(net.lat, [0.5 - half, 0.5 + half])
    inside = (net.lon >= lo_lon) & (net.lon <= hi_lon) & (net.lat >= lo_lat) & (net.lat <= hi_lat)
    way_of_node = np.repeat(np.arange(city.n_ways), np.diff(city.way_ptr))
    outside = np.zeros(city.n_ways, dtype=bool)
    np.logical_or.at(outside, way_of_node, ~inside[city.way_nodes])
    return np.flatnonzero(~outside)


def write_osm(city: SyntheticCity, ways: NDArray[np.int64], path: Path) -> tuple[int, int]:
    """Write the given ways and their nodes with pyosmium (format from the suffix).

    Returns
    -------
    nodes, ways
        Counts written.
    """
    import osmium

    net = city.net
    path = Path(path)
    path.unlink(missing_ok=True)
    node_lists = [city.way_nodes[city.way_ptr[w] : city.way_ptr[w + 1]] for w in ways]
    nodes = np.unique(np.concatenate(node_lists)) if node_lists else np.empty(0, np.int64)
    stamp = "2024-01-01T00:00:00Z"
    writer = osmium.SimpleWriter(str(path))
    try:
        for i in nodes.tolist():
            writer.add_node(
                osmium.osm.mutable.Node(
                    id=int(net.node_ids[i]),
                    location=(float(net.lon[i]), float(net.lat[i])),
                    version=1,
                    timestamp=stamp,
                )
            )
        for w, refs in zip(ways.tolist(), node_lists, strict=True):
            tags = {"highway": str(city.way_highway[w])}
            if city.way_oneway[w]:
                tags["oneway"] = "yes"
            if np.isfinite(city.way_maxspeed[w]):
                tags["maxspeed"] = f"{city.way_maxspeed[w]:g}"
            writer.add_way(
                osmium.osm.mutable.Way(
                    id=w + 1,
                    nodes=net.node_ids[refs].tolist(),
                    tags=tags,
                    version=1,
                    timestamp=stamp,
                )
            )
    finally:
        writer.close()
    return len(nodes), len(ways)
