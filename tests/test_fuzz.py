"""API fuzzing: Schemathesis generates requests from /api/openapi.json for every public and
admin operation — valid ones, schema violations, and hand-made hostile shapes (deep nesting,
huge integers, non-ASCII digits, path-like ids); no response may be a server error or
disagree with the document."""

from __future__ import annotations

import io
import json
import os

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.core.failures import FailureGroup  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from web import create_app  # noqa: E402
from web.openapi import openapi_document  # noqa: E402

#: Examples per operation: bounded so CI stays fast; raise locally to dig deeper.
EXAMPLES = int(os.environ.get("SKILLCIRCLE_FUZZ_EXAMPLES", "25"))

#: What must hold for every generated request. Schemathesis' "positive data
#: acceptance" is left out on purpose: a schema-valid point can still lie outside
#: the seven counties, and a valid trade name may be one nobody teaches (both 400).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

#: Schemathesis' WSGI transport asks for gzip as requests does, but does not unpack it:
#: compression is transport, checked in test_compression; here the bodies are read plain.
PLAIN = {"Accept-Encoding": "identity"}

# /api/openapi.json itself is left out (Schemathesis skips the schema's own URL);
# test_web validates that document.
OPERATIONS = [
    op.ok().label
    for op in schemathesis.openapi.from_dict(openapi_document()).get_all_operations()
    if op.ok().path != "/api/openapi.json"
]


@pytest.fixture(scope="module")
def fuzz_app(study, new_database):
    app = create_app(
        {
            "TESTING": True,
            "STUDY": study,
            "TILE_URL": "none",
            "DATABASE": new_database(),
            "RATELIMIT_PUBLIC": "100000 per second",
            "RATELIMIT_ADMIN": "100000 per minute",
            "RATELIMIT_AUTH_FAILURES": "100000 per minute",
        }
    )
    _, token = app.extensions["skillcircle.store"].create_token("fuzz", None)
    app.config["FUZZ_TOKEN"] = token
    return app


@pytest.fixture(scope="module")
def api_schema(fuzz_app):
    return schemathesis.openapi.from_wsgi("/api/openapi.json", fuzz_app)


@pytest.mark.parametrize("label", OPERATIONS)
def test_api_conforms_and_never_fails(label, api_schema, fuzz_app):
    (operation,) = [op.ok() for op in api_schema.get_all_operations() if op.ok().label == label]
    headers = {"Authorization": f"Bearer {fuzz_app.config['FUZZ_TOKEN']}", **PLAIN}

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case):
        case.call_and_validate(headers=headers, checks=CHECKS)

    check()


#: Operations that take parameters or a body: schemathesis can break those.
NEGATIVE_OPERATIONS = [
    op.ok().label
    for op in schemathesis.openapi.from_dict(openapi_document()).get_all_operations()
    if op.ok().label in OPERATIONS
    and (len(op.ok().query) or len(op.ok().path_parameters) or len(op.ok().body))
]


@pytest.mark.parametrize("label", NEGATIVE_OPERATIONS)
def test_api_refuses_schema_violations_cleanly(label, api_schema, fuzz_app):
    (operation,) = [op.ok() for op in api_schema.get_all_operations() if op.ok().label == label]
    headers = {"Authorization": f"Bearer {fuzz_app.config['FUZZ_TOKEN']}", **PLAIN}

    @given(case=operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case):
        case.call_and_validate(headers=headers, checks=CHECKS)

    check()


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


