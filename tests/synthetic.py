"""Small synthetic networks: coarse-network semantics near Jiaxing, OSM street grids anywhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pyproj import Geod

from geo.network import NetworkSource, RoadNetwork, undirected_network


def coarse_line(n_nodes: int = 5, spacing_deg: float = 0.01) -> RoadNetwork:
    """A straight east-west unclassed road near Jiaxing (coarse-network semantics)."""
    lon = 120.70 + spacing_deg * np.arange(n_nodes)
    lat = np.full(n_nodes, 30.70)
    a = np.arange(n_nodes - 1)
    return undirected_network(lon, lat, a, a + 1, NetworkSource("test", "line", coarse=True))


def coarse_ring(side_deg: float = 0.04) -> RoadNetwork:
    """A square ring road (4 corners) near Jiaxing, coarse-network semantics."""
    lon0, lat0 = 120.70, 30.70
    lon = np.array([lon0, lon0 + side_deg, lon0 + side_deg, lon0])
    lat = np.array([lat0, lat0, lat0 + side_deg, lat0 + side_deg])
    return undirected_network(
        lon,
        lat,
        np.array([0, 1, 2, 3]),
        np.array([1, 2, 3, 0]),
        NetworkSource("test", "ring", coarse=True),
    )


def street_grid(
    n: int = 8, spacing_m: float = 200.0, lon0: float = 24.90, lat0: float = 60.16
) -> RoadNetwork:
    """An n x n grid of two-way residential streets (a street-level OSM-like network,
    not coarse), by default in Helsinki: nothing here assumes Jiaxing."""
    import math

    dlon = spacing_m / (111_320 * math.cos(math.radians(lat0)))
    dlat = spacing_m / 110_574
    ix, iy = np.meshgrid(np.arange(n), np.arange(n))
    lon = lon0 + dlon * ix.ravel()
    lat = lat0 + dlat * iy.ravel()
    node = np.arange(n * n).reshape(n, n)
    a = np.concatenate([node[:, :-1].ravel(), node[:-1, :].ravel()])
    b = np.concatenate([node[:, 1:].ravel(), node[1:, :].ravel()])
    net = undirected_network(lon, lat, a, b, NetworkSource("test", "street grid"))
    net.highway = np.full(net.n_edges, "residential")
    return net


def write_osm_grid(
    path: Path,
    lon0: float,
    lat0: float,
    cols: int = 6,
    rows: int = 6,
    spacing_m: float = 200.0,
) -> Path:
    """Write an OSM XML street grid of ``rows`` x ``cols`` nodes anywhere on Earth.

    The south-west node sits at ``(lon0, lat0)``; rows and columns are
    ``spacing_m`` apart on the WGS84 ellipsoid (pyproj ``Geod``: north first,
    then east), all ways ``highway=residential``, two-way. Node ids are
    ``row * cols + col + 1``. ``rows=1`` gives one straight east-west street.
    """
    geod = Geod(ellps="WGS84")
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<osm version="0.6" generator="tests">']
    for row in range(rows):
        _, lat, _ = geod.fwd(lon0, lat0, 0.0, row * spacing_m)
        for col in range(cols):
            lon, _, _ = geod.fwd(lon0, lat, 90.0, col * spacing_m)
            node = row * cols + col + 1
            lines.append(f'  <node id="{node}" version="1" lat="{lat:.7f}" lon="{lon:.7f}"/>')
    ways = [[r * cols + c + 1 for c in range(cols)] for r in range(rows)] if cols > 1 else []
    if rows > 1:
        ways += [[r * cols + c + 1 for r in range(rows)] for c in range(cols)]
    for way, refs in enumerate(ways, start=1001):
        nds = "".join(f'<nd ref="{ref}"/>' for ref in refs)
        lines.append(f'  <way id="{way}" version="1">{nds}<tag k="highway" v="residential"/></way>')
    lines.append("</osm>")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def restriction_network(tmp_path: Path, kind: str = "xml") -> RoadNetwork:
    """The hand-made junction with turn restrictions (tests/fixtures/restriction.osm),
    read as OSM XML or written as .osm.pbf by pyosmium first (all objects copied)."""
    import osmium

    from geo.network import network_from_osm_xml, network_from_pbf

    xml = Path(__file__).resolve().parent / "fixtures" / "restriction.osm"
    if kind == "xml":
        return network_from_osm_xml(xml)
    pbf = tmp_path / "restriction.osm.pbf"
    with osmium.SimpleWriter(str(pbf), overwrite=True) as writer:
        for obj in osmium.FileProcessor(str(xml)):
            writer.add(obj)
    return network_from_pbf(pbf)
