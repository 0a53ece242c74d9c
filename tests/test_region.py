"""Tests for geo/region.py: region packs, the bundled default, --region everywhere, the wheel."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from click.testing import CliRunner

from geo.cli import main
from geo.region import (
    BOUNDS_MARGIN_M,
    PACK_FILES,
    RegionError,
    bundled_region_dir,
    grow_bounds,
    load_region,
    resolve_region,
)
from geo.settings import Settings

REPO = Path(__file__).resolve().parents[1]
PIP = (sys.executable, "-m", "pip", "-q", "--disable-pip-version-check")


def test_the_bundled_pack_is_jiaxing():
    region = Settings().region
    assert (region.code, region.name, region.level, region.province) == (
        "330400",
        "嘉兴市",
        "city",
        "浙江省",
    )
    counties = gpd.read_file(bundled_region_dir() / "boundaries" / "counties.geojson")
    assert dict(region.adcodes) == dict(zip(counties["county"], counties["adcode"], strict=True))
    assert region.metric_crs == "EPSG:32651"  # 120-126 E is UTM zone 51
    city = gpd.read_file(bundled_region_dir() / "boundaries" / "city.geojson")
    expected = grow_bounds(tuple(city.total_bounds), BOUNDS_MARGIN_M)
    assert region.bounds == pytest.approx(expected, abs=1e-4)
    assert region.county("海宁市").adcode == "330481"
    with pytest.raises(RegionError, match="unknown county '上城区' in 嘉兴市"):
        region.county("上城区")


def test_grow_bounds_adds_the_margin_on_the_ellipsoid():
    from pyproj import Geod

    box = (120.0, 30.0, 121.0, 31.0)
    grown = grow_bounds(box, 20_000)
    geod = Geod(ellps="WGS84")
    # the new edges are 20 km from the old ones, measured where the distance is least
    assert geod.inv(120.0, 31.0, 120.0, grown[3])[2] == pytest.approx(20_000, rel=1e-6)
    assert geod.inv(120.0, 30.0, 120.0, grown[1])[2] == pytest.approx(20_000, rel=1e-6)
    assert geod.inv(121.0, 31.0, grown[2], 31.0)[2] == pytest.approx(20_000, rel=1e-3)


def test_resolve_region_codes_and_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("SKILLCIRCLE_HOME", str(tmp_path / "home"))
    assert resolve_region(None) == bundled_region_dir()
    assert resolve_region("330400") == bundled_region_dir()
    with pytest.raises(RegionError, match=r"no region pack for code 330211 .*region build 330211"):
        resolve_region("330211")
    built = tmp_path / "home" / "regions" / "330211"
    built.mkdir(parents=True)
    (built / "region.json").write_text("{}", encoding="utf-8")
    assert resolve_region("330211") == built
    with pytest.raises(RegionError, match="region pack folder not found"):
        resolve_region(tmp_path / "nowhere")


@pytest.fixture
def pack_copy(tmp_path) -> Path:
    """A copy of the bundled pack that a test may damage."""
    target = tmp_path / "pack"
    shutil.copytree(bundled_region_dir(), target, ignore=shutil.ignore_patterns("__*"))
    return target


@pytest.mark.parametrize("missing", PACK_FILES)
def test_a_pack_missing_a_file_is_one_line_naming_it(pack_copy, missing):
    (pack_copy / missing).unlink()
    with pytest.raises(RegionError) as info:
        load_region(pack_copy)
    message = str(info.value)
    assert message.startswith(str(pack_copy / missing)) and "region build" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"format": 2}, "format 2 is not 1"),
        ({"code": "3304"}, "code '3304' is not 6 digits"),
        ({"level": "town"}, "level 'town' is not one of"),
        ({"counties": []}, "has no counties"),
        ({"counties": [{"name": "南湖区"}]}, "county 1 needs a name and an adcode"),
        (
            {"counties": [{"name": "A", "adcode": "1"}, {"name": "A", "adcode": "2"}]},
            "county names repeat",
        ),
        ({"bounds": [121, 30, 120, 31]}, "are not [min_lon, min_lat, max_lon, max_lat]"),
        ({"metric_crs": "EPSG:4326"}, "is not a projected CRS in metres"),
        ({"name": None, "drop": "name"}, "key 'name' is missing"),
    ],
)
def test_a_bad_region_json_is_refused(pack_copy, change, needle):
    meta = json.loads((pack_copy / "region.json").read_text(encoding="utf-8"))
    if "drop" in change:
        del meta[change["drop"]]
    else:
        meta.update(change)
    (pack_copy / "region.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(Exception, match=needle.replace("[", r"\[").replace("]", r"\]")):
        load_region(pack_copy)


def test_broken_region_json(pack_copy):
    (pack_copy / "region.json").write_text("{", encoding="utf-8")
    with pytest.raises(RegionError, match=r"region\.json: cannot read region\.json"):
        load_region(pack_copy)


# --------------------------------------------------------------------------- a second region


@pytest.fixture(scope="module")
def nanhu_pack(tmp_path_factory) -> Path:
    """A county-level pack of 南湖区 (330402) cut from the bundled one: a region that is not
    Jiaxing, with one county, its own outline, bounds and network."""
    from shapely.geometry import box

    from geo.region import region_dict, write_region_json

    src = bundled_region_dir()
    out = tmp_path_factory.mktemp("regions") / "330402"
    (out / "boundaries").mkdir(parents=True)
    (out / "network").mkdir()
    counties = gpd.read_file(src / "boundaries" / "counties.geojson")
    county = counties[counties["county"] == "南湖区"]
    county.to_file(out / "boundaries" / "counties.geojson", driver="GeoJSON")
    outline = county.geometry.union_all()
    gpd.GeoDataFrame(
        {"name": ["南湖区"], "adcode": ["330402"], "population_2020": [839433]},
        geometry=[outline],
        crs="EPSG:4326",
    ).to_file(out / "boundaries" / "city.geojson", driver="GeoJSON")
    for name in ("towns", "villages"):
        frame = gpd.read_file(src / "boundaries" / f"{name}.geojson")
        frame[frame["county"] == "南湖区"].to_file(
            out / "boundaries" / f"{name}.geojson", driver="GeoJSON"
        )
    facilities = json.loads((src / "facilities.geojson").read_text(encoding="utf-8"))
    facilities["features"] = [
        f for f in facilities["features"] if f["properties"]["county"] == "南湖区"
    ]
    (out / "facilities.geojson").write_text(json.dumps(facilities), encoding="utf-8")
    nodes = pd.read_csv(src / "network" / "nodes.csv")
    edges = pd.read_csv(src / "network" / "edges.csv")
    area = box(*outline.buffer(0.1).bounds)
    keep = set(nodes["node_id"][gpd.points_from_xy(nodes["lon"], nodes["lat"]).within(area)])
    edges = edges[edges["u"].isin(keep) & edges["v"].isin(keep)]
    used = set(edges["u"]) | set(edges["v"])
    nodes[nodes["node_id"].isin(used)].to_csv(out / "network" / "nodes.csv", index=False)
    edges.to_csv(out / "network" / "edges.csv", index=False)
    document = region_dict(
        code="330402",
        name="南湖区",
        level="county",
        province="浙江省",
        counties=[{"name": "南湖区", "adcode": "330402", "city": "嘉兴市", "city_code": "330400"}],
        outline=outline,
        network_description="南湖区 major roads cut from the bundled pack (test)",
        counts={"counties": 1, "towns": 13, "villages": 143, "facilities": 0},
        built_by="tests/test_region.py",
    )
    write_region_json(out / "region.json", document)
    return out


def test_a_county_pack_loads_with_its_own_bounds(nanhu_pack):
    region = load_region(nanhu_pack)
    assert region.county_names == ("南湖区",) and region.level == "county"
    jiaxing = Settings().region
    assert jiaxing.bounds[0] < region.bounds[0] and region.bounds[2] < jiaxing.bounds[2]


def test_cli_runs_on_another_region(nanhu_pack, tmp_path):
    runner = CliRunner()
    env = {"SKILLCIRCLE_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "c.csv"
    args = ["coverage", "--region", str(nanhu_pack), "--mode", "ebike", "--out", str(out)]
    result = runner.invoke(main, args, env=env)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out, dtype={"village_code": str}, encoding="utf-8-sig")
    assert len(table) == 143 and set(table["county"]) == {"南湖区"}
    assert "南湖区 major roads cut from the bundled pack" in result.output
    # a county of the bundled region is unknown in this one
    out = tmp_path / "e.xlsx"
    result = runner.invoke(
        main, ["export", "--region", str(nanhu_pack), "--county", "桐乡市", "--out", str(out)]
    )
    assert result.exit_code == 1 and not out.exists()
    assert "unknown county '桐乡市' in 南湖区; use all or one of 南湖区" in result.output
    # a village of 海宁市 lies outside the 南湖区 region (but inside Jiaxing's box)
    villages = tmp_path / "v.csv"
    villages.write_text("village_code,village_name,lon,lat\n1,许村,120.23,30.45\n", "utf-8")
    args = ["coverage", "--region", str(nanhu_pack), "--villages", str(villages), "--out", str(out)]
    result = runner.invoke(main, [*args[:-1], str(tmp_path / "x.csv")], env=env)
    assert result.exit_code == 1
    assert "is outside the region 南湖区 (330402)" in result.output


def test_cli_refuses_a_missing_region_in_one_line(tmp_path):
    out = tmp_path / "c.csv"
    result = CliRunner().invoke(
        main, ["coverage", "--region", str(tmp_path / "none"), "--out", str(out)]
    )
    assert result.exit_code == 1 and not out.exists()
    assert result.output.count("\n") == 1 and "region pack folder not found" in result.output
    env = {"SKILLCIRCLE_HOME": str(tmp_path)}
    result = CliRunner().invoke(
        main, ["coverage", "--region", "330211", "--out", str(out)], env=env
    )
    assert result.exit_code == 1 and "skillcircle region build 330211" in result.output


def test_web_app_serves_another_region(nanhu_pack, tmp_path):
    from web import create_app

    app = create_app(
        {
            "TESTING": True,
            "REGION": str(nanhu_pack),
            "DATABASE": str(tmp_path / "store.sqlite3"),
            "TILE_URL": "none",
        }
    )
    client = app.test_client()
    doc = client.get("/api/openapi.json").get_json()
    params = {p["name"]: p for p in doc["paths"]["/api/nearby"]["get"]["parameters"]}
    region = load_region(nanhu_pack)
    assert params["lon"]["schema"]["minimum"] == region.bounds[0]
    county = {p["name"]: p for p in doc["paths"]["/api/facilities"]["get"]["parameters"]}
    assert county["county"]["schema"]["enum"] == ["南湖区"]
    assert "南湖区30分钟职业技能培训圈地图" in client.get("/").get_data(as_text=True)
    assert client.get("/api/facilities?county=桐乡市").status_code == 400
    # 许村 (海宁市) is inside Jiaxing's bounds but outside this region's
    assert client.get("/api/nearby?lon=120.23&lat=30.45").status_code == 400
    assert client.get("/api/nearby?lon=120.76&lat=30.75").status_code == 200
    village = client.get("/api/villages?mode=walk").get_json()
    assert len(village["features"]) == 143
    assert client.get("/export/桐乡市.csv").status_code == 404


def test_a_store_of_another_region_is_refused(nanhu_pack, database):
    """Facilities of Jiaxing's store must not be served as 南湖区's."""
    from geo.facilities import load_facilities
    from web import create_app
    from web.store import Store

    store = Store(database)
    store.seed(load_facilities())
    with pytest.raises(RegionError, match=r"holds facilities of .* not in the region 南湖区") as e:
        create_app({"TESTING": True, "REGION": str(nanhu_pack), "DATABASE": database})
    assert str(e.value).startswith(f"{store.location}: ")  # a URL without its password
    assert "pg-test-secret" not in str(e.value)


# --------------------------------------------------------------------------- the wheel


@pytest.mark.slow
def test_a_wheel_install_runs_coverage_on_the_bundled_region(tmp_path):
    """A non-editable install (the wheel) carries the bundled pack: coverage runs with no
    SKILLCIRCLE_DATA, from a folder that is not the repository."""
    wheels = tmp_path / "wheels"
    source = tmp_path / "src"  # an in-tree build would leave build/ in the repository
    skip = shutil.ignore_patterns(
        ".*", "build", "*.egg-info", "__pycache__", "instance", "tests", "bench"
    )
    shutil.copytree(REPO, source, ignore=skip)
    build = subprocess.run(
        [*PIP, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)],
        capture_output=True,
        text=True,
    )
    if build.returncode != 0:
        pytest.skip(f"cannot build the wheel offline here: {build.stderr.strip()[-300:]}")
    (wheel,) = wheels.glob("skillcircle-*.whl")
    target = tmp_path / "site"
    subprocess.run(
        [*PIP, "install", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLCIRCLE_")}
    env |= {"PYTHONPATH": str(target), "SKILLCIRCLE_CACHE": str(tmp_path / "cache")}
    work = tmp_path / "work"
    work.mkdir()
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "import geo, skillcircle_data; print(geo.__file__); "
            "from geo.region import bundled_region_dir; print(bundled_region_dir())",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert all(Path(p).is_relative_to(target) for p in where), where
    out = work / "c.csv"
    run = subprocess.run(
        [sys.executable, "-m", "geo.cli", "coverage", "--mode", "drive", "--out", str(out)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    table = pd.read_csv(out, dtype={"village_code": str}, encoding="utf-8-sig")
    assert len(table) == 1202 and table["covered"].sum() > 1100
