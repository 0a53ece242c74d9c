"""Coverage in partitions with an exact halo, locally or on a Dask cluster.

A province (~20k village-level units) or the whole country (~500k) does not
need one graph in one process: a village's nearest facility within
``max_minutes`` can only be reached over roads near it. Each partition (a
county, by default) gets

* its villages,
* every road edge whose bounding box meets the villages' bounding box grown by
  the *halo* ``R = v_max * max_minutes + access_max_m``, and
* every facility within ``R + access_max_m`` of that box,

where ``v_max`` is the largest straight-line speed (endpoint distance over
travel time) of any edge usable by the mode. A path of at most ``max_minutes``
cannot carry a traveller farther than ``R`` from the village (access leg at most
``access_max_m``, then at most ``v_max`` per second on the network), so every
such path, every snapping candidate of the village and every facility it can
reach is inside the partition: the result equals the single-graph result
(asserted by ``tests/test_partition.py``). Halos only pay off when ``R`` is
small against the region — lower ``max_minutes`` for national runs.

Partitions run in-process one by one, or as tasks on Dask distributed
(``client`` from :func:`dask_client`: a ``LocalCluster`` by default, or a
``tcp://`` scheduler of a real cluster).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import Transformer

from geo._errors import SettingsError
from geo.coverage import coverage_table
from geo.network import RoadNetwork, mode_edges
from geo.routing import Router
from geo.settings import Settings, check_mode

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Partition:
    """One unit of work: villages plus the haloed sub-network and facilities."""

    name: str
    network: RoadNetwork
    villages: gpd.GeoDataFrame
    facilities: gpd.GeoDataFrame
    mode: str
    settings: Settings
    minutes: float
    halo_m: float


def halo_m(net: RoadNetwork, mode: str, settings: Settings) -> float:
    """Largest straight-line distance (m) a ``max_minutes`` trip covers, access leg included."""
    u, v, seconds, _ = mode_edges(net, mode, settings)
    x, y = _metric(net.lon, net.lat, settings.metric_crs_for(net.lon, net.lat))
    straight = np.hypot(x[v] - x[u], y[v] - y[u])
    usable = seconds > 0
    v_max = float(np.max(straight[usable] / seconds[usable])) if usable.any() else 0.0
    return v_max * settings.max_minutes * 60.0 + settings.access_max_m(net.source.coarse)


def partitions(
    net: RoadNetwork,
    villages: gpd.GeoDataFrame,
    facilities: gpd.GeoDataFrame,
    mode: str,
    settings: Settings,
    minutes: float | None = None,
    by: str = "county",
) -> Iterator[Partition]:
    """Split the work by the ``by`` column of ``villages``; each part carries its halo.

    Every part is computed in the metric CRS of the whole network (its
    ``settings.metric_crs`` is pinned to it), so a partition's sub-network never
    picks another UTM zone than the single-graph computation.
    """
    check_mode(mode)
    if by not in villages.columns:
        raise SettingsError(f"villages have no column {by!r} to partition by")
    threshold = settings.minutes if minutes is None else float(minutes)
    crs = settings.metric_crs_for(net.lon, net.lat)
    settings = settings.with_(metric_crs=crs)
    radius = halo_m(net, mode, settings)
    access = settings.access_max_m(net.source.coarse)
    nx_, ny_ = _metric(net.lon, net.lat, crs)
    ex0, ex1 = np.minimum(nx_[net.u], nx_[net.v]), np.maximum(nx_[net.u], nx_[net.v])
    ey0, ey1 = np.minimum(ny_[net.u], ny_[net.v]), np.maximum(ny_[net.u], ny_[net.v])
    fx, fy = _metric(facilities.geometry.x, facilities.geometry.y, crs)
    vx, vy = _metric(villages.geometry.x, villages.geometry.y, crs)
    keys = villages[by].astype(str).to_numpy()
    for name in pd.unique(keys):
        rows = np.flatnonzero(keys == name)
        x0, x1 = vx[rows].min() - radius, vx[rows].max() + radius
        y0, y1 = vy[rows].min() - radius, vy[rows].max() + radius
        edges = (ex1 >= x0) & (ex0 <= x1) & (ey1 >= y0) & (ey0 <= y1)
        near = (fx >= x0 - access) & (fx <= x1 + access) & (fy >= y0 - access) & (fy <= y1 + access)
        yield Partition(
            name=str(name),
            network=subnetwork(net, edges),
            villages=villages.iloc[rows],
            facilities=facilities[near],
            mode=mode,
            settings=settings,
            minutes=threshold,
            halo_m=radius,
        )


def subnetwork(net: RoadNetwork, keep_edges: np.ndarray) -> RoadNetwork:
    """The edges ``keep_edges`` and their nodes, renumbered in the original order."""
    u, v = net.u[keep_edges], net.v[keep_edges]
    nodes = np.unique(np.concatenate([u, v]))  # sorted: keeps the relative node order
    lookup = np.full(net.n_nodes, -1, dtype=np.int64)
    lookup[nodes] = np.arange(len(nodes))
    edge_fields = ("length_m", "highway", "maxspeed_kmh", "oneway", "no_foot", "no_bicycle")
    return replace(
        net,
        lon=net.lon[nodes],
        lat=net.lat[nodes],
        u=lookup[u],
        v=lookup[v],
        no_motor=net.no_motor[keep_edges],
        node_ids=net.node_ids[nodes] if len(net.node_ids) else net.node_ids,
        **{f: getattr(net, f)[keep_edges] for f in edge_fields},
    )


def run_partition(part: Partition) -> pd.DataFrame:
    """Coverage of one partition (a Dask task); rows keep the villages' index."""
    if part.network.n_edges == 0:
        raise SettingsError(f"partition {part.name}: no roads within the halo of its villages")
    router = Router(part.network, part.mode, part.settings)
    table = coverage_table(router, part.villages, part.facilities, part.minutes)
    table.index = part.villages.index
    return pd.DataFrame(table)


