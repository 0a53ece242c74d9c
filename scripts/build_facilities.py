"""Build data/facilities.geojson: real names/points where ../shared has them, samples elsewhere.

Real records (``is_sample: false``):

* ``technical_school`` — the 4 technician-college rows and 12 secondary vocational
  schools of ../shared/data/facilities F4 (names only, unverified list): placed at
  their county seat (``county_seat_approx``); address, phone, trades, capacity
  unknown and left empty.
* ``training_institution`` — the two higher-vocational colleges with real points:
  嘉兴南洋职业技术学院 (F2, WGS84, confirmed by F3) and 嘉兴职业技术学院 (F3 BD-09
  converted with geo.coords, because F2's point for it lies 30 km off in 平湖).

Everything else is a deterministic **sample** (``is_sample: true``, names start
with ``样例·``, phones ``0573-0000NNNN`` are invalid on purpose): the number per
county follows the 2020 census population; within a county, samples sit exactly
on real 2016 settlement points (village and town points, GCJ-02 -> WGS84), drawn
with weights by urbanity (main urban 111/112 and 街道 x3, town centres 121-123 and
镇 x2, rural 210/220 x1). No jitter: we have no water data, settlement points are
on land. The rules are geo/samples.py, the same ``skillcircle region build``
applies to every region (counts scaled by its population).

Usage: ``python scripts/build_facilities.py [--shared DIR] [--out FILE]``
(reads data/boundaries/*.geojson written by build_boundaries.py).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import geopandas as gpd
import pandas as pd
from _sources import DEFAULT_SHARED, REPO, adcode_2016, check_inside

from geo import samples as sm
from geo.regionbuild import area_codes

logger = logging.getLogger("build_facilities")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--boundaries", type=Path, default=REPO / "data" / "boundaries")
    parser.add_argument("--out", type=Path, default=REPO / "data" / "facilities.geojson")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if not args.shared.is_dir():
        raise SystemExit(f"{args.shared}: ../shared/data not found; pass --shared DIR")
    old = adcode_2016(args.shared)
    seat_rows = old[old["level"] == "county"].dropna(subset=["lon"])
    seats = {r.name: (float(r.lon), float(r.lat)) for r in seat_rows.itertuples(index=False)}
    counties = gpd.read_file(args.boundaries / "counties.geojson")
    population = counties.set_index("county")["population_2020"].sort_index()
    towns = gpd.read_file(args.boundaries / "towns.geojson")
    villages = gpd.read_file(args.boundaries / "villages.geojson")
    points = sm.settlement_points(villages, towns)
    records = sm.jiaxing_real_facilities(args.shared, seats)
    scale = float(population.sum()) / sm.REFERENCE_POPULATION
    records += sm.samples(points, population, towns, scale=scale)
    adcodes = dict(zip(counties["county"], counties["adcode"], strict=True))
    records = sm.assign_ids(records, adcodes, area_codes(old, counties))
    frame = gpd.GeoDataFrame(
        pd.DataFrame(records)[["id", "layer", "name"]],
        geometry=gpd.points_from_xy([r["lon"] for r in records], [r["lat"] for r in records]),
        crs="EPSG:4326",
    )
    check_inside(frame, args.shared, "facilities", buffer_m=0)
    args.out.write_text(sm.facilities_text(records), encoding="utf-8")
    table = pd.DataFrame(records)
    logger.info("per layer: %s", table.groupby("layer").size().to_dict())
    logger.info(
        "real (not sample): %s", table[~table["is_sample"]].groupby("layer").size().to_dict()
    )
    logger.info("wrote %d facilities -> %s", len(records), args.out)


if __name__ == "__main__":
    main()
