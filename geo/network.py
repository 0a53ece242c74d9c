"""Road networks as flat arrays: from an OSM file, the cache, Overpass, or the bundled skeleton.

A :class:`RoadNetwork` holds nodes (WGS84 lon/lat) and *directed* edges with the
few OSM attributes routing needs. Two-way roads appear as two edges, one-way
roads as one, exactly like an osmnx ``MultiDiGraph`` built with
``bidirectional=False``. Per-mode speeds and exclusions come from
:func:`mode_edges`.

Sources, in order (:func:`load_network`):

1. a user's ``.osm``/``.xml`` file (parsed by osmnx) or ``.osm.pbf`` (pyosmium);
2. the on-disk cache of graphs built before (keyed by file content or region);
3. an osmnx download from Overpass for a polygon (only when asked, never in tests);
4. the coarse major-roads network of the region pack (``network/``; the bundled
   pack's is Jiaxing's), whose use every output announces (:attr:`NetworkSource.coarse`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree
from xml.sax import SAXParseException

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from geo._errors import NetworkError
from geo._validate import Area, Bounds
from geo.settings import Settings, check_mode

logger = logging.getLogger(__name__)

OSM_ATTRIBUTION = "© OpenStreetMap contributors, ODbL 1.0"
CACHE_VERSION = 3

#: OSM way tags kept on edges (besides ``highway``/``oneway``/``maxspeed``).
_EXTRA_TAGS = (
    "foot",
    "bicycle",
    "motorroad",
    "motorcar",
    "motor_vehicle",
    "vehicle",
    "access",
    "area",
    "junction",
)
_ONEWAY_VALUES = {"yes", "true", "1", "-1", "reverse"}
_REVERSED_VALUES = {"-1", "reverse"}
#: Per mode: the tags that decide access, most specific first, and the values that
#: close a way (OSRM's foot / bicycle / car profiles: ``access_tags_hierarchy`` and
#: ``access_tag_blacklist``).
_ACCESS_RULES: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {
    "foot": (
        ("foot", "access"),
        frozenset({"no", "private", "agricultural", "forestry", "delivery", "use_sidepath"}),
    ),
    "bicycle": (
        ("bicycle", "vehicle", "access"),
        frozenset({"no", "private", "agricultural", "forestry", "delivery", "use_sidepath"}),
    ),
    "motor": (
        ("motorcar", "motor_vehicle", "vehicle", "access"),
        frozenset(
            {
                "no",
                "private",
                "agricultural",
                "forestry",
                "delivery",
                "emergency",
                "psv",
                "customers",
            }
        ),
    ),
}
_MEMBER_KIND = {"n": "node", "w": "way", "r": "relation"}  # pyosmium member types
_MPH = 1.609344


@dataclass(frozen=True)
class NetworkSource:
    """Where a network came from; reported in every output.

    Attributes
    ----------
    kind
        ``osm_file``, ``cache``, ``download`` or ``bundled_coarse``.
    description
        Human-readable origin (file name, region, date).
    coarse
        True for the bundled major-roads skeleton (no local streets).
    attribution
        Licence/attribution line that must travel with derived data.
    """

    kind: str
    description: str
    coarse: bool = False
    attribution: str = OSM_ATTRIBUTION

    @property
    def label(self) -> str:
        """One line for logs, file metadata and the map notice."""
        text = f"{self.kind}: {self.description} ({self.attribution})"
        if self.coarse:
            text += (
                " — 粗略路网：仅主干道，本地道路以直线×绕行系数估算 (coarse major-roads network)"
            )
        return text


@dataclass
class RoadNetwork:
    """A directed road network on numpy arrays.

    ``u``/``v`` index into ``lon``/``lat``. ``highway`` is ``""`` on the coarse
    network; ``maxspeed_kmh`` is NaN where OSM gives no usable ``maxspeed``.
    """

    lon: NDArray[np.float64]
    lat: NDArray[np.float64]
    u: NDArray[np.int64]
    v: NDArray[np.int64]
    length_m: NDArray[np.float64]
    highway: NDArray[np.str_]
    maxspeed_kmh: NDArray[np.float64]
    oneway: NDArray[np.bool_]
    no_foot: NDArray[np.bool_]
    no_bicycle: NDArray[np.bool_]
    no_motor: NDArray[np.bool_]
    source: NetworkSource
    node_ids: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    #: OSM way id per directed edge (-1 where unknown: coarse and synthetic networks).
    way_id: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    #: Per node: tagged ``highway=traffic_signals`` (both directions).
    signal: NDArray[np.bool_] = field(default_factory=lambda: np.empty(0, dtype=bool))
    #: OSM turn restrictions via a node, one row each: ``from_way_id, via_node`` (an
    #: index into the node arrays), ``to_way_id, only`` (1 for ``only_*``, 0 for ``no_*``).
    restrictions: NDArray[np.int64] = field(
        default_factory=lambda: np.empty((0, 4), dtype=np.int64)
    )

    def __post_init__(self) -> None:
        if len(self.way_id) != len(self.u):
            self.way_id = np.full(len(self.u), -1, dtype=np.int64)
        if len(self.signal) != len(self.lon):
            self.signal = np.zeros(len(self.lon), dtype=bool)
        self.restrictions = np.asarray(self.restrictions, dtype=np.int64).reshape(-1, 4)

    @property
    def n_nodes(self) -> int:
        """How many nodes the network has."""
        return len(self.lon)

    @property
    def n_edges(self) -> int:
        """How many directed edges the network has."""
        return len(self.u)

    def summary(self) -> str:
        """Nodes, directed edges and km of edges, for logs and reports."""
        km = float(self.length_m.sum()) / 1000
        return f"{self.n_nodes:,} nodes, {self.n_edges:,} directed edges, {km:,.0f} km of edges"


# --------------------------------------------------------------------------- speeds


def parse_maxspeed(value: object) -> float:
    """Return an OSM ``maxspeed`` value in km/h, or NaN if it is not numeric.

    Handles ``"50"``, ``"50 km/h"``, ``"30 mph"``, ``"60;80"`` and ``"40|60"``
    (the lowest value counts: a conservative travel time).
    """
    if not isinstance(value, str):
        return float("nan")
    numbers = []
    for part in re.split(r"[;|]", value):
        match = re.match(r"^\s*([0-9]+(?:[.,][0-9]+)?)\s*(km/h|kmh|kph|mph)?\s*$", part)
        if match:
            kmh = float(match.group(1).replace(",", "."))
            numbers.append(kmh * _MPH if match.group(2) == "mph" else kmh)
    return min(numbers) if numbers else float("nan")


def mode_edges(
    net: RoadNetwork, mode: str, settings: Settings
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]]:
    """Directed edges usable by ``mode``, their travel times in seconds, and which edge.

    One-way restrictions apply to ``drive`` only: for ``walk`` and ``ebike`` the
    reverse of every one-way edge is added.

    Returns
    -------
    u, v, seconds, index
        Edge endpoints (node indices), traversal times, and the position of each
        in the network's edge arrays (a reversed one-way edge keeps its own).
    """
    check_mode(mode)
    hwy = net.highway
    if net.source.coarse:
        keep = np.ones(net.n_edges, dtype=bool)
        kmh = np.full(net.n_edges, settings.coarse_speed_kmh[mode])
    elif mode == "walk":
        keep = ~np.isin(hwy, ["motorway", "motorway_link", "construction", "proposed"])
        keep &= ~net.no_foot
        kmh = np.full(net.n_edges, settings.walk_kmh)
    elif mode == "ebike":
        no_bike_classes = ["footway", "steps", "pedestrian", "corridor", "elevator", "platform"]
        keep = ~np.isin(hwy, ["motorway", "motorway_link", "construction", "proposed"])
        keep &= ~np.isin(hwy, no_bike_classes)
        keep &= ~net.no_bicycle
        kmh = np.full(net.n_edges, settings.ebike_kmh)
    else:
        # OSRM's car profile: only the classes of its speed table are drivable; a
        # tagged maxspeed replaces the class speed, scaled by maxspeed_factor (0.8)
        by_class = pd.Series(hwy).map(dict(settings.drive_speeds)).to_numpy(dtype=float)
        keep = ~np.isnan(by_class) & ~net.no_motor
        kmh = np.where(
            np.isnan(net.maxspeed_kmh), by_class, net.maxspeed_kmh * settings.maxspeed_factor
        )
    index = np.flatnonzero(keep)
    u, v = net.u[keep], net.v[keep]
    seconds = net.length_m[keep] / (kmh[keep] / 3.6)
    if mode != "drive" and not net.source.coarse:
        one = net.oneway[keep]
        u, v = np.concatenate([u, v[one]]), np.concatenate([v, u[one]])
        seconds = np.concatenate([seconds, seconds[one]])
        index = np.concatenate([index, index[one]])
    return u, v, seconds, index


# --------------------------------------------------------------------------- building


def _edge_flags(tags: pd.DataFrame) -> dict[str, NDArray[Any]]:
    """Derive boolean access flags from a frame of raw tag strings."""

    def col(name: str) -> pd.Series:
        return tags[name].fillna("").astype(str) if name in tags else pd.Series([""] * len(tags))

    hwy = col("highway")
    motorroad = col("motorroad") == "yes"
    closed = {mode: _closed(tags, *rule) for mode, rule in _ACCESS_RULES.items()}
    return {
        "no_foot": (closed["foot"] | motorroad).to_numpy(),
        "no_bicycle": (
            closed["bicycle"] | (motorroad & hwy.isin(["trunk", "trunk_link"]))
        ).to_numpy(),
        "no_motor": closed["motor"].to_numpy(),
    }


def _closed(tags: pd.DataFrame, keys: tuple[str, ...], blacklist: frozenset[str]) -> pd.Series:
    """As OSRM's ``find_access_tag``: the most specific access tag present decides
    (e.g. ``motorcar``, then ``motor_vehicle``, ``vehicle``, ``access``); a way is
    closed when that value is on the blacklist."""
    decided = pd.Series([""] * len(tags), index=tags.index)
    for key in reversed(keys):  # general first, the specific ones override
        if key in tags:
            value = tags[key].fillna("").astype(str)
            decided = value.where(value != "", decided)
    return decided.isin(list(blacklist))


def _from_segments(
    node_ids: NDArray[np.int64],
    lon: NDArray[np.float64],
    lat: NDArray[np.float64],
    seg: pd.DataFrame,
    source: NetworkSource,
    signals: NDArray[np.int64] | None = None,
    restrictions: list[tuple[int, int, int, int]] | None = None,
) -> RoadNetwork:
    """Assemble a RoadNetwork from directed segments with OSM node ids ``u``/``v``
    (and way ids ``way``), the OSM ids of traffic-signal nodes, and raw turn
    restrictions ``(from_way, via_node_osm_id, to_way, only)``."""
    from osmnx.distance import great_circle

    seg = seg[seg["highway"].fillna("") != ""]
    if "area" in seg:
        seg = seg[seg["area"].fillna("") != "yes"]
    used = unique_ids(np.concatenate([seg["u"].to_numpy(), seg["v"].to_numpy()]))
    order = np.argsort(node_ids)
    pos = order[np.searchsorted(node_ids, used, sorter=order)]
    node_ids, lon, lat = node_ids[pos], lon[pos], lat[pos]
    index = pd.Series(np.arange(len(node_ids)), index=node_ids)
    u = index.loc[seg["u"].to_numpy()].to_numpy()
    v = index.loc[seg["v"].to_numpy()].to_numpy()
    flags = _edge_flags(seg)
    length = great_circle(lat[u], lon[u], lat[v], lon[v])
    way = seg["way"].to_numpy(np.int64) if "way" in seg else np.full(len(seg), -1)
    signal = in_sorted(
        node_ids, unique_ids(np.asarray(signals if signals is not None else [], np.int64))
    )
    rules = _restriction_rows(restrictions or [], index, set(way.tolist()))
    return RoadNetwork(
        lon=lon.astype(float),
        lat=lat.astype(float),
        u=u.astype(np.int64),
        v=v.astype(np.int64),
        length_m=np.asarray(length, dtype=float),
        highway=seg["highway"].fillna("").astype(str).to_numpy().astype(str),
        maxspeed_kmh=_maxspeeds(seg),
        oneway=seg["oneway"].to_numpy(dtype=bool),
        no_foot=flags["no_foot"],
        no_bicycle=flags["no_bicycle"],
        no_motor=flags["no_motor"],
        source=source,
        node_ids=node_ids.astype(np.int64),
        way_id=way.astype(np.int64),
        signal=signal,
        restrictions=rules,
    )


def unique_ids(ids: NDArray[np.int64]) -> NDArray[np.int64]:
    """The sorted distinct values of an integer array, as ``np.unique`` returns them.

    By sorting: numpy 2.4's ``np.unique`` hashes integer arrays and takes about
    1 s per 600,000 OSM ids on this project's machines, 50 x longer than a sort.
    """
    ids = np.sort(np.asarray(ids).ravel())
    if not ids.size:
        return ids
    return ids[np.concatenate([[True], ids[1:] != ids[:-1]])]


def in_sorted(values: NDArray[np.int64], table: NDArray[np.int64]) -> NDArray[np.bool_]:
    """``np.isin(values, table)`` for a sorted ``table`` of distinct integers (by
    binary search; ``np.isin`` calls the slow ``np.unique``, see :func:`unique_ids`)."""
    values = np.asarray(values)
    if not len(table):
        return np.zeros(values.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(table, values), len(table) - 1)
    return np.asarray(table[pos] == values)


def _restriction_rows(
    raw: list[tuple[int, int, int, int]], index: pd.Series, ways: set[int]
) -> NDArray[np.int64]:
    """Turn restrictions whose ways and via node are in the network, via as an index."""
    rows = [
        (f, int(index[via]), t, only)
        for f, via, t, only in raw
        if f in ways and t in ways and via in index.index
    ]
    if len(rows) < len(raw):
        logger.info("%d turn restriction(s) outside the network dropped", len(raw) - len(rows))
    return np.array(rows, dtype=np.int64).reshape(-1, 4)


def _restriction(tags: dict[str, str]) -> int | None:
    """1 for an ``only_*`` restriction that binds cars, 0 for ``no_*``, else None."""
    if tags.get("type") != "restriction":
        return None
    value = tags.get("restriction:motorcar") or tags.get("restriction") or ""
    if "motorcar" in tags.get("except", "").split(";"):
        return None
    if value.startswith("only_"):
        return 1
    if value.startswith("no_"):
        return 0
    return None


def _xml_relations(path: Path) -> list[tuple[int, int, int, int]]:
    """Turn restrictions of an OSM XML file (osmnx ignores relations)."""
    found: list[tuple[int, int, int, int]] = []
    skipped = 0
    for _, elem in ElementTree.iterparse(path, events=("end",)):
        if elem.tag == "relation":
            tags = {t.get("k", ""): t.get("v", "") for t in elem.findall("tag")}
            only = _restriction(tags)
            if only is not None:
                members = [
                    (m.get("type"), m.get("role"), m.get("ref")) for m in elem.findall("member")
                ]
                rule = _restriction_members(members, only)
                if rule is None:
                    skipped += 1
                else:
                    found.append(rule)
            elem.clear()
        elif elem.tag in ("node", "way"):
            elem.clear()
    if skipped:
        logger.info("%d turn restriction(s) via ways or incomplete: not used", skipped)
    return found


def _restriction_members(
    members: Sequence[tuple[str | None, str | None, str | None]], only: int
) -> tuple[int, int, int, int] | None:
    """(from way, via node, to way, only) from relation members; None for via-way ones."""
    by_role: dict[str, list[tuple[str | None, str | None]]] = {}
    for kind, role, ref in members:
        by_role.setdefault(role or "", []).append((kind, ref))
    try:
        ((f_kind, f_ref),) = by_role["from"]
        ((v_kind, v_ref),) = by_role["via"]
        ((t_kind, t_ref),) = by_role["to"]
    except (KeyError, ValueError):
        return None
    if (f_kind, v_kind, t_kind) != ("way", "node", "way"):
        return None
    return int(f_ref or 0), int(v_ref or 0), int(t_ref or 0), only


def _maxspeeds(seg: pd.DataFrame) -> NDArray[np.float64]:
    """``parse_maxspeed`` once per distinct tag value, not once per edge."""
    if "maxspeed" not in seg:
        return np.full(len(seg), np.nan)
    values = seg["maxspeed"].astype(object).where(seg["maxspeed"].notna(), None)
    parsed = {value: parse_maxspeed(value) for value in pd.unique(values)}
    return np.fromiter((parsed[x] for x in values), dtype=float, count=len(values))


def network_from_osmnx_graph(
    graph: Any,
    source: NetworkSource,
    restrictions: list[tuple[int, int, int, int]] | None = None,
) -> RoadNetwork:
    """Convert an *unsimplified* osmnx MultiDiGraph (raw OSM tags) to a RoadNetwork,
    with the turn restrictions read beside it (osmnx keeps no relations)."""
    rows = [
        {
            "u": u,
            "v": v,
            **{k: _first(d.get(k)) for k in ("highway", "maxspeed", *_EXTRA_TAGS)},
            "oneway": bool(d.get("oneway", False)),
            "way": int(_first(d.get("osmid", -1))),
        }
        for u, v, d in graph.edges(data=True)
        if d.get("highway")  # buildings, rivers, boundaries... are not roads
    ]
    if not rows:
        raise NetworkError(f"{source.description}: the OSM data has no roads (no highway ways)")
    seg = pd.DataFrame(rows)
    ids = np.fromiter(graph.nodes, dtype=np.int64, count=graph.number_of_nodes())
    lon = np.array([graph.nodes[n]["x"] for n in ids], dtype=float)
    lat = np.array([graph.nodes[n]["y"] for n in ids], dtype=float)
    signals = np.array(
        [n for n in ids if graph.nodes[n].get("highway") == "traffic_signals"], dtype=np.int64
    )
    return _from_segments(ids, lon, lat, seg, source, signals, restrictions)


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) else value


def network_from_osm_xml(path: Path) -> RoadNetwork:
    """Build a network from an OSM XML file with osmnx (unsimplified, all components)."""
    import osmnx as ox
    from osmnx._errors import InsufficientResponseError

    source = NetworkSource("osm_file", f"{path.name} (OSM XML)")
    tags = list(dict.fromkeys([*ox.settings.useful_tags_way, *_EXTRA_TAGS]))
    saved = ox.settings.useful_tags_way
    ox.settings.useful_tags_way = tags
    try:
        graph = ox.graph_from_xml(path, simplify=False, retain_all=True, bidirectional=False)
    except (SAXParseException, ElementTree.ParseError) as exc:
        raise NetworkError(f"{path}: broken OSM XML ({exc}); re-export the file") from exc
    except InsufficientResponseError as exc:
        raise NetworkError(f"{path}: the OSM data has no roads (no ways)") from exc
    except (ValueError, KeyError, OSError) as exc:
        raise NetworkError(f"{path}: cannot read OSM XML ({exc}); is it an .osm file?") from exc
    finally:
        ox.settings.useful_tags_way = saved
    return network_from_osmnx_graph(graph, source, _xml_relations(path))


#: Way tags read from OSM files: those kept on edges plus ``oneway``.
_WAY_KEYS = ("highway", "maxspeed", "oneway", *_EXTRA_TAGS)


class WayEdges:
    """Directed segments of OSM road ways, built way by way as osmnx would.

    Every PBF reader (:func:`network_from_pbf` and the clipped readers of
    :mod:`geo.osmclip`) feeds its ways here, so that they all build the same
    edges from the same ways.
    """

    def __init__(self) -> None:
        self.way_tags: list[dict[str, Any]] = []
        self.u: list[int] = []
        self.v: list[int] = []
        self.way: list[int] = []
        self.oneway: list[bool] = []

    def add(self, way_id: int, tags: dict[str, Any], refs: list[int]) -> None:
        """Add a way: its id, :func:`way_tags` and node ids (those with a location).

        Ways with fewer than two located nodes are skipped; ``oneway=-1`` reverses
        the node order; two-way roads give both directions.
        """
        if len(refs) < 2:
            return
        is_oneway = tags["oneway"] in _ONEWAY_VALUES or tags["junction"] == "roundabout"
        if is_oneway and tags["oneway"] in _REVERSED_VALUES:
            refs = refs[::-1]
        index = len(self.way_tags)
        self.way_tags.append(
            {"way": way_id, **{k: tags[k] for k in ("highway", "maxspeed", *_EXTRA_TAGS)}}
        )
        pairs = len(refs) - 1
        self.u += refs[:-1]
        self.v += refs[1:]
        if not is_oneway:
            self.u += refs[1:]
            self.v += refs[:-1]
        count = pairs if is_oneway else 2 * pairs
        self.way += [index] * count
        self.oneway += [is_oneway] * count

    def __len__(self) -> int:
        return len(self.u)

    def segments(self) -> pd.DataFrame:
        """One row per directed segment: ``u``, ``v``, the way's tags, ``oneway``."""
        seg = pd.DataFrame(self.way_tags).iloc[self.way].reset_index(drop=True)
        seg.insert(0, "u", np.array(self.u, dtype=np.int64))
        seg.insert(1, "v", np.array(self.v, dtype=np.int64))
        seg["oneway"] = np.array(self.oneway, dtype=bool)
        return seg


