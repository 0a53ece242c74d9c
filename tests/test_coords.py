"""geo/coords.py: round trips, known points, identity outside China."""

import numpy as np
import pytest

from geo import coords
from geo._errors import SettingsError

RNG = np.random.default_rng(7)
LON = RNG.uniform(73.7, 134.7, 5000)
LAT = RNG.uniform(18.2, 53.4, 5000)
M_PER_DEG = 111_320.0


@pytest.mark.parametrize(
    ("forward", "inverse"),
    [
        (coords.wgs84_to_gcj02, coords.gcj02_to_wgs84),
        (coords.wgs84_to_bd09, coords.bd09_to_wgs84),
        (coords.gcj02_to_bd09, coords.bd09_to_gcj02),
    ],
)
def test_round_trip_below_one_metre(forward, inverse):
    lon, lat = inverse(*forward(LON, LAT))
    err_m = np.hypot((lon - LON) * M_PER_DEG * np.cos(np.radians(LAT)), (lat - LAT) * M_PER_DEG)
    assert err_m.max() < 0.01  # far below the 1 m requirement


def test_gcj02_offset_in_jiaxing_matches_documented_shift():
    # ../shared/data/boundaries/README.md: about +0.0043 lon and -0.0023 lat in Jiaxing...
    lon, lat = coords.wgs84_to_gcj02(120.75, 30.75)
    assert 0.0040 < lon - 120.75 < 0.0050
    assert -0.0030 < lat - 30.75 < -0.0015


def test_known_baidu_point_converts_to_documented_wgs84():
    # Baidu POI of 嘉兴学院(越秀校区) and its WGS84 value given in shared F3 (their conversion).
    lon, lat = coords.bd09_to_wgs84(120.73495256316944, 30.74939076626862)
    assert lon == pytest.approx(120.724211, abs=2e-6)
    assert lat == pytest.approx(30.745371, abs=2e-6)


def test_identity_outside_china():
    lon = np.array([-0.2287, 2.35, 151.2])
    lat = np.array([51.76, 48.85, -33.87])
    for func in (coords.wgs84_to_gcj02, coords.gcj02_to_wgs84, coords.bd09_to_wgs84):
        out_lon, out_lat = func(lon, lat)
        np.testing.assert_array_equal(out_lon, lon)
        np.testing.assert_array_equal(out_lat, lat)


def test_to_wgs84_dispatch_and_error():
    lon, lat = coords.to_wgs84(*coords.wgs84_to_gcj02(120.7, 30.7), "GCJ-02")
    assert (lon, lat) == (pytest.approx(120.7, abs=1e-8), pytest.approx(30.7, abs=1e-8))
    with pytest.raises(SettingsError, match="unknown coordinate system"):
        coords.to_wgs84(120.7, 30.7, "utm")
