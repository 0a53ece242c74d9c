"""geo/isochrones.py: validity, holes, geodesic areas, and agreement with point travel times."""

from __future__ import annotations

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
import shapely

from geo.isochrones import isochrones, union_isochrone
from geo.routing import Router
from geo.settings import Settings

from synthetic import coarse_line, coarse_ring, street_grid


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


def grid_router(mode: str = "walk", **kw) -> Router:
    return Router(street_grid(10, 200.0), mode, Settings(**kw))


def centre(router: Router) -> tuple[float, float]:
    """The junction nearest the middle of the grid."""
    lon, lat = router.net.lon, router.net.lat
    i = int(np.argmin(np.hypot(lon - np.median(lon), lat - np.median(lat))))
    return float(lon[i]), float(lat[i])


def test_street_blocks_stay_holes_and_streets_are_covered():
    router = grid_router()
    lon, lat = centre(router)  # at a junction
    poly = union_isochrone(router, np.array([lon]), np.array([lat]), 10.0)
    assert poly.is_valid and not poly.is_empty
    parts = getattr(poly, "geoms", [poly])
    assert sum(len(p.interiors) for p in parts) >= 4  # blocks of 200 m, buffer 50 m
    x, y = router.to_metric([lon], [lat])
    block_lon, block_lat = router.to_wgs84(x + 100.0, y + 100.0)  # middle of a block
    assert not poly.contains(shapely.Point(block_lon[0], block_lat[0]))
    street_lon, street_lat = router.to_wgs84(x + 30.0, y + 200.0)  # 30 m off the next street
    assert poly.contains(shapely.Point(street_lon[0], street_lat[0]))
    far_lon, far_lat = router.to_wgs84(x + 1000.0, y)  # 1 km: 12 min on foot
    assert not poly.contains(shapely.Point(far_lon[0], far_lat[0]))


def reference_polygon(router: Router, lon: float, lat: float, minutes: float) -> shapely.Geometry:
    """Independent construction (networkx + shapely, metric CRS): points every 2 m on
    the streets, each with its time to the facility, as discs of the time left for an
    access leg, at most the buffer."""
    graph = nx.DiGraph()
    for a, b, s in zip(router.edge_u, router.edge_v, router.edge_seconds, strict=True):
        graph.add_edge(int(a), int(b), weight=float(s))
    fx, fy = router.to_metric([lon], [lat])
    snap = router.snap([lon], [lat])
    graph.add_node("F")
    for e, t, leg in zip(snap.edge, snap.t, snap.seconds, strict=True):
        graph.add_edge(int(router.edge_u[e]), "F", weight=t * router.edge_seconds[e] + leg)
    to_f = nx.single_source_dijkstra_path_length(graph.reverse(), "F", weight="weight")
    limit, speed = minutes * 60.0, router.access_mps
    buffer = router.settings.isochrone_buffer_m
    discs = [shapely.Point(fx[0], fy[0]).buffer(min(buffer, limit * speed))]
    for a, b, s in zip(router.edge_u, router.edge_v, router.edge_seconds, strict=True):
        end = to_f.get(int(b), np.inf)
        ax, ay, bx, by = router.x[a], router.y[a], router.x[b], router.y[b]
        n = int(np.hypot(bx - ax, by - ay) / 2.0) + 1
        t = np.linspace(0, 1, n + 1)
        secs = (1 - t) * s + end
        for e, tf, leg in zip(snap.edge, snap.t, snap.seconds, strict=True):
            if router.edge_u[e] == a and router.edge_v[e] == b:
                secs = np.where(t <= tf, np.minimum(secs, (tf - t) * s + leg), secs)
        r = np.minimum((limit - secs) * speed, buffer)
        ok = r > 0
        discs += list(
            shapely.buffer(shapely.points(ax + t[ok] * (bx - ax), ay + t[ok] * (by - ay)), r[ok])
        )
    return shapely.union_all(discs)


@pytest.mark.parametrize("mode", ["walk", "ebike"])
def test_polygon_equals_an_independent_construction(mode):
    router = grid_router(mode)
    lon, lat = centre(router)
    lon += 0.0004  # between two junctions
    minutes = 6.0
    ours = union_isochrone(router, np.array([lon]), np.array([lat]), minutes)
    assert ours.is_valid
    metric = shapely.transform(ours, lambda c: np.column_stack(router.to_metric(c[:, 0], c[:, 1])))
    ref = reference_polygon(router, lon, lat, minutes)
    cell = router.settings.isochrone_resolution_m
    assert metric.area == pytest.approx(ref.area, rel=0.03)
    # the traced outline wanders within a cell of the exact one: at most half a cell
    # on average along the (long) outline of buffered streets
    assert metric.symmetric_difference(ref).area < 0.5 * cell * ref.boundary.length
    assert metric.hausdorff_distance(ref) <= 2 * cell


