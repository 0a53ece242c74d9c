"""geo/coverage.py: contract columns, real minutes, unreachable handling, statistics."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from pyproj import Geod

from geo._errors import SettingsError
from geo.coverage import BASE_COLUMNS, coverage_columns, coverage_stats, coverage_table
from geo.routing import Router
from geo.settings import LAYERS, Settings

from synthetic import coarse_line


def villages_frame() -> gpd.GeoDataFrame:
    lon = [120.701, 120.74, 120.78, 120.70]
    lat = [30.701, 30.702, 30.70, 30.90]  # the last is 22 km north of the road
    return gpd.GeoDataFrame(
        {
            "village_code": ["330402001001", "330402001002", "330411002001", "330411002002"],
            "village_name": ["甲村", "乙村", "丙村", "丁村"],
            "town": ["一镇", "一镇", "二镇", "二镇"],
            "county": ["南湖区", "南湖区", "秀洲区", "秀洲区"],
            "location_quality": ["point_2016_gcj02"] * 3 + ["town_seat"],
        },
        geometry=gpd.points_from_xy(lon, lat),
        crs="EPSG:4326",
    )


def facilities_frame() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "id": ["TS-1", "VS-1", "VS-2"],
            "layer": ["technical_school", "village_station", "village_station"],
            "name": ["技校", "站点一", "站点二"],
        },
        geometry=gpd.points_from_xy([120.70, 120.74, 120.78], [30.70, 30.70, 30.70]),
        crs="EPSG:4326",
    )


@pytest.fixture
def table() -> gpd.GeoDataFrame:
    router = Router(coarse_line(9, 0.01), "ebike", Settings())
    return coverage_table(router, villages_frame(), facilities_frame(), minutes=15)


def test_contract_columns_in_order(table):
    assert list(table.columns[: len(coverage_columns())]) == coverage_columns()
    assert coverage_columns()[: len(BASE_COLUMNS)] == BASE_COLUMNS
    assert coverage_columns()[len(BASE_COLUMNS)] == "technical_school_minutes"
    assert len(table) == 4


def test_minutes_match_the_router(table):
    router = Router(coarse_line(9, 0.01), "ebike", Settings())
    fac = facilities_frame()
    st = fac[fac["layer"] == "village_station"]
    res = router.nearest(
        table["lon"], table["lat"], st.geometry.x.to_numpy(), st.geometry.y.to_numpy()
    )
    np.testing.assert_allclose(table["village_station_minutes"], np.round(res.minutes, 2))
    assert table["village_station_facility_id"].tolist()[:3] == ["VS-1", "VS-1", "VS-2"]
    # 甲村 is ~150 m from the technical school: the direct access leg, distance x 1.3 at 12 km/h
    _, _, metres = Geod(ellps="WGS84").inv(120.701, 30.701, 120.70, 30.70)
    expected = metres * 1.3 / (12 / 3.6) / 60
    assert table.loc[0, "technical_school_minutes"] == pytest.approx(expected, abs=0.006)


def test_unreachable_is_empty_and_flagged(table):
    far = table.iloc[3]
    # 22 km from the road: beyond the 15 km access-leg limit of the coarse network
    for layer in LAYERS:
        assert np.isnan(far[f"{layer}_minutes"])
        assert far[f"{layer}_facility_id"] == ""
    assert np.isnan(far["any_minutes"]) and not far["covered"]
    assert far["far_from_road"] and far["nearest_road_m"] > 20_000
    # layers without facilities are empty for everybody
    assert table["training_base_minutes"].isna().all()


def test_covered_flag_uses_threshold(table):
    expected = table["any_minutes"] <= 15
    assert table["covered"].tolist() == expected.tolist()
    assert table["covered"].tolist() == [True, True, True, False]


def test_stats_by_county_and_town(table):
    by_county = coverage_stats(table, "county", 15, population=pd.Series({"南湖区": 839433}))
    row = by_county.set_index("county").loc["秀洲区"]
    assert row["villages"] == 2 and row["covered"] == 1 and row["share_covered"] == 0.5
    assert row["uncovered_villages"] == "丁村"
    assert row["village_station_covered"] == 1
    assert row["villages_located"] == 1 and row["covered_located"] == 1  # 丁村 is a town seat
    assert by_county.set_index("county").loc["南湖区", "population_2020"] == 839433
    by_town = coverage_stats(table, "town", 15)
    assert list(by_town["town"]) == ["一镇", "二镇"]
    assert by_town["villages"].sum() == 4
    with pytest.raises(SettingsError, match="county or town"):
        coverage_stats(table, "province", 15)
