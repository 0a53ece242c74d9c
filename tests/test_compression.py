"""Compressed answers: the 技能码 pages and the API are sent gzip/Brotli-compressed
(flask-compress) to clients that ask, compressed once per ETag and URL; the planner's
map page is kept gzip-compressed as it is rendered (once per version, for every
process) and sent so; clients that do not ask get the plain page, the same bytes."""

from __future__ import annotations

import gzip

import brotli
import pytest

from tests.webapp import make_app


@pytest.fixture(scope="module")
def app(study, new_database):
    return make_app(study, new_database())


def test_pages_are_compressed_for_clients_that_ask(app):
    client = app.test_client()
    code = str(app.extensions["skillcircle"].villages["village_code"].iloc[0])
    for path in ("/", f"/q/{code}", "/api/facilities"):
        plain = client.get(path)
        assert plain.status_code == 200 and "Content-Encoding" not in plain.headers
        packed = client.get(path, headers={"Accept-Encoding": "gzip"})
        assert packed.headers["Content-Encoding"] == "gzip"
        assert "Accept-Encoding" in packed.headers["Vary"]
        assert gzip.decompress(packed.get_data()) == plain.get_data(), path
        assert int(packed.headers["Content-Length"]) < len(plain.get_data()) / 2
        assert packed.headers["ETag"] == plain.headers["ETag"]  # one tag, one content
        best = client.get(path, headers={"Accept-Encoding": "gzip, deflate, br"})
        if path == "/":  # kept as gzip: the bytes made when it was rendered
            assert best.get_data() == packed.get_data()
            assert best.headers["Content-Encoding"] == "gzip"
            continue
        assert best.headers["Content-Encoding"] == "br"
        assert brotli.decompress(best.get_data()) == plain.get_data()


def test_a_tagged_answer_is_compressed_once_per_tag_and_url(app, monkeypatch):
    import flask_compress.flask_compress as fc

    calls = []
    real = fc._compress_data
    monkeypatch.setattr(fc, "_compress_data", lambda *a: calls.append(a[2]) or real(*a))
    client = app.test_client()
    code = str(app.extensions["skillcircle"].villages["village_code"].iloc[1])
    first = client.get(f"/q/{code}", headers={"Accept-Encoding": "gzip"})
    again = client.get(f"/q/{code}", headers={"Accept-Encoding": "gzip"})
    assert first.get_data() == again.get_data()
    assert calls == ["gzip"]  # the second visit reads the compressed bytes back
    client.get("/?mode=walk", headers={"Accept-Encoding": "gzip"})
    assert calls == ["gzip"]  # the map page is not flask-compress's: kept compressed
    client.get("/api/openapi.json", headers={"Accept-Encoding": "gzip"})
    client.get("/api/openapi.json", headers={"Accept-Encoding": "gzip"})
    assert calls == ["gzip", "gzip"]  # another URL: its own entry, compressed once


def test_revalidation_still_answers_304(app):
    client = app.test_client()
    packed = client.get("/", headers={"Accept-Encoding": "gzip"})
    again = client.get(
        "/", headers={"Accept-Encoding": "gzip", "If-None-Match": packed.headers["ETag"]}
    )
    assert again.status_code == 304 and not again.get_data()