def partitioned_coverage(
    net: RoadNetwork,
    villages: gpd.GeoDataFrame,
    facilities: gpd.GeoDataFrame,
    mode: str,
    settings: Settings,
    minutes: float | None = None,
    *,
    by: str = "county",
    client: Any = None,
) -> gpd.GeoDataFrame:
    """:func:`geo.coverage.coverage_table`, computed per partition (on ``client`` if given).

    Returns the same table as the single-graph computation, in ``villages`` order.
    """
    parts = list(partitions(net, villages, facilities, mode, settings, minutes, by))
    logger.info(
        "%d partitions by %s, halo %.1f km, %s",
        len(parts),
        by,
        parts[0].halo_m / 1000 if parts else 0.0,
        "Dask" if client is not None else "in-process",
    )
    if client is None:
        results = [run_partition(p) for p in parts]
    else:
        results = client.gather(client.map(run_partition, parts, pure=False))
    table = pd.concat(results).loc[villages.index]
    return gpd.GeoDataFrame(table.reset_index(drop=True), geometry="geometry", crs="EPSG:4326")


def dask_client(scheduler: str | None = None, workers: int | None = None) -> Any:
    """A Dask distributed client: to ``scheduler`` (``tcp://host:port``) or a new LocalCluster."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise SettingsError(
            "Dask is not installed; pip install 'dask[distributed]' (or skillcircle[dask])"
        ) from exc
    logging.getLogger("distributed").setLevel(logging.WARNING)  # no per-task INFO chatter
    if scheduler:
        try:
            return Client(scheduler, timeout=10)
        except (OSError, TimeoutError, ValueError) as exc:
            raise SettingsError(f"cannot reach the Dask scheduler {scheduler!r}: {exc}") from exc
    cluster = LocalCluster(
        n_workers=workers or os.cpu_count() or 1,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.WARNING,
    )
    return Client(cluster)


def _metric(lon: Any, lat: Any, crs: str) -> tuple[np.ndarray, np.ndarray]:
    to_metric = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    x, y = to_metric.transform(np.asarray(lon, float), np.asarray(lat, float))
    return np.asarray(x, float), np.asarray(y, float)