def way_tags(way: Any) -> dict[str, Any]:
    """The tags of a pyosmium way that the network keeps (None where absent)."""
    return {k: way.tags.get(k) for k in _WAY_KEYS}


def pbf_restriction(relation: Any) -> tuple[int, int, int, int] | None:
    """``(from way, via node, to way, only)`` of a pyosmium turn-restriction relation
    that binds cars, else None (also for restrictions via ways)."""
    only = _restriction({t.k: t.v for t in relation.tags})
    if only is None:
        return None
    members = [(m.type and _MEMBER_KIND[m.type], m.role, str(m.ref)) for m in relation.members]
    return _restriction_members(members, only)


def network_from_pbf(path: Path, source: NetworkSource | None = None) -> RoadNetwork:
    """Build a network from an ``.osm.pbf`` file with pyosmium (same rules as osmnx).

    The whole file is read: node locations of every road are kept in memory. For a
    file much larger than the study area, read it clipped
    (:func:`load_network` with ``clip``, :mod:`geo.osmclip`).
    """
    import osmium

    source = source or NetworkSource("osm_file", f"{path.name} (OSM PBF)")
    edges = WayEdges()
    nodes: dict[int, tuple[float, float]] = {}
    signals: list[int] = []
    restrictions: list[tuple[int, int, int, int]] = []
    try:
        processor = (
            osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY | osmium.osm.RELATION)
            .with_locations()
            .with_filter(osmium.filter.KeyFilter("highway", "type"))
        )
        for obj in processor:
            if isinstance(obj, osmium.osm.Node):
                if obj.tags.get("highway") == "traffic_signals":
                    signals.append(obj.id)
                continue
            if isinstance(obj, osmium.osm.Relation):
                if (rule := pbf_restriction(obj)) is not None:
                    restrictions.append(rule)
                continue
            way: Any = obj
            if "highway" not in way.tags:
                continue
            refs = []
            for n in way.nodes:
                if n.location.valid():
                    nodes[n.ref] = (n.location.lon, n.location.lat)
                    refs.append(n.ref)
            edges.add(way.id, way_tags(way), refs)
    except RuntimeError as exc:
        raise NetworkError(f"{path}: cannot read OSM PBF ({exc})") from exc
    if not len(edges):
        raise NetworkError(f"{path}: the OSM data has no roads (no highway ways)")
    ids = np.fromiter(nodes.keys(), dtype=np.int64, count=len(nodes))
    coords = np.array(list(nodes.values()), dtype=float)
    return _from_segments(
        ids,
        coords[:, 0],
        coords[:, 1],
        edges.segments(),
        source,
        np.array(signals, np.int64),
        restrictions,
    )


