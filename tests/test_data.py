"""The committed data in data/: counts, codes, provenance flags, and regeneration."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest

from geo.facilities import load_facilities
from geo.places import load_counties, load_towns, load_villages
from geo.settings import LAYERS, Settings

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
SHARED = REPO.parent / "shared" / "data"
METRIC = "EPSG:32651"  # Jiaxing lies in UTM zone 51N

LAYER_COUNTS = {
    "technical_school": 16,
    "training_institution": 123,
    "evaluation_org": 32,
    "training_base": 10,
    "master_studio": 189,
}
VILLAGE_QUALITY = {"point_2016_gcj02", "point_2016_name_match", "town_seat"}
FACILITY_QUALITY = {
    "county_seat_approx",
    "poi_wgs84",
    "poi_bd09_converted",
    "sample_at_settlement_point",
    "sample_at_town_village_points_mean",
    "sample_at_town_county_seat",
}


@pytest.fixture(scope="module")
def city_area():
    city = gpd.read_file(DATA / "boundaries" / "city.geojson")
    return city.to_crs(METRIC).buffer(1000).union_all()


def inside(frame: gpd.GeoDataFrame, area) -> bool:
    return bool(frame.to_crs(METRIC).within(area).all())


def test_counties():
    counties = load_counties(settings=Settings())
    adcodes = Settings().region.adcodes
    assert sorted(counties["county"]) == sorted(adcodes)
    assert dict(zip(counties["county"], counties["adcode"], strict=True)) == dict(adcodes)
    assert counties["population_2020"].sum() == 5_400_868  # the published 7th-census total
    assert counties.set_index("county").loc["海宁市", "population_2020"] == 1_076_199
    assert counties.geometry.is_valid.all()


def test_towns(city_area):
    towns = load_towns(settings=Settings())
    assert len(towns) == 72 and towns["town_code"].is_unique
    # by the 2023 codes (areaCode); ../shared's README says 秀洲 8 / 桐乡 12, but the file
    # itself lists 9 towns under 330411 (洪合镇 included) and 11 under 330483
    expected = {"南湖区": 13, "秀洲区": 9, "嘉善县": 9, "海盐县": 9, "海宁市": 12, "平湖市": 9}
    assert towns.groupby("county").size().to_dict() == {**expected, "桐乡市": 11}
    assert towns["n_villages"].sum() == 1202
    assert inside(towns, city_area)


def test_villages(city_area):
    villages = load_villages(settings=Settings())
    assert len(villages) == 1202
    codes = villages["village_code"]
    assert codes.is_unique and codes.str.fullmatch(r"\d{12}").all()
    assert (codes.str[:9] == villages["town_code"]).all()
    assert set(villages["location_quality"]) <= VILLAGE_QUALITY
    real = villages["location_quality"].str.startswith("point_2016")
    assert real.sum() >= 279  # the 2016 points matched by code (shared README: 279)
    assert inside(villages, city_area)
    # fallback villages sit exactly on their town's point
    towns = load_towns(settings=Settings()).set_index("town_code")
    seat = villages[~real]
    assert (seat.geometry.x.to_numpy() == towns.loc[seat["town_code"]].geometry.x.to_numpy()).all()


def test_facilities(city_area):
    fac = load_facilities(settings=Settings())
    counts = fac.groupby("layer").size().to_dict()
    for layer, n in LAYER_COUNTS.items():
        assert counts[layer] == n, layer
    assert set(counts) == set(LAYERS)
    assert counts["village_station"] >= 72 and counts["experience_site"] > 0
    assert fac["id"].is_unique
    raw = json.loads((DATA / "facilities.geojson").read_text(encoding="utf-8"))
    required = {
        "id",
        "layer",
        "layer_name",
        "name",
        "county",
        "town",
        "town_code",
        "address",
        "phone",
        "trades",
        "capacity",
        "source",
        "is_sample",
        "location_quality",
        "note",
    }
    for feat in raw["features"]:
        assert required <= set(feat["properties"]), feat["properties"]["id"]
        assert isinstance(feat["properties"]["trades"], list)
    real = fac[~fac["is_sample"]]
    assert real.groupby("layer").size().to_dict() == {
        "technical_school": 16,
        "training_institution": 2,
    }
    assert not real["name"].str.startswith("样例").any()
    sample = fac[fac["is_sample"]]
    assert sample["name"].str.startswith("样例·").all()
    assert sample["phone"].str.fullmatch(r"0573-0000\d{4}").all()  # invalid on purpose
    assert sample["source"].str.startswith("sample").all()
    assert set(fac["location_quality"]) <= FACILITY_QUALITY
    assert inside(fac, city_area)
    # one village station at every town
    stations = fac[fac["layer"] == "village_station"]
    assert stations["town_code"].nunique() == 72


def test_samples_follow_population():
    fac = load_facilities(settings=Settings())
    counties = load_counties(settings=Settings()).set_index("county")["population_2020"]
    studios = fac[fac["layer"] == "master_studio"].groupby("county").size()
    share = counties / counties.sum() * 189
    assert ((studios - share).abs() <= 1).all()


def test_network_files():
    nodes = pd.read_csv(DATA / "network" / "nodes.csv")
    edges = pd.read_csv(DATA / "network" / "edges.csv")
    assert nodes["node_id"].is_unique
    assert set(edges["u"]) | set(edges["v"]) == set(nodes["node_id"])
    assert (edges["u"] < edges["v"]).all()
    assert 3500 < edges["length_m"].sum() / 1000 < 4500  # ~4,080 km in the margin box
    assert "ODbL" in (DATA / "network" / "README.md").read_text(encoding="utf-8")


def test_total_size_is_small():
    total = sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file())
    assert total < 3_000_000


# ----------------------------------------------------------------------------- regeneration

needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"{SHARED} not found: ../shared/data is not beside the repository"
)


def run_script(name: str, *args: str) -> None:
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / name), *args], check=True, capture_output=True
    )


@needs_shared
def test_boundaries_regenerate_identically(tmp_path):
    run_script("build_boundaries.py", "--out", str(tmp_path))
    for name in ("city", "counties", "towns", "villages"):
        assert (tmp_path / f"{name}.geojson").read_bytes() == (
            DATA / "boundaries" / f"{name}.geojson"
        ).read_bytes(), name


@needs_shared
def test_facilities_regenerate_identically(tmp_path):
    out = tmp_path / "facilities.geojson"
    run_script("build_facilities.py", "--out", str(out))
    assert out.read_bytes() == (DATA / "facilities.geojson").read_bytes()


def test_region_json_regenerates_identically(tmp_path):
    """region.json is computed from the pack's own files (no ../shared needed)."""
    out = tmp_path / "region.json"
    run_script("build_region.py", "--out", str(out))
    assert out.read_bytes() == (DATA / "region.json").read_bytes()
    meta = json.loads(out.read_text(encoding="utf-8"))
    assert meta["counts"] == {"counties": 7, "towns": 72, "villages": 1202, "facilities": 516}
    assert [c["adcode"] for c in meta["counties"]] == sorted(Settings().region.adcodes.values())
    assert meta["metric_crs"] == METRIC


@needs_shared
def test_network_regenerates_identically_from_shared(tmp_path):
    run_script("build_network.py", "--from-shared", "--out", str(tmp_path))
    for name in ("nodes.csv", "edges.csv", "README.md"):
        assert (tmp_path / name).read_bytes() == (DATA / "network" / name).read_bytes(), name
