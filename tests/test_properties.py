"""Property-based tests (Hypothesis): coordinate conversions and routing invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo import coords
from geo.network import NetworkSource, undirected_network
from geo.routing import Router
from geo.settings import Settings

# all of China's mainland box, where the GCJ-02 offset applies
lons = st.floats(min_value=73.7, max_value=134.9, allow_nan=False)
lats = st.floats(min_value=18.2, max_value=53.5, allow_nan=False)
jx_lon = st.floats(min_value=120.3, max_value=121.3, allow_nan=False)
jx_lat = st.floats(min_value=30.2, max_value=31.0, allow_nan=False)


def first(pair) -> tuple[float, float]:
    """The first point of a (lon, lat) pair of arrays or scalars."""
    return float(np.ravel(pair[0])[0]), float(np.ravel(pair[1])[0])


def metres(lon1, lat1, lon2, lat2) -> float:
    k = 111_320.0
    return float(np.hypot((lon2 - lon1) * k * np.cos(np.radians(lat1)), (lat2 - lat1) * k))


@settings(max_examples=300, deadline=None)
@given(lon=lons, lat=lats)
def test_gcj02_round_trip_is_within_a_metre(lon, lat):
    g_lon, g_lat = first(coords.wgs84_to_gcj02(lon, lat))
    back_lon, back_lat = first(coords.gcj02_to_wgs84(g_lon, g_lat))
    # the offset is real (tens to hundreds of metres) but bounded, and invertible
    assert metres(lon, lat, g_lon, g_lat) < 1_000
    assert metres(lon, lat, back_lon, back_lat) < 1.0


@settings(max_examples=300, deadline=None)
@given(lon=lons, lat=lats)
def test_bd09_round_trip_is_within_a_metre(lon, lat):
    b_lon, b_lat = first(coords.wgs84_to_bd09(lon, lat))
    back_lon, back_lat = first(coords.bd09_to_wgs84(b_lon, b_lat))
    assert metres(lon, lat, back_lon, back_lat) < 1.0


@settings(max_examples=100, deadline=None)
@given(
    points=st.lists(st.tuples(jx_lon, jx_lat), min_size=1, max_size=20),
    crs=st.sampled_from(["wgs84", "gcj02", "bd09"]),
)
def test_vectorised_equals_scalar(points, crs):
    lon = np.array([p[0] for p in points])
    lat = np.array([p[1] for p in points])
    v_lon, v_lat = coords.to_wgs84(lon, lat, crs)
    for i, (x, y) in enumerate(points):
        s_lon, s_lat = first(coords.to_wgs84(x, y, crs))
        # the inverse iterates to 1e-12 degrees; arrays may stop one step apart
        assert (v_lon[i], v_lat[i]) == pytest.approx((s_lon, s_lat), abs=1e-9)


# --------------------------------------------------------------------- routing


def grid_router(mode: str, settings_: Settings, n: int = 6, coarse: bool = False) -> Router:
    """A 6 x 6 grid of two-way streets, ~400 m apart: an OSM-like street network, or
    with ``coarse`` the bundled network's kind (unclassed, long legs, direct legs)."""
    step = 0.004  # ~400 m
    xs, ys = np.meshgrid(np.arange(n), np.arange(n))
    lon = 120.70 + xs.ravel() * step
    lat = 30.70 + ys.ravel() * step * 0.9
    idx = np.arange(n * n).reshape(n, n)
    a = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
    b = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
    net = undirected_network(lon, lat, a, b, NetworkSource("test", "grid", coarse=coarse))
    if not coarse:
        net.highway = np.full(net.n_edges, "residential")
    return Router(net, mode, settings_)


SETTINGS = Settings(max_minutes=600)
ROUTERS = {mode: grid_router(mode, SETTINGS) for mode in ("walk", "ebike", "drive")}
COARSE = {mode: grid_router(mode, SETTINGS, coarse=True) for mode in ("walk", "ebike", "drive")}
grid_lon = st.floats(min_value=120.699, max_value=120.721, allow_nan=False)
grid_lat = st.floats(min_value=30.699, max_value=30.718, allow_nan=False)
point = st.tuples(grid_lon, grid_lat)


def seconds(router: Router, a, b) -> float:
    return float(router.one_to_many(a[0], a[1], [b[0]], [b[1]], max_minutes=600)[0])


@settings(max_examples=150, deadline=None)
@given(a=point, b=point, c=point, mode=st.sampled_from(["walk", "ebike", "drive"]))
def test_triangle_inequality_on_streets(a, b, c, mode):
    # going through b's place on the street is one way from a to c (b's two legs on
    # top); the coarse network's direct legs need not obey this
    router = ROUTERS[mode]
    ab, bc, ac = seconds(router, a, b), seconds(router, b, c), seconds(router, a, c)
    assert ac <= ab + bc + 1e-6


@settings(max_examples=150, deadline=None)
@given(a=point, b=point, mode=st.sampled_from(["walk", "ebike"]))
def test_symmetric_on_two_way_streets(a, b, mode):
    # drive is not: a left turn one way is a right turn back
    router = ROUTERS[mode]
    assert seconds(router, a, b) == pytest.approx(seconds(router, b, a), rel=1e-9, abs=1e-6)
    leg = router.snap([a[0]], [a[1]]).seconds[0]
    assert seconds(router, a, a) == pytest.approx(2 * leg, abs=1e-6)  # to the street and back
    assert seconds(COARSE[mode], a, a) == 0.0  # the coarse network's direct leg


@settings(max_examples=100, deadline=None)
@given(a=point, b=point)
def test_ebike_is_never_slower_than_walking(a, b):
    # (a car can be: it may not turn round in the street)
    assert seconds(ROUTERS["ebike"], a, b) <= seconds(ROUTERS["walk"], a, b) + 1e-6
    assert seconds(COARSE["drive"], a, b) <= seconds(COARSE["walk"], a, b) + 1e-6


@settings(max_examples=60, deadline=None)
@given(a=point, b=point, factor=st.floats(min_value=1.1, max_value=4.0))
def test_monotone_in_speed(a, b, factor):
    """Raising every speed (network and access legs) divides every trip by the factor."""
    slow = ROUTERS["walk"]
    fast_settings = SETTINGS.with_(
        walk_kmh=SETTINGS.walk_kmh * factor,
        access_kmh={**SETTINGS.access_kmh, "walk": SETTINGS.access_kmh["walk"] * factor},
    )
    fast = grid_router("walk", fast_settings)
    t_slow, t_fast = seconds(slow, a, b), seconds(fast, a, b)
    assert t_fast <= t_slow + 1e-6
    assert t_fast == pytest.approx(t_slow / factor, rel=1e-6)
