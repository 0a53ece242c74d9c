"""API fuzzing: Schemathesis generates requests from /api/openapi.json for every public and
admin operation; no response may be a server error or disagree with the document."""

from __future__ import annotations

import os

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
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
    headers = {"Authorization": f"Bearer {fuzz_app.config['FUZZ_TOKEN']}"}

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
