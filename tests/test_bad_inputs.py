"""The bad-input corpus (tests/bad_inputs/ plus generated files): every case gets one
readable error — CLI exit code != 0 and no output file, API 4xx JSON and no change in
the store — or, for input that is odd but valid, a correct answer."""

from __future__ import annotations

import gc
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import openpyxl
import pytest
from click.testing import CliRunner

from geo.cli import main
from web import create_app
from web.store import Store

from pg import BACKENDS, store_location

CORPUS = Path(__file__).parent / "bad_inputs"


def run_cli(args: list[str], out: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, [*args, "--out", str(out)])
    return result.exit_code, result.output


# ---------------------------------------------------------------- CLI corpus

FACILITY_FILES = {
    "truncated.geojson": "broken JSON",
    "feature_not_collection.geojson": "not a GeoJSON FeatureCollection",
    "json_array.geojson": "not a GeoJSON FeatureCollection",
    "linestring.geojson": "not a Point",
    "string_coordinates.geojson": "not numbers",
    "nan_coordinates.geojson": "not numbers",
    "null_coordinates.geojson": "not [lon, lat]",
    "null_geometry.geojson": "has no geometry",
    "swapped_lon_lat.geojson": "look swapped",
    "outside_jiaxing.geojson": "outside the region 嘉兴市 (330400)",
    "duplicate_ids.geojson": "repeats feature 1",
    "unknown_layer.geojson": "unknown layer 'zoo'",
    "missing_name.geojson": "name is missing",
    "bad_capacity.geojson": "not a whole number",
    "empty.geojson": "broken JSON",
    "no_features.geojson": "is empty",
    "binary_garbage.geojson": "cannot decode",
    "deep_nesting.geojson": "nested 5002 levels deep",
    "long_number.geojson": "more than 4300 digits",
    "unsafe_id.geojson": "id '../../etc/passwd' is not a safe id",
}

REGISTRY_FILES = {
    "missing_latitude.csv": "missing column(s) lat",
    "empty_name_and_text_coordinate.csv": "2 problems",
    "outside_jiaxing.csv": "outside the region 嘉兴市 (330400)",
    "swapped.csv": "look swapped",
    "empty.csv": "empty",
    "binary.csv": "cannot decode",
    "not_a_zip.xlsx": "cannot read the workbook",
    "registry.txt": "unknown registry file type",
    "header_only.csv": "no data rows",
    "huge_capacity.csv": "not a whole number from 0 to 1,000,000",
    "unsafe_ids.csv": "13 problems | row 2: id 'a/b' is not a safe id",
    "deep_nesting.geojson": "nested 5002 levels deep",
}

OSM_FILES = {
    "no_roads.osm": "no roads",
    "one_node.osm": "no roads",
    "truncated.osm": "broken OSM XML",
    "empty.osm": "broken OSM XML",
    "garbage.osm.pbf": "cannot read OSM PBF",
}

PARAMETERS = {
    "minutes_zero": (["coverage", "--mode", "walk", "--minutes", "0"], "--minutes"),
    "minutes_negative": (["coverage", "--mode", "walk", "--minutes", "-5"], "--minutes"),
    "minutes_10000": (["coverage", "--mode", "walk", "--minutes", "10000"], "--minutes"),
    "max_below_threshold": (
        ["coverage", "--mode", "walk", "--minutes", "60", "--max-minutes", "30"],
        "must not exceed max_minutes",
    ),
    "unknown_mode": (["coverage", "--mode", "teleport"], "--mode"),
    "unknown_trade": (
        ["coverage", "--mode", "walk", "--trade", "不存在工种"],
        "no facility teaches",
    ),
    "unknown_layer": (["isochrones", "--layer", "zoo", "--mode", "walk"], "--layer"),
    "unknown_by": (["stats", "--by", "province", "--mode", "walk"], "--by"),
    "county_traversal": (
        ["export", "--county", "../../etc/passwd", "--mode", "walk", "--format", "csv"],
        "unknown county",
    ),
    "unknown_crs": (
        ["import", str(CORPUS / "gbk_ok.csv"), "--layer", "training_base", "--crs", "utm"],
        "--crs",
    ),
}