FACILITY = {"layer": "training_base", "name": "x", "lon": 120.75, "lat": 30.76}
SCHOOL = "TS-330402-001"
#: Shapes no generator makes by itself: (operation, case id, Case arguments).
HOSTILE = [
    *[
        (op, f"{name}-{depth}", {"path_parameters": path, "body": _deep(depth)})
        for depth in (3_000, 100_000)
        for op, name, path in [
            ("POST /api/admin/facilities", "post", {}),
            ("PATCH /api/admin/facilities/{fid}", "patch", {"fid": SCHOOL}),
            ("POST /api/admin/facilities/{fid}/courses", "course", {"fid": SCHOOL}),
            (
                "PATCH /api/admin/facilities/{fid}/courses/{item_id}",
                "patch-course",
                {"fid": SCHOOL, "item_id": 1},
            ),
        ]
    ],
    ("POST /api/admin/facilities", "digits-5000", {"body": b'{"capacity": ' + b"9" * 5000 + b"}"}),
    ("POST /api/admin/facilities", "capacity-1e23", {"body": {**FACILITY, "capacity": 10**23}}),
    ("POST /api/admin/facilities", "path-id", {"body": {**FACILITY, "id": "../../etc/passwd"}}),
    ("POST /api/admin/facilities", "slash-id", {"body": {**FACILITY, "id": "a/b"}}),
    ("POST /api/admin/facilities", "formula-id", {"body": {**FACILITY, "id": "=1+2"}}),
    ("POST /api/admin/facilities", "bidi-id", {"body": {**FACILITY, "id": "TB\u202e1"}}),
    *[
        (
            f"{method} /api/admin/facilities/{{fid}}/courses/{{item_id}}",
            f"{method}-{item}",
            {"path_parameters": {"fid": SCHOOL, "item_id": item}, "body": {"seats": 1}},
        )
        for method in ("PATCH", "DELETE")
        for item in (10**23, 2**63, 0, -1, "٣")
    ],
    *[
        ("GET /api/facilities/{fid}", f"fid-{fid}", {"path_parameters": {"fid": fid}})
        for fid in ("..", "a/b", "<script>", "=HYPERLINK(1)", "a..b", "x" * 65)
    ],
    *[
        ("GET /api/admin/audit", f"limit-{limit}", {"query": {"limit": limit}})
        for limit in ("²", "٣", "1_0", "1" * 24, "１０")
    ],
    *[
        (
            "GET /api/nearby",
            f"nearby-{key}-{value[:12]}",
            {"query": {"lon": "120.75", "lat": "30.76", key: value}},
        )
        for key, value in [
            ("lon", "120.7_5"),
            ("lon", "１２０.７５"),
            ("lat", "٣٠"),
            ("limit", "٣"),
            ("limit", "²"),
            ("limit", "9" * 5000),
            ("minutes", "3_0"),
        ]
    ],
    ("GET /api/plan", "plan-add-٣", {"query": {"county": "南湖区", "add": "٣"}}),
    *[
        (label, f"{label.split('/')[-1]}-{key}-{value[:12]}", {"query": {key: value}, **more})
        for label, key, value, more in [
            ("GET /api/search", "limit", "٣", {}),
            ("GET /api/search", "limit", "1" * 30, {}),
            ("GET /api/search", "lon", "１２０.７５", {}),
            ("GET /api/search", "minutes", "3_0", {}),
            ("GET /api/search", "from", "２０２６-01-01", {}),
            ("GET /api/search", "village", "../../etc/passwd", {}),
            ("GET /api/demand", "weeks", "²", {}),
            ("GET /api/demand.geojson", "weeks", "9" * 5000, {}),
            ("GET /api/stats", "by", "county\u0000", {}),
            (
                "GET /api/admin/facilities/{fid}/registrations",
                "item",
                "course:٣",
                {"path_parameters": {"fid": SCHOOL}},
            ),
        ]
    ],
]


@pytest.mark.parametrize(
    ("label", "kwargs"), [(h[0], h[2]) for h in HOSTILE], ids=[h[1] for h in HOSTILE]
)
def test_hostile_shapes_are_4xx(label, kwargs, api_schema, fuzz_app):
    (operation,) = [op.ok() for op in api_schema.get_all_operations() if op.ok().label == label]
    headers = {"Authorization": f"Bearer {fuzz_app.config['FUZZ_TOKEN']}", **PLAIN}
    if "body" in kwargs:
        kwargs = {**kwargs, "media_type": "application/json"}
    case = operation.Case(**kwargs)
    response = case.call_and_validate(headers=headers, checks=CHECKS)
    assert 400 <= response.status_code < 500, response.text[:300]


# ----------------------------------------------------- the response models bite


def _broken(body: dict, path: tuple, value: object) -> dict:
    """``body`` with the value at ``path`` replaced (``...``: the key removed)."""
    body = json.loads(json.dumps(body))
    node = body
    for key in path[:-1]:
        node = node[key]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return body


