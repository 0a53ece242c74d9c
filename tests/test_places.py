"""Tests for geo/places.py: villages from GeoJSON/CSV and the boundary readers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from geo._errors import InputDataError
from geo._validate import Area
from geo.places import (
    VILLAGE_COLUMNS,
    load_city,
    load_counties,
    load_points,
    load_towns,
    load_villages,
)
from geo.settings import Settings


def village_feature(code: str, name: str, lon: float, lat: float, **props: Any) -> dict:
    return {
        "type": "Feature",
        "properties": {"village_code": code, "village_name": name, "lon": lon, "lat": lat} | props,
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
    }


def write_fc(path: Path, features: list[dict]) -> Path:
    path.write_text(
        json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False),
        encoding="utf-8",
    )
    return path


def write_csv(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


GOOD_FEATURES = [
    village_feature(
        "330402007024",
        "百福弄社区居委会",
        120.7561,
        30.7522,
        town_code="330402007",
        town="建设街道",
        county="南湖区",
        ur_code="111",
        location_quality="town_centroid",
        source="modood 2023",
    ),
    village_feature("330411101201", "新塍村", 120.5402, 30.8311, town="新塍镇", county="秀洲区"),
]


def test_geojson_villages_keep_order_codes_and_properties(tmp_path: Path) -> None:
    path = write_fc(tmp_path / "villages.geojson", GOOD_FEATURES)
    villages = load_villages(path)
    assert list(villages.columns[: len(VILLAGE_COLUMNS)]) == list(VILLAGE_COLUMNS)
    assert villages.columns[-1] == "geometry"
    assert villages.crs.to_epsg() == 4326
    assert villages["village_code"].tolist() == ["330402007024", "330411101201"]
    assert villages["village_name"].tolist() == ["百福弄社区居委会", "新塍村"]
    assert villages["town"].tolist() == ["建设街道", "新塍镇"]
    assert villages["town_code"].tolist() == ["330402007", ""]
    assert villages["ur_code"].tolist() == ["111", ""]
    # a feature without location_quality gets the default, never NaN
    assert villages["location_quality"].tolist() == ["town_centroid", "user_supplied"]
    assert villages.geometry.x.tolist() == [120.7561, 120.5402]
    assert villages["lat"].tolist() == [30.7522, 30.8311]


def test_default_path_comes_from_settings(tmp_path: Path) -> None:
    (tmp_path / "boundaries").mkdir()
    write_fc(tmp_path / "boundaries" / "villages.geojson", GOOD_FEATURES)
    villages = load_villages(settings=Settings(data_dir=tmp_path), bounds=None)
    assert len(villages) == 2


def test_csv_villages_codes_stay_text_and_optional_columns_default(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "mine.csv",
        "village_code,village_name,lon,lat,remark\n"
        "330402007024,百福弄,120.75,30.75,x\n"
        "000123,零村, 120.8 ,30.8,\n",
    )
    villages = load_villages(path)
    assert villages["village_code"].tolist() == ["330402007024", "000123"]
    assert villages["town"].tolist() == ["", ""]
    assert villages["county"].tolist() == ["", ""]
    assert villages["location_quality"].tolist() == ["user_supplied", "user_supplied"]
    assert villages["remark"].tolist() == ["x", ""]
    assert villages.geometry.x.tolist() == [120.75, 120.8]
    assert villages.geometry.y.tolist() == [30.75, 30.8]


def test_gbk_csv_is_decoded(tmp_path: Path) -> None:
    text = (
        "village_code,village_name,town,lon,lat\n"
        "330402007024,百福弄社区居委会,建设街道,120.75,30.75\n"
    )
    villages = load_villages(write_csv(tmp_path / "gbk.csv", text, "gbk"))
    assert villages["village_name"].tolist() == ["百福弄社区居委会"]
    assert villages["town"].tolist() == ["建设街道"]


def test_utf8_bom_csv_header_is_clean(tmp_path: Path) -> None:
    text = "village_code,village_name,lon,lat\n1,甲村,120.75,30.75\n"
    villages = load_villages(write_csv(tmp_path / "bom.csv", text, "utf-8-sig"))
    assert villages["village_code"].tolist() == ["1"]


def test_undecodable_bytes_give_encoding_advice(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b"village_code,village_name,lon,lat\n1,\xff\xfe\xff,120.7,30.7\n")
    with pytest.raises(InputDataError, match=r"bad\.csv: cannot decode.*UTF-8.*GBK"):
        load_villages(path)


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match=r"nope\.geojson: file not found; .*--villages FILE"):
        load_villages(tmp_path / "nope.geojson")


def test_broken_json_names_line(tmp_path: Path) -> None:
    path = tmp_path / "v.geojson"
    path.write_text('{"type": "FeatureCollection",\n "features": [}', encoding="utf-8")
    with pytest.raises(InputDataError, match=r"v\.geojson: broken JSON at line 2"):
        load_villages(path)


def test_not_a_feature_collection(tmp_path: Path) -> None:
    path = tmp_path / "v.geojson"
    path.write_text('{"type": "Feature"}', encoding="utf-8")
    with pytest.raises(InputDataError, match=r"not a GeoJSON FeatureCollection.*'Feature'"):
        load_villages(path)


def test_non_point_village(tmp_path: Path) -> None:
    bad = village_feature("2", "乙村", 120.7, 30.7)
    bad["geometry"] = {"type": "LineString", "coordinates": [[120.7, 30.7], [120.8, 30.8]]}
    path = write_fc(tmp_path / "v.geojson", [GOOD_FEATURES[0], bad])
    with pytest.raises(InputDataError, match=r"v\.geojson feature 2: geometry is a 'LineString'"):
        load_villages(path)


def test_missing_csv_columns_are_named(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "v.csv", "code,village_name,lon,lat\n1,甲,120.7,30.7\n")
    with pytest.raises(InputDataError, match=r"v\.csv: missing column\(s\) village_code \(found"):
        load_villages(path)


def test_empty_code(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "v.csv", "village_code,village_name,lon,lat\n1,甲,120.7,30.7\n,乙,120.7,30.7\n"
    )
    with pytest.raises(InputDataError, match=r"v\.csv row 3: village_code is empty"):
        load_villages(path)


def test_duplicate_codes_name_both_rows(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "v.csv",
        "village_code,village_name,lon,lat\n7,甲,120.7,30.7\n8,乙,120.7,30.7\n7,丙,120.8,30.8\n",
    )
    with pytest.raises(InputDataError, match=r"v\.csv row 4: village_code '7' repeats row 2"):
        load_villages(path)


@pytest.mark.parametrize("lon", ["abc", "", "nan"])
def test_non_numeric_csv_coordinates(tmp_path: Path, lon: str) -> None:
    path = write_csv(tmp_path / "v.csv", f"village_code,village_name,lon,lat\n1,甲,{lon},30.7\n")
    with pytest.raises(InputDataError, match=rf"v\.csv row 2: longitude/latitude \('{lon}'"):
        load_villages(path)


def test_nan_geojson_coordinates(tmp_path: Path) -> None:
    path = write_fc(tmp_path / "v.geojson", [village_feature("1", "甲", float("nan"), 30.7)])
    with pytest.raises(InputDataError, match=r"v\.geojson feature 1: .*missing or not numbers"):
        load_villages(path)


def test_out_of_region_hints_at_gcj02(tmp_path: Path) -> None:
    path = write_fc(
        tmp_path / "v.geojson", [GOOD_FEATURES[0], village_feature("9", "北京", 116.4, 39.9)]
    )
    with pytest.raises(InputDataError) as info:
        load_villages(path)
    message = str(info.value)
    assert message.startswith("v.geojson feature 2: point (116.4, 39.9) is outside")
    assert "GCJ-02/BD-09" in message
    assert "`skillcircle import --crs gcj02`" in message
    assert "\n" not in message


def test_swapped_coordinates_are_recognised(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "v.csv", "village_code,village_name,lon,lat\n1,甲,30.7,120.7\n")
    with pytest.raises(InputDataError, match=r"row 2: .*look swapped"):
        load_villages(path)


def test_bounds_are_configurable(tmp_path: Path) -> None:
    path = write_fc(tmp_path / "v.geojson", [village_feature("9", "北京", 116.4, 39.9)])
    assert load_villages(path, bounds=None)["village_code"].tolist() == ["9"]
    assert len(load_villages(path, bounds=(116.0, 39.0, 117.0, 40.0))) == 1
    with pytest.raises(InputDataError, match="outside"):
        load_villages(write_fc(tmp_path / "j.geojson", GOOD_FEATURES), bounds=(116, 39, 117, 40))


def test_an_area_names_itself_and_adds_its_hint(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "v.csv", "village_code,village_name,lon,lat\n1,甲,120.7,30.7\n")
    helsinki = Area((24.8, 60.1, 25.1, 60.3), "the road network's area", "or pass another --osm")
    with pytest.raises(InputDataError) as info:
        load_villages(path, bounds=helsinki)
    assert str(info.value) == (
        "v.csv row 2: point (120.7, 30.7) is outside the road network's area "
        "(lon 24.8 to 25.1, lat 60.1 to 60.3); is it GCJ-02/BD-09? convert with "
        "`skillcircle import --crs gcj02` (or bd09); coordinates must be WGS84; "
        "or pass another --osm"
    )
    with pytest.raises(InputDataError, match=r"outside the given bounds \(lon 116 to 117"):
        load_villages(path, bounds=(116, 39, 117, 40))
    outside = r"outside the region 嘉兴市 \(330400\) \(lon 120.084 to 121.484"
    with pytest.raises(InputDataError, match=outside):
        load_points(write_csv(tmp_path / "p.csv", "id,lon,lat\nH,24.94,60.17\n"))


def test_several_problems_in_one_line(tmp_path: Path) -> None:
    rows = "".join(f"{i},村{i},1.0,2.0\n" for i in range(8))
    path = write_csv(tmp_path / "v.csv", "village_code,village_name,lon,lat\n" + rows)
    with pytest.raises(InputDataError) as info:
        load_villages(path)
    message = str(info.value)
    assert message.startswith("v.csv: 8 problems | row 2: ")
    assert "row 6: " in message
    assert "row 7: " not in message
    assert message.endswith("| and 3 more")


def test_unknown_suffix(tmp_path: Path) -> None:
    path = tmp_path / "v.txt"
    path.write_text("x", encoding="utf-8")
    with pytest.raises(InputDataError, match=r"v\.txt: unknown villages file type '\.txt'"):
        load_villages(path)


SQUARE = {
    "type": "Polygon",
    "coordinates": [[[120.7, 30.7], [120.8, 30.7], [120.8, 30.8], [120.7, 30.8], [120.7, 30.7]]],
}


@pytest.mark.parametrize(
    ("loader", "name"),
    [(load_towns, "towns"), (load_counties, "counties"), (load_city, "city")],
)
def test_boundary_readers(tmp_path: Path, loader: Any, name: str) -> None:
    (tmp_path / "boundaries").mkdir()
    feature = {
        "type": "Feature",
        "properties": {"name": "南湖区", "adcode": 330402},
        "geometry": SQUARE,
    }
    write_fc(tmp_path / "boundaries" / f"{name}.geojson", [feature])
    frame = loader(settings=Settings(data_dir=tmp_path))
    assert frame.crs.to_epsg() == 4326
    assert frame["name"].tolist() == ["南湖区"]
    assert frame["adcode"].tolist() == ["330402"]  # codes are text
    assert frame.geometry.iloc[0].area == pytest.approx(0.01)

    with pytest.raises(InputDataError, match=rf"{name}\.geojson: file not found"):
        loader(tmp_path / f"{name}.geojson")
    broken = tmp_path / "broken.geojson"
    broken.write_text("{", encoding="utf-8")
    with pytest.raises(InputDataError, match=r"broken\.geojson: broken JSON"):
        loader(broken)


def test_boundary_without_geometry(tmp_path: Path) -> None:
    path = write_fc(
        tmp_path / "towns.geojson",
        [{"type": "Feature", "properties": {"name": "x"}, "geometry": None}],
    )
    with pytest.raises(InputDataError, match=r"towns\.geojson feature 1: has no geometry"):
        load_towns(path)


def test_load_points_csv_and_geojson(tmp_path: Path) -> None:
    csv_path = write_csv(
        tmp_path / "o.csv", "id,lon,lat,kind\n007,120.75,30.75,home\nB,120.8,30.8,\n"
    )
    points = load_points(csv_path)
    assert list(points.columns) == ["id", "name", "lon", "lat", "kind", "geometry"]
    assert points["id"].tolist() == ["007", "B"]
    assert points["name"].tolist() == ["", ""]
    assert points["lon"].tolist() == [120.75, 120.8]

    feature = {
        "type": "Feature",
        "properties": {"id": 12, "name": "学校"},
        "geometry": {"type": "Point", "coordinates": [120.7, 30.7]},
    }
    points = load_points(write_fc(tmp_path / "t.geojson", [feature]))
    assert points["id"].tolist() == ["12"]
    assert points["name"].tolist() == ["学校"]


def test_load_points_validates_ids(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "o.csv", "id,lon,lat\nA,120.75,30.75\nA,120.8,30.8\n")
    with pytest.raises(InputDataError, match=r"o\.csv row 3: id 'A' repeats row 2"):
        load_points(path)
    path = write_csv(tmp_path / "p.csv", "name,lon,lat\nA,120.75,30.75\n")
    with pytest.raises(InputDataError, match=r"p\.csv: missing column\(s\) id"):
        load_points(path)
