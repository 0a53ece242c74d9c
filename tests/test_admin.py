"""Admin API and store: auth, county scoping, validation, atomic uploads, audit,
immediate visibility on the 技能码 pages, recomputation after a move, restart persistence."""

from __future__ import annotations

import io
import json
import sqlite3

import numpy as np
import openpyxl
import pytest
from click.testing import CliRunner
from webapp import make_app

from geo.coverage import coverage_table
from web.store import SCHEMA_VERSION, Store, StoreError, hash_token

VILLAGE = "330402007024"  # 百福弄社区居委会, 南湖区建设街道
NANHU_SCHOOL = "TS-330402-001"  # 嘉兴市建筑工业学校, 南湖区
XIUZHOU_ORG = "EO-330411-001"
NANHU_BASE = "TB-330402-001"
COURSE = {
    "title": "电工（初级）培训班",
    "trade": "电工",
    "start_date": "2099-03-01",
    "end_date": "2099-03-20",
    "seats": 40,
    "fee": 0,
    "subsidy_note": "取证后按规定申领职业技能提升补贴",
    "register_phone": "0573-12345678",
    "register_url": "https://example.cn/register?id=1",
}


@pytest.fixture
def tokens(app) -> dict[str, dict[str, str]]:
    """Authorization headers: 南湖区, 秀洲区 and city-wide tokens."""
    store: Store = app.extensions["skillcircle.store"]
    out = {}
    for key, county in (("nanhu", "南湖区"), ("xiuzhou", "秀洲区"), ("city", None)):
        _, token = store.create_token(f"{county or '嘉兴市'}总工会", county)
        out[key] = {"Authorization": f"Bearer {token}"}
    return out


def put_legacy(tx, record) -> None:
    """Store a facility as an older version did, without the model's checks."""
    tx.conn.execute(
        "INSERT INTO facilities (id, county, layer, data, updated_at) VALUES (?, ?, ?, ?, ?)",
        (record["id"], record["county"], record["layer"], json.dumps(record), "2025-01-01"),
    )


#: Tests whose store use is that of every other test run on SQLite only (the others on both).
SQLITE_ONLY = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


def facility_count(client) -> int:
    return len(client.get("/api/facilities").get_json()["features"])


# ----------------------------------------------------------------------- auth


def test_no_token_bad_token_revoked_token_are_401(client, app, tokens):
    resp = client.post(f"/api/admin/facilities/{NANHU_SCHOOL}/courses", json=COURSE)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert resp.get_json()["error"] == "unauthorized"
    bad = {"Authorization": "Bearer sc_not-a-real-token"}
    assert client.get("/api/admin/whoami", headers=bad).status_code == 401
    assert (
        client.get("/api/admin/whoami", headers={"Authorization": "Basic abc"}).status_code == 401
    )
    who = client.get("/api/admin/whoami", headers=tokens["nanhu"])
    assert who.status_code == 200
    assert who.get_json()["county"] == "南湖区"
    store: Store = app.extensions["skillcircle.store"]
    store.revoke_token(who.get_json()["token_id"])
    assert client.get("/api/admin/whoami", headers=tokens["nanhu"]).status_code == 401


def test_only_token_hashes_are_stored(app, database):
    store: Store = app.extensions["skillcircle.store"]
    _, token = store.create_token("test", "南湖区")
    if store.path is not None:  # SQLite: nowhere in the files (database, WAL)
        raw = b"".join(p.read_bytes() for p in store.path.parent.glob("*sqlite3*"))
        assert token.encode() not in raw
    for table in ("tokens", "audit"):  # both: in no row
        rows = store.conn.execute(f"SELECT * FROM {table}").fetchall()
        assert rows and token not in repr([dict(r) for r in rows])
    assert hash_token(token) in [r[0] for r in store.conn.execute("SELECT hash FROM tokens")]
    assert store.authenticate(token).name == "test"


def test_county_scoping(client, tokens):
    # 南湖 may not touch a 秀洲 facility, 秀洲 and the city may
    url = f"/api/admin/facilities/{XIUZHOU_ORG}/courses"
    assert client.post(url, json=COURSE, headers=tokens["nanhu"]).status_code == 403
    assert client.post(url, json=COURSE, headers=tokens["xiuzhou"]).status_code == 201
    assert client.post(url, json=COURSE, headers=tokens["city"]).status_code == 201
    patch = {"phone": "0573-88888888"}
    resp = client.patch(f"/api/admin/facilities/{XIUZHOU_ORG}", json=patch, headers=tokens["nanhu"])
    assert resp.status_code == 403
    assert (
        client.delete(f"/api/admin/facilities/{XIUZHOU_ORG}", headers=tokens["nanhu"]).status_code
        == 403
    )
    # moving a 南湖 facility into 秀洲 (王江泾镇) needs 秀洲 rights
    move = {"lon": 120.713, "lat": 30.839}
    resp = client.patch(f"/api/admin/facilities/{NANHU_BASE}", json=move, headers=tokens["nanhu"])
    assert resp.status_code == 403
    # a county token sees its own facilities only
    mine = client.get("/api/admin/facilities", headers=tokens["nanhu"]).get_json()["facilities"]
    assert mine and {f["county"] for f in mine} == {"南湖区"}