#: (operation, query, where in the answer, a value its model refuses or ``...``: removed)
BREAKS = [
    ("GET /api/version", {}, ("results_key",), ...),
    ("GET /api/version", {}, ("jobs_waiting",), "many"),
    ("GET /api/layers", {}, ("layers", 0, "count"), "3"),
    ("GET /api/nearby", {"lon": "120.75", "lat": "30.76"}, ("facilities", 0, "minutes"), None),
    ("GET /api/facilities", {}, ("features", 0, "geometry", "coordinates"), [120.7]),
    ("GET /api/villages", {}, ("features", 0, "properties", "covered"), "yes"),
    ("GET /api/stats", {}, ("by",), "province"),
    ("GET /api/trades", {}, ("levels",), "初级"),
    ("GET /api/admin/whoami", {}, ("token_id",), ...),
    ("GET /api/admin/audit", {}, ("entries",), {}),
]


@pytest.mark.parametrize(
    ("label", "query", "path", "value"), BREAKS, ids=[f"{b[0]}-{b[2][-1]}" for b in BREAKS]
)
def test_response_schema_conformance_catches_a_broken_answer(
    label, query, path, value, api_schema, fuzz_app
):
    """A real answer conforms; the same answer with one field broken does not."""
    (operation,) = [op.ok() for op in api_schema.get_all_operations() if op.ok().label == label]
    case = operation.Case(query=query)
    headers = {"Authorization": f"Bearer {fuzz_app.config['FUZZ_TOKEN']}", **PLAIN}
    response = fuzz_app.test_client().get(operation.path, query_string=query, headers=headers)
    assert response.status_code == 200, response.text[:300]
    case.validate_response(response, checks=[response_schema_conformance])
    response.set_data(json.dumps(_broken(response.get_json(), path, value)))
    with pytest.raises(FailureGroup) as caught:
        case.validate_response(response, checks=[response_schema_conformance])
    assert "Response violates schema" in str(caught.value.exceptions[0])


def test_every_json_answer_has_a_model():
    """Every documented JSON answer of every operation refers to a named model, none is
    a bare ``{"type": "object"}``; the document is valid OpenAPI."""
    from openapi_spec_validator import validate

    doc = openapi_document()
    validate(doc)
    schemas = doc["components"]["schemas"]
    operations = typed = 0
    for path, item in doc["paths"].items():
        for method, op in item.items():
            operations += 1
            ok = [code for code in op["responses"] if code.startswith("2")]
            assert ok, (method, path)
            for code, answer in op["responses"].items():
                content = answer.get("content", {}).get("application/json")
                if content is None:
                    assert code in ("204",) or path.endswith(".xlsx"), (method, path, code)
                    continue
                name = content["schema"]["$ref"].rsplit("/", 1)[1]
                assert schemas[name].get("properties") or schemas[name].get("anyOf"), name
            typed += all("content" in op["responses"][c] for c in ok if c != "204")
    assert operations == 39
    assert typed == 38  # all but the XLSX export


# ------------------------------------- every answer of a store with data conforms

VILLAGE = "330402007024"  # 百福弄社区居委会, 南湖区
REGISTRY = "名称,经度,纬度,工种\n南湖技能驿站,120.7623,30.7531,焊工\n"


@pytest.fixture(scope="module")
def full_app(study, new_database):
    """An app whose store has a course with a registrant, an evaluation session, demand
    signals, an upload and audit entries: the answers the fuzzing rarely reaches."""
    from signup import COURSE, body

    app = create_app(
        {
            "TESTING": True,
            "STUDY": study,
            "TILE_URL": "none",
            "DATABASE": new_database(),
            "DEMAND_FLUSH_S": 0,
            "RATELIMIT_PUBLIC": "100000 per second",
            "RATELIMIT_ADMIN": "100000 per minute",
        }
    )
    store = app.extensions["skillcircle.store"]
    _, token = store.create_token("nanhu", "南湖区")
    app.config["FUZZ_TOKEN"] = token
    client = app.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    made = client.post(f"/api/admin/facilities/{SCHOOL}/courses", json=COURSE, headers=auth)
    course = made.get_json()["id"]
    session = {
        "trade": "焊工",
        "level": "中级",
        "date": "2099-04-01",
        "place": "实训楼",
        "seats": 9,
    }
    made = client.post(f"/api/admin/facilities/{SCHOOL}/evaluations", json=session, headers=auth)
    assert made.status_code == 201, made.get_json()
    made = client.post("/api/registrations", json=body(course, "13812345678", client))
    assert made.status_code == 201, made.get_json()
    for signal in (
        {"kind": "search", "trade": "焊工", "village": VILLAGE},
        {"kind": "notify", "trade": "焊工"},
    ):
        assert client.post("/api/demand", json=signal).status_code == 204
    assert client.get(f"/q/{VILLAGE}").status_code == 200  # a scan
    app.config["COURSE_ID"] = course
    return app