def load_coarse_network(settings: Settings) -> RoadNetwork:
    """Load the coarse major-roads network of the settings' region pack (``network/``)."""
    try:
        nodes = pd.read_csv(settings.coarse_nodes_path)
        edges = pd.read_csv(settings.coarse_edges_path)
    except FileNotFoundError as exc:
        raise NetworkError(
            f"bundled network missing: {exc.filename}; run scripts/build_network.py"
        ) from exc
    ids = nodes["node_id"].to_numpy(dtype=np.int64)
    index = pd.Series(np.arange(len(ids)), index=ids)
    region = settings.region
    source = NetworkSource(
        "bundled_coarse",
        region.network_description or f"{region.name} major roads (network/)",
        coarse=True,
        attribution=region.network_attribution,
    )
    return undirected_network(
        nodes["lon"].to_numpy(dtype=float),
        nodes["lat"].to_numpy(dtype=float),
        index.loc[edges["u"].to_numpy()].to_numpy(),
        index.loc[edges["v"].to_numpy()].to_numpy(),
        source,
        length_m=edges["length_m"].to_numpy(dtype=float),
        node_ids=ids,
    )


def undirected_network(
    lon: NDArray[np.float64],
    lat: NDArray[np.float64],
    a: NDArray[np.int64],
    b: NDArray[np.int64],
    source: NetworkSource,
    *,
    length_m: NDArray[np.float64] | None = None,
    node_ids: NDArray[np.int64] | None = None,
) -> RoadNetwork:
    """A network of unclassed two-way roads between node indices ``a`` and ``b``.

    Lengths default to great-circle distances. Used for the coarse network and
    for synthetic test networks.
    """
    from osmnx.distance import great_circle

    lon = np.asarray(lon, float)
    lat = np.asarray(lat, float)
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    if length_m is None:
        length_m = np.asarray(great_circle(lat[a], lon[a], lat[b], lon[b]), float)
    n = 2 * len(a)
    return RoadNetwork(
        lon=lon,
        lat=lat,
        u=np.concatenate([a, b]),
        v=np.concatenate([b, a]),
        length_m=np.tile(np.asarray(length_m, float), 2),
        highway=np.full(n, "", dtype=str),
        maxspeed_kmh=np.full(n, np.nan),
        oneway=np.zeros(n, dtype=bool),
        no_foot=np.zeros(n, dtype=bool),
        no_bicycle=np.zeros(n, dtype=bool),
        no_motor=np.zeros(n, dtype=bool),
        source=source,
        node_ids=np.arange(len(lon), dtype=np.int64) if node_ids is None else node_ids,
    )


