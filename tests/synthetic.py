"""Small synthetic networks with coarse-network semantics (unclassed two-way roads)."""

from __future__ import annotations

import numpy as np

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
