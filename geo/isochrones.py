"""Isochrones as valid (Multi)Polygons, traced from the reached edges.

Method ("reached edges, buffered"): travel *to* a facility is searched backwards
from its snapped location (:mod:`geo.routing`). A place on directed edge ``e`` at
fraction ``t`` reaches it in ``(1 - t) * c(e) + D(end of e)`` seconds, so every
edge whose end is reached within T contributes the piece ``[t0, 1]`` where that
time is at most T (the partial edge at the frontier included); a facility's own
edge contributes the piece before its projection. Around these pieces the
polygon covers the places an access leg reaches in the time left, at most
``settings.isochrone_buffer_m`` (50 m) from the street on an OSM network, or
the coarse network's long access leg (``access_max_m_coarse``), where local roads
are missing; the facility's own leg (facility -> its street) is covered too.
Places that nothing reaches stay holes.

Consistency with :mod:`geo.coverage`: a village whose snapped travel time is at
most T and that lies within ``isochrone_buffer_m`` of its street is inside the
polygon (up to one grid cell); every place inside the polygon has some network
location within the buffer from which it is reached within T.

The pieces are sampled every grid cell and stamped as discs onto a boolean grid
of ``settings.isochrone_resolution_m`` (20 m) cells (discs of one radius at once
by a binary dilation or an FFT convolution where that is cheaper than one by
one), and the grid is outlined by contourpy's filled contours (marching squares,
holes kept). The grid keeps at most a million cells: for a city-wide union the
cell grows accordingly. Areas (``area_km2``) are geodesic (pyproj ``Geod`` on the WGS84 ellipsoid).
"""

from __future__ import annotations

import functools
import itertools
import logging
from typing import Any, cast

import contourpy
import geopandas as gpd
import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import Geod
from scipy import ndimage, signal
from shapely.geometry.base import BaseGeometry

from geo.routing import Router, Snap

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]

_GEOD = Geod(ellps="WGS84")


def _pieces(
    router: Router, state_s: FloatArray, snap: Snap, limit: float
) -> tuple[NDArray[np.int64], FloatArray, FloatArray, FloatArray, FloatArray]:
    """Reached pieces of directed edges: edge, t from / to, seconds at each end."""
    c = router.edge_seconds
    end = state_s[router.exit]
    e = np.flatnonzero(end < limit)
    t0 = np.clip(1.0 - (limit - end[e]) / c[e], 0.0, 1.0)
    tau0 = (1.0 - t0) * c[e] + end[e]
    # a facility's own edge, before its projection: straight along the edge to it
    f_e, f_t, leg = snap.edge, snap.t, snap.seconds
    ok = leg < limit
    f_e, f_t, leg = f_e[ok], f_t[ok], leg[ok]
    f_t0 = np.clip(f_t - (limit - leg) / c[f_e], 0.0, 1.0)
    return (
        np.concatenate([e, f_e]),
        np.concatenate([t0, f_t0]),
        np.concatenate([np.ones(len(e)), f_t]),
        np.concatenate([tau0, leg + (f_t - f_t0) * c[f_e]]),
        np.concatenate([end[e], leg]),
    )