# ----------------------------------------------------------------- validation


@SQLITE_ONLY  # validation, headers or pages before any store statement
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"title": ""}, "title"),
        ({"seats": -1}, "seats"),
        ({"seats": "many"}, "seats"),
        ({"start_date": "2099-02-30"}, "start_date"),
        ({"end_date": "2099-02-01"}, "_"),  # before start_date
        ({"register_url": "javascript:alert(1)"}, "register_url"),
        ({"register_phone": "<b>call</b>"}, "register_phone"),
        ({"fee": float("nan")}, "fee"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_course_is_400_with_field_errors(client, tokens, change, field):
    body = {**COURSE, **change}
    url = f"/api/admin/facilities/{NANHU_SCHOOL}/courses"
    resp = client.post(url, data=_json(body), headers={**tokens["nanhu"], **JSON})
    assert resp.status_code == 400
    assert field in resp.get_json()["fields"]
    assert client.get(url, headers=tokens["nanhu"]).get_json()["items"] == []


def test_missing_fields_and_non_json_are_400(client, tokens):
    url = f"/api/admin/facilities/{NANHU_SCHOOL}/courses"
    resp = client.post(url, json={"trade": "电工"}, headers=tokens["nanhu"])
    assert resp.status_code == 400
    assert {"title", "start_date", "seats"} <= set(resp.get_json()["fields"])
    resp = client.post(url, data="title=x", headers=tokens["nanhu"])
    assert resp.status_code == 400
    bad_level = {"trade": "焊工", "level": "大师", "date": "2099-05-01"}
    resp = client.post(
        f"/api/admin/facilities/{NANHU_SCHOOL}/evaluations", json=bad_level, headers=tokens["nanhu"]
    )
    assert resp.status_code == 400 and "level" in resp.get_json()["fields"]
    assert (
        client.post(
            "/api/admin/facilities/NOPE/courses", json=COURSE, headers=tokens["city"]
        ).status_code
        == 404
    )


JSON = {"Content-Type": "application/json"}


def _json(body) -> str:
    import json

    return json.dumps(body, ensure_ascii=False, allow_nan=True)


# ------------------------------------------------- visibility and the audit log


def test_course_is_visible_at_once_and_audited(client, tokens):
    before = client.get(f"/q/{VILLAGE}").get_data(as_text=True)
    assert COURSE["title"] not in before
    resp = client.post(
        f"/api/admin/facilities/{NANHU_SCHOOL}/courses", json=COURSE, headers=tokens["nanhu"]
    )
    assert resp.status_code == 201
    course = resp.get_json()
    assert course["id"] > 0 and course["seats"] == 40
    page = client.get(f"/q/{VILLAGE}").get_data(as_text=True)
    assert COURSE["title"] in page and "2099-03-01" in page and "tel:0573-12345678" in page
    assert "免费" in page and "取证后按规定申领" in page
    assert COURSE["title"] in client.get(f"/q/f/{NANHU_SCHOOL}").get_data(as_text=True)
    api = client.get(f"/api/facilities/{NANHU_SCHOOL}").get_json()
    assert [c["title"] for c in api["courses"]] == [COURSE["title"]]
    near = client.get("/api/nearby?lon=120.755&lat=30.760&mode=drive&layer=technical_school")
    hit = [f for f in near.get_json()["facilities"] if f["id"] == NANHU_SCHOOL]
    assert hit and hit[0]["courses"][0]["title"] == COURSE["title"]

    patch = client.patch(
        f"/api/admin/facilities/{NANHU_SCHOOL}/courses/{course['id']}",
        json={"seats": 12},
        headers=tokens["nanhu"],
    )
    assert patch.status_code == 200 and patch.get_json()["seats"] == 12
    assert patch.get_json()["title"] == COURSE["title"]  # merged, not replaced
    assert "名额 12" in client.get(f"/q/{VILLAGE}").get_data(as_text=True)

    entries = client.get("/api/admin/audit", headers=tokens["nanhu"]).get_json()["entries"]
    update, create = entries[0], entries[1]
    assert (create["action"], create["entity"], create["who"]) == (
        "create",
        "course",
        "南湖区总工会",
    )
    assert create["after"]["title"] == COURSE["title"] and create["county"] == "南湖区"
    assert update["before"]["seats"] == 40 and update["after"]["seats"] == 12
    # 秀洲 does not see 南湖's entries
    theirs = client.get("/api/admin/audit", headers=tokens["xiuzhou"]).get_json()["entries"]
    assert all(e["county"] == "秀洲区" for e in theirs)

    assert (
        client.delete(
            f"/api/admin/facilities/{NANHU_SCHOOL}/courses/{course['id']}", headers=tokens["nanhu"]
        ).status_code
        == 204
    )
    assert COURSE["title"] not in client.get(f"/q/{VILLAGE}").get_data(as_text=True)


def test_past_courses_are_not_shown(client, tokens):
    past = {**COURSE, "title": "已结束的班", "start_date": "2020-01-01", "end_date": "2020-02-01"}
    url = f"/api/admin/facilities/{NANHU_SCHOOL}/courses"
    assert client.post(url, json=past, headers=tokens["nanhu"]).status_code == 201
    assert "已结束的班" not in client.get(f"/q/f/{NANHU_SCHOOL}").get_data(as_text=True)
    assert client.get(url, headers=tokens["nanhu"]).get_json()["items"][0]["title"] == "已结束的班"


def test_user_text_is_escaped_on_pages(client, tokens):
    evil = {**COURSE, "title": "<script>alert(1)</script>", "subsidy_note": '"><img src=x>'}
    url = f"/api/admin/facilities/{NANHU_SCHOOL}/courses"
    assert client.post(url, json=evil, headers=tokens["nanhu"]).status_code == 201
    page = client.get(f"/q/{VILLAGE}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert '"><img src=x>' not in page


# ------------------------------------------------ facilities and recomputation


def test_add_facility_updates_coverage_map_and_exports(client, tokens, study):
    # a training base at 百福弄 (建设街道): the village's walk time drops to the access leg
    before = client.get(f"/api/villages/{VILLAGE}").get_json()
    walk_before = before["modes"]["walk"]["layers"]["training_base"]["minutes"]
    body = {
        "layer": "training_base",
        "name": '=HYPERLINK("http://evil","点我")',
        "lon": before["lon"],
        "lat": before["lat"],
        "capacity": 500,
        "trades": ["电工", "新工种测试"],
    }
    resp = client.post("/api/admin/facilities", json=body, headers=tokens["nanhu"])
    assert resp.status_code == 201, resp.get_json()
    made = resp.get_json()
    fid = made["facility"]["id"]
    assert fid == "TB-330402-A001"
    assert made["facility"]["county"] == "南湖区" and made["facility"]["town"]
    assert made["facility"]["source"] == "admin:南湖区总工会"
    assert made["recomputed"]["layers"] == ["training_base"]
    assert "新工种测试" in made["recomputed"]["trades"]
    after = client.get(f"/api/villages/{VILLAGE}").get_json()
    walk = after["modes"]["walk"]["layers"]["training_base"]
    assert walk["facility"]["id"] == fid and walk["minutes"] < walk_before
    assert fid in {
        f["properties"]["id"] for f in client.get("/api/facilities").get_json()["features"]
    }
    # the trade filter knows the new trade; the export has the name as text, not a formula
    assert client.get("/api/facilities?trade=新工种测试").status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(client.get("/export/南湖区.xlsx").data))
    cells = [c for row in book["设施"].iter_rows() for c in row if c.value == body["name"]]
    assert len(cells) == 1 and cells[0].data_type == "s"  # text, not a formula
    assert client.get("/").status_code == 200
    # a second facility of the layer gets the next id; a duplicate id is a conflict
    again = client.post(
        "/api/admin/facilities", json={**body, "name": "二号"}, headers=tokens["city"]
    )
    assert again.get_json()["facility"]["id"] == "TB-330402-A002"
    dup = client.post("/api/admin/facilities", json={**body, "id": fid}, headers=tokens["city"])
    assert dup.status_code == 409
    # the study the fixture holds was not modified (copy-on-write)
    assert fid not in set(study.facilities["id"])


def test_facility_body_errors(client, tokens, database):
    url = "/api/admin/facilities"
    base = {"layer": "training_base", "name": "新基地", "lon": 120.75, "lat": 30.76}
    cases = [
        ({**base, "layer": "zoo"}, "layer"),
        ({**base, "lon": "east"}, "lon"),
        ({**base, "lon": 116.4, "lat": 39.9}, "lon"),  # Beijing
        ({**base, "crs": "utm"}, "crs"),
        ({**base, "name": " "}, "name"),
        ({**base, "capacity": -5}, "capacity"),
        ({**base, "id": "../../etc"}, "id"),
    ]
    count = facility_count(client)
    for body, field in cases:
        resp = client.post(url, json=body, headers=tokens["city"])
        assert resp.status_code == 400, body
        assert field in resp.get_json()["fields"], (body, resp.get_json())
    assert facility_count(client) == count
    assert Store(database).count_audit("create") == 3  # the fixture's three tokens only


@SQLITE_ONLY  # validation, headers or pages before any store statement
def test_gcj02_input_is_converted(client, tokens):
    # the same place given in GCJ-02 (as copied from 高德) lands ~500 m from the raw numbers
    gcj = {
        "layer": "experience_site",
        "name": "体验点",
        "lon": 120.76,
        "lat": 30.76,
        "crs": "gcj02",
    }
    made = client.post("/api/admin/facilities", json=gcj, headers=tokens["nanhu"]).get_json()
    lon, lat = made["facility"]["lon"], made["facility"]["lat"]
    assert 120.754 < lon < 120.757 and 30.761 < lat < 30.764
    assert made["facility"]["location_quality"] == "admin_entered_gcj02"


def test_move_recomputes_exactly_the_affected_layer(app, client, tokens, study):
    """After a move, the incremental result equals a full recomputation from scratch."""
    move = {"lon": 120.95, "lat": 30.70}  # 平湖市: needs the city token
    resp = client.patch(f"/api/admin/facilities/{NANHU_BASE}", json=move, headers=tokens["city"])
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["recomputed"]["layers"] == ["training_base"]
    assert body["facility"]["county"] == "平湖市"
    assert body["recomputed"]["seconds"] < 60  # sanity only; measured in bench/
    live = app.extensions["skillcircle"]
    fresh = coverage_table(live.routers["ebike"], live.villages, live.facilities)
    updated = live.coverage["ebike"]
    for column in ("training_base_minutes", "any_minutes"):
        np.testing.assert_array_equal(fresh[column].to_numpy(), updated[column].to_numpy())
    assert (fresh["training_base_facility_id"] == updated["training_base_facility_id"]).all()
    assert (fresh["covered"] == updated["covered"]).all()
    # other layers' columns are the old objects' values, untouched
    assert (
        updated["technical_school_facility_id"]
        == study.coverage["ebike"]["technical_school_facility_id"]
    ).all()
    # the isochrone moved with it
    iso = live.isochrone("training_base", "ebike", 30)
    assert iso.contains(__import__("shapely").Point(120.95, 30.70))
    assert not study.isochrone("training_base", "ebike", 30).equals(iso)


def test_text_edit_recomputes_nothing(client, tokens):
    resp = client.patch(
        f"/api/admin/facilities/{NANHU_SCHOOL}",
        json={"phone": "0573-82222222"},
        headers=tokens["nanhu"],
    )
    assert resp.status_code == 200
    assert resp.get_json()["recomputed"]["layers"] == []
    assert "0573-82222222" in client.get(f"/q/f/{NANHU_SCHOOL}").get_data(as_text=True)


def test_delete_facility_removes_it_everywhere(client, tokens):
    url = f"/api/admin/facilities/{NANHU_SCHOOL}"
    assert client.post(url + "/courses", json=COURSE, headers=tokens["nanhu"]).status_code == 201
    assert client.delete(url, headers=tokens["nanhu"]).status_code == 204
    assert client.get(f"/api/facilities/{NANHU_SCHOOL}").status_code == 404
    assert client.get(f"/q/f/{NANHU_SCHOOL}").status_code == 404
    detail = client.get(f"/api/villages/{VILLAGE}").get_json()
    for mode in detail["modes"].values():
        facility = mode["layers"]["technical_school"]["facility"]
        assert facility is None or facility["id"] != NANHU_SCHOOL
    entry = client.get("/api/admin/audit?limit=1", headers=tokens["nanhu"]).get_json()["entries"][0]
    assert entry["action"] == "delete" and entry["before"]["name"] == "嘉兴市建筑工业学校"


# --------------------------------------------------------------------- uploads

REGISTRY = "名称,经度,纬度,工种,电话\n{rows}"
GOOD_ROWS = [
    "南湖职业培训中心,120.7623,30.7531,电工、焊工,0573-81111111",
    "东栅技能驿站,120.7901,30.7612,育婴员,",
    "城南培训点,120.7800,30.7400,电工,",
]


def _upload(client, headers, text: str, *, encoding="utf-8", name="名录.csv", crs="gcj02"):
    import io

    data = {
        "file": (io.BytesIO(text.encode(encoding)), name),
        "crs": crs,
        "layer": "training_institution",
    }
    return client.post(
        "/api/admin/facilities/upload",
        data=data,
        headers=headers,
        content_type="multipart/form-data",
    )


def test_bad_upload_changes_nothing(client, tokens, database):
    count = facility_count(client)
    audit = Store(database).count_audit("upload")
    rows = [*GOOD_ROWS, "坏行,120.80,纬度不详,电工,", "外省,116.40,39.90,电工,"]
    resp = _upload(client, tokens["nanhu"], REGISTRY.format(rows="\n".join(rows)))
    assert resp.status_code == 400
    body = resp.get_json()
    assert body["committed"] is False
    assert [p["row"] for p in body["problems"]] == ["row 5", "row 6"]
    assert "not numbers" in body["problems"][0]["message"]
    assert facility_count(client) == count
    assert Store(database).count_audit("upload") == audit


def test_upload_gbk_csv_commits_all_rows(client, tokens):
    count = facility_count(client)
    resp = _upload(
        client, tokens["nanhu"], REGISTRY.format(rows="\n".join(GOOD_ROWS)), encoding="gbk"
    )
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert (body["added"], body["updated"]) == (3, 0)
    # ids per layer and county (南湖区 330402), numbered in the store
    assert body["ids"] == ["TI-330402-A001", "TI-330402-A002", "TI-330402-A003"]
    assert body["recomputed"]["layers"] == ["training_institution"]
    assert facility_count(client) == count + 3
    fac = client.get("/api/facilities/TI-330402-A001").get_json()
    assert fac["name"] == "南湖职业培训中心" and fac["county"] == "南湖区"
    assert fac["source"] == "import:名录.csv" and fac["location_quality"] == "registry_gcj02"
    # re-uploading with ids updates instead of duplicating
    again = "编号,名称,经度,纬度\nTI-330402-A001,南湖职业培训中心（新址）,120.7623,30.7531\n"
    resp = _upload(client, tokens["nanhu"], again)
    assert resp.get_json()["updated"] == 1
    assert facility_count(client) == count + 3


#: The row of issue 15: the upload took it (200), then every PATCH of it was a 400.
LONG_NAME = "培" * 300
FORMULA_PHONE = '=HYPERLINK("http://x")'


def test_upload_refuses_what_a_patch_refuses_with_row_numbered_problems(client, tokens, database):
    count = facility_count(client)
    audit = Store(database).count_audit("upload")
    phone = FORMULA_PHONE.replace('"', '""')
    rows = [GOOD_ROWS[0], f'{LONG_NAME},120.7901,30.7612,电工,"{phone}"']
    resp = _upload(client, tokens["nanhu"], REGISTRY.format(rows="\n".join(rows)))
    assert resp.status_code == 400
    body = resp.get_json()
    assert body["committed"] is False
    assert [p["row"] for p in body["problems"]] == ["row 3", "row 3"]
    assert body["problems"][0]["message"].startswith("name has 300 characters")
    assert body["problems"][1]["message"].startswith(f"phone {FORMULA_PHONE!r} is not a phone")
    # the POST and the PATCH say the same
    post = {"layer": "training_base", "name": LONG_NAME, "lon": 120.75, "lat": 30.76}
    fields = client.post("/api/admin/facilities", json=post, headers=tokens["nanhu"]).get_json()
    assert fields["fields"]["name"] == body["problems"][0]["message"]
    url = f"/api/admin/facilities/{NANHU_SCHOOL}"
    patched = client.patch(url, json={"phone": FORMULA_PHONE}, headers=tokens["nanhu"])
    assert patched.status_code == 400
    assert patched.get_json()["fields"]["phone"] == body["problems"][1]["message"]
    assert facility_count(client) == count
    assert Store(database).count_audit("upload") == audit


def test_what_an_upload_accepts_can_be_patched_and_the_other_way_round(client, tokens):
    # values at the edges of every rule: 100 characters, a formula-like name (data), a
    # phone starting with +, a 30-character trade, a lone "-"
    name, trade = "站" * 100, "焊" * 30
    text = (
        "名称,经度,纬度,工种,电话,地址\n"
        f"{name},120.7623,30.7531,电工、{trade},+86 573 8211 1111,-\n"
        '"=SUM(1,2)",120.7901,30.7612,育婴员,,\n'
    )
    resp = _upload(client, tokens["nanhu"], text)
    assert resp.status_code == 200, resp.get_json()
    ids = resp.get_json()["ids"]
    first = client.get(f"/api/facilities/{ids[0]}").get_json()
    assert (first["name"], first["trades"], first["address"]) == (name, ["电工", trade], "-")
    for fid in ids:
        url = f"/api/admin/facilities/{fid}"
        resp = client.patch(url, json={"note": "已核实"}, headers=tokens["nanhu"])
        assert resp.status_code == 200, resp.get_json()
        assert resp.get_json()["facility"]["note"] == "已核实"
    # what a PATCH sets, the upload of the same values takes again
    url = f"/api/admin/facilities/{ids[1]}"
    change = {"name": "=HYPERLINK(1)" + "x" * 87, "phone": "(0573) 8211-1111", "trades": [trade]}
    resp = client.patch(url, json=change, headers=tokens["nanhu"])
    assert resp.status_code == 200, resp.get_json()
    row = f'{ids[1]},"{change["name"]}",120.7901,30.7612,{trade},{change["phone"]}'
    again = f"编号,名称,经度,纬度,工种,电话\n{row}\n"
    resp = _upload(client, tokens["nanhu"], again)
    assert resp.status_code == 200 and resp.get_json()["updated"] == 1, resp.get_json()


def test_upload_outside_county_is_403_and_changes_nothing(client, tokens):
    count = facility_count(client)
    resp = _upload(client, tokens["xiuzhou"], REGISTRY.format(rows="\n".join(GOOD_ROWS)))
    assert resp.status_code == 403 and len(resp.get_json()["problems"]) == 3
    assert facility_count(client) == count


def test_upload_needs_file_and_crs_and_size_limit(study, database, tokens, client):
    assert client.post("/api/admin/facilities/upload", headers=tokens["city"]).status_code == 400
    resp = _upload(client, tokens["city"], "x", crs="")
    assert resp.status_code == 400 and "crs" in resp.get_json()["message"]
    resp = _upload(client, tokens["city"], "x", name="evil.exe")
    assert resp.status_code == 400
    small = make_app(study, database, MAX_CONTENT_LENGTH=1024).test_client()
    resp = _upload(small, tokens["city"], "名称,经度,纬度\n" + "x,1,1\n" * 500)
    assert resp.status_code == 413 and resp.get_json()["error"] == "too large"


# ----------------------------------------------------------- persistence, CLI


def test_restart_keeps_changes(study, database, tokens, client):
    client.post(
        f"/api/admin/facilities/{NANHU_SCHOOL}/courses", json=COURSE, headers=tokens["nanhu"]
    )
    move = {"lon": 120.80, "lat": 30.78}
    moved = client.patch(f"/api/admin/facilities/{NANHU_BASE}", json=move, headers=tokens["nanhu"])
    assert moved.status_code == 200
    # a new app on the same store, starting from the original study: the store wins
    restarted = make_app(study, database)
    again = restarted.test_client()
    assert COURSE["title"] in again.get(f"/q/{VILLAGE}").get_data(as_text=True)
    fac = again.get(f"/api/facilities/{NANHU_BASE}").get_json()
    assert (fac["lon"], fac["lat"]) == (120.8, 30.78)
    live = restarted.extensions["skillcircle"]
    fresh = coverage_table(live.routers["drive"], live.villages, live.facilities)
    np.testing.assert_array_equal(
        fresh["training_base_minutes"].to_numpy(),
        live.coverage["drive"]["training_base_minutes"].to_numpy(),
    )
    assert again.get("/api/admin/whoami", headers=tokens["nanhu"]).status_code == 200


@SQLITE_ONLY  # validation, headers or pages before any store statement
def test_auth_failures_are_rate_limited(study, database):
    app = make_app(study, database, RATELIMIT_AUTH_FAILURES="3 per minute")
    client = app.test_client()
    bad = {"Authorization": "Bearer sc_guess"}
    codes = [client.get("/api/admin/whoami", headers=bad).status_code for _ in range(5)]
    assert codes == [401, 401, 401, 429, 429]
    assert client.get("/api/layers").status_code == 429  # the guesser is shut out
    assert (
        app.test_client().get("/api/layers", environ_base={"REMOTE_ADDR": "10.0.0.9"}).status_code
        == 200
    )


@SQLITE_ONLY  # validation, headers or pages before any store statement
def test_security_headers(client):
    resp = client.get(f"/q/{VILLAGE}")
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "Access-Control-Allow-Origin" not in resp.headers


def test_store_migrations(database):
    store = Store(database)
    assert store.version == SCHEMA_VERSION
    if store.path is not None:
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        query = "SELECT name FROM sqlite_master WHERE type = 'table'"
    else:
        query = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    tables = {r[0] for r in store.conn.execute(query)}
    assert {
        "facilities",
        "courses",
        "evaluations",
        "tokens",
        "audit",
        "id_sequences",
        "data_versions",
        "jobs",
        "published",
    } <= tables
    assert store.data_versions() == {"facilities": 0, "content": 0, "items": 0}
    store.close()
    Store(database).close()  # re-opening migrates nothing
    if store.path is not None:
        conn = sqlite3.connect(store.path)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        conn.close()
    else:
        store.conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match="newer than this skillcircle") as raised:
        Store(database)
    assert str(raised.value).startswith(store.location)
    assert "pg-test-secret" not in str(raised.value)  # a URL's password never in a message


