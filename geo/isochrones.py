"""Isochrones as valid (Multi)Polygons: the union of reached access discs.

Method ("reached-node access discs"): a place is within T minutes of a facility
when some network node reaches the facility in ``t < T`` and the place lies
within the access leg that the remaining ``T - t`` allows, i.e. within
``min((T - t) * access_speed / detour, access_max_m)`` metres of the node, or
when it is that close to the facility itself. Nodes include the points that
split long edges (``settings.segment_m``), so the shape follows the roads.
The union of these discs, computed in the metric CRS and returned in WGS84, is
exactly the set of places the coverage model (:mod:`geo.coverage`) reports as
within T, up to the polygonal approximation of circles (< 0.5 % of a radius)
and the bounded number of access candidates a village considers. Unreached
areas stay holes.
"""

from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

from geo.routing import Router

logger = logging.getLogger(__name__)

_QUAD_SEGS = 8


def _discs(
    router: Router,
    node_idx: NDArray[np.int64],
    node_seconds: NDArray[np.float64],
    fx: NDArray[np.float64],
    fy: NDArray[np.float64],
    minutes: float,
) -> BaseGeometry:
    limit = minutes * 60.0
    ok = node_seconds < limit
    xs = np.concatenate([router.x[node_idx[ok]], fx])
    ys = np.concatenate([router.y[node_idx[ok]], fy])
    radius = router.access_radius(
        np.concatenate([limit - node_seconds[ok], np.full(len(fx), limit)])
    )
    keep = radius > 1.0
    if not keep.any():
        return shapely.Polygon()
    polys = shapely.buffer(shapely.points(xs[keep], ys[keep]), radius[keep], quad_segs=_QUAD_SEGS)
    merged = shapely.union_all(polys)
    return shapely.make_valid(merged) if not merged.is_valid else merged


def _to_wgs84(router: Router, geom: BaseGeometry) -> BaseGeometry:
    out = shapely.transform(
        geom, lambda c: np.column_stack(router._to_wgs84.transform(c[:, 0], c[:, 1]))
    )
    return out if out.is_valid else shapely.make_valid(out)


def union_isochrone(
    router: Router,
    lon: NDArray[np.float64],
    lat: NDArray[np.float64],
    minutes: float,
) -> BaseGeometry:
    """The area within ``minutes`` of the nearest of the given facilities (WGS84).

    Returns an empty polygon when there are no facilities.
    """
    lon = np.atleast_1d(np.asarray(lon, float))
    lat = np.atleast_1d(np.asarray(lat, float))
    if len(lon) == 0:
        return shapely.Polygon()
    node_s, _ = router.node_seconds_to(lon, lat, limit_s=minutes * 60.0)
    reached = np.flatnonzero(np.isfinite(node_s))
    fx, fy = router.to_metric(lon, lat)
    geom = _discs(router, reached.astype(np.int64), node_s[reached], fx, fy, minutes)
    return _to_wgs84(router, geom)


def isochrones(
    router: Router,
    facilities: gpd.GeoDataFrame,
    minutes: float,
    *,
    union: bool = False,
    progress: bool = False,
) -> gpd.GeoDataFrame:
    """Isochrones of facilities: one row per facility, or one per layer with ``union``.

    Parameters
    ----------
    router
        Network and mode.
    facilities
        Points with at least ``id``, ``layer`` and ``name`` columns (EPSG:4326).
    minutes
        The travel-time bound T.
    union
        Merge per layer (the area within T of the *nearest* facility of the layer).
    progress
        Show a progress bar.

    Returns
    -------
    geopandas.GeoDataFrame
        ``layer``, (``id``, ``name`` per facility), ``mode``, ``minutes``,
        ``area_km2``, ``network`` and the (Multi)Polygon geometry, EPSG:4326.
    """
    from tqdm import tqdm

    lon = facilities.geometry.x.to_numpy(float)
    lat = facilities.geometry.y.to_numpy(float)
    rows = []
    if union:
        for layer, group in facilities.groupby("layer", sort=False):
            idx = facilities.index.get_indexer(group.index)
            geom = union_isochrone(router, lon[idx], lat[idx], minutes)
            rows.append({"layer": layer, "facilities": len(group), "geometry": geom})
    else:
        reached = router.node_seconds_from_each(lon, lat, limit_s=minutes * 60.0)
        fx, fy = router.to_metric(lon, lat)
        it = tqdm(range(len(facilities)), desc="等时圈 isochrones", disable=not progress)
        for i in it:
            nodes, secs = reached[i]
            geom = _to_wgs84(
                router, _discs(router, nodes, secs, fx[i : i + 1], fy[i : i + 1], minutes)
            )
            row = facilities.iloc[i]
            rows.append(
                {"id": row["id"], "layer": row["layer"], "name": row["name"], "geometry": geom}
            )
    out = gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326")
    out["mode"] = router.mode
    out["minutes"] = float(minutes)
    out["area_km2"] = (out.to_crs(router.settings.metric_crs).area / 1e6).round(3)
    out["network"] = router.source.label
    return out
