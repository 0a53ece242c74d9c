"""Tests for geo/facilities.py: loading, validating, importing and writing facilities."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from openpyxl import Workbook

from geo._errors import FacilityDataError, InputDataError, SettingsError
from geo.coords import wgs84_to_bd09, wgs84_to_gcj02
from geo.facilities import (
    FACILITY_COLUMNS,
    facilities_to_geojson,
    import_registry,
    load_facilities,
)
from geo.settings import LAYERS, Settings


def facility(fid: str, layer: str, name: str, lon: float, lat: float, **props: Any) -> dict:
    return {
        "type": "Feature",
        "properties": {"id": fid, "layer": layer, "name": name} | props,
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
    }


FULL = facility(
    "TS-001",
    "technical_school",
    "嘉兴技师学院",
    120.7461,
    30.7721,
    layer_name="技工院校",
    county="南湖区",
    town="新兴街道",
    town_code="330402004",
    address="嘉兴市南湖区",
    phone="0573-1234567",
    trades=["电工", "焊工"],
    capacity=3000,
    source="人社局名录 2024",
    is_sample=True,
    location_quality="geocoded_amap",
    note="",
)
MINIMAL = facility("VS-001", "village_station", "新塍镇培训站", 120.54, 30.83)


def write_fc(path: Path, features: list[Any]) -> Path:
    document = {"type": "FeatureCollection", "features": features}
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return path


def load_one_bad(tmp_path: Path, bad: Any) -> str:
    """The message of loading [FULL, bad]."""
    path = write_fc(tmp_path / "facilities.geojson", [FULL, bad])
    with pytest.raises(FacilityDataError) as info:
        load_facilities(path)
    message = str(info.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- load


def test_load_full_and_minimal_features(tmp_path: Path) -> None:
    facilities = load_facilities(write_fc(tmp_path / "f.geojson", [FULL, MINIMAL]))
    assert list(facilities.columns) == [*FACILITY_COLUMNS, "geometry"]
    assert facilities.crs.to_epsg() == 4326
    first, second = facilities.iloc[0], facilities.iloc[1]
    assert first["id"] == "TS-001"
    assert first["trades"] == ["电工", "焊工"]
    assert first["capacity"] == 3000
    assert bool(first["is_sample"]) is True
    assert first["source"] == "人社局名录 2024"
    assert first["town_code"] == "330402004"
    assert (first.geometry.x, first.geometry.y) == (120.7461, 30.7721)
    # defaults for the minimal feature
    assert second["layer_name"] == LAYERS["village_station"]
    assert second["trades"] == []
    assert pd.isna(second["capacity"])
    assert bool(second["is_sample"]) is False
    assert second["source"] == "user_supplied"
    assert second["location_quality"] == "user_supplied"
    assert second["address"] == ""
    assert facilities["capacity"].dtype == "Int64"
    assert facilities["is_sample"].dtype == bool


def test_default_path_comes_from_settings(tmp_path: Path) -> None:
    write_fc(tmp_path / "facilities.geojson", [MINIMAL])
    frame = load_facilities(settings=Settings(data_dir=tmp_path), bounds=None)
    assert frame["id"].tolist() == ["VS-001"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FacilityDataError, match=r"facilities\.geojson: file not found; .*import"):
        load_facilities(tmp_path / "facilities.geojson")


def test_broken_json(tmp_path: Path) -> None:
    path = tmp_path / "f.geojson"
    path.write_text('{"type": "FeatureCollection", "features": [', encoding="utf-8")
    with pytest.raises(FacilityDataError, match=r"f\.geojson: broken JSON at line 1"):
        load_facilities(path)


def test_errors_are_input_data_errors(tmp_path: Path) -> None:
    # the CLI may catch the base class for every user file
    with pytest.raises(InputDataError):
        load_facilities(tmp_path / "none.geojson")


def test_not_a_feature_collection(tmp_path: Path) -> None:
    path = tmp_path / "f.geojson"
    path.write_text(json.dumps([FULL]), encoding="utf-8")
    with pytest.raises(FacilityDataError, match=r"not a GeoJSON FeatureCollection \(.*'list'\)"):
        load_facilities(path)


def test_non_point_geometry_names_feature_and_id(tmp_path: Path) -> None:
    bad = facility("B", "training_base", "实训基地", 120.7, 30.7)
    bad["geometry"] = {"type": "Polygon", "coordinates": [[[120, 30], [121, 30], [120, 31]]]}
    message = load_one_bad(tmp_path, bad)
    assert message.startswith("facilities.geojson feature 2 (id 'B'): geometry is a 'Polygon'")
    assert "Point" in message


@pytest.mark.parametrize("missing", ["id", "layer", "name"])
def test_missing_required_property(tmp_path: Path, missing: str) -> None:
    bad = facility("B", "training_base", "实训基地", 120.7, 30.7)
    del bad["properties"][missing]
    message = load_one_bad(tmp_path, bad)
    assert message.startswith("facilities.geojson feature 2")
    assert f"{missing} is missing or empty" in message


def test_duplicate_ids(tmp_path: Path) -> None:
    message = load_one_bad(tmp_path, facility("TS-001", "training_base", "另一个", 120.7, 30.7))
    assert message.startswith("facilities.geojson feature 2 (id 'TS-001'): id 'TS-001' repeats")
    assert "feature 1" in message


def test_unknown_layer_lists_valid_layers(tmp_path: Path) -> None:
    message = load_one_bad(tmp_path, facility("B", "school", "学校", 120.7, 30.7))
    assert "feature 2 (id 'B'): unknown layer 'school'; use one of " in message
    assert ", ".join(LAYERS) in message


def test_nan_coordinates(tmp_path: Path) -> None:
    message = load_one_bad(tmp_path, facility("B", "training_base", "x", float("nan"), 30.7))
    assert (
        "feature 2 (id 'B'): longitude/latitude (nan, 30.7) are missing or not numbers" in message
    )


def test_null_coordinates(tmp_path: Path) -> None:
    bad = facility("B", "training_base", "x", 0, 0)
    bad["geometry"]["coordinates"] = [None, None]
    assert "feature 2 (id 'B'): Point coordinates [None, None] are not numbers" in load_one_bad(
        tmp_path, bad
    )


def test_out_of_region_coordinates(tmp_path: Path) -> None:
    message = load_one_bad(tmp_path, facility("B", "training_base", "x", 113.3, 23.1))
    assert "feature 2 (id 'B'): point (113.3, 23.1) is outside the region 嘉兴市" in message
    assert "--crs gcj02" in message


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        ({"capacity": "many"}, "capacity 'many' is not a whole number"),
        ({"capacity": 2.5}, "capacity 2.5 is not a whole number"),
        ({"capacity": -1}, "capacity -1 is not a whole number"),
        ({"is_sample": "yes"}, "is_sample 'yes' is not true/false"),
        ({"trades": 5}, "trades 5 is not a list of names"),
    ],
)
def test_bad_optional_values(tmp_path: Path, props: dict, expected: str) -> None:
    bad = facility("B", "training_base", "x", 120.7, 30.7, **props)
    assert expected in load_one_bad(tmp_path, bad)


def test_all_problems_are_checked_before_raising(tmp_path: Path) -> None:
    features = [
        facility("A", "bogus", "x", 120.7, 30.7),
        FULL,
        facility("C", "training_base", "", 0.0, 0.0),
    ]
    with pytest.raises(FacilityDataError) as info:
        load_facilities(write_fc(tmp_path / "f.geojson", features))
    message = str(info.value)
    assert message.startswith("f.geojson: 3 problems | feature 1 (id 'A'): unknown layer 'bogus'")
    assert "feature 3 (id 'C'): name is missing or empty" in message
    assert "feature 3 (id 'C'): point (0.0, 0.0) is outside" in message


def test_bounds_none_accepts_anywhere(tmp_path: Path) -> None:
    path = write_fc(tmp_path / "f.geojson", [facility("A", "training_base", "x", 2.35, 48.85)])
    assert load_facilities(path, bounds=None).geometry.x.tolist() == [2.35]


# --------------------------------------------------------------------------- write


def test_geojson_round_trip(tmp_path: Path) -> None:
    original = load_facilities(write_fc(tmp_path / "in.geojson", [FULL, MINIMAL]))
    document = facilities_to_geojson(original)
    text = json.dumps(document, ensure_ascii=False, allow_nan=False)  # no NaN anywhere
    assert document["type"] == "FeatureCollection"
    props = document["features"][1]["properties"]
    assert list(props) == list(FACILITY_COLUMNS)
    assert props["capacity"] is None
    assert props["trades"] == []
    assert props["is_sample"] is False
    assert document["features"][0]["properties"]["capacity"] == 3000
    assert list(document["features"][0]["geometry"]["coordinates"]) == [120.7461, 30.7721]

    again_path = tmp_path / "out.geojson"
    again_path.write_text(text, encoding="utf-8")
    again = load_facilities(again_path)
    pd.testing.assert_frame_equal(pd.DataFrame(again), pd.DataFrame(original))


def test_geojson_is_wgs84_even_from_projected_frame(tmp_path: Path) -> None:
    original = load_facilities(write_fc(tmp_path / "in.geojson", [FULL]))
    document = facilities_to_geojson(original.to_crs("EPSG:32651"))
    lon, lat = document["features"][0]["geometry"]["coordinates"]
    assert lon == pytest.approx(120.7461, abs=1e-9)
    assert lat == pytest.approx(30.7721, abs=1e-9)


def test_to_geojson_needs_all_columns(tmp_path: Path) -> None:
    original = load_facilities(write_fc(tmp_path / "in.geojson", [FULL]))
    with pytest.raises(FacilityDataError, match="lacks column"):
        facilities_to_geojson(original.drop(columns=["phone"]))


# --------------------------------------------------------------------------- import


def write_text(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def write_xlsx(path: Path, rows: list[list[Any]]) -> Path:
    book = Workbook()
    sheet = book.worksheets[0]
    for row in rows:
        sheet.append(row)
    for cells in sheet.iter_rows():
        for cell in cells:
            if cell.data_type == "f":  # a name that looks like a formula is text in a registry
                cell.data_type = "s"
    book.save(path)
    return path


def metres_between(lon1: Any, lat1: Any, lon2: Any, lat2: Any) -> np.ndarray:
    a = gpd.GeoSeries(gpd.points_from_xy(lon1, lat1), crs="EPSG:4326").to_crs("EPSG:32651")
    b = gpd.GeoSeries(gpd.points_from_xy(lon2, lat2), crs="EPSG:4326").to_crs("EPSG:32651")
    return a.distance(b).to_numpy()


def test_import_english_csv(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "reg.csv",
        "name,lon,lat,trades,capacity,address,extra\n"
        "甲培训学校,120.75,30.75,电工、焊工,200,南湖路1号,ignored\n"
        '乙培训学校,120.76,30.76,"育婴员, 保育员；电工/电工",,,\n',
    )
    facilities = import_registry(path, "training_institution", "wgs84")
    assert list(facilities.columns) == [*FACILITY_COLUMNS, "geometry"]
    assert facilities["id"].tolist() == ["TI-IMP-0001", "TI-IMP-0002"]
    assert facilities["layer_name"].tolist() == ["职业培训机构"] * 2
    assert facilities["trades"].tolist() == [["电工", "焊工"], ["育婴员", "保育员", "电工"]]
    assert facilities["capacity"].tolist()[0] == 200
    assert pd.isna(facilities["capacity"].iloc[1])
    assert facilities["source"].tolist() == ["import:reg.csv"] * 2
    assert facilities["is_sample"].tolist() == [False, False]
    assert facilities["location_quality"].tolist() == ["registry_wgs84"] * 2
    assert facilities["address"].tolist() == ["南湖路1号", ""]
    assert facilities.geometry.x.tolist() == [120.75, 120.76]


def test_import_gbk_csv_with_chinese_headers(tmp_path: Path) -> None:
    text = (
        "编号,机构名称,经度,纬度,联系电话,县市区,乡镇/街道\n"
        "A-1,嘉善县职业技能培训中心,120.92,30.83,0573-8888,嘉善县,魏塘街道\n"
    )
    path = write_text(tmp_path / "名录.csv", text, "gbk")
    facilities = import_registry(path, "training_base", "WGS84")
    row = facilities.iloc[0]
    assert (row["id"], row["name"], row["phone"]) == ("A-1", "嘉善县职业技能培训中心", "0573-8888")
    assert (row["county"], row["town"]) == ("嘉善县", "魏塘街道")
    assert row["source"] == "import:名录.csv"


def test_import_undecodable_csv(tmp_path: Path) -> None:
    path = tmp_path / "reg.csv"
    path.write_bytes(b"name,lon,lat\n\x80\xff,120.7,30.7\n")
    with pytest.raises(FacilityDataError, match=r"reg\.csv: cannot decode.*UTF-8.*GBK"):
        import_registry(path, "training_base", "wgs84")


@pytest.mark.parametrize(
    ("crs", "forward"),
    [("gcj02", wgs84_to_gcj02), ("bd09", wgs84_to_bd09), ("BD-09", wgs84_to_bd09)],
)
def test_import_converts_to_wgs84_within_a_metre(tmp_path: Path, crs: str, forward: Any) -> None:
    true_lon = np.array([120.7555, 121.0123, 120.4871])
    true_lat = np.array([30.7466, 30.6902, 30.5311])
    lon, lat = forward(true_lon, true_lat)
    rows = "".join(
        f"站{i},{float(x)!r},{float(y)!r}\n" for i, (x, y) in enumerate(zip(lon, lat, strict=True))
    )
    path = write_text(tmp_path / "reg.csv", "名称,经度,纬度\n" + rows)
    facilities = import_registry(path, "village_station", crs)
    error_m = metres_between(facilities.geometry.x, facilities.geometry.y, true_lon, true_lat)
    assert error_m.max() < 1.0
    # and the conversion did something: the raw input is hundreds of metres away
    assert metres_between(lon, lat, true_lon, true_lat).min() > 300
    assert facilities["location_quality"].iloc[0] == f"registry_{crs.lower().replace('-', '')}"


def test_import_chinese_header_xlsx(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "技工院校.xlsx",
        [
            ["编号", "名称", "经度（GCJ-02）", "纬度", "地址", "电话", "培训工种", "区县", "乡镇"],
            [
                "JX-01",
                "嘉兴技师学院",
                120.7461,
                30.7721,
                "南湖区",
                "0573-1",
                "电工;焊工",
                "南湖区",
                "",
            ],
            [None, "海宁技工学校", 120.6801, 30.5102, None, None, "数控车工", "海宁市", "海洲街道"],
            ["", '=HYPERLINK("x")', 120.95, 30.70, "", "", "", "平湖市", ""],
        ],
    )
    facilities = import_registry(path, "technical_school", "wgs84")
    assert facilities["id"].tolist() == ["JX-01", "TS-IMP-0002", "TS-IMP-0003"]
    assert facilities["name"].tolist() == ["嘉兴技师学院", "海宁技工学校", '=HYPERLINK("x")']
    assert facilities["trades"].tolist() == [["电工", "焊工"], ["数控车工"], []]
    assert facilities["county"].tolist() == ["南湖区", "海宁市", "平湖市"]
    assert facilities["town"].tolist() == ["", "海洲街道", ""]
    assert facilities["address"].tolist() == ["南湖区", "", ""]
    assert facilities.geometry.x.tolist() == [120.7461, 120.6801, 120.95]
    assert facilities["source"].iloc[0] == "import:技工院校.xlsx"


def test_import_xlsx_reports_rows_as_excel_shows_them(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "reg.xlsx",
        [
            ["名称", "经度", "纬度", "年培训能力"],
            ["好", 120.75, 30.75, 100],
            ["坏容量", 120.75, 30.75, "很多"],
            ["无坐标", None, 30.75, 10],
            ["好二", 120.75, 30.75, 5],
            ["广州", 113.26, 23.13, None],
        ],
    )
    with pytest.raises(FacilityDataError) as info:
        import_registry(path, "training_base", "gcj02")
    message = str(info.value)
    assert message.startswith("reg.xlsx: 3 problems | row 3: capacity '很多' is not a whole number")
    assert "| row 4: longitude/latitude ('', '30.75') are missing or not numbers" in message
    assert "| row 6: point (" in message
    assert "read as gcj02; is --crs right" in message
    assert "row 2" not in message
    assert "row 5" not in message


def test_import_duplicate_ids(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "reg.csv", "ID,name,lon,lat\nX1,a,120.7,30.7\nX2,b,120.7,30.7\nX1,c,120.7,30.7\n"
    )
    with pytest.raises(FacilityDataError, match=r"reg\.csv row 4: id 'X1' repeats row 2"):
        import_registry(path, "training_base", "wgs84")


def test_import_generated_id_clashing_with_given_id(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "reg.csv", "编号,name,lon,lat\n,a,120.7,30.7\nTB-IMP-0001,b,120.7,30.7\n"
    )
    with pytest.raises(FacilityDataError, match=r"row 3: id 'TB-IMP-0001' repeats row 2"):
        import_registry(path, "training_base", "wgs84")


def test_import_id_prefix(tmp_path: Path) -> None:
    path = write_text(tmp_path / "reg.csv", "name,lon,lat\na,120.7,30.7\n")
    facilities = import_registry(path, "training_base", "wgs84", id_prefix="HN")
    assert facilities["id"].tolist() == ["HN-IMP-0001"]


def test_import_layer_column_accepts_keys_and_labels(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "reg.csv",
        "类别,name,lon,lat\n技能大师工作室,a,120.7,30.7\n,b,120.7,30.7\nexperience_site,c,120.7,30.7\n",
    )
    facilities = import_registry(path, "training_base", "wgs84")
    assert facilities["layer"].tolist() == ["master_studio", "training_base", "experience_site"]
    assert facilities["id"].tolist() == ["MS-IMP-0001", "TB-IMP-0002", "ES-IMP-0003"]


def test_import_unknown_layer_in_a_row(tmp_path: Path) -> None:
    path = write_text(tmp_path / "reg.csv", "layer,name,lon,lat\n学校,a,120.7,30.7\n")
    with pytest.raises(
        FacilityDataError, match=r"reg\.csv row 2: unknown layer '学校'; use one of"
    ):
        import_registry(path, "training_base", "wgs84")


def test_import_unknown_layer_or_crs_argument(tmp_path: Path) -> None:
    path = write_text(tmp_path / "reg.csv", "name,lon,lat\na,120.7,30.7\n")
    with pytest.raises(SettingsError, match="unknown layer 'school'; use one of technical_school"):
        import_registry(path, "school", "wgs84")
    with pytest.raises(SettingsError, match="unknown coordinate system 'utm'; use one of wgs84"):
        import_registry(path, "training_base", "utm")


def test_import_missing_required_columns_lists_aliases(tmp_path: Path) -> None:
    path = write_text(tmp_path / "reg.csv", "名称,x,y\na,120.7,30.7\n")
    with pytest.raises(FacilityDataError) as info:
        import_registry(path, "training_base", "wgs84")
    message = str(info.value)
    assert message.startswith("reg.csv: missing column(s) lon, lat; add a header")
    assert "经度" in message
    assert "纬度" in message


def test_import_two_columns_meaning_the_same(tmp_path: Path) -> None:
    path = write_text(tmp_path / "reg.csv", "名称,机构名称,lon,lat\na,b,120.7,30.7\n")
    with pytest.raises(FacilityDataError, match="columns '名称' and '机构名称' both mean name"):
        import_registry(path, "training_base", "wgs84")


def test_import_geojson_registry_in_gcj02(tmp_path: Path) -> None:
    lon, lat = wgs84_to_gcj02(120.7555, 30.7466)
    feature = {
        "type": "Feature",
        "properties": {"机构名称": "职业体验馆", "经度": 0, "工种": ["茶艺师"]},
        "geometry": {"type": "Point", "coordinates": [float(lon), float(lat)]},
    }
    path = write_fc(tmp_path / "reg.geojson", [feature])
    facilities = import_registry(path, "experience_site", "gcj02")
    assert facilities["name"].tolist() == ["职业体验馆"]
    assert facilities["trades"].tolist() == [["茶艺师"]]
    error_m = metres_between(facilities.geometry.x, facilities.geometry.y, [120.7555], [30.7466])
    assert error_m[0] < 1.0


def test_import_unknown_suffix_and_missing_file(tmp_path: Path) -> None:
    path = write_text(tmp_path / "reg.xls", "x")
    with pytest.raises(FacilityDataError, match=r"reg\.xls: unknown registry file type '\.xls'"):
        import_registry(path, "training_base", "wgs84")
    with pytest.raises(FacilityDataError, match="file not found"):
        import_registry(tmp_path / "none.csv", "training_base", "wgs84")


def test_import_broken_xlsx(tmp_path: Path) -> None:
    path = write_text(tmp_path / "reg.xlsx", "this is not a zip file")
    with pytest.raises(FacilityDataError, match=r"reg\.xlsx: cannot read the workbook"):
        import_registry(path, "training_base", "wgs84")
