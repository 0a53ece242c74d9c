"""Tests for geo/export.py: atomic writes and CSV/GeoJSON/XLSX tables."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from openpyxl import load_workbook
from shapely.geometry import Point

from geo._errors import SettingsError
from geo.export import atomic_write, write_table

METADATA = {
    "网络来源": "OpenStreetMap 2024-11",
    "生成时间": "2024-11-24T20:00:00+08:00",
    "参数": "walk 5 km/h, 30 min",
    "样例数据说明": "含样例设施 (is_sample=true)",
}


@pytest.fixture
def villages() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "village_code": ["330402007024", "330411101201", "330421001001"],
            "village_name": ["=cmd|' /C calc'!A0", "新塍村", "@SUM(1)"],
            "minutes": [12.5, np.nan, -3.0],
            "reached": [True, False, True],
            "capacity": pd.array([200, None, 5], dtype="Int64"),
            "trades": [["电工", "焊工"], [], ["+1"]],
            "note": ["ok", None, "-minus"],
        },
        geometry=gpd.points_from_xy([120.75, 120.54, 120.92], [30.75, 30.83, 30.83]),
        crs="EPSG:4326",
    )


# --------------------------------------------------------------------------- atomic_write


def test_atomic_write_keeps_old_file_when_writer_raises(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old content", encoding="utf-8")

    def failing(tmp: Path) -> None:
        tmp.write_text("half writ", encoding="utf-8")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, failing)
    assert target.read_text(encoding="utf-8") == "old content"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]  # no temp left behind


def test_atomic_write_creates_nothing_when_writer_raises(tmp_path: Path) -> None:
    def failing(tmp: Path) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "new.csv", failing)
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_replaces_and_creates_parents(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.geojson"
    seen: list[Path] = []

    def writer(tmp: Path) -> None:
        seen.append(tmp)
        tmp.write_text("new", encoding="utf-8")

    assert atomic_write(target, writer) == target
    assert target.read_text(encoding="utf-8") == "new"
    assert seen[0].name == "out.geojson"  # suffix kept for writers that infer formats
    assert seen[0].parent.parent == target.parent  # same directory, so rename is atomic
    assert [p.name for p in target.parent.iterdir()] == ["out.geojson"]


# --------------------------------------------------------------------------- CSV


def test_csv_has_bom_empty_cells_and_safe_text(tmp_path: Path, villages: gpd.GeoDataFrame) -> None:
    path = write_table(
        villages, tmp_path / "t.csv", metadata=METADATA, column_labels={"village_name": "村名"}
    )
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    lines = raw[3:].decode("utf-8").splitlines()
    assert lines[0] == "village_code,村名,minutes,reached,capacity,trades,note,lon,lat"
    assert lines[1] == "330402007024,'=cmd|' /C calc'!A0,12.5,true,200,电工、焊工,ok,120.75,30.75"
    assert lines[2] == "330411101201,新塍村,,false,,,,120.54,30.83"
    assert lines[3] == "330421001001,'@SUM(1),-3.0,true,5,'+1,'-minus,120.92,30.83"
    assert "nan" not in raw.decode("utf-8-sig").lower()


def test_csv_round_trips_through_pandas(tmp_path: Path) -> None:
    frame = pd.DataFrame({"code": ["001", "002"], "value": [1.0, None]})
    path = write_table(frame, tmp_path / "plain.csv", metadata={})
    back = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert back.to_dict("list") == {"code": ["001", "002"], "value": ["1.0", ""]}


def test_failed_write_keeps_previous_output(tmp_path: Path) -> None:
    path = tmp_path / "t.geojson"
    path.write_text("previous", encoding="utf-8")
    broken = gpd.GeoDataFrame(
        {"a": [1]}, geometry=gpd.points_from_xy([np.nan], [np.nan]), crs="EPSG:4326"
    )
    with pytest.raises(ValueError, match="not JSON compliant"):
        write_table(broken, path, metadata=METADATA)
    assert path.read_text(encoding="utf-8") == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["t.geojson"]


# --------------------------------------------------------------------------- GeoJSON


def test_geojson_has_metadata_member_and_nulls(tmp_path: Path, villages: gpd.GeoDataFrame) -> None:
    path = write_table(
        villages, tmp_path / "t.geojson", metadata=METADATA, column_labels={"village_name": "村名"}
    )
    document = json.loads(path.read_text(encoding="utf-8"))
    assert list(document) == ["type", "metadata", "features"]
    assert document["type"] == "FeatureCollection"
    assert document["metadata"] == METADATA
    first, second, third = (f["properties"] for f in document["features"])
    assert first["village_name"] == "=cmd|' /C calc'!A0"  # data, unchanged; keys not relabelled
    assert first["trades"] == ["电工", "焊工"]
    assert first["capacity"] == 200
    assert first["reached"] is True
    assert second["minutes"] is None
    assert second["capacity"] is None
    assert second["note"] is None
    assert third["minutes"] == -3.0
    assert document["features"][0]["geometry"] == {"type": "Point", "coordinates": [120.75, 30.75]}
    assert "NaN" not in path.read_text(encoding="utf-8")


def test_geojson_is_converted_to_wgs84(tmp_path: Path, villages: gpd.GeoDataFrame) -> None:
    path = write_table(villages.to_crs("EPSG:32651"), tmp_path / "t.geojson", metadata={})
    lon, lat = json.loads(path.read_text(encoding="utf-8"))["features"][0]["geometry"][
        "coordinates"
    ]
    assert lon == pytest.approx(120.75, abs=1e-9)
    assert lat == pytest.approx(30.75, abs=1e-9)


def test_extra_geometry_columns_are_left_out(tmp_path: Path, villages: gpd.GeoDataFrame) -> None:
    villages["area"] = gpd.GeoSeries([Point(0, 0).buffer(1.0)] * 3, crs="EPSG:4326")
    document = json.loads(
        write_table(villages, tmp_path / "t.geojson", metadata={}).read_text(encoding="utf-8")
    )
    assert "area" not in document["features"][0]["properties"]
    assert document["features"][0]["geometry"]["type"] == "Point"
    text = write_table(villages, tmp_path / "t.csv", metadata={}).read_text(encoding="utf-8-sig")
    assert text.splitlines()[0].split(",")[-3:] == ["note", "lon", "lat"]
    assert "POLYGON" not in text


def test_geojson_needs_geometry(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"t\.geojson: the table has no geometry; write \.csv"):
        write_table(pd.DataFrame({"a": [1]}), tmp_path / "t.geojson", metadata={})
    assert not (tmp_path / "t.geojson").exists()


# --------------------------------------------------------------------------- XLSX


def test_xlsx_round_trip(tmp_path: Path, villages: gpd.GeoDataFrame) -> None:
    path = write_table(
        villages,
        tmp_path / "t.xlsx",
        metadata=METADATA,
        sheet_name="村庄",
        column_labels={"village_name": "村名", "minutes": "分钟"},
    )
    book = load_workbook(path)
    assert book.sheetnames == ["村庄", "说明"]
    data = book["村庄"]
    assert data.freeze_panes == "A2"
    header = [c.value for c in data[1]]
    assert header == [
        "village_code", "村名", "分钟", "reached", "capacity", "trades", "note", "lon", "lat"
    ]  # fmt: skip
    assert all(c.font.b for c in data[1])
    assert [c.value for c in data[2]] == [
        "330402007024", "=cmd|' /C calc'!A0", 12.5, True, 200, "电工、焊工", "ok", 120.75, 30.75
    ]  # fmt: skip
    assert [c.value for c in data[3]] == [
        "330411101201", "新塍村", None, False, None, None, None, 120.54, 30.83
    ]  # fmt: skip
    assert data["C4"].value == -3  # a negative number stays a number
    assert data["C4"].data_type == "n"

    injected = data["B2"]
    assert injected.data_type == "s"  # a string, not a formula
    assert injected.quotePrefix
    assert data["B4"].value == "@SUM(1)"
    assert data["B4"].data_type == "s"
    with zipfile.ZipFile(path) as archive:
        sheet_xml = archive.read("xl/worksheets/sheet1.xml").decode("utf-8")
    assert "<f>" not in sheet_xml  # no formula anywhere

    assert data.column_dimensions["A"].width == len("330402007024") + 2
    assert data.column_dimensions["D"].width == len("reached") + 2
    assert data.column_dimensions["I"].width == 8  # "30.75" is narrower than the minimum

    notes = book["说明"]
    assert [[c.value for c in row] for row in notes.iter_rows()] == [
        ["项目", "内容"],
        *([k, v] for k, v in METADATA.items()),
    ]


def test_xlsx_without_geometry_and_plain_dataframe(tmp_path: Path) -> None:
    frame = pd.DataFrame({"县": ["南湖区", "嘉兴经济开发区"], "覆盖率": [0.91, 0.75]})
    path = write_table(frame, tmp_path / "stats.xlsx", metadata={"参数": "30 min"})
    sheet = load_workbook(path)["data"]
    assert [[c.value for c in row] for row in sheet.iter_rows()] == [
        ["县", "覆盖率"],
        ["南湖区", 0.91],
        ["嘉兴经济开发区", 0.75],
    ]
    assert sheet.column_dimensions["A"].width == 7 * 2 + 2  # CJK characters count double


@pytest.mark.parametrize("name", ["", "a" * 32, "a/b", "说明"])
def test_bad_sheet_name(tmp_path: Path, name: str) -> None:
    with pytest.raises(SettingsError, match="invalid sheet name"):
        write_table(pd.DataFrame({"a": [1]}), tmp_path / "t.xlsx", metadata={}, sheet_name=name)


def test_unknown_suffix_names_allowed_ones(tmp_path: Path) -> None:
    with pytest.raises(
        SettingsError, match=r"t\.parquet: unknown file type '\.parquet'; use one of"
    ):
        write_table(pd.DataFrame({"a": [1]}), tmp_path / "t.parquet", metadata={})
    assert list(tmp_path.iterdir()) == []
