"""geo/isochrones.py: validity, holes, and agreement with point travel times."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

from geo.isochrones import isochrones, union_isochrone
from geo.routing import Router
from geo.settings import Settings

from synthetic import coarse_line, coarse_ring


def facilities_frame(lon, lat) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "id": [f"F{i}" for i in range(len(lon))],
            "layer": "training_base",
            "name": [f"设施{i}" for i in range(len(lon))],
        },
        geometry=gpd.points_from_xy(lon, lat),
        crs="EPSG:4326",
    )


def test_ring_road_keeps_a_hole():
    # short access legs: the middle of a 4.4 km ring is farther than any leg allows
    settings = Settings(access_max_m_coarse=500.0)
    router = Router(coarse_ring(0.04), "ebike", settings)
    poly = union_isochrone(router, np.array([120.70]), np.array([30.70]), 60.0)
    assert poly.is_valid and not poly.is_empty
    parts = getattr(poly, "geoms", [poly])
    assert sum(len(p.interiors) for p in parts) >= 1
    assert not poly.contains(shapely.Point(120.72, 30.72))  # centre: nothing reachable
    assert poly.contains(shapely.Point(120.72, 30.7005))  # beside the road
    assert poly.contains(shapely.Point(120.7395, 30.74))  # far corner, ~32 min by e-bike


@pytest.mark.parametrize("mode", ["walk", "ebike", "drive"])
def test_points_within_t_are_inside_polygon_and_vice_versa(mode):
    settings = Settings(isochrone_resolution_m=0)  # exact disc union
    router = Router(coarse_ring(0.06), mode, settings)
    rng = np.random.default_rng(11)
    f_lon, f_lat = np.array([120.70, 120.76]), np.array([30.73, 30.70])
    p_lon = rng.uniform(120.65, 120.81, 800)
    p_lat = rng.uniform(30.65, 30.81, 800)
    minutes = 20.0
    poly = union_isochrone(router, f_lon, f_lat, minutes)
    res = router.nearest(p_lon, p_lat, f_lon, f_lat)
    within = res.minutes <= minutes
    inside = shapely.contains_xy(poly, p_lon, p_lat)
    assert 0 < within.sum() < len(p_lon)  # a meaningful split
    mismatch = np.flatnonzero(within != inside)
    # only polygonised-circle error: points within 0.5 % of the threshold
    assert np.all(np.abs(res.minutes[mismatch] - minutes) < 0.005 * minutes)


@pytest.mark.parametrize("mode", ["walk", "ebike", "drive"])
def test_traced_polygon_is_within_one_cell_of_the_exact_one(mode):
    # access legs of at most 500 m, as on a street network: the exact union's own
    # polygonised-circle error (0.5 % of a radius) stays below 3 m
    exact = Settings(isochrone_resolution_m=0, access_max_m_coarse=500.0)
    f_lon, f_lat = np.array([120.70, 120.76]), np.array([30.73, 30.70])
    polys = {}
    for cell in (0.0, 20.0):
        router = Router(coarse_ring(0.06), mode, exact.with_(isochrone_resolution_m=cell))
        polys[cell] = union_isochrone(router, f_lon, f_lat, 20.0)
    assert polys[20.0].is_valid and not polys[20.0].is_empty
    crs = exact.metric_crs_for(f_lon, f_lat)
    metric = gpd.GeoSeries([polys[0.0], polys[20.0]], crs="EPSG:4326").to_crs(crs)
    assert metric.iloc[1].area == pytest.approx(metric.iloc[0].area, rel=0.01)
    assert metric.iloc[0].hausdorff_distance(metric.iloc[1]) <= 20.0 + 3.0


@pytest.mark.parametrize(("cell", "tolerance"), [(0.0, 1e-4), (20.0, 0.01)])
def test_per_facility_union_equals_layer_union(cell, tolerance):
    settings = Settings(isochrone_resolution_m=cell)
    router = Router(coarse_line(9, 0.01), "ebike", settings)
    fac = facilities_frame([120.70, 120.75, 120.78], [30.70, 30.705, 30.70])
    each = isochrones(router, fac, 15.0)
    layer = isochrones(router, fac, 15.0, union=True)
    assert list(each["id"]) == ["F0", "F1", "F2"]
    assert len(layer) == 1 and layer["facilities"].iloc[0] == 3
    merged = shapely.union_all(each.geometry.to_numpy())
    # traced polygons of separate facilities sit on different grids: equal within a cell
    assert layer.geometry.iloc[0].symmetric_difference(merged).area < tolerance * merged.area
    assert (each["area_km2"] > 0).all() and each.geometry.is_valid.all()
    assert layer["network"].iloc[0].startswith("test:")


def test_no_facilities_gives_empty_polygon():
    router = Router(coarse_line(3), "walk", Settings())
    assert union_isochrone(router, np.array([]), np.array([]), 30).is_empty