def test_admin_cli_tokens(database):
    from geo.cli import main

    db = database
    runner = CliRunner()
    made = runner.invoke(main, ["admin", "create-token", "--county", "南湖区", "--database", db])
    assert made.exit_code == 0, made.output
    token = made.output.strip().splitlines()[-1]
    assert token.startswith("sc_") and len(token) > 40
    assert Store(db).authenticate(token).county == "南湖区"
    listed = runner.invoke(main, ["admin", "list-tokens", "--database", db])
    assert "南湖区总工会" in listed.output and token not in listed.output
    assert runner.invoke(main, ["admin", "revoke-token", "1", "--database", db]).exit_code == 0
    assert Store(db).authenticate(token) is None
    bad = runner.invoke(main, ["admin", "create-token", "--county", "../etc", "--database", db])
    assert bad.exit_code != 0 and "unknown county" in bad.output
    both = runner.invoke(main, ["admin", "create-token", "--database", db])
    assert both.exit_code != 0
    gone = runner.invoke(main, ["admin", "revoke-token", "99", "--database", db])
    assert gone.exit_code == 1 and "no token with id 99" in gone.output


@SQLITE_ONLY  # validation, headers or pages before any store statement
def test_admin_page_renders_without_inline_script(client):
    resp = client.get("/admin")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "批量导入设施名录" in html
    assert "admin.js" in html and "<script>" not in html
    # the API URLs are in the page's config object, not in the script (issue 15)
    assert '"upload": "/api/admin/facilities/upload"' in html
    script = client.get("/static/admin.js")
    assert script.status_code == 200 and b"/api/" not in script.data
    script.close()