@pytest.mark.parametrize("mode", ["walk", "ebike", "drive"])
def test_villages_within_t_and_near_a_street_are_inside(mode):
    router = grid_router(mode)
    rng = np.random.default_rng(11)
    lon0, lat0 = centre(router)
    f_lon, f_lat = np.array([lon0, lon0 + 0.006]), np.array([lat0, lat0 - 0.003])
    x, y = router.to_metric(router.net.lon, router.net.lat)
    px = rng.uniform(x.min(), x.max(), 1500)
    py = rng.uniform(y.min(), y.max(), 1500)
    p_lon, p_lat = router.to_wgs84(px, py)
    minutes = {"walk": 8.0, "ebike": 4.0, "drive": 3.0}[mode]
    poly = union_isochrone(router, f_lon, f_lat, minutes)
    res = router.nearest(p_lon, p_lat, f_lon, f_lat)
    near = router.snap(p_lon, p_lat).nearest_m
    inside = shapely.contains_xy(poly, p_lon, p_lat)
    edge = shapely.distance(
        shapely.transform(
            poly.boundary, lambda c: np.column_stack(router.to_metric(c[:, 0], c[:, 1]))
        ),
        shapely.points(px, py),
    )
    clear = edge > router.settings.isochrone_resolution_m  # not within a cell of the outline
    within = res.minutes <= minutes
    buffer = router.settings.isochrone_buffer_m
    assert (within & (near <= buffer)).sum() > 100 and (~within).sum() > 100
    assert inside[within & (near <= buffer) & clear].all()
    # inside means reached within T from a street point at most the buffer away
    slack = buffer / router.access_mps / 60.0
    assert (res.minutes[inside & clear] <= minutes + slack).all()
    assert not inside[near > buffer + router.settings.isochrone_resolution_m].any()


def test_areas_are_geodesic_in_any_crs():
    router = grid_router("ebike")
    fac = facilities_frame(*[np.array([v]) for v in centre(router)])
    out = isochrones(router, fac, 5.0)
    poly = out.geometry.iloc[0]
    # independent: the polygon's area in its own UTM zone (35N), and the geodesic one
    utm = gpd.GeoSeries([poly], crs="EPSG:4326").to_crs(
        gpd.GeoSeries([poly], crs="EPSG:4326").estimate_utm_crs()
    )
    assert out["area_km2"].iloc[0] == pytest.approx(utm.area.iloc[0] / 1e6, rel=0.01)
    assert router.metric_crs == "EPSG:32635"


def test_ring_road_keeps_a_hole_on_the_coarse_network():
    # coarse network: the access leg (here at most 500 m) is the buffer
    settings = Settings(access_max_m_coarse=500.0)
    router = Router(coarse_ring(0.04), "ebike", settings)
    poly = union_isochrone(router, np.array([120.70]), np.array([30.70]), 60.0)
    assert poly.is_valid and not poly.is_empty
    parts = getattr(poly, "geoms", [poly])
    assert sum(len(p.interiors) for p in parts) >= 1
    assert not poly.contains(shapely.Point(120.72, 30.72))  # centre: nothing reachable
    assert poly.contains(shapely.Point(120.72, 30.7030))  # 330 m beside the road
    assert poly.contains(shapely.Point(120.7395, 30.74))  # far corner, ~32 min by e-bike


@pytest.mark.parametrize("tolerance", [0.01])
def test_per_facility_union_equals_layer_union(tolerance):
    router = Router(coarse_line(9, 0.01), "ebike", Settings())
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


@pytest.mark.filterwarnings("ignore:The XML file you are loading appears to have been generated")
def test_traced_isochrones_are_valid_on_real_streets(shanghai_osm):
    from geo.network import network_from_osm_xml

    net = network_from_osm_xml(shanghai_osm)
    rng = np.random.default_rng(4)
    pick = rng.choice(net.n_nodes, 12, replace=False)
    for mode in ("walk", "ebike", "drive"):
        router = Router(net, mode, Settings())
        fac = facilities_frame(net.lon[pick], net.lat[pick])
        out = isochrones(router, fac, 10.0)
        assert out.geometry.is_valid.all() and (out["area_km2"] > 0).all()