# --------------------------------------------------------------------------- study area


def network_bounds(net: RoadNetwork, margin_m: float) -> Bounds:
    """The lon/lat box of the network's nodes grown by ``margin_m`` metres on every side.

    The margin is converted to degrees on the WGS84 ellipsoid (pyproj ``Geod``):
    north of the northern edge, south of the southern edge, and east/west at the
    latitude farthest from the equator, where a degree of longitude is shortest,
    so the box contains every point within ``margin_m`` of the nodes' box.
    Latitudes are clipped to ±90° and longitudes to ±180° (a network across the
    antimeridian gets a box around the whole globe's width, never a wrong one).

    Parameters
    ----------
    net
        The road network (WGS84 nodes).
    margin_m
        How far outside the outermost nodes a point may still lie.

    Returns
    -------
    tuple
        ``(min_lon, min_lat, max_lon, max_lat)`` in degrees.

    Raises
    ------
    NetworkError
        If the network has no node with finite coordinates.
    """
    from geo.region import grow_bounds

    finite = np.isfinite(net.lon) & np.isfinite(net.lat)
    if not finite.any():
        raise NetworkError(f"{net.source.description}: the network has no nodes with coordinates")
    lon, lat = net.lon[finite], net.lat[finite]
    box = (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()))
    return grow_bounds(box, margin_m)