def _upload(dry_run: bool) -> dict:
    return {
        "query": {"dry_run": "true"} if dry_run else {},
        "data": {"file": (io.BytesIO(REGISTRY.encode()), "r.csv"), "crs": "wgs84"},
    }


#: (operation, request arguments for the test client, path parameters)
ANSWERS = [
    ("GET /api/version", {}, {}),
    ("GET /api/layers", {}, {}),
    ("GET /api/facilities", {"query": {"trade": "焊工"}}, {}),
    ("GET /api/facilities/{fid}", {}, {"fid": SCHOOL}),
    ("GET /api/villages", {"query": {"county": "南湖区", "mode": "walk"}}, {}),
    ("GET /api/villages/{code}", {}, {"code": VILLAGE}),
    ("GET /api/nearby", {"query": {"lon": "120.75", "lat": "30.76", "minutes": "60"}}, {}),
    ("GET /api/isochrones", {"query": {"layer": "technical_school"}}, {}),
    ("GET /api/stats", {"query": {"by": "town"}}, {}),
    ("GET /api/plan", {"query": {"county": "南湖区", "weights": "demand", "add": "2"}}, {}),
    ("GET /api/search", {"query": {"village": VILLAGE}}, {}),
    ("GET /api/search", {"query": {"lon": "120.75", "lat": "30.76", "minutes": "60"}}, {}),
    ("GET /api/trades", {}, {}),
    ("GET /api/register/challenge", {}, {}),
    ("GET /api/demand", {}, {}),
    ("GET /api/demand.geojson", {}, {}),
    ("GET /api/admin/whoami", {}, {}),
    ("GET /api/admin/facilities", {}, {}),
    ("GET /api/admin/facilities/{fid}/courses", {}, {"fid": SCHOOL}),
    ("GET /api/admin/facilities/{fid}/evaluations", {}, {"fid": SCHOOL}),
    ("GET /api/admin/facilities/{fid}/registrations", {}, {"fid": SCHOOL}),
    ("GET /api/admin/audit", {}, {}),
    ("POST /api/admin/facilities/upload", "dry_run", {}),
    ("POST /api/admin/facilities/upload", "commit", {}),
    ("POST /api/admin/facilities", {"json": FACILITY}, {}),
    ("PATCH /api/admin/facilities/{fid}", {"json": {"note": "改"}}, {"fid": SCHOOL}),
    ("GET /api/admin/jobs/{job_id}", {}, {"job_id": 1}),
]


@pytest.mark.parametrize(
    ("label", "args", "path"), ANSWERS, ids=[f"{a[0]}-{i}" for i, a in enumerate(ANSWERS)]
)
def test_answers_of_a_store_with_data_conform(label, args, path, full_app):
    """Courses, sessions, registrants, demand, audit entries, uploads and jobs in the
    answers, each checked against the document (all checks, as in the fuzzing)."""
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", full_app)
    (operation,) = [op.ok() for op in schema.get_all_operations() if op.ok().label == label]
    method, template = label.split(" ")
    url = template.format(**path)
    if isinstance(args, str):
        args = _upload(args == "dry_run")
    kwargs = {"query_string": args.get("query"), "json": args.get("json"), "data": args.get("data")}
    headers = {"Authorization": f"Bearer {full_app.config['FUZZ_TOKEN']}", **PLAIN}
    response = full_app.test_client().open(url, method=method, headers=headers, **kwargs)
    assert 200 <= response.status_code < 300, response.get_json()
    assert response.get_json(), "an empty answer checks nothing"
    case = operation.Case(path_parameters=path or None, query=args.get("query"))
    case.validate_response(response, checks=CHECKS)
