"""geo/models.py and geo/tables.py: one model per entity, the same rules on every path,
and every entity round-trips through its files (GeoJSON/CSV/XLSX) and the store."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

import geopandas as gpd
import pytest
from click.testing import CliRunner
from geopandas.testing import assert_geodataframe_equal
from pydantic import ValidationError

from geo._errors import FacilityDataError, InputDataError
from geo.coverage import coverage_columns, coverage_table
from geo.export import write_table
from geo.facilities import (
    FACILITY_COLUMNS,
    facilities_from_records,
    load_facilities,
    write_facilities,
)
from geo.models import (
    Course,
    EvaluationSession,
    Facility,
    VillageResult,
    body_model,
    describe,
    validate_rows,
)
from geo.routing import Router
from geo.settings import Settings
from geo.tables import frame_rows, read_records, write_records
from web.schemas import CoursePatch, FacilityBody, FacilityPatch
from web.store import Store, StoreError

from synthetic import coarse_line

#: A row of the fault in issue 15: accepted by the upload, then no PATCH could pass.
BAD_NAME = "培" * 300
BAD_PHONE = '=HYPERLINK("http://x")'

EDGE = {  # every field at an edge the rules allow
    "id": "TI-330402-001",
    "layer": "training_institution",
    "name": '=HYPERLINK("http://x","点我")',  # text that looks like a formula is data
    "county": "南湖区",
    "town": "建设街道",
    "town_code": "330402001",
    "address": "-",  # a registry's "none"; a CSV writes it as '-
    "phone": "+86 (573) 8211-1111",
    "trades": ["电工", "焊" * 30],
    "capacity": 120,
    "source": "import:名录.csv",
    "is_sample": True,
    "location_quality": "registry_gcj02",
    "note": "第一行\n第二行",
    "lon": 120.7623456,
    "lat": 30.7531234,
}
PLAIN = {
    "id": "VS-330411-002",
    "layer": "village_station",
    "name": "站" * 100,
    "lon": 120.71,
    "lat": 30.8,
}


def facilities() -> gpd.GeoDataFrame:
    return facilities_from_records([EDGE, PLAIN], bounds=None)


# ------------------------------------------------------------------------ rules


def test_columns_are_the_model_fields():
    assert tuple(Facility.model_fields)[:-2] == FACILITY_COLUMNS
    assert tuple(Facility.model_fields)[-2:] == ("lon", "lat")
    assert coverage_columns() == list(VillageResult.model_fields)
    assert list(facilities().columns) == [*FACILITY_COLUMNS, "geometry"]


def test_the_issue_15_row_is_refused_with_row_numbered_problems():
    rows = [PLAIN, {**PLAIN, "id": "X2", "name": BAD_NAME, "phone": BAD_PHONE}]
    items, problems = validate_rows(Facility, rows, ["row 2", "row 3"])
    assert items[0] is not None and items[1] is None
    assert [(p.order, p.where) for p in problems] == [(1, "row 3"), (1, "row 3")]
    assert problems[0].what.startswith("name has 300 characters")
    assert "at most 100" in problems[0].what
    assert problems[1].what.startswith(f"phone {BAD_PHONE!r} is not a phone number")


def test_the_post_body_takes_the_models_rules_and_refuses_unknown_fields():
    good = {"layer": "training_base", "name": "x", "lon": 120.75, "lat": 30.76}
    assert FacilityBody.model_validate(good).id is None  # omitted: one is made
    for change, field in [
        ({"name": BAD_NAME}, "name"),
        ({"phone": BAD_PHONE}, "phone"),
        ({"trades": ["电工/焊工"]}, "trades.0"),
        ({"trades": "电工"}, "trades"),  # a body sends a list; only a file's cell is split
        ({"capacity": 1.5}, "capacity"),
        ({"layer_name": "x"}, "layer_name"),  # derived, not sent
        ({"id": "../x"}, "id"),
    ]:
        with pytest.raises(ValidationError) as caught:
            FacilityBody.model_validate({**good, **change})
        assert next(e["loc"] for e in caught.value.errors()) == tuple(
            int(x) if x.isdigit() else x for x in field.split(".")
        )


def test_patch_bodies_are_the_models_with_every_field_optional():
    assert set(FacilityPatch.model_fields) == set(FacilityBody.model_fields)
    assert not any(f.is_required() for f in FacilityPatch.model_fields.values())
    assert FacilityPatch.model_validate({}).model_dump(exclude_unset=True) == {}
    assert FacilityPatch.model_validate({"phone": "0573-1"}).model_dump(exclude_unset=True) == {
        "phone": "0573-1"
    }
    with pytest.raises(ValidationError, match="not a phone number"):
        FacilityPatch.model_validate({"phone": BAD_PHONE})
    with pytest.raises(ValidationError):
        CoursePatch.model_validate({"colour": "red"})
    schema = FacilityPatch.model_json_schema()
    assert "required" not in schema
    assert schema["properties"]["name"]["anyOf"][0]["maxLength"] == 100
    # a derived body keeps the rules of types the model gives in Annotated form
    partial = body_model(Course, "P", partial=True)
    with pytest.raises(ValidationError, match="characters"):
        partial.model_validate({"title": "x" * 101})


def test_describe_words_pydantic_errors_as_the_loaders_do():
    with pytest.raises(ValidationError) as caught:
        Course.model_validate({"title": "", "trade": "电工", "start_date": "2099-02-30"})
    words = [describe(e, "course") for e in caught.value.errors()]
    assert words == [
        "title is missing or empty; give every course a title",
        "start_date '2099-02-30' is not a date; write YYYY-MM-DD",
        "seats is missing or empty; give every course a seats",
    ]


def test_stored_records_may_break_rules_added_later_and_are_noted():
    old = {**PLAIN, "id": "a/b", "name": BAD_NAME}
    with pytest.raises(FacilityDataError, match="not a safe id"):
        facilities_from_records([old], bounds=None)
    waived: list = []
    frame = facilities_from_records([old], bounds=None, waived=waived)
    assert frame["name"].iloc[0] == BAD_NAME
    assert [p.what.split(" ")[0] for p in waived] == ["id", "name"]
    with pytest.raises(FacilityDataError, match="unknown layer"):  # never waived
        facilities_from_records([{**old, "layer": "zoo"}], bounds=None, waived=[])


# ------------------------------------------------------------------- round trips


@pytest.mark.parametrize("suffix", [".geojson", ".csv", ".xlsx"])
def test_facilities_round_trip_through_their_files(tmp_path, suffix):
    frame = facilities()
    path = write_facilities(frame, tmp_path / f"设施{suffix}")
    back = load_facilities(path, bounds=None)
    assert_geodataframe_equal(back, frame)
    assert back["note"].iloc[0] == "第一行\n第二行" and back["address"].iloc[0] == "-"
    if suffix == ".csv":  # written as text for a spreadsheet, read back unchanged
        text = path.read_text(encoding="utf-8-sig")
        assert "'=HYPERLINK" in text and "'+86 (573)" in text and ",'-," in text


def test_facilities_round_trip_through_the_store(tmp_path):
    frame = facilities()
    store = Store(tmp_path / "s.sqlite3")
    assert store.seed(frame) == 2
    assert_geodataframe_equal(store.facilities_frame(), frame)
    assert store.facility(EDGE["id"]) == Facility.model_validate(EDGE).model_dump()


def test_a_bad_facility_file_is_refused_on_its_row(tmp_path):
    path = write_facilities(facilities(), tmp_path / "f.csv")
    text = path.read_text(encoding="utf-8-sig").replace("站" * 100, "站" * 101)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(FacilityDataError, match=r"f\.csv row 3: name has 101 characters"):
        load_facilities(path, bounds=None)


COURSES = [
    Course(
        title="电工（初级）培训班",
        trade="电工",
        start_date=dt.date(2099, 3, 1),
        end_date=dt.date(2099, 3, 20),
        seats=40,
        fee=0.0,
        subsidy_note="取证后按规定申领补贴",
        register_url="https://example.cn/register?id=1",
        register_phone="+86 573 1234 5678",
    ),
    Course(title="=SUM(1)", trade="焊工", start_date=dt.date(2099, 1, 1), seats=0, fee=1250.5),
]
SESSIONS = [
    EvaluationSession(
        trade="电工", level="初级", date=dt.date(2099, 1, 2), place="实训楼", seats=30
    ),
    EvaluationSession(trade="育婴员", level="技师", date=dt.date(2099, 12, 31)),
]


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
@pytest.mark.parametrize(("model", "items"), [(Course, COURSES), (EvaluationSession, SESSIONS)])
def test_courses_and_sessions_round_trip_through_their_files(tmp_path, suffix, model, items):
    path = write_records(model, items, tmp_path / f"items{suffix}", metadata={"a": "b"})
    assert read_records(model, path, InputDataError) == items


def test_courses_and_sessions_round_trip_through_the_store(tmp_path):
    store = Store(tmp_path / "s.sqlite3")
    store.seed(facilities())
    for table, model, items in (
        ("courses", Course, COURSES),
        ("evaluations", EvaluationSession, SESSIONS),
    ):
        with store.write(None, "create", table[:-1], "?") as tx:
            ids = [
                tx.insert_item(table, EDGE["id"], item.model_dump(mode="json")) for item in items
            ]
        assert [model.model_validate(store.item(table, i)) for i in ids] == items
        with store.write(None, "update", table[:-1], str(ids[1])) as tx:
            tx.update_item(table, ids[1], items[0].model_dump(mode="json"))
        assert model.model_validate(store.item(table, ids[1])) == items[0]


def test_the_store_refuses_what_its_model_refuses(tmp_path):
    store = Store(tmp_path / "s.sqlite3")
    store.seed(facilities())
    with store.write(None, "create", "course", "?") as tx, pytest.raises(ValidationError):
        tx.insert_item("courses", EDGE["id"], {**COURSES[0].model_dump(mode="json"), "seats": -1})
    with (
        pytest.raises(ValidationError, match="not a phone number"),
        store.write(None, "create", "facility", "x") as tx,
    ):
        tx.put_facility({**EDGE, "phone": BAD_PHONE})
    # a row changed behind the store's back is named when read
    store.conn.execute(
        "INSERT INTO courses (facility_id, title, trade, start_date, seats, updated_at) "
        "VALUES (?, 'x', '电工', 'soon', 1, 'now')",
        (EDGE["id"],),
    )
    with pytest.raises(StoreError, match=r"courses id 1: start_date 'soon' is not a date"):
        store.items("courses", EDGE["id"])


@pytest.mark.parametrize("suffix", [".geojson", ".csv", ".xlsx"])
def test_village_results_round_trip_through_the_coverage_files(tmp_path, suffix):
    from test_coverage import facilities_frame, villages_frame

    router = Router(coarse_line(9, 0.01), "ebike", Settings())
    table = coverage_table(router, villages_frame(), facilities_frame(), minutes=15)
    expected, problems = validate_rows(VillageResult, frame_rows(table, VillageResult), [""] * 4)
    assert not problems and expected[3].any_minutes is None  # the unreachable village
    assert expected[0].technical_school_facility_id == "TS-1"
    path = write_table(table, tmp_path / f"coverage{suffix}", metadata={"x": "y"})
    assert read_records(VillageResult, path, InputDataError) == expected


# ------------------------------------------------------------------ store tables


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (
            "ALTER TABLE courses ADD COLUMN colour TEXT",
            "table courses has column(s) colour the Course model lacks",
        ),
        (
            "ALTER TABLE courses RENAME COLUMN fee TO price",
            "table courses lacks column(s) fee of "
            "the Course model; table courses has column(s) price the Course model lacks",
        ),
        (
            "ALTER TABLE evaluations RENAME COLUMN facility_id TO fid",
            "table evaluations lacks column(s) facility_id",
        ),
    ],
)
def test_the_store_refuses_to_start_on_tables_that_differ_from_the_models(tmp_path, change, says):
    path = tmp_path / "s.sqlite3"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute(change)
    conn.commit()
    conn.close()
    with pytest.raises(StoreError) as caught:
        Store(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {says}")
    assert "geo/models.py" in message and "restore a backup" in message


# ----------------------------------------------------------------------- the CLI


def test_cli_import_refuses_the_issue_15_row(tmp_path):
    from geo.cli import main

    src = tmp_path / "名录.csv"
    src.write_text(
        "名称,经度,纬度,电话\n好培训点,120.76,30.75,0573-1\n"
        f'{BAD_NAME},120.76,30.75,"{BAD_PHONE.replace(chr(34), 2 * chr(34))}"\n',
        encoding="utf-8",
    )
    out = tmp_path / "out.geojson"
    args = ["import", str(src), "--layer", "training_institution", "--crs", "wgs84"]
    result = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert result.exit_code == 1
    assert "名录.csv: 2 problems | row 3: name has 300 characters" in result.output
    assert f"| row 3: phone {BAD_PHONE!r} is not a phone number" in result.output
    assert not out.exists()


@pytest.mark.parametrize("suffix", [".geojson", ".csv", ".xlsx"])
def test_cli_import_writes_every_facility_format(tmp_path, suffix):
    from geo.cli import main

    src = tmp_path / "名录.csv"
    src.write_text("名称,经度,纬度,工种\n好培训点,120.76,30.75,电工、焊工\n", encoding="utf-8")
    out = tmp_path / f"out{suffix}"
    args = ["import", str(src), "--layer", "training_institution", "--crs", "wgs84"]
    result = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    back = load_facilities(out, bounds=None)
    assert back["trades"].tolist() == [["电工", "焊工"]]
    assert back["id"].tolist() == ["TI-IMP-0001"]
    if suffix == ".geojson":
        assert list(
            json.loads(out.read_text(encoding="utf-8"))["features"][0]["properties"]
        ) == list(FACILITY_COLUMNS)


def test_openapi_patch_bodies_are_models_not_any():
    from web.openapi import openapi_document

    doc = openapi_document()
    body = doc["paths"]["/api/admin/facilities/{fid}"]["patch"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["$ref"].endswith("/FacilityPatch")
    for name in ("FacilityPatch", "CoursePatch", "EvaluationPatch"):
        schema = doc["components"]["schemas"][name]
        assert schema["properties"] and "required" not in schema