def input_area(net: RoadNetwork, settings: Settings) -> Area:
    """Where a user's input points (villages, facilities, origins) must lie for ``net``.

    * On a region pack's coarse network: the region's area
      (:attr:`geo.region.Region.area`, its outline's box + 20 km).
    * On any other network (``--osm FILE``, a download, their cache): the
      network's own area, :func:`network_bounds` grown by the longest distance at
      which the model still places a point near a road: ``max(access_flag_m,
      access_max_m_osm)`` (2 km by default; farther from every node, a point is
      flagged ``far_from_road``). So the study area follows the user's network,
      wherever on Earth it is.
    """
    if net.source.coarse:
        return settings.region.area
    margin_m = max(settings.access_flag_m, settings.access_max_m(coarse=False))
    return Area(
        network_bounds(net, margin_m),
        "the road network's area",
        f"or pass an OSM extract (--osm) that covers the point (the area is the box of "
        f"the network's nodes + {margin_m / 1000:g} km)",
    )


# --------------------------------------------------------------------------- cache

_ARRAYS = (
    "lon",
    "lat",
    "u",
    "v",
    "length_m",
    "highway",
    "maxspeed_kmh",
    "oneway",
    "no_foot",
    "no_bicycle",
    "no_motor",
    "node_ids",
    "way_id",
    "signal",
    "restrictions",
)


