"""geo/projection.py: the UTM zone follows the data, and its distances match the ellipsoid."""

from __future__ import annotations

import numpy as np
import pytest
from pyproj import Geod, Transformer

from geo._errors import SettingsError
from geo.projection import utm_crs


@pytest.mark.parametrize(
    ("lon", "lat", "expected"),
    [
        (24.94, 60.17, "EPSG:32635"),  # Helsinki, zone 35N (24-30 E)
        (121.47, 31.23, "EPSG:32651"),  # Shanghai, zone 51N (120-126 E)
        (120.75, 30.75, "EPSG:32651"),  # Jiaxing
        (151.21, -33.87, "EPSG:32756"),  # Sydney, zone 56S (150-156 E)
        (-58.38, -34.60, "EPSG:32721"),  # Buenos Aires, zone 21S (60-54 W)
        (-0.13, 51.51, "EPSG:32630"),  # London, zone 30N (6 W-0)
    ],
)
def test_zone_of_known_cities(lon, lat, expected):
    assert utm_crs([lon], [lat]) == expected
    # the zone number is floor((lon + 180) / 6) + 1, 326 north / 327 south
    zone = int((lon + 180) // 6) + 1
    assert expected == f"EPSG:{326 if lat >= 0 else 327}{zone:02d}"


def test_borders_belong_to_the_eastern_zone_and_the_equator_to_the_north():
    assert utm_crs([120.0], [30.0]) == "EPSG:32651"  # not 50N, which ends at 120 E
    assert utm_crs([0.0], [0.0]) == "EPSG:32631"
    assert utm_crs([0.0], [-0.001]) == "EPSG:32731"


def test_the_median_ignores_a_few_stray_points_and_non_finite_values():
    lon = np.array([24.90, 24.93, 24.95, 24.97, 121.0, np.nan])  # one stray point in China
    lat = np.array([60.15, 60.17, 60.18, 60.20, 31.0, 60.2])
    assert utm_crs(lon, lat) == "EPSG:32635"


def test_the_chosen_zone_measures_like_the_ellipsoid_and_51n_does_not():
    # 10 km east-west in Helsinki: geodesic length vs straight line in the projection
    lon = np.array([24.85, 25.03])
    lat = np.array([60.17, 60.17])
    geodesic = Geod(ellps="WGS84").inv(lon[0], lat[0], lon[1], lat[1])[2]

    def projected(crs: str) -> float:
        x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
        return float(np.hypot(x[1] - x[0], y[1] - y[0]))

    assert projected(utm_crs(lon, lat)) == pytest.approx(geodesic, rel=1e-3)
    assert projected("EPSG:32651") / geodesic > 1.1  # the old fixed zone: about 15 % too long


@pytest.mark.parametrize(
    ("lon", "lat", "needle"),
    [
        ([], [], "no finite coordinates"),
        ([np.nan], [np.nan], "no finite coordinates"),
        ([10.0], [85.0], "80° S-84° N"),
        ([3000.0], [30.0], "80° S-84° N"),
    ],
)
def test_no_zone_is_a_settings_error(lon, lat, needle):
    with pytest.raises(SettingsError, match=needle):
        utm_crs(lon, lat)