def _samples(
    router: Router,
    state_s: FloatArray,
    snap: Snap,
    fx: FloatArray,
    fy: FloatArray,
    limit: float,
    spacing: float,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Points along the reached pieces and the facilities' legs, with the seconds
    from each to the facility."""
    edge, ta, tb, sa, sb = _pieces(router, state_s, snap, limit)
    ux, uy = router.x[router.edge_u[edge]], router.y[router.edge_u[edge]]
    dx = router.x[router.edge_v[edge]] - ux
    dy = router.y[router.edge_v[edge]] - uy
    # the facilities' legs: from the facility (0 s) to its projection
    px = router.x[router.edge_u[snap.edge]] + snap.t * (
        router.x[router.edge_v[snap.edge]] - router.x[router.edge_u[snap.edge]]
    )
    py = router.y[router.edge_u[snap.edge]] + snap.t * (
        router.y[router.edge_v[snap.edge]] - router.y[router.edge_u[snap.edge]]
    )
    x0 = np.concatenate([ux + ta * dx, fx[snap.point]])
    y0 = np.concatenate([uy + ta * dy, fy[snap.point]])
    x1 = np.concatenate([ux + tb * dx, px])
    y1 = np.concatenate([uy + tb * dy, py])
    s0 = np.concatenate([sa, np.zeros(snap.point.size)])
    s1 = np.concatenate([sb, snap.seconds])
    length = np.hypot(x1 - x0, y1 - y0)
    count = np.ceil(length / spacing).astype(np.int64) + 1
    piece = np.repeat(np.arange(len(length)), count)
    step = np.arange(len(piece)) - np.repeat(np.cumsum(count) - count, count)
    frac = step / np.maximum(count[piece] - 1, 1)
    xs = x0[piece] + frac * (x1 - x0)[piece]
    ys = y0[piece] + frac * (y1 - y0)[piece]
    secs = s0[piece] + frac * (s1 - s0)[piece]
    # the facilities themselves
    return (
        np.concatenate([xs, fx]),
        np.concatenate([ys, fy]),
        np.concatenate([secs, np.zeros(len(fx))]),
    )


def _polygon(
    router: Router,
    state_s: FloatArray,
    snap: Snap,
    fx: FloatArray,
    fy: FloatArray,
    minutes: float,
) -> BaseGeometry:
    """The isochrone (metric CRS) of one search: see the module docstring."""
    limit = minutes * 60.0
    cap = router.access_max_m if router.coarse else router.settings.isochrone_buffer_m
    cap = min(cap, router.access_max_m)
    cell = router.settings.isochrone_resolution_m
    spacing = max(cell, 250.0) if router.coarse else cell
    xs, ys, secs = _samples(router, state_s, snap, fx, fy, limit, spacing)
    radius = np.minimum(router.access_radius(np.maximum(limit - secs, 0.0)), cap)
    keep = radius > 0.5 * cell
    if not keep.any():
        return shapely.Polygon()
    return _raster_union(xs[keep], ys[keep], radius[keep], cell)


#: Largest grid a traced isochrone uses (the cell grows beyond).
MAX_CELLS = 1_000_000


@functools.lru_cache(maxsize=1024)
def _disc_mask(quarter_cells: int) -> NDArray[np.bool_]:
    """Cells whose centres lie within ``quarter_cells / 4`` cells of the centre cell's
    centre. Outlined by marching squares, a lone disc of 5 / 10 / 25 cells radius
    comes out with 2.5 / 0.8 / 0.1 % more area than the true circle."""
    inner = quarter_cells / 4.0
    half = int(np.ceil(inner))
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    mask: NDArray[np.bool_] = (xx * xx + yy * yy) <= inner * inner
    return mask


def _raster_union(
    xs: NDArray[np.float64], ys: NDArray[np.float64], radius: NDArray[np.float64], cell: float
) -> BaseGeometry:
    """Union of discs traced on a grid of ``cell`` metres (see the module docstring).

    The cell grows when the discs span a large area (a whole city, or access legs
    of kilometres on the coarse network) so that the grid keeps at most
    :data:`MAX_CELLS` cells: the boundary is then within one such cell.
    """
    left, right = float((xs - radius).min()), float((xs + radius).max())
    bottom, top = float((ys - radius).min()), float((ys + radius).max())
    cell = max(cell, float(np.sqrt((right - left) * (top - bottom) / MAX_CELLS)))
    x0, y0 = left - cell, bottom - cell
    width = int(np.ceil((right - x0) / cell)) + 2
    height = int(np.ceil((top - y0) / cell)) + 2
    grid = np.zeros((height, width), dtype=bool)
    cx = np.round((xs - x0) / cell).astype(np.int64)
    cy = np.round((ys - y0) / cell).astype(np.int64)
    # radii in quarter cells (whole cells beyond 50: few distinct masks to cache)
    in_cells = radius / cell
    quarters = np.where(in_cells < 50, np.round(in_cells * 4), np.round(in_cells) * 4)
    quarters = quarters.astype(np.int64)
    # one disc per grid cell and radius: the largest radius wins
    key = cy * width + cx
    order = np.lexsort((-quarters, key))
    first = np.ones(len(order), dtype=bool)
    first[1:] = key[order][1:] != key[order][:-1]
    cx, cy, quarters = cx[order][first], cy[order][first], quarters[order][first]
    values, counts = np.unique(quarters, return_counts=True)
    for q, n in zip(values.tolist(), counts.tolist(), strict=True):
        mask = _disc_mask(q)
        r = mask.shape[0] // 2
        sel = quarters == q
        gx, gy = cx[sel], cy[sel]
        x_lo, x_hi = int(gx.min()) - r, int(gx.max()) + r + 1
        y_lo, y_hi = int(gy.min()) - r, int(gy.max()) + r + 1
        box = (x_hi - x_lo) * (y_hi - y_lo)
        # rough costs in nanoseconds: a Python loop of stamps, one binary dilation of
        # the box, one FFT convolution of the box; take the cheapest
        cost = {"loop": n * (2000 + mask.size), "dilate": box * mask.sum(), "fft": box * 60}
        way = min(cost, key=cost.__getitem__)
        if way != "loop":
            centres = np.zeros((y_hi - y_lo, x_hi - x_lo), dtype=bool)
            centres[gy - y_lo, gx - x_lo] = True
            if way == "dilate":
                stamped = ndimage.binary_dilation(centres, structure=mask)
            else:
                stamped = signal.fftconvolve(centres, mask, mode="same") > 0.5
            grid[y_lo:y_hi, x_lo:x_hi] |= stamped
            continue
        for x, y in zip(cx[sel].tolist(), cy[sel].tolist(), strict=True):
            grid[y - r : y + r + 1, x - r : x + r + 1] |= mask
    # outline the filled cells: filled contours (marching squares) at level 0.5
    z = grid.astype(np.float64)
    generator = contourpy.contour_generator(
        x=x0 + np.arange(width) * cell,
        y=y0 + np.arange(height) * cell,
        z=z,
        fill_type=contourpy.FillType.OuterOffset,
        name="serial",
    )
    filled = generator.filled(0.5, 2.0)  # OuterOffset: (points, offsets) per polygon
    points, offsets = cast(Any, filled[0]), cast(Any, filled[1])
    polygons = [
        shapely.Polygon(pts[offs[0] : offs[1]], [pts[a:b] for a, b in itertools.pairwise(offs[1:])])
        for pts, offs in zip(points, offsets, strict=True)
    ]
    if not polygons:
        return shapely.Polygon()
    return polygons[0] if len(polygons) == 1 else shapely.MultiPolygon(polygons)


def _to_wgs84(router: Router, geom: BaseGeometry) -> BaseGeometry:
    """The traced polygon in WGS84. Filled contours of a boolean grid do not cross
    themselves, so there is no validation pass here (it cost a third of an
    isochrone's time); the tests check validity on many shapes."""
    return shapely.transform(geom, lambda c: np.column_stack(router.to_wgs84(c[:, 0], c[:, 1])))


def geodesic_km2(geom: BaseGeometry) -> float:
    """Area of a WGS84 (Multi)Polygon on the ellipsoid, km²."""
    if geom.is_empty:
        return 0.0
    return abs(_GEOD.geometry_area_perimeter(geom)[0]) / 1e6


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
    state_s, _, snap = router.state_seconds_to(lon, lat, limit_s=minutes * 60.0)
    fx, fy = router.to_metric(lon, lat)
    return _to_wgs84(router, _polygon(router, state_s, snap, fx, fy, minutes))


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
        ``area_km2`` (geodesic), ``network`` and the (Multi)Polygon geometry, EPSG:4326.
    """
    from tqdm import tqdm

    lon = np.asarray(facilities.geometry.x, dtype=np.float64)
    lat = np.asarray(facilities.geometry.y, dtype=np.float64)
    rows = []
    if union:
        for layer, group in facilities.groupby("layer", sort=False):
            idx = facilities.index.get_indexer(group.index)
            geom = union_isochrone(router, lon[idx], lat[idx], minutes)
            rows.append({"layer": layer, "facilities": len(group), "geometry": geom})
    else:
        each, snap = router.state_seconds_from_each(lon, lat, limit_s=minutes * 60.0)
        fx, fy = router.to_metric(lon, lat)
        it = tqdm(range(len(facilities)), desc="等时圈 isochrones", disable=not progress)
        for i in it:
            geom = _to_wgs84(
                router,
                _polygon(router, each[i], snap.one(i), fx[i : i + 1], fy[i : i + 1], minutes),
            )
            row = facilities.iloc[i]
            rows.append(
                {"id": row["id"], "layer": row["layer"], "name": row["name"], "geometry": geom}
            )
    out = gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326")
    out["mode"] = router.mode
    out["minutes"] = float(minutes)
    out["area_km2"] = np.round([geodesic_km2(g) for g in out.geometry], 3)
    out["network"] = router.source.label
    return out