def _file_key(path: Path) -> str:
    """The cache key of a network read from an OSM file: its content's hash."""
    from geo.regionsources import sha256_of

    return f"file-{sha256_of(path)[:24]}"


def save_cached(net: RoadNetwork, cache_dir: Path, key: str) -> Path:
    """Store a network in the cache (atomically); returns the file path."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / f"{key}.npz"
    tmp = target.with_suffix(".tmp.npz")
    meta = json.dumps({"version": CACHE_VERSION, "source": asdict(net.source)})
    np.savez_compressed(tmp, meta=np.array(meta), **{k: getattr(net, k) for k in _ARRAYS})
    tmp.replace(target)
    return target


def load_cached(cache_dir: Path, key: str) -> RoadNetwork | None:
    """Return the cached network for ``key`` or None (also for stale/corrupt entries)."""
    path = cache_dir / f"{key}.npz"
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("version") != CACHE_VERSION:
                return None
            arrays = {k: data[k] for k in _ARRAYS}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        # np.savez_compressed writes a zip: CRC-32 per array catches corrupt entries
        logger.warning("ignoring unreadable cache entry %s: %s", path, exc)
        return None
    src = NetworkSource(**meta["source"])
    cached = NetworkSource(
        "cache",
        f"{src.description}, built earlier ({path.name})",
        coarse=src.coarse,
        attribution=src.attribution,
    )
    return RoadNetwork(source=cached, **arrays)


# --------------------------------------------------------------------------- entry point


def load_network(
    settings: Settings,
    osm_file: Path | str | None = None,
    *,
    clip: Any = None,
    clip_reader: str = "auto",
    progress: bool = False,
    download_polygon: Any = None,
    use_cache: bool = True,
) -> RoadNetwork:
    """Return the road network from the best available source.

    Parameters
    ----------
    settings
        Paths (cache and bundled data).
    osm_file
        A user's ``.osm``/``.xml``/``.osm.pbf`` file (highest priority).
    clip
        A shapely (Multi)Polygon in WGS84: read only the roads of ``osm_file`` that
        touch it, in memory proportional to it, not to the file (a province or
        country extract for one county). Pass the region's outline grown by the
        routing halo, :func:`geo.osmclip.clip_area` ``(outline,
        settings.clip_halo_m)``. Roads crossing its edge are kept whole. Cached
        apart from unclipped reads of the same file. Ignored without ``osm_file``.
    clip_reader
        How to clip: ``auto`` (``osmium extract`` from Debian ``osmium-tool`` when
        installed, else streaming pyosmium), ``osmium-tool`` or ``pyosmium``; both
        give the same network (:mod:`geo.osmclip`).
    progress
        Progress bars (tqdm, stderr) while clipping a file.
    download_polygon
        A shapely polygon (WGS84) to download from Overpass with osmnx when no
        file is given and nothing is cached for it. Needs the internet.
    use_cache
        Read and write the on-disk cache under ``settings.cache_dir``.

    Raises
    ------
    NetworkError
        Missing, unreadable or road-less file; a file that does not overlap
        ``clip``; failed download. Nothing is written to the cache then.
    """
    started = time.perf_counter()
    cache_dir = settings.cache_dir / "networks"
    net: RoadNetwork | None = None
    if osm_file is not None:
        path = Path(osm_file)
        if not path.is_file():
            raise NetworkError(f"{path}: OSM file not found; pass an existing .osm or .osm.pbf")
        name = path.name.lower()
        if not name.endswith((".pbf", ".osm", ".xml")):
            raise NetworkError(f"{path}: unknown OSM format; use .osm, .xml or .osm.pbf")
        key = _file_key(path)
        if clip is not None:
            from geo import osmclip

            clip = osmclip.check_clip(clip)
            key += "-clip-" + osmclip.clip_key(clip)
        net = load_cached(cache_dir, key) if use_cache else None
        if net is None:
            if clip is not None:
                net = osmclip.read_clipped(path, clip, reader=clip_reader, progress=progress)
            elif name.endswith(".pbf"):
                net = network_from_pbf(path)
            else:
                net = network_from_osm_xml(path)
            if use_cache:
                save_cached(net, cache_dir, key)
    else:
        key = (
            "download-"
            + hashlib.sha256(
                (download_polygon.wkt if download_polygon is not None else "region").encode()
            ).hexdigest()[:24]
        )
        net = load_cached(cache_dir, key) if use_cache else None
        if net is None and download_polygon is not None:
            net = download_network(download_polygon)
            if use_cache:
                save_cached(net, cache_dir, key)
        if net is None:
            net = load_coarse_network(settings)
    logger.info(
        "road network: %s — %s (%.1f s)",
        net.source.label,
        net.summary(),
        time.perf_counter() - started,
    )
    return net


def download_network(polygon: Any) -> RoadNetwork:
    """Download all roads inside ``polygon`` from Overpass with osmnx (needs the internet)."""
    import osmnx as ox

    tags = list(dict.fromkeys([*ox.settings.useful_tags_way, *_EXTRA_TAGS]))
    saved = ox.settings.useful_tags_way
    ox.settings.useful_tags_way = tags
    try:
        graph = ox.graph_from_polygon(polygon, network_type="all", simplify=False, retain_all=True)
    except Exception as exc:  # osmnx raises requests/Overpass errors of several types
        raise NetworkError(
            f"download from Overpass failed: {exc}; check the connection or pass --osm FILE"
        ) from exc
    finally:
        ox.settings.useful_tags_way = saved
    stamp = time.strftime("%Y-%m-%d")
    return network_from_osmnx_graph(graph, NetworkSource("download", f"Overpass {stamp}"))
