"""The skillcircle CLI end to end on the bundled data, and every bad-input case."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import openpyxl
import osmnx as ox
import pandas as pd
import pytest
import shapely
from click.testing import CliRunner
from pyproj import Geod, Transformer

from geo.cli import main
from geo.coverage import coverage_columns
from geo.settings import LAYERS, Settings

from synthetic import write_osm_grid

REPO = Path(__file__).resolve().parents[1]


def sample_cell() -> str:
    """What a CSV's sample_facilities column starts with, counted from the bundled file."""
    features = json.loads((REPO / "data" / "facilities.geojson").read_text(encoding="utf-8"))
    flags = [f["properties"]["is_sample"] for f in features["features"]]
    return f"{sum(flags)} of {len(flags)} facilities are SAMPLE data"


@pytest.fixture
def runner(tmp_path, monkeypatch) -> CliRunner:
    monkeypatch.setenv("SKILLCIRCLE_CACHE", str(tmp_path / "cache"))
    return CliRunner()


def run(runner: CliRunner, *args: str):
    return runner.invoke(main, list(args), catch_exceptions=False)


@pytest.mark.parametrize("mode", ["walk", "ebike", "drive"])
def test_coverage_all_modes_on_bundled_data(runner, tmp_path, mode):
    out = tmp_path / f"cov_{mode}.csv"
    result = run(runner, "coverage", "--mode", mode, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "bundled_coarse" in result.output  # the network source is announced
    table = pd.read_csv(out, dtype={"village_code": str}, encoding="utf-8-sig")
    assert len(table) == 1202
    assert list(table.columns[: len(coverage_columns())]) == coverage_columns()
    assert table["village_code"].str.fullmatch(r"\d{12}").all()
    assert table["village_code"].is_unique
    minutes = table[[f"{layer}_minutes" for layer in LAYERS]]
    assert (
        minutes.min(axis=1, skipna=True).fillna(-1).round(2) == table["any_minutes"].fillna(-1)
    ).all()
    assert (table["covered"] == (table["any_minutes"] <= 30)).all()
    assert 0 < table["covered"].sum() <= 1202
    assert table["network_source"].str.startswith("bundled_coarse").all()
    assert table["sample_facilities"].str.startswith(sample_cell()).all()


def test_faster_modes_cover_more(runner, tmp_path):
    covered = {}
    for mode in ("walk", "ebike", "drive"):
        out = tmp_path / f"{mode}.csv"
        assert run(runner, "coverage", "--mode", mode, "--out", str(out)).exit_code == 0
        covered[mode] = pd.read_csv(out, encoding="utf-8-sig")["covered"].sum()
    assert covered["walk"] < covered["ebike"] <= covered["drive"]


def test_coverage_xlsx_and_geojson_carry_metadata(runner, tmp_path):
    xlsx = tmp_path / "c.xlsx"
    assert run(runner, "coverage", "--mode", "ebike", "--out", str(xlsx)).exit_code == 0
    book = openpyxl.load_workbook(xlsx)
    notes = {row[0]: row[1] for row in book["说明"].iter_rows(values_only=True)}
    assert any("bundled_coarse" in str(v) for v in notes.values())
    assert any("SAMPLE" in str(v) for v in notes.values())
    gj = tmp_path / "c.geojson"
    assert run(runner, "coverage", "--mode", "ebike", "--out", str(gj)).exit_code == 0
    doc = json.loads(gj.read_text(encoding="utf-8"))
    assert len(doc["features"]) == 1202
    assert "bundled_coarse" in json.dumps(doc["metadata"], ensure_ascii=False)


def test_isochrones_union_contains_covered_villages(runner, tmp_path):
    iso = tmp_path / "iso.geojson"
    cov = tmp_path / "cov.csv"
    args = ["--mode", "ebike", "--minutes", "30"]
    result = run(
        runner, "isochrones", "--layer", "village_station", *args, "--union", "--out", str(iso)
    )
    assert result.exit_code == 0, result.output
    assert run(runner, "coverage", *args, "--out", str(cov)).exit_code == 0
    poly = gpd.read_file(iso).geometry.iloc[0]
    assert poly.is_valid
    table = pd.read_csv(cov, encoding="utf-8-sig")
    pts = gpd.GeoSeries(gpd.points_from_xy(table["lon"], table["lat"]), crs="EPSG:4326")
    inside = pts.within(poly).to_numpy()
    within = (table["village_station_minutes"] <= 30).to_numpy()
    mismatch = table.loc[inside != within, "village_station_minutes"]
    # only villages at the threshold can differ (polygonised circles)
    assert ((mismatch - 30).abs() < 0.3).all(), mismatch


def test_isochrones_per_facility(runner, tmp_path):
    iso = tmp_path / "iso.geojson"
    result = run(
        runner,
        "isochrones",
        "--layer",
        "training_base",
        "--mode",
        "drive",
        "--minutes",
        "15",
        "--out",
        str(iso),
    )
    assert result.exit_code == 0, result.output
    frame = gpd.read_file(iso)
    assert len(frame) == 10 and frame["id"].is_unique and frame.geometry.is_valid.all()


def test_times_matrix(runner, tmp_path):
    a = tmp_path / "a.csv"
    b = tmp_path / "b.csv"
    a.write_text("id,lon,lat\nv1,120.755,30.746\nv2,120.95,30.70\n", encoding="utf-8")
    b.write_text("id,lon,lat\nf1,120.76,30.75\nf2,121.0,30.70\n", encoding="utf-8")
    out = tmp_path / "t.csv"
    result = run(
        runner, "times", "--mode", "drive", "--from", str(a), "--to", str(b), "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    t = pd.read_csv(out, encoding="utf-8-sig")
    assert list(t.columns) == ["origin_id", "target_id", "minutes", "metres", "network_source"]
    pairs = {(o, d): m for o, d, m, _, _ in t.itertuples(index=False)}
    assert pairs[("v1", "f1")] < pairs[("v1", "f2")]
    assert pairs[("v2", "f2")] < pairs[("v2", "f1")]
    # route metres grow with the minutes on this one-speed (coarse) network
    ordered = t.sort_values("minutes")
    assert ordered["metres"].is_monotonic_increasing and (t["metres"] > 0).all()


@pytest.mark.parametrize("by", ["county", "town"])
def test_stats(runner, tmp_path, by):
    out = tmp_path / f"s_{by}.csv"
    assert run(runner, "stats", "--by", by, "--mode", "ebike", "--out", str(out)).exit_code == 0
    s = pd.read_csv(out, encoding="utf-8-sig")
    assert s["villages"].sum() == 1202
    assert len(s) == (7 if by == "county" else 72)
    assert s["sample_facilities"].str.startswith(sample_cell()).all()
    if by == "county":
        assert s["population_2020"].sum() == 5400868


def test_import_gcj02_csv(runner, tmp_path):
    from geo.coords import wgs84_to_gcj02

    glon, glat = wgs84_to_gcj02(120.76, 30.75)
    src = tmp_path / "reg.csv"
    src.write_bytes(
        f"名称,经度,纬度,工种\n南湖培训中心,{float(glon):.7f},{float(glat):.7f},电工、焊工\n".encode(
            "gbk"
        )
    )
    out = tmp_path / "imp.geojson"
    result = run(
        runner,
        "import",
        str(src),
        "--layer",
        "training_institution",
        "--crs",
        "gcj02",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    feat = json.loads(out.read_text(encoding="utf-8"))["features"][0]
    lon, lat = feat["geometry"]["coordinates"]
    assert abs(lon - 120.76) < 1e-5 and abs(lat - 30.75) < 1e-5
    assert feat["properties"]["trades"] == ["电工", "焊工"]


# ----------------------------------------------------------------------------- bad input


def bad(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def fac_doc(*features: dict) -> str:
    return json.dumps({"type": "FeatureCollection", "features": list(features)}, ensure_ascii=False)


def feature(
    fid: str, layer: str = "training_base", lon: float = 120.75, lat: float = 30.75
) -> dict:
    return {
        "type": "Feature",
        "properties": {"id": fid, "layer": layer, "name": f"设施{fid}"},
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
    }


BAD_FACILITIES = {
    "missing": None,
    "broken_json": "{not json",
    "duplicate_ids": fac_doc(feature("A"), feature("A")),
    "unknown_layer": fac_doc(feature("A", layer="school")),
    "out_of_region": fac_doc(feature("A", lon=116.4, lat=39.9)),
    "nan": '{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"id":"A",'
    '"layer":"training_base","name":"x"},"geometry":{"type":"Point","coordinates":[NaN,30.7]}}]}',
}


@pytest.mark.parametrize("case", sorted(BAD_FACILITIES))
def test_bad_facilities_file(runner, tmp_path, case):
    content = BAD_FACILITIES[case]
    path = tmp_path / "f.geojson" if content is None else bad(tmp_path, "f.geojson", content)
    out = tmp_path / "out.csv"
    result = runner.invoke(main, ["coverage", "--facilities", str(path), "--out", str(out)])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "f.geojson" in lines[0], result.output
    assert not out.exists()


BAD_VILLAGES = {
    "missing_columns": "code,name\n1,a\n",
    "wrong_encoding": b"village_code,village_name,lon,lat\n330402001001,\xff\xfe\xfa,120.7,30.7\n",
    "nan_coords": "village_code,village_name,lon,lat\n330402001001,甲村,,30.7\n",
    "duplicate_codes": "village_code,village_name,lon,lat\n1,甲,120.7,30.7\n1,乙,120.71,30.7\n",
}


@pytest.mark.parametrize("case", sorted(BAD_VILLAGES))
def test_bad_villages_file(runner, tmp_path, case):
    path = bad(tmp_path, "v.csv", BAD_VILLAGES[case])
    out = tmp_path / "out.xlsx"
    result = runner.invoke(main, ["coverage", "--villages", str(path), "--out", str(out)])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "v.csv" in lines[0], result.output
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["coverage", "--mode", "bike", "--out", "x.csv"], "bike"),
        (["isochrones", "--layer", "school", "--out", "x.geojson"], "school"),
        (["coverage", "--out", "x.pdf"], "x.pdf"),
        (["coverage", "--osm", "nowhere.osm", "--out", "x.csv"], "nowhere.osm"),
        (
            ["times", "--from", "nowhere.csv", "--to", "nowhere.csv", "--out", "t.csv"],
            "nowhere.csv",
        ),
    ],
)
def test_bad_arguments(runner, tmp_path, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(main, args)
    assert result.exit_code != 0
    assert needle in result.output and "Traceback" not in result.output
    assert not any(tmp_path.glob("x.*")) and not (tmp_path / "t.csv").exists()


def test_existing_output_survives_a_failed_run(runner, tmp_path):
    out = tmp_path / "keep.csv"
    out.write_text("old", encoding="utf-8")
    path = bad(tmp_path, "f.geojson", "{broken")
    result = runner.invoke(main, ["coverage", "--facilities", str(path), "--out", str(out)])
    assert result.exit_code != 0
    assert out.read_text(encoding="utf-8") == "old"


def test_help_is_bilingual(runner):
    result = run(runner, "coverage", "--help")
    assert "出行方式" in result.output and "travel mode" in result.output


def test_trade_filter_in_coverage_and_stats(runner, tmp_path):
    all_out, weld_out = tmp_path / "all.csv", tmp_path / "weld.csv"
    assert run(runner, "coverage", "--mode", "ebike", "--out", str(all_out)).exit_code == 0
    result = run(runner, "coverage", "--mode", "ebike", "--trade", "焊工", "--out", str(weld_out))
    assert result.exit_code == 0, result.output
    everything = pd.read_csv(all_out, encoding="utf-8-sig")
    welding = pd.read_csv(weld_out, encoding="utf-8-sig")
    # fewer facilities teach welding: never nearer than the nearest facility of any kind
    assert (welding["any_minutes"].fillna(1e9) >= everything["any_minutes"] - 1e-9).all()
    assert welding["covered"].sum() < everything["covered"].sum()
    stats = tmp_path / "s.csv"
    assert (
        run(runner, "stats", "--mode", "ebike", "--trade", "焊工", "--out", str(stats)).exit_code
        == 0
    )
    assert pd.read_csv(stats, encoding="utf-8-sig")["covered"].sum() == welding["covered"].sum()
    bad = runner.invoke(main, ["coverage", "--trade", "火箭工", "--out", str(tmp_path / "x.csv")])
    assert bad.exit_code == 1 and "火箭工" in bad.output


def test_warns_when_the_osm_file_misses_the_villages(runner, tmp_path):
    grid = Path(__file__).resolve().parent / "fixtures" / "grid.osm"  # 1 km² near 嘉兴 centre
    out = tmp_path / "g.csv"
    result = runner.invoke(main, ["coverage", "--osm", str(grid), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "警告 warning" in result.output and "right area" in result.output
    table = pd.read_csv(out, encoding="utf-8-sig")
    assert (table["nearest_road_m"] > 500).sum() > 1100
    quiet = runner.invoke(main, ["coverage", "--out", str(tmp_path / "c.csv")])
    assert "警告" not in quiet.output  # the bundled network reaches the villages


# ----------------------------------------------------------------------------- outside Jiaxing

#: West ends of synthetic streets (and south-west corners of grids) far from China.
ABROAD = {"Helsinki": (24.90, 60.16), "Wellington": (174.77, -41.29)}


def grid_point(lon0: float, lat0: float, east_m: float, north_m: float) -> tuple[float, float]:
    """The point ``east_m``/``north_m`` from a grid's south-west node (as the grid is drawn)."""
    geod = Geod(ellps="WGS84")
    _, lat, _ = geod.fwd(lon0, lat0, 0.0, north_m)
    lon, _, _ = geod.fwd(lon0, lat, 90.0, east_m)
    return round(lon, 7), round(lat, 7)


def street(tmp_path: Path, city: str) -> Path:
    """One straight 1 km street (nodes 1-6, 200 m apart) at ``ABROAD[city]``."""
    return write_osm_grid(tmp_path / f"{city}.osm", *ABROAD[city], cols=6, rows=1)


def reference_minutes(osm: Path, origin_node: int, target: tuple[float, float]) -> float:
    """The snapping model by hand for an origin on a node of a street: the target joins
    its nearest street segment at the perpendicular foot (a straight leg at the access
    speed, in the local UTM zone), and the trip runs along the street to that foot
    (osmnx lengths, networkx Dijkstra)."""
    settings = Settings()
    graph = ox.graph_from_xml(osm, simplify=False, retain_all=True, bidirectional=False)
    road = nx.single_source_dijkstra_path_length(graph, origin_node, weight="length")
    point = gpd.GeoSeries([shapely.Point(target)], crs="EPSG:4326")
    to_utm = Transformer.from_crs("EPSG:4326", point.estimate_utm_crs(), always_xy=True)
    p = shapely.Point(to_utm.transform(*target))
    walk, access = settings.walk_kmh / 3.6, settings.access_kmh["walk"] / 3.6
    segments = []
    for a, b, data in graph.edges(data=True):
        line = shapely.LineString(
            [to_utm.transform(graph.nodes[n]["x"], graph.nodes[n]["y"]) for n in (a, b)]
        )
        segments.append((line.distance(p), line.project(p) / line.length, a, data["length"]))
    leg = min(segments)[0]
    assert leg <= settings.access_max_m_osm
    best = min(
        road.get(a, np.inf) / walk + t * length / walk
        for d, t, a, length in segments
        if d <= leg + 1e-6  # both directions of the nearest segment
    )
    return (best + leg / access) / 60


def write_points(path: Path, points: dict[str, tuple[float, float]]) -> Path:
    rows = "".join(f"{key},{lon},{lat}\n" for key, (lon, lat) in points.items())
    path.write_text("id,lon,lat\n" + rows, encoding="utf-8")
    return path


@pytest.mark.parametrize("city", sorted(ABROAD))
def test_times_on_a_network_outside_china(runner, tmp_path, city):
    lon0, lat0 = ABROAD[city]
    osm = street(tmp_path, city)
    # origins on nodes 1 (west end) and 3 (400 m east); targets off the street
    origins = {"west": (lon0, lat0), "mid": grid_point(lon0, lat0, 400, 0)}
    targets = {"ne": grid_point(lon0, lat0, 900, 100), "sw": grid_point(lon0, lat0, 100, -120)}
    a = write_points(tmp_path / "a.csv", origins)
    b = write_points(tmp_path / "b.csv", targets)
    out = tmp_path / "t.csv"
    args = ["times", "--osm", str(osm), "--from", str(a), "--to", str(b), "--mode", "walk"]
    result = run(runner, *args, "--out", str(out))
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out, encoding="utf-8-sig")
    got = {(o, t): m for o, t, m in table[["origin_id", "target_id", "minutes"]].itertuples(False)}
    assert set(got) == {(o, t) for o in origins for t in targets}
    for (origin, target), minutes in got.items():
        node = 1 if origin == "west" else 3
        want = reference_minutes(osm, node, targets[target])
        assert minutes == pytest.approx(want, abs=0.006), (origin, target)
    # west -> ne: 900 m of street, then 100 m straight off it, walking at 5 km/h
    assert got[("west", "ne")] == pytest.approx((900 + 100) / (5000 / 60), rel=0.005)


def test_a_point_outside_the_network_is_one_line_and_no_file(runner, tmp_path):
    lon0, lat0 = ABROAD["Helsinki"]
    osm = write_osm_grid(tmp_path / "hel.osm", lon0, lat0)
    a = write_points(tmp_path / "a.csv", {"sw": (lon0, lat0)})
    # 3 km east of the grid (1 km wide): beyond its nodes + 2 km
    b = write_points(
        tmp_path / "b.csv", {"ok": (lon0, lat0), "far": grid_point(lon0, lat0, 4000, 0)}
    )
    out = tmp_path / "t.csv"
    args = ["times", "--osm", str(osm), "--from", str(a), "--to", str(b), "--out", str(out)]
    result = runner.invoke(main, args)
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert lines[0].startswith("错误 error: b.csv row 3: point (")
    assert "is outside the road network's area (lon 24.8" in lines[0]
    assert "GCJ-02" in lines[0] and "OSM extract (--osm) that covers the point" in lines[0]
    assert not out.exists()
    # 1.5 km east of the grid is still inside its area (nodes + 2 km)
    near = write_points(tmp_path / "n.csv", {"near": grid_point(lon0, lat0, 2500, 0)})
    args = ["times", "--osm", str(osm), "--from", str(a), "--to", str(near), "--out", str(out)]
    assert run(runner, *args).exit_code == 0 and out.exists()


def test_without_osm_a_point_in_helsinki_is_outside_jiaxing(runner, tmp_path):
    a = write_points(tmp_path / "a.csv", {"hel": (24.94, 60.17)})
    b = write_points(tmp_path / "b.csv", {"jx": (120.76, 30.75)})
    out = tmp_path / "t.csv"
    result = runner.invoke(main, ["times", "--from", str(a), "--to", str(b), "--out", str(out)])
    assert result.exit_code == 1
    outside = "a.csv row 2: point (24.94, 60.17) is outside the region 嘉兴市 (330400)"
    assert outside in result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()


def test_coverage_abroad_needs_its_own_villages_and_facilities(runner, tmp_path):
    lon0, lat0 = ABROAD["Helsinki"]
    osm = street(tmp_path, "Helsinki")
    m_lon, m_lat = grid_point(lon0, lat0, 400, 0)
    villages = tmp_path / "v.csv"
    villages.write_text(
        f"village_code,village_name,lon,lat\n1,Kallio,{lon0},{lat0}\n2,Töölö,{m_lon},{m_lat}\n",
        encoding="utf-8",
    )
    f_lon, f_lat = grid_point(lon0, lat0, 900, 100)
    facilities = bad(tmp_path, "f.geojson", fac_doc(feature("HEL-1", lon=f_lon, lat=f_lat)))
    out = tmp_path / "c.csv"
    base = ["coverage", "--osm", str(osm), "--mode", "walk", "--out", str(out)]
    for given, needle in [
        ([], "pass --villages FILE and --facilities FILE for that area"),
        (["--villages", str(villages)], "facilities of 嘉兴市 are used by default; pass --fac"),
        (["--facilities", str(facilities)], "villages of 嘉兴市 are used by default; pass --vil"),
    ]:
        result = runner.invoke(main, [*base, *given])
        assert result.exit_code == 1 and needle in result.output, result.output
        assert "outside the region 嘉兴市 (330400)" in result.output and not out.exists()
    result = run(runner, *base, "--villages", str(villages), "--facilities", str(facilities))
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out, dtype={"village_code": str}, encoding="utf-8-sig")
    minutes = dict(zip(table["village_code"], table["training_base_minutes"], strict=True))
    assert minutes["1"] == pytest.approx(reference_minutes(osm, 1, (f_lon, f_lat)), abs=0.011)
    assert minutes["2"] == pytest.approx(reference_minutes(osm, 3, (f_lon, f_lat)), abs=0.011)


def test_isochrone_areas_abroad_are_measured_in_the_local_utm_zone(runner, tmp_path):
    lon0, lat0 = ABROAD["Helsinki"]
    osm = write_osm_grid(tmp_path / "hel.osm", lon0, lat0)
    f_lon, f_lat = grid_point(lon0, lat0, 500, 500)
    facilities = bad(tmp_path, "f.geojson", fac_doc(feature("HEL-1", lon=f_lon, lat=f_lat)))
    out = tmp_path / "i.geojson"
    args = ["isochrones", "--layer", "training_base", "--mode", "walk", "--minutes", "10"]
    result = run(
        runner, *args, "--osm", str(osm), "--facilities", str(facilities), "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    frame = gpd.read_file(out)
    geodesic_km2 = abs(Geod(ellps="WGS84").geometry_area_perimeter(frame.geometry.iloc[0])[0]) / 1e6
    assert frame["area_km2"].iloc[0] == pytest.approx(geodesic_km2, rel=2e-3)  # 51N: +32 %
    without = runner.invoke(
        main, [*args, "--osm", str(osm), "--out", str(out.with_name("x.geojson"))]
    )
    assert without.exit_code == 1 and "pass --facilities FILE" in without.output


@pytest.mark.parametrize("command", ["stats", "export", "plan", "posters"])
def test_commands_on_the_bundled_counties_refuse_a_foreign_network(runner, tmp_path, command):
    osm = write_osm_grid(tmp_path / "hel.osm", *ABROAD["Helsinki"])
    suffix = {"stats": ".csv", "export": ".xlsx", "plan": ".csv", "posters": ".pdf"}[command]
    out = tmp_path / f"o{suffix}"
    county = [] if command == "stats" else ["--county", "南湖区"]
    result = runner.invoke(main, [command, *county, "--osm", str(osm), "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert f"`skillcircle {command}` works on the region's villages" in result.output
    assert "pass an OSM extract of 嘉兴市" in result.output and not out.exists()


def test_the_network_is_loaded_once_before_the_inputs(runner, tmp_path, monkeypatch):
    import geo.network

    calls = []
    real = geo.network.load_network
    monkeypatch.setattr(
        geo.network, "load_network", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    lon0, lat0 = ABROAD["Helsinki"]
    osm = street(tmp_path, "Helsinki")
    v = tmp_path / "v.csv"
    v.write_text(f"village_code,village_name,lon,lat\n1,Kallio,{lon0},{lat0}\n", encoding="utf-8")
    f = bad(tmp_path, "f.geojson", fac_doc(feature("H", lon=lon0, lat=lat0)))
    out = tmp_path / "c.csv"
    args = ["coverage", "--osm", str(osm), "--villages", str(v), "--facilities", str(f)]
    assert run(runner, *args, "--out", str(out)).exit_code == 0
    assert calls == [1]


def test_an_extract_larger_than_the_region_is_clipped_to_it(runner, tmp_path):
    """A file with streets in 南湖区 and in 杭州 (30 km beyond Jiaxing) is read only around
    the region: the far streets never become part of the network."""
    import re

    from geo.network import load_network
    from geo.osmclip import clip_area
    from geo.places import load_city
    from geo.settings import Settings

    near = write_osm_grid(tmp_path / "near.osm", 120.75, 30.75).read_text(encoding="utf-8")
    far = write_osm_grid(tmp_path / "far.osm", 119.90, 30.30).read_text(encoding="utf-8")

    def shifted(line: str) -> str:
        return re.sub(r'(id|ref)="(\d+)"', lambda m: f'{m[1]}="{int(m[2]) + 100000}"', line)

    def lines(text: str, kind: str) -> list[str]:
        return re.findall(rf"  <{kind} .*", text)

    body = [  # OSM files list nodes, then ways, each by id
        *lines(near, "node"),
        *map(shifted, lines(far, "node")),
        *lines(near, "way"),
        *map(shifted, lines(far, "way")),
    ]
    both = "\n".join([*near.splitlines()[:2], *body, "</osm>"]) + "\n"
    osm = tmp_path / "both.osm"
    osm.write_text(both, encoding="utf-8")
    settings = Settings(cache_dir=tmp_path / "cache")
    whole = load_network(settings, osm)
    clip = clip_area(load_city(settings=settings), settings.clip_halo_m)
    clipped = load_network(settings, osm, clip=clip)
    assert whole.n_nodes == 72 and clipped.n_nodes == 36 and clipped.lon.min() > 120.7
    out = tmp_path / "s.csv"
    result = runner.invoke(main, ["stats", "--osm", str(osm), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "clipped to the region + halo" in result.output