# ------------------------------------------------ ids: safe, per county, repair


TONGXIANG_ROWS = ["桐乡培训点,120.5646,30.6227,电工,", "梧桐技能驿站,120.5616,30.6601,,"]


def test_generated_ids_are_per_county_and_cannot_be_squatted(app, client, tokens):
    store: Store = app.extensions["skillcircle.store"]
    _, token = store.create_token("桐乡市总工会", "桐乡市")
    tongxiang = {"Authorization": f"Bearer {token}"}
    # 南湖 takes, in its own county, the ids 桐乡's next id-less upload would be given
    squat = (
        "编号,名称,经度,纬度\n"
        "TI-330483-A001,占位,120.7623,30.7531\nTI-330483-A002,占位二,120.79,30.76\n"
    )
    resp = _upload(client, tokens["nanhu"], squat)
    assert resp.status_code == 200, resp.get_json()
    # 桐乡 is not blocked: its rows get the next free ids of its own sequence
    resp = _upload(client, tongxiang, REGISTRY.format(rows="\n".join(TONGXIANG_ROWS)), crs="wgs84")
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["ids"] == ["TI-330483-A003", "TI-330483-A004"]
    assert store.facility("TI-330483-A001")["county"] == "南湖区"  # untouched
    assert store.facility("TI-330483-A003")["county"] == "桐乡市"
    # and 南湖's own id-less rows come from 南湖's sequence
    resp = _upload(client, tokens["nanhu"], REGISTRY.format(rows=GOOD_ROWS[0]))
    assert resp.get_json()["ids"] == ["TI-330402-A001"]
    # a deleted id is not given again (printed 技能码 keep pointing at nothing, not at another)
    assert (
        client.delete("/api/admin/facilities/TI-330402-A001", headers=tokens["nanhu"]).status_code
        == 204
    )
    resp = _upload(client, tokens["nanhu"], REGISTRY.format(rows=GOOD_ROWS[0]))
    assert resp.get_json()["ids"] == ["TI-330402-A002"]


