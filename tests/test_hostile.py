"""A hostile client with valid tokens against a real server (waitress on 127.0.0.1).

Every case must answer a 4xx JSON body with an ``error`` and leave the store
exactly as it was: deep JSON nesting (up to 100,000 levels), integers SQLite
cannot hold, non-ASCII and odd number spellings, path-like, markup, formula and
bidi ids, empty and broken uploads. The app runs as in production (not in
testing mode), so an unexpected exception would show here as a 5xx. Issue 17.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

import openpyxl
import pytest
from waitress.server import create_server
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from web import create_app
from web.store import Store

from pg import BACKENDS, store_location

SCHOOL = "TS-330402-001"  # 南湖区
FACILITY = {"layer": "training_base", "name": "敌意测试", "lon": 120.75, "lat": 30.76}
COURSE = {"title": "x", "trade": "电工", "start_date": "2099-01-01", "seats": 1}


@dataclass(frozen=True)
class Hostile:
    """One hostile request: method, path (raw, quoted when sent), body and its type."""

    name: str
    method: str
    path: str
    body: bytes | None = None
    content_type: str | None = None
    expected: tuple[int, ...] = (400,)
    #: Text the answer's message must contain (an upload's names the file).
    says: str = ""


def _json_case(name: str, method: str, path: str, body: bytes | object, *expected: int) -> Hostile:
    data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    return Hostile(name, method, path, data, "application/json", expected or (400,))


def _upload_case(
    name: str, filename: str, content: bytes, crs: str = "gcj02", says: str | None = None
) -> Hostile:
    file = FileStorage(io.BytesIO(content), filename=filename)
    boundary, data = encode_multipart({"file": file, "crs": crs})
    content_type = f"multipart/form-data; boundary={boundary}"
    path = "/api/admin/facilities/upload"
    return Hostile(name, "POST", path, data, content_type, says=filename if says is None else says)


def _nested(depth: int, shape: str) -> bytes:
    if shape == "array":
        return b"[" * depth + b"]" * depth
    if shape == "object":
        return b'{"a":' * depth + b"1" + b"}" * depth
    inner = b"[" * depth + b"]" * depth  # deep inside an otherwise valid facility
    return json.dumps(FACILITY).encode()[:-1] + b', "trades": ' + inner + b"}"


def _xlsx(rows: list[list[object]]) -> bytes:
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


BODY_TARGETS = {
    "post-facility": ("POST", "/api/admin/facilities"),
    "patch-facility": ("PATCH", f"/api/admin/facilities/{SCHOOL}"),
    "post-course": ("POST", f"/api/admin/facilities/{SCHOOL}/courses"),
    "patch-course": ("PATCH", f"/api/admin/facilities/{SCHOOL}/courses/1"),
    "post-evaluation": ("POST", f"/api/admin/facilities/{SCHOOL}/evaluations"),
    "patch-evaluation": ("PATCH", f"/api/admin/facilities/{SCHOOL}/evaluations/1"),
}

UNSAFE_IDS = [
    "a/b",
    "../../etc/passwd",
    "<script>alert(1)</script>",
    '=HYPERLINK("http://evil","点我")',
    "+cmd|' /C calc'!A0",
    "@SUM(1+1)",
    "-2+3",
    "a b",
    "a\tb",
    "a\nb",
    "a\x00b",
    "\u202eexe.txt",
    "ab\u200b",
    "",
    " ",
    ".hidden",
    "..",
    "a..b",
    "x" * 65,
    "中文编号",
    "ＡＢＣ",
    "a%2Fb",
    "TB-1;DROP TABLE facilities",
]


def _csv_cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _cases() -> list[Hostile]:
    cases: list[Hostile] = []
    # 1. deep nesting on every JSON body (the limit is 64 levels)
    for depth in (65, 3_000, 10_000, 100_000):
        for shape in ("array", "object", "in-trades"):
            for target, (method, path) in BODY_TARGETS.items():
                body = _nested(depth, shape)  # over 256 KB: 413 before it is read
                name = f"deep-{shape}-{depth}-{target}"
                cases.append(_json_case(name, method, path, body, 400, 413))
    # 2. numbers no field can hold
    numbers = {
        "capacity-1e23": {**FACILITY, "capacity": 10**23},
        "capacity-negative": {**FACILITY, "capacity": -1},
        "capacity-fraction": {**FACILITY, "capacity": 1.5},
        "lon-1e400": json.dumps(FACILITY).replace("120.75", "1e400").encode(),
        "lon-nan": json.dumps(FACILITY).replace("120.75", "NaN").encode(),
        "lat-infinity": json.dumps(FACILITY).replace("30.76", "-Infinity").encode(),
        "capacity-5000-digits": json.dumps(FACILITY).encode()[:-1]
        + b', "capacity": '
        + b"9" * 5000
        + b"}",
    }
    for name, body in numbers.items():
        cases.append(_json_case(f"number-{name}", "POST", "/api/admin/facilities", body))
    course_numbers = {
        "seats-1e23": {**COURSE, "seats": 10**23},
        "seats-5000-digits": b'{"seats": ' + b"9" * 5000 + b"}",
        "fee-1e309": json.dumps({**COURSE, "fee": 1}).replace('"fee": 1', '"fee": 1e309').encode(),
    }
    for name, body in course_numbers.items():
        path = f"/api/admin/facilities/{SCHOOL}/courses"
        cases.append(_json_case(f"number-{name}", "POST", path, body))
    # 3. item ids in the path that SQLite cannot hold, or that are not ASCII whole numbers
    items = ["1" + "0" * 23, str(2**63), str(2**63 - 1), "0", "-1", "٣", "²", "1.5", "1e3", "+1"]
    for table in ("courses", "evaluations"):
        for item in items:
            for method in ("PATCH", "DELETE"):
                path = f"/api/admin/facilities/{SCHOOL}/{table}/{item}"
                cases.append(_json_case(f"item-{table}-{item}-{method}", method, path, {}, 404))
    # 4. query numbers: ASCII decimals only
    for limit in [
        "²",
        "٣",
        "１０",
        "1_0",
        "1" * 24,
        "-1",
        "0",
        "1001",
        " 10",
        "10 ",
        "0x10",
        "1e2",
    ]:
        cases.append(Hostile(f"audit-limit-{limit!r}", "GET", f"/api/admin/audit?limit={limit}"))
    near = "/api/nearby?lon=120.75&lat=30.76"
    for key, values in {
        "lon": [
            "120.7_5",
            "１２０.７５",
            "١٢٠.٧٥",
            " 120.75",
            "1e400",
            "nan",
            "inf",
            "0x78",
            "120,75",
        ],
        "lat": ["30.7_6", "٣٠.٧٦", "-inf"],
        "limit": ["٣", "²", "1_0", "1" * 24, "9" * 5000, "-1", "0", "2.5"],
        "minutes": ["3_0", "٣٠", "nan", "1e400", "Infinity"],
    }.items():
        for value in values:
            query = near.replace(f"{key}=120.75", f"{key}={value}").replace(
                f"{key}=30.76", f"{key}={value}"
            )
            if key not in ("lon", "lat"):
                query = f"{near}&{key}={value}"
            cases.append(Hostile(f"nearby-{key}-{value[:12]!r}", "GET", query))
    for add in ["٣", "²", "1" * 24]:
        cases.append(Hostile(f"plan-add-{add[:12]!r}", "GET", f"/api/plan?county=南湖区&add={add}"))
    # 5. unsafe ids: in a POST body, a CSV and a GeoJSON upload
    for fid in UNSAFE_IDS:
        label = repr(fid[:20])
        cases.append(
            _json_case(f"post-id-{label}", "POST", "/api/admin/facilities", {**FACILITY, "id": fid})
        )
        if fid.strip():  # a blank cell is simply an id-less row
            csv = f"编号,名称,经度,纬度\n{_csv_cell(fid)},敌意测试,120.7623,30.7531\n"
            cases.append(_upload_case(f"upload-csv-id-{label}", "ids.csv", csv.encode()))
        feature = {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [120.7623, 30.7531]},
            "properties": {"id": fid, "name": "敌意测试"},
        }
        geojson = json.dumps({"type": "FeatureCollection", "features": [feature]})
        if fid.strip():
            cases.append(
                _upload_case(f"upload-geojson-id-{label}", "ids.geojson", geojson.encode())
            )
    # 6. empty uploads: a header and no rows
    for name, filename, content in [
        ("header-only-csv", "名录.csv", "名称,经度,纬度\n".encode()),
        ("header-only-csv-gbk", "名录.csv", "名称,经度,纬度\r\n".encode("gbk")),
        ("header-and-blank-lines", "名录.csv", "名称,经度,纬度\n\n\n".encode()),
        ("header-only-bom", "名录.csv", "\ufeff名称,经度,纬度\n".encode()),
        ("header-only-xlsx", "名录.xlsx", _xlsx([["名称", "经度", "纬度"]])),
        ("zero-bytes", "名录.csv", b""),
        ("no-features", "名录.geojson", b'{"type":"FeatureCollection","features":[]}'),
    ]:
        cases.append(_upload_case(f"empty-{name}", filename, content))
    # 7. other hostile uploads
    for depth in (3_000, 100_000):
        doc = b'{"type":"FeatureCollection","features":[' + _nested(depth, "array") + b"]}"
        cases.append(_upload_case(f"upload-deep-{depth}", "deep.geojson", doc))
    long_number = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [120.7623, 30.7531]},
                "properties": {"name": "x", "capacity": 0},
            }
        ],
    }
    text = json.dumps(long_number).replace('"capacity": 0', '"capacity": ' + "9" * 5000)
    cases.append(_upload_case("upload-5000-digit-capacity", "long.geojson", text.encode()))
    huge = "名称,经度,纬度,容量\n培训点,120.7623,30.7531,100000000000000000000000\n"
    cases.append(_upload_case("upload-capacity-1e23", "huge.csv", huge.encode()))
    cases.append(
        _upload_case("upload-lon-underscore", "u.csv", "名称,经度,纬度\nx,120.7_5,30.7\n".encode())
    )
    cases.append(_upload_case("upload-exe", "evil.exe", b"MZ", says="file type .exe"))
    utm = "名称,经度,纬度\nx,120.76,30.75\n".encode()
    cases.append(_upload_case("upload-crs-utm", "a.csv", utm, "utm", says="'utm'"))
    # 8. bodies that are not one JSON object
    for target in ("post-facility", "post-course"):
        method, path = BODY_TARGETS[target]
        for name, body, ctype, expected in [
            ("form", b"name=x", "application/x-www-form-urlencoded", 400),
            ("broken", b'{"name": ', "application/json", 400),
            ("not-utf8", b'{"name": "\xff\xfe"}', "application/json", 400),
            ("array", b"[1, 2]", "application/json", 400),
            ("null", b"null", "application/json", 400),
            ("string", b'"x"', "application/json", 400),
            ("number", b"1" * 5000, "application/json", 400),
            ("300-kb", b'{"note": "' + b"x" * 300_000 + b'"}', "application/json", 413),
        ]:
            cases.append(Hostile(f"body-{name}-{target}", method, path, body, ctype, (expected,)))
    # 9. path-like ids in URLs: 404 JSON, never a file or another record
    for fid in ["../../etc/passwd", "a/b", "<script>", "=1+2", "..", "%00", "x" * 300]:
        for method, path in [
            ("GET", f"/api/facilities/{fid}"),
            ("PATCH", f"/api/admin/facilities/{fid}"),
            ("DELETE", f"/api/admin/facilities/{fid}"),
            ("POST", f"/api/admin/facilities/{fid}/courses"),
        ]:
            cases.append(_json_case(f"url-id-{fid[:12]!r}-{method}", method, path, COURSE, 404))
    return cases


CASES = _cases()


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, study):
    database = store_location(request, request.param)
    app = create_app(  # not TESTING: an exception is answered as in production
        {
            "STUDY": study,
            "DATABASE": database,
            "TILE_URL": "none",
            "RATELIMIT_ADMIN": "100000 per minute",
            "RATELIMIT_PUBLIC": "100000 per second",
        }
    )
    store: Store = app.extensions["skillcircle.store"]
    _, city = store.create_token("敌意测试", None)
    _, nanhu = store.create_token("南湖区总工会", "南湖区")
    _, tongxiang = store.create_token("桐乡市总工会", "桐乡市")
    auth = {"nanhu": nanhu, "city": city, "tongxiang": tongxiang}
    for table, body in (("courses", COURSE), ("evaluations", None)):
        values = body or {"trade": "电工", "level": "初级", "date": "2099-01-01"}
        with store.write(None, "create", table[:-1], "1") as tx:
            tx.insert_item(table, SCHOOL, values)  # item 1 of each table exists
    http = create_server(app, host="127.0.0.1", port=0, threads=4)

    def serve() -> None:
        with contextlib.suppress(OSError):  # its sockets are closed at teardown
            http.run()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.effective_port}", store, auth
    http.close()
    http.task_dispatcher.shutdown()
    thread.join(timeout=10)


def fire(base: str, case: Hostile, token: str) -> tuple[int, str, bytes]:
    path, _, query = case.path.partition("?")
    url = base + urllib.parse.quote(path, safe="/%")
    if query:
        url += "?" + urllib.parse.quote(query, safe="=&%")
    request = urllib.request.Request(url, data=case.body, method=case.method)
    request.add_header("Authorization", f"Bearer {token}")
    if case.content_type:
        request.add_header("Content-Type", case.content_type)
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type", ""), err.read()


def state(store: Store) -> str:
    """A digest of everything a request could change."""
    digest = hashlib.sha256()
    for table, key in (
        ("facilities", "id"),
        ("courses", "id"),
        ("evaluations", "id"),
        ("audit", "id"),
        ("id_sequences", "prefix"),
        ("data_versions", "name"),
        ("jobs", "id"),
    ):
        for row in store.conn.execute(f"SELECT * FROM {table} ORDER BY {key}"):
            digest.update(repr(tuple(row)).encode())
    return digest.hexdigest()


def test_the_corpus_is_large():
    assert len(CASES) >= 250
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_request_is_4xx_json_and_changes_nothing(server, case):
    base, store, auth = server
    before = state(store)
    status, content_type, body = fire(base, case, auth["nanhu"])
    assert status in case.expected, (status, body[:300])
    assert content_type.startswith("application/json"), body[:300]
    answer = json.loads(body)
    assert answer["error"] and case.says in answer["message"], answer
    assert state(store) == before


def test_one_county_cannot_block_anothers_upload(server):
    """A county's explicit ids in another county's generated-id range are skipped."""
    base, store, auth = server
    squat = "编号,名称,经度,纬度\nTI-330483-A001,占位,120.7623,30.7531\n"
    status, _, body = fire(base, _upload_case("squat", "squat.csv", squat.encode()), auth["nanhu"])
    assert status == 200, body
    rows = "名称,经度,纬度\n桐乡培训点,120.5646,30.6227\n梧桐驿站,120.5616,30.6601\n"
    upload = _upload_case("tongxiang", "桐乡.csv", rows.encode(), crs="wgs84")
    results: list[tuple[int, bytes]] = []

    def send() -> None:
        status, _, body = fire(base, upload, auth["tongxiang"])
        results.append((status, body))

    threads = [threading.Thread(target=send) for _ in range(3)]  # at once
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [status for status, _ in results] == [200, 200, 200], results
    ids = sorted(fid for _, body in results for fid in json.loads(body)["ids"])
    assert ids == [f"TI-330483-A{n:03d}" for n in range(2, 8)]
    assert store.facility("TI-330483-A001")["county"] == "南湖区"
    assert {store.facility(fid)["county"] for fid in ids} == {"桐乡市"}