def assert_refused(code: int, output: str, expected: str, out: Path) -> None:
    assert code != 0, output
    assert expected in output, output
    assert not out.exists()
    lines = [line for line in output.splitlines() if line.strip()]
    if code == 1:  # our errors: one line, no traceback
        assert len([x for x in lines if x.startswith("错误 error:")]) == 1, output
        assert "Traceback" not in output


@pytest.mark.parametrize(("name", "expected"), FACILITY_FILES.items())
def test_bad_facility_files(tmp_path, name, expected):
    out = tmp_path / "out.csv"
    args = ["coverage", "--mode", "walk", "--facilities", str(CORPUS / name)]
    assert_refused(*run_cli(args, out), expected, out)


@pytest.mark.parametrize(("name", "expected"), REGISTRY_FILES.items())
def test_bad_registry_files(tmp_path, name, expected):
    out = tmp_path / "out.geojson"
    args = ["import", str(CORPUS / name), "--layer", "training_base", "--crs", "gcj02"]
    assert_refused(*run_cli(args, out), expected, out)


@pytest.mark.parametrize(("name", "expected"), OSM_FILES.items())
def test_bad_osm_files(tmp_path, name, expected, monkeypatch):
    monkeypatch.setenv("SKILLCIRCLE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out.csv"
    args = ["coverage", "--mode", "walk", "--osm", str(CORPUS / name)]
    assert_refused(*run_cli(args, out), expected, out)


@pytest.mark.parametrize(("args", "expected"), PARAMETERS.values(), ids=PARAMETERS.keys())
def test_bad_parameters(tmp_path, args, expected):
    out = tmp_path / ("out.geojson" if args[0] in ("isochrones", "import") else "out.csv")
    assert_refused(*run_cli(args, out), expected, out)


# generated files: workbooks and sizes that cannot sit in the repository


def workbook(rows: list[list[object]], merge: str | None = None) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    if merge:
        sheet.merge_cells(merge)
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def zip_bomb() -> bytes:
    """A valid-looking .xlsx whose sheet unpacks to ~300 MB of XML from ~300 KB."""
    good = zipfile.ZipFile(io.BytesIO(workbook([["名称", "经度", "纬度"]])))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as bomb:
        for info in good.infolist():
            if info.filename != "xl/worksheets/sheet1.xml":
                bomb.writestr(info, good.read(info))
        with bomb.open("xl/worksheets/sheet1.xml", "w") as sheet:
            block = b"<row><c><v>1</v></c></row>" * 40_000
            for _ in range(300):
                sheet.write(block)
    return buf.getvalue()


GENERATED = {
    "missing_columns.xlsx": (
        lambda: workbook([["名称", "电话"], ["培训点", "0573-1"]]),  # an address would do
        "lon, lat",
    ),
    "merged_cells.xlsx": (
        lambda: workbook(
            [["名称", "经度", "纬度"], ["培训点", 120.75, 30.76], [None, 120.76, 30.77]], "A2:A3"
        ),
        "name is missing",
    ),
    "formula_cells.xlsx": (
        lambda: workbook([["名称", "经度", "纬度"], ["培训点", "=1/0", "=B2*2"]]),
        "not numbers",
    ),
    "zip_bomb.xlsx": (zip_bomb, "zip bomb"),
}


@pytest.mark.parametrize(("name", "expected"), [(k, v[1]) for k, v in GENERATED.items()])
def test_generated_bad_workbooks(tmp_path, name, expected):
    path = tmp_path / name
    path.write_bytes(GENERATED[name][0]())
    out = tmp_path / "out.geojson"
    args = ["import", str(path), "--layer", "training_base", "--crs", "gcj02"]
    assert_refused(*run_cli(args, out), expected, out)


def test_200_mb_registry_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.csv"
    with path.open("wb") as fh:  # sparse: 200 MB on paper, nothing on disk
        fh.write("名称,经度,纬度\n".encode())
        fh.truncate(200 * 1024 * 1024)
    out = tmp_path / "out.geojson"
    args = ["import", str(path), "--layer", "training_base", "--crs", "gcj02"]
    assert_refused(*run_cli(args, out), "200 MB", out)


# odd but valid input: read correctly


def test_gbk_registry_is_decoded(tmp_path):
    out = tmp_path / "out.geojson"
    args = ["import", str(CORPUS / "gbk_ok.csv"), "--layer", "training_base", "--crs", "gcj02"]
    code, output = run_cli(args, out)
    assert code == 0, output
    assert "培训点" in out.read_text(encoding="utf-8")


def test_extra_columns_are_ignored(tmp_path):
    path = tmp_path / "extra.xlsx"
    path.write_bytes(
        workbook([["名称", "经度", "纬度", "负责人"], ["培训点", 120.75, 30.76, "张三"]])
    )
    code, output = run_cli(
        ["import", str(path), "--layer", "training_base", "--crs", "gcj02"], tmp_path / "o.geojson"
    )
    assert code == 0, output
    assert "张三" not in (tmp_path / "o.geojson").read_text(encoding="utf-8")


def test_disconnected_network_warns_and_answers(tmp_path, monkeypatch):
    monkeypatch.setenv("SKILLCIRCLE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out.csv"
    code, output = run_cli(
        ["coverage", "--mode", "walk", "--osm", str(CORPUS / "disconnected.osm")], out
    )
    assert code == 0 and "警告 warning" in output and "right area" in output
    assert out.exists()


# ----------------------------------------------------------------- API corpus

API_CASES = [
    ("/api/nearby?lon=abc&lat=30.76", 400),
    ("/api/nearby?lon=nan&lat=nan", 400),
    ("/api/nearby?lon=inf&lat=30.76", 400),
    ("/api/nearby?lon=116.40&lat=39.90", 400),
    ("/api/nearby?lon=30.76&lat=120.75", 400),
    ("/api/nearby?lon=120.75&lat=30.76&minutes=0", 400),
    ("/api/nearby?lon=120.75&lat=30.76&minutes=-5", 400),
    ("/api/nearby?lon=120.75&lat=30.76&minutes=10000", 400),
    ("/api/nearby?lon=120.75&lat=30.76&mode=teleport", 400),
    ("/api/nearby?lon=120.75&lat=30.76&trade=不存在工种", 400),
    ("/api/nearby?lon=120.75&lat=30.76&limit=0", 400),
    ("/api/villages/999999999999", 404),
    ("/api/villages/..%2F..%2Fetc%2Fpasswd", 404),
    ("/api/isochrones?layer=zoo", 400),
    ("/api/isochrones?minutes=10000", 400),
    ("/api/plan?county=..%2F..%2Fetc", 400),
    ("/api/facilities?county=上海", 400),
    ("/export/..%2F..%2Fetc%2Fpasswd.xlsx", 404),
    ("/export/南湖区.exe", 404),
    # numbers are ASCII decimals: no '_', non-ASCII or superscript digits, no 5000-digit ints
    ("/api/nearby?lon=120.7_5&lat=30.76", 400),
    ("/api/nearby?lon=１２０.７５&lat=30.76", 400),
    ("/api/nearby?lon=120.75&lat=٣٠.٧٦", 400),
    ("/api/nearby?lon=%20120.75&lat=30.76", 400),
    ("/api/nearby?lon=120.75&lat=30.76&limit=٣", 400),
    ("/api/nearby?lon=120.75&lat=30.76&limit=²", 400),
    ("/api/nearby?lon=120.75&lat=30.76&limit=1_0", 400),
    ("/api/nearby?lon=120.75&lat=30.76&limit=" + "9" * 5000, 400),
    ("/api/nearby?lon=120.75&lat=30.76&minutes=3_0", 400),
    ("/api/nearby?lon=1" + "0" * 400 + "&lat=30.76", 400),
    ("/api/plan?county=南湖区&add=٣", 400),
    ("/api/facilities/..%2F..%2Fetc%2Fpasswd", 404),
    ("/api/facilities/%3Cscript%3E", 404),
]


def _api(study, database: str):
    app = create_app({"TESTING": True, "STUDY": study, "TILE_URL": "none", "DATABASE": database})
    _, token = app.extensions["skillcircle.store"].create_token("corpus", "南湖区")
    return app, {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def api(study, new_database):
    """The app on a SQLite store (refusals before any store access)."""
    return _api(study, new_database())


@pytest.fixture(scope="module", params=BACKENDS)
def store_api(request, study):
    """The app on each store backend (bodies and ids that reach the store's statements)."""
    return _api(study, store_location(request, request.param))


@pytest.mark.parametrize(("url", "status"), API_CASES)
def test_bad_requests(api, url, status):
    app, _ = api
    resp = app.test_client().get(url)
    assert resp.status_code == status, url
    if url.startswith("/api/"):
        assert resp.is_json and resp.get_json()["error"]


def snapshot(app) -> tuple[int, int, int, int]:
    """Counts of facilities, audit entries, courses and evaluations in the store."""
    store: Store = app.extensions["skillcircle.store"]
    rows = store.conn.execute(
        "SELECT (SELECT count(*) FROM facilities), (SELECT count(*) FROM audit), "
        "(SELECT count(*) FROM courses), (SELECT count(*) FROM evaluations)"
    ).fetchone()
    return tuple(rows)


ADMIN_BODIES = [
    ({"layer": "training_base", "name": "x", "lon": "NaN", "lat": 30.76}, "lon"),
    ({"layer": "training_base", "name": "x", "lon": None, "lat": None}, "lon"),
    ({"layer": "training_base", "name": "x", "lon": 30.76, "lat": 120.75}, "lat"),
    ({"layer": "training_base", "name": "x", "lon": 116.40, "lat": 39.90}, "lon"),
    (
        {"layer": "training_base", "name": "x", "lon": 120.75, "lat": 30.76, "trades": "电工"},
        "trades",
    ),
    ({"layer": "training_base", "name": "", "lon": 120.75, "lat": 30.76}, "name"),
]


@pytest.mark.parametrize(("body", "field"), ADMIN_BODIES)
def test_bad_admin_bodies_change_nothing(store_api, body, field):
    app, auth = store_api
    before = snapshot(app)
    resp = app.test_client().post("/api/admin/facilities", json=body, headers=auth)
    assert resp.status_code == 400 and field in resp.get_json()["fields"]
    assert snapshot(app) == before


def nested(depth: int, opener: str = "[") -> bytes:
    closer = {"[": "]", '{"a":': "}"}[opener]
    inner = "1" if opener != "[" else ""
    return (opener * depth + inner + closer * depth).encode()


FACILITY = {"layer": "training_base", "name": "x", "lon": 120.75, "lat": 30.76}
NANHU_SCHOOL = "TS-330402-001"
HOSTILE_BODIES = {
    # 3,000-100,000 levels deep: refused before Python's parser recurses (RecursionError)
    **{f"array_{n}": nested(n) for n in (3_000, 100_000)},
    **{f"object_{n}": nested(n, '{"a":') for n in (3_000, 100_000)},
    "deep_trades": json.dumps(FACILITY)[:-1].encode() + b', "trades": ' + nested(10_000) + b"}",
    "digits_5000": b'{"seats": ' + b"9" * 5000 + b"}",
    "capacity_1e23": json.dumps({**FACILITY, "capacity": 10**23}).encode(),
    "seats_1e23": json.dumps(
        {"title": "x", "trade": "电工", "start_date": "2099-01-01", "seats": 10**23}
    ).encode(),
    "lon_1e400": json.dumps(FACILITY).replace("120.75", "1e400").encode(),
    "path_id": json.dumps({**FACILITY, "id": "../../etc/passwd"}).encode(),
    "formula_id": json.dumps({**FACILITY, "id": '=HYPERLINK("http://x")'}).encode(),
    "bidi_id": json.dumps({**FACILITY, "id": "TB\u202e1"}).encode(),
    "not_utf8": b'{"name": "\xff\xfe"}',
    "array": b"[1, 2]",
    "null": b"null",
    "too_large": b'{"note": "' + b"x" * 300_000 + b'"}',
}
HOSTILE_TARGETS = {
    "post_facility": ("POST", "/api/admin/facilities"),
    "patch_facility": ("PATCH", f"/api/admin/facilities/{NANHU_SCHOOL}"),
    "post_course": ("POST", f"/api/admin/facilities/{NANHU_SCHOOL}/courses"),
    "patch_course": ("PATCH", f"/api/admin/facilities/{NANHU_SCHOOL}/courses/1"),
    "post_evaluation": ("POST", f"/api/admin/facilities/{NANHU_SCHOOL}/evaluations"),
}


@pytest.mark.parametrize("target", HOSTILE_TARGETS)
@pytest.mark.parametrize("body", HOSTILE_BODIES)
def test_hostile_json_bodies_are_4xx_json_and_change_nothing(store_api, body, target):
    app, auth = store_api
    client = app.test_client()
    if target == "patch_course" and not app.extensions["skillcircle.store"].item("courses", 1):
        course = {"title": "x", "trade": "电工", "start_date": "2099-01-01", "seats": 1}
        url = f"/api/admin/facilities/{NANHU_SCHOOL}/courses"
        assert client.post(url, json=course, headers=auth).status_code == 201
    before = snapshot(app)
    method, url = HOSTILE_TARGETS[target]
    resp = client.open(
        url, method=method, data=HOSTILE_BODIES[body], headers=auth, content_type="application/json"
    )
    assert resp.status_code in (400, 413), (body, target, resp.get_data()[:300])
    assert resp.is_json and resp.get_json()["error"] == "invalid body"
    assert snapshot(app) == before


@pytest.mark.parametrize(
    "url",
    [
        "/api/admin/audit?limit=²",
        "/api/admin/audit?limit=٣",
        "/api/admin/audit?limit=1_0",
        "/api/admin/audit?limit=" + "1" * 24,
        "/api/admin/audit?limit=-1",
    ],
)
def test_admin_query_numbers_are_ascii(api, url):
    app, auth = api
    resp = app.test_client().get(url, headers=auth)
    assert resp.status_code == 400 and "limit must be a whole number" in resp.get_json()["message"]


@pytest.mark.parametrize("item", ["1" + "0" * 23, str(2**63), "0", "٣", "-1", "1.5"])
@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
def test_item_ids_a_database_cannot_hold_are_404(store_api, item, method):
    app, auth = store_api
    before = snapshot(app)
    url = f"/api/admin/facilities/{NANHU_SCHOOL}/courses/{item}"
    resp = app.test_client().open(url, method=method, json={"seats": 1}, headers=auth)
    assert resp.status_code == 404 and resp.is_json
    assert snapshot(app) == before


UPLOADS = {
    "zip_bomb.xlsx": (zip_bomb, 400, "zip bomb"),
    "merged_cells.xlsx": (GENERATED["merged_cells.xlsx"][0], 400, "name is missing"),
    "formula_cells.xlsx": (GENERATED["formula_cells.xlsx"][0], 400, "not numbers"),
    "missing_columns.xlsx": (GENERATED["missing_columns.xlsx"][0], 400, "lon, lat"),
    "huge.csv": (lambda: b"x" * (200 * 1024 * 1024), 413, "larger than"),
    "binary.csv": (lambda: (CORPUS / "binary.csv").read_bytes(), 400, "cannot decode"),
    **{
        name: (lambda name=name: (CORPUS / name).read_bytes(), 400, REGISTRY_FILES[name])
        for name in ("header_only.csv", "huge_capacity.csv", "unsafe_ids.csv")
    },
    "deep_nesting.geojson": (
        lambda: nested(100_000).join([b'{"type":"FeatureCollection","features":[', b"]}"]),
        400,
        "nested 100002 levels deep",
    ),
    "long_number.geojson": (
        lambda: (CORPUS / "long_number.geojson").read_bytes(),
        400,
        "more than 4300 digits",
    ),
    "unsafe_id.geojson": (
        lambda: (CORPUS / "unsafe_id.geojson").read_bytes(),
        400,
        "not a safe id",
    ),
}


# werkzeug's test client spools a large multipart body to a temporary file that it
# never closes (client side, not the app: the upload view closes what it receives)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.parametrize("name", UPLOADS)
def test_bad_uploads_change_nothing(api, name):
    app, auth = api
    make, status, expected = UPLOADS[name]
    before = snapshot(app)
    data = {"file": (io.BytesIO(make()), name), "crs": "gcj02", "layer": "training_base"}
    resp = app.test_client().post(
        "/api/admin/facilities/upload", data=data, headers=auth, content_type="multipart/form-data"
    )
    assert resp.status_code == status
    assert expected in resp.get_json()["message"]
    if status == 400:
        assert resp.get_json()["message"].startswith(name)  # names the file
    assert snapshot(app) == before
    del data, resp
    gc.collect()  # let the client's spool file go here, under this test's filter


@pytest.mark.parametrize(("crs", "layer"), [("utm", "training_base"), ("gcj02", "zoo")])
def test_upload_with_unknown_crs_or_layer_is_400(api, crs, layer):
    app, auth = api
    before = snapshot(app)
    text = (CORPUS / "gbk_ok.csv").read_bytes()
    data = {"file": (io.BytesIO(text), "ok.csv"), "crs": crs, "layer": layer}
    resp = app.test_client().post(
        "/api/admin/facilities/upload", data=data, headers=auth, content_type="multipart/form-data"
    )
    assert resp.status_code == 400
    assert (crs if crs == "utm" else layer) in resp.get_json()["message"]
    assert snapshot(app) == before


def test_markup_and_formulas_in_names_are_neutralised(store_api):
    app, auth = store_api
    client = app.test_client()
    for name in ("<script>alert(1)</script>", '=HYPERLINK("http://evil","点我")'):
        body = {"layer": "experience_site", "name": name, "lon": 120.755, "lat": 30.762}
        resp = client.post("/api/admin/facilities", json=body, headers=auth)
        assert resp.status_code == 201
        fid = resp.get_json()["facility"]["id"]
        page = client.get(f"/q/f/{fid}").get_data(as_text=True)
        assert "<script>alert(1)</script>" not in page
        book = openpyxl.load_workbook(io.BytesIO(client.get("/export/南湖区.xlsx").data))
        cells = [c for row in book["设施"].iter_rows() for c in row if c.value == name]
        assert cells and all(c.data_type == "s" for c in cells)


def test_gcj02_points_read_as_wgs84_are_flagged(tmp_path):
    """Points on real roads, shifted as 高德 would show them, then imported as WGS84."""
    import json

    from geo.coords import wgs84_to_gcj02
    from geo.network import load_network
    from geo.settings import Settings

    net = load_network(Settings(cache_dir=tmp_path / "cache"))
    pick = np.linspace(0, net.n_nodes - 1, 30).astype(int)
    g_lon, g_lat = wgs84_to_gcj02(net.lon[pick], net.lat[pick])
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [float(x), float(y)]},
            "properties": {"id": f"G{i}", "layer": "training_base", "name": f"点{i}"},
        }
        for i, (x, y) in enumerate(zip(g_lon, g_lat, strict=True))
    ]
    path = tmp_path / "gcj.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    code, output = run_cli(
        ["coverage", "--mode", "drive", "--facilities", str(path)], tmp_path / "o.csv"
    )
    assert code == 0  # a warning, not an error: the user decides
    assert "if their coordinates were GCJ-02" in output and "--crs gcj02" in output
    # the bundled (WGS84) facilities raise no such warning
    code, output = run_cli(["coverage", "--mode", "drive"], tmp_path / "p.csv")
    assert code == 0 and "GCJ-02" not in output