def test_given_ids_are_stored_before_ids_are_made(client, tokens):
    # the file names A001 itself: the id-less row above it must not take (and lose) it
    text = "编号,名称,经度,纬度\n,无编号,120.79,30.76\nTI-330402-A001,有编号,120.7623,30.7531\n"
    resp = _upload(client, tokens["nanhu"], text)
    assert resp.status_code == 200 and resp.get_json()["ids"] == [
        "TI-330402-A002",
        "TI-330402-A001",
    ]
    assert client.get("/api/facilities/TI-330402-A001").get_json()["name"] == "有编号"
    assert client.get("/api/facilities/TI-330402-A002").get_json()["name"] == "无编号"


def test_concurrent_uploads_on_one_store_get_distinct_ids(study, database, tokens):
    """Two apps on one database (as two server processes): each has its own lock, so
    only the store's transaction keeps generated ids apart."""
    import threading

    clients = [make_app(study, database).test_client() for _ in range(2)]
    barrier = threading.Barrier(2)
    results: list[list[str]] = [[], []]

    def upload(k: int) -> None:
        barrier.wait()
        for _ in range(2):
            resp = _upload(clients[k], tokens["nanhu"], REGISTRY.format(rows="\n".join(GOOD_ROWS)))
            assert resp.status_code == 200, resp.get_json()
            results[k] += resp.get_json()["ids"]

    threads = [threading.Thread(target=upload, args=(k,)) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = results[0] + results[1]
    assert sorted(ids) == [f"TI-330402-A{n:03d}" for n in range(1, 13)]
    store = Store(database)
    assert all(store.facility(fid)["source"] == "import:名录.csv" for fid in ids)


UNSAFE_IDS = ["a/b", "../../etc/passwd", "<script>alert(1)</script>", '=HYPERLINK("x")', "+cmd"]


def test_unsafe_ids_are_refused_on_post_and_upload(client, tokens, database):
    before = (facility_count(client), Store(database).count_audit("upload"))
    for fid in UNSAFE_IDS:
        body = {"id": fid, "layer": "training_base", "name": "x", "lon": 120.75, "lat": 30.76}
        resp = client.post("/api/admin/facilities", json=body, headers=tokens["city"])
        assert resp.status_code == 400 and "not a safe id" in resp.get_json()["fields"]["id"]
        text = f'编号,名称,经度,纬度\n"{fid.replace(chr(34), 2 * chr(34))}",x,120.7623,30.7531\n'
        resp = _upload(client, tokens["nanhu"], text)
        assert resp.status_code == 400, fid
        assert resp.get_json()["problems"][0]["message"].startswith(f"id {fid!r} is not a safe id")
    assert (facility_count(client), Store(database).count_audit("upload")) == before


def test_repair_ids_lists_then_removes_unreachable_records(study, database, caplog):
    from geo.cli import main

    db = database
    store = Store(db)
    store.seed(study.facilities)
    good = store.facility(NANHU_SCHOOL)
    # records an older version accepted: no URL reaches them
    with store.write(None, "upload", "facility", "old.csv") as tx:
        for fid in ("a/b", '=HYPERLINK("x")'):
            put_legacy(tx, {**good, "id": fid, "name": f"孤儿 {fid}"})
        course = tx.insert_item("courses", "a/b", {**COURSE})
        tx.insert_item(
            "evaluations", "a/b", {"trade": "电工", "level": "初级", "date": "2099-01-01"}
        )
    count = store.facility_count()
    # the app still starts on such a store, and says what to do
    with caplog.at_level("WARNING"):
        served = make_app(study, db).test_client()
    assert "2 facilities with unsafe ids" in caplog.text and "repair-ids" in caplog.text
    assert served.get("/api/layers").status_code == 200

    runner = CliRunner()
    listed = runner.invoke(main, ["admin", "repair-ids", "--database", db])
    assert listed.exit_code == 0, listed.output
    assert "'a/b'\t南湖区" in listed.output and "courses 1, evaluations 1" in listed.output
    assert "2 facilities with unsafe ids; run again with --yes" in listed.output
    assert Store(db).facility_count() == count  # listing removes nothing

    fixed = runner.invoke(main, ["admin", "repair-ids", "--database", db, "--yes"])
    assert fixed.exit_code == 0, fixed.output
    assert "removed 2 facilities, 1 courses and 1 evaluations" in fixed.output
    store = Store(db)
    assert store.facility_count() == count - 2 and store.facility(NANHU_SCHOOL) is not None
    assert store.item("courses", course) is None
    assert store.conn.execute("SELECT count(*) FROM evaluations").fetchone()[0] == 0
    entry = store.audit(limit=1)[0]
    assert (entry["action"], entry["who"]) == ("repair", "cli repair-ids")
    assert entry["after"]["removed"] == ["a/b", '=HYPERLINK("x")']
    assert entry["before"][0]["courses"][0]["title"] == COURSE["title"]  # kept in the audit
    again = runner.invoke(main, ["admin", "repair-ids", "--database", db])
    assert again.exit_code == 0 and "no facilities with unsafe ids" in again.output


@SQLITE_ONLY  # validation, headers or pages before any store statement
def test_unexpected_error_is_json_500_with_request_id(study, database, monkeypatch, caplog):
    app = make_app(study, database, PROPAGATE_EXCEPTIONS=False)
    _, token = app.extensions["skillcircle.store"].create_token("t", None)

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Store, "audit", broken)
    with caplog.at_level("ERROR"):
        resp = app.test_client().get(
            "/api/admin/audit", headers={"Authorization": f"Bearer {token}"}
        )
    assert resp.status_code == 500 and resp.is_json
    body = resp.get_json()
    assert body["error"] == "internal error" and len(body["request_id"]) == 16
    assert resp.headers["X-Request-Id"] == body["request_id"]
    assert "disk on fire" not in resp.get_data(as_text=True)  # no internals to the client
    assert f"request {body['request_id']}: unexpected error on GET /api/admin/audit" in caplog.text
    assert "RuntimeError: disk on fire" in caplog.text
    # a page gets the HTML error page with the id
    monkeypatch.setattr("web.qr.get_study", broken)
    page = app.test_client().get(f"/q/f/{NANHU_SCHOOL}")
    assert page.status_code == 500 and "text/html" in page.content_type
    assert page.headers["X-Request-Id"] in page.get_data(as_text=True)


# -------------------------------------------------------------------- upload preview


def _preview(client, headers, text: str, **kwargs):
    import io

    data = {
        "file": (io.BytesIO(text.encode(kwargs.get("encoding", "utf-8"))), "名录.csv"),
        "crs": "gcj02",
        "layer": "training_institution",
    }
    return client.post(
        "/api/admin/facilities/upload?dry_run=1",
        data=data,
        headers=headers,
        content_type="multipart/form-data",
    )


def test_upload_preview_lists_every_row_and_problem_and_writes_nothing(client, tokens, database):
    count = facility_count(client)
    audit = Store(database).count_audit("upload")
    versions = Store(database).data_versions()
    again = f"{NANHU_SCHOOL},嘉兴市建筑工业学校,120.7623,30.7531,电工,"
    rows = [*[f",{row}" for row in GOOD_ROWS], again, ",秀洲的点,120.70,30.80,电工,"]
    text = "编号," + REGISTRY.format(rows="\n".join(rows))
    resp = _preview(client, tokens["nanhu"], text)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["committed"] is False and body["valid"] is False
    assert [p["row"] for p in body["preview"]] == [f"row {n}" for n in range(2, 7)]
    first = body["preview"][0]
    assert (first["name"], first["county"], first["id"]) == ("南湖职业培训中心", "南湖区", "")
    assert first["location_quality"] == "registry_gcj02" and first["town"]
    assert 120.7 < first["lon"] < 120.8  # converted from GCJ-02 to WGS84
    assert body["preview"][3]["id"] == NANHU_SCHOOL
    assert (body["would_add"], body["would_update"]) == (4, 1)
    assert [p["row"] for p in body["problems"]] == ["row 6"]
    assert "not in 南湖区" in body["problems"][0]["message"]
    # the same file without the 秀洲 row is valid; nothing was written either way
    ok = _preview(client, tokens["nanhu"], "编号," + REGISTRY.format(rows="\n".join(rows[:4])))
    assert ok.get_json()["valid"] is True and ok.get_json()["problems"] == []
    assert facility_count(client) == count
    assert Store(database).count_audit("upload") == audit
    assert Store(database).data_versions() == versions


def test_upload_preview_of_a_broken_file_lists_its_row_problems(client, tokens, database):
    count = facility_count(client)
    rows = [*GOOD_ROWS, "坏行,120.80,纬度不详,电工,", "外省,116.40,39.90,电工,"]
    resp = _preview(client, tokens["nanhu"], REGISTRY.format(rows="\n".join(rows)))
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["committed"] is False and body["valid"] is False and body["preview"] == []
    assert [p["row"] for p in body["problems"]] == ["row 5", "row 6"]
    assert facility_count(client) == count
    no_crs = client.post(
        "/api/admin/facilities/upload?dry_run=1",
        data={"file": (io.BytesIO(b"name,lon,lat\n"), "a.csv")},
        headers=tokens["nanhu"],
        content_type="multipart/form-data",
    )
    assert no_crs.status_code == 400
