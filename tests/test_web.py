"""web/: every route with good and bad parameters, escaping, OpenAPI, QR decoding."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from geo.settings import LAYERS, Settings
from geo.study import Study
from web import create_app

VILLAGE = "330402007024"  # 百福弄社区居委会, 南湖区建设街道
FACILITY = "TS-330402-001"
XSS = "<script>alert(1)</script>"


@pytest.fixture(scope="session")
def app(study, new_database):
    return create_app(
        {
            "TESTING": True,
            "STUDY": study,
            "DATABASE": new_database(),
            "TILE_URL": "none",
            "PUBLIC_URL": "https://skills.example.cn",
        }
    )


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def xss_app(study, tmp_path_factory, new_database):
    """A study whose facility names and trades contain markup."""
    fac = study.facilities.copy()
    fac.loc[fac["id"] == FACILITY, "name"] = XSS
    fac.loc[fac["id"] == FACILITY, "address"] = '"><img src=x onerror=alert(2)>'
    path = tmp_path_factory.mktemp("xss") / "facilities.geojson"
    from geo.facilities import facilities_to_geojson

    path.write_text(
        json.dumps(facilities_to_geojson(gpd.GeoDataFrame(fac)), ensure_ascii=False),
        encoding="utf-8",
    )
    hacked = Study.load(
        Settings(cache_dir=tmp_path_factory.mktemp("c2")), facilities_path=path, iso_minutes=(30,)
    )
    return create_app(
        {"TESTING": True, "STUDY": hacked, "TILE_URL": "none", "DATABASE": new_database()}
    )


# ----------------------------------------------------------------------------- pages


def test_map_page(client, study):
    resp = client.get("/")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "30分钟职业技能培训圈" in html
    assert "样例数据提示" in html and "粗略路网" in html  # sample and coarse notices
    for name in LAYERS.values():
        assert name in html
    assert len(resp.data) < 5_000_000
    # no CDN: every script/stylesheet is served by us
    for url in re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', html):
        assert not url.startswith(("http://", "https://", "//")), url
    assert "cdn.jsdelivr" not in html and "cdnjs" not in html
    # uncovered list matches the study
    n_uncovered = int((~study.coverage["ebike"]["covered"]).sum())
    assert f"未覆盖的村（{n_uncovered}）" in html


@pytest.mark.parametrize(
    "query", ["?mode=walk", "?mode=drive", "?trade=焊工", "?mode=walk&trade=电工"]
)
def test_map_variants(client, query):
    resp = client.get("/" + query)
    assert resp.status_code == 200
    assert len(resp.data) < 5_000_000


@pytest.mark.parametrize("query", ["?mode=bike", "?trade=不存在的工种"])
def test_map_bad_parameters(client, query):
    resp = client.get("/" + query)
    assert resp.status_code == 400 and "message" in resp.get_json()


def test_walk_map_lists_uncovered_villages(client, study):
    html = client.get("/?mode=walk").get_data(as_text=True)
    uncovered = study.coverage["walk"].loc[~study.coverage["walk"]["covered"], "village_name"]
    assert len(uncovered) > 0
    assert uncovered.iloc[0] in html


def test_static_assets_served(client):
    for path in (
        "/static/vendor/leaflet/leaflet.js",
        "/static/vendor/leaflet/leaflet.css",
        "/static/vendor/markercluster/leaflet.markercluster.js",
        "/static/app.js",
    ):
        resp = client.get(path)
        assert resp.status_code == 200, path
        resp.close()  # static files are streamed


def test_village_page(client, study):
    resp = client.get(f"/q/{VILLAGE}")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "百福弄社区居委会" in html and "技能码" in html
    assert "暂无近期安排" in html  # no invented course dates
    assert f"https://skills.example.cn/q/{VILLAGE}" in html
    # the nearest village station by e-bike is listed with its minutes
    cov = study.coverage["ebike"].set_index("village_code").loc[VILLAGE]
    fid = cov["village_station_facility_id"]
    name = study.facilities.set_index("id").loc[fid, "name"]
    assert name in html
    assert 'name="viewport"' in html


def test_facility_and_here_pages(client):
    assert client.get(f"/q/f/{FACILITY}").status_code == 200
    here = client.get("/q/here")
    assert here.status_code == 200
    with client.get("/static/here.js") as js:
        assert "geolocation" in js.get_data(as_text=True)


@pytest.mark.parametrize(
    "path",
    [
        "/q/999999999999",
        "/q/abc",
        "/q/f/NOPE",
        "/q/999999999999.png",
        "/q/f/NOPE.svg",
        "/api/villages/123",
        "/nowhere",
    ],
)
def test_unknown_codes_404(client, path):
    assert client.get(path).status_code == 404


def test_everything_is_escaped(xss_app):
    client = xss_app.test_client()
    for path in ("/", f"/q/f/{FACILITY}", "/q/330402007024"):
        html = client.get(path).get_data(as_text=True)
        assert XSS not in html, path
        assert "<img src=x" not in html, path
    page = client.get(f"/q/f/{FACILITY}").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # in the map the name is JSON inside a script, with < escaped, and popups use textContent
    assert "\\u003cscript\\u003e" in client.get("/").get_data(as_text=True)
    api = client.get("/api/facilities?layer=technical_school").get_json()
    assert any(f["properties"]["name"] == XSS for f in api["features"])  # data kept intact


# ----------------------------------------------------------------------------- API


def test_layers(client):
    data = client.get("/api/layers").get_json()
    counts = {row["key"]: row["count"] for row in data["layers"]}
    assert counts["technical_school"] == 16 and counts["master_studio"] == 189
    assert data["coarse_network"] is True


def test_facilities_filters(client, study):
    data = client.get("/api/facilities?layer=training_base&county=海宁市").get_json()
    expected = study.facilities[
        (study.facilities["layer"] == "training_base") & (study.facilities["county"] == "海宁市")
    ]
    assert len(data["features"]) == len(expected) > 0
    welding = client.get("/api/facilities?trade=焊工").get_json()["features"]
    assert welding and all("焊工" in f["properties"]["trades"] for f in welding)


def test_villages_and_detail(client, study):
    allv = client.get("/api/villages?mode=walk").get_json()
    assert len(allv["features"]) == 1202
    unc = client.get("/api/villages?mode=walk&covered=false").get_json()["features"]
    assert len(unc) == int((~study.coverage["walk"]["covered"]).sum())
    assert all(not f["properties"]["covered"] for f in unc)
    county = client.get("/api/villages?county=南湖区").get_json()["features"]
    assert len(county) == 143
    detail = client.get(f"/api/villages/{VILLAGE}").get_json()
    assert set(detail["modes"]) == {"walk", "ebike", "drive"}
    walk = detail["modes"]["walk"]["layers"]["village_station"]
    cov = study.coverage["walk"].set_index("village_code").loc[VILLAGE]
    assert walk["minutes"] == pytest.approx(cov["village_station_minutes"])
    assert walk["facility"]["id"] == cov["village_station_facility_id"]


def test_nearby_sorted_and_consistent(client, study):
    lon, lat = 120.7552, 30.7618
    data = client.get(f"/api/nearby?lon={lon}&lat={lat}&mode=ebike&minutes=30&limit=50").get_json()
    minutes = [f["minutes"] for f in data["facilities"]]
    assert minutes == sorted(minutes) and all(m <= 30 for m in minutes) and len(minutes) == 50
    one = client.get(f"/api/nearby?lon={lon}&lat={lat}&mode=ebike&layer=technical_school&limit=1")
    first = one.get_json()["facilities"][0]
    assert first["layer"] == "technical_school" and first["distance_m"] > 0
    # the same as the router's nearest-facility answer
    tech = study.facilities[study.facilities["layer"] == "technical_school"]
    res = study.routers["ebike"].nearest([lon], [lat], tech.geometry.x, tech.geometry.y)
    assert first["minutes"] == pytest.approx(res.minutes[0], abs=0.06)


def test_isochrones_and_stats(client, study):
    iso = client.get("/api/isochrones?layer=village_station&mode=walk&minutes=30").get_json()
    assert len(iso["features"]) == 1 and iso["features"][0]["geometry"]["type"] in (
        "Polygon",
        "MultiPolygon",
    )
    every = client.get("/api/isochrones?mode=drive").get_json()
    assert len(every["features"]) == 7
    stats = client.get("/api/stats?by=county&mode=walk").get_json()
    assert sum(r["villages"] for r in stats["rows"]) == 1202
    assert sum(r["population_2020"] for r in stats["rows"]) == 5_400_868
    towns = client.get("/api/stats?by=town&mode=ebike").get_json()
    assert len(towns["rows"]) == 72


@pytest.mark.parametrize(
    "url",
    [
        "/api/facilities?layer=school",
        "/api/facilities?county=上海市",
        "/api/facilities?trade=不存在",
        "/api/villages?mode=plane",
        "/api/villages?covered=maybe",
        "/api/nearby",
        "/api/nearby?lon=abc&lat=30.7",
        "/api/nearby?lon=116.4&lat=39.9",
        "/api/nearby?lon=nan&lat=30.7",
        "/api/nearby?lon=120.7&lat=30.7&minutes=-5",
        "/api/nearby?lon=120.7&lat=30.7&minutes=1e9",
        "/api/nearby?lon=120.7&lat=30.7&limit=0",
        "/api/nearby?lon=120.7&lat=30.7&limit=2.5",
        "/api/nearby?lon=120.7&lat=30.7&layer=x",
        "/api/isochrones?minutes=17",
        "/api/isochrones?layer=x",
        "/api/stats?by=province",
        "/api/stats?mode=x",
    ],
)
def test_api_bad_parameters_are_400_json(client, url):
    resp = client.get(url)
    assert resp.status_code == 400, url
    body = resp.get_json()
    assert body["error"] == "bad request" and body["message"]


def test_openapi_document_is_valid_and_complete(client, app):
    from openapi_spec_validator import validate

    doc = client.get("/api/openapi.json").get_json()
    validate(doc)
    api_rules = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = re.sub(r"<(?:int:|id:|string:)?(\w+)>", r"{\1}", rule.rule)
        # <any(a, b):name> is one documented path per alternative
        alternatives = re.search(r"<any\(([^)]*)\):\w+>", path)
        if alternatives:
            for word in alternatives.group(1).split(", "):
                api_rules.add(path.replace(alternatives.group(0), word))
        else:
            api_rules.add(path)
    assert api_rules == set(doc["paths"])


# ----------------------------------------------------------------------------- QR


def test_qr_png_and_svg(client):
    png = client.get(f"/q/{VILLAGE}.png")
    assert png.status_code == 200 and png.mimetype == "image/png"
    assert png.data.startswith(b"\x89PNG")
    assert png.headers["X-QR-URL"] == f"https://skills.example.cn/q/{VILLAGE}"
    svg = client.get(f"/q/f/{FACILITY}.svg")
    assert svg.mimetype == "image/svg+xml" and b"<svg" in svg.data


def test_public_url_defaults_to_request_host(study, new_database):
    app = create_app(
        {
            "TESTING": True,
            "STUDY": study,
            "TILE_URL": "none",
            "PUBLIC_URL": None,
            "DATABASE": new_database(),
        }
    )
    resp = app.test_client().get(f"/q/{VILLAGE}.png", base_url="http://10.1.2.3:8000")
    assert resp.headers["X-QR-URL"] == f"http://10.1.2.3:8000/q/{VILLAGE}"


@pytest.mark.skipif(
    shutil.which("zbarimg") is None, reason="zbarimg not installed (Debian package zbar-tools)"
)
@pytest.mark.parametrize(
    "path", [f"/q/{VILLAGE}.png", f"/q/f/{FACILITY}.png", "/q/330483107201.png"]
)
def test_qr_decodes_to_page_url(client, tmp_path, path):
    resp = client.get(path)
    if resp.status_code == 404:
        pytest.fail(f"{path} is not a known code")
    image = tmp_path / "qr.png"
    image.write_bytes(resp.data)
    out = subprocess.run(
        ["zbarimg", "--quiet", "--raw", str(image)], capture_output=True, text=True, check=True
    )
    decoded = out.stdout.strip()
    assert decoded == "https://skills.example.cn" + path.removesuffix(".png")
    assert client.get(decoded.removeprefix("https://skills.example.cn")).status_code == 200


def test_serve_command_is_registered():
    from click.testing import CliRunner

    from geo.cli import main

    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0 and "--port" in result.output


def test_any_village_code_has_a_page(client, study):
    codes = pd.Series(study.villages["village_code"]).sample(5, random_state=1)
    for code in codes:
        assert client.get(f"/q/{code}").status_code == 200
        assert client.get(f"/q/{code}.svg").status_code == 200


# ----------------------------------------------------------------------------- exports


def test_export_downloads(client):
    resp = client.get("/export/南湖区.xlsx?mode=walk")
    assert resp.status_code == 200 and resp.data.startswith(b"PK")  # a zip (XLSX)
    assert "attachment" in resp.headers["Content-Disposition"]
    csv = client.get("/export/all.csv?mode=drive")
    assert csv.data.startswith(b"\xef\xbb\xbf") and csv.data.count(b"\n") == 1203
    geo = client.get("/export/海宁市.geojson?trade=焊工").get_json()
    assert len(geo["features"]) == 236


@pytest.mark.parametrize(
    "path", ["/export/上海.xlsx", "/export/..%2F..%2Fetc.xlsx", "/export/南湖区.pdf"]
)
def test_export_rejects_unknown_counties_and_formats(client, path):
    assert client.get(path).status_code == 404


def test_map_has_download_links(client):
    html = client.get("/").get_data(as_text=True)
    assert "/export/%E5%8D%97%E6%B9%96%E5%8C%BA.xlsx" in html or "/export/南湖区.xlsx" in html


# ----------------------------------------------------------------------------- planning


def test_api_plan(client):
    data = client.get("/api/plan?county=桐乡市&layer=technical_school&mode=ebike&add=3").get_json()
    assert data["solver"]["optimal"] and len(data["sites"]) == 3
    assert [s["rank"] for s in data["sites"]] == [1, 2, 3]
    gained = sum(s["newly_covered"] for s in data["sites"])
    assert data["covered_after"] - data["covered_before"] == gained
    assert all(len(s["villages"]) == s["newly_covered"] for s in data["sites"])
    again = client.get("/api/plan?county=桐乡市&layer=technical_school&mode=ebike&add=3")
    assert again.get_json() == data  # cached, same answer


def test_plans_are_remembered_per_tenth_of_a_minute_and_bounded(client, app):
    """Five plans with minutes 30.000..30.004 are one MILP solution, not five."""
    from web.memo import SIZES

    memo = app.extensions["skillcircle.memo"]
    before = memo.size("plans")
    answers = [
        client.get(f"/api/plan?county=海盐县&layer=training_base&add=2&minutes=30.00{i}").get_json()
        for i in range(5)
    ]
    assert memo.size("plans") == before + 1
    assert all(a["sites"] == answers[0]["sites"] and a["minutes"] == 30.0 for a in answers)
    assert 0 < SIZES["plans"] < 10_000  # every kind of answer is bounded


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?county=上海",
        "?county=桐乡市&add=0",
        "?county=桐乡市&candidates=x",
        "?county=桐乡市&layer=x",
    ],
)
def test_api_plan_bad_parameters(client, query):
    resp = client.get("/api/plan" + query)
    assert resp.status_code == 400 and resp.get_json()["message"]


# ----------------------------------------------------------------------------- accessibility


def test_access_colouring_and_api(client, study):
    page = client.get("/?colour=access&layer=training_base&mode=drive")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "2SFCA" in html and "村按“公共实训基地”的两步移动搜索法" in html
    detail = client.get(f"/api/villages/{VILLAGE}").get_json()
    index = int(np.flatnonzero(study.villages["village_code"] == VILLAGE)[0])
    expected = study.access["drive"].iloc[index]["training_base_access"]
    assert detail["modes"]["drive"]["access"]["training_base"] == pytest.approx(expected, abs=1e-6)
    for bad in ("/?colour=rainbow", "/?colour=access&trade=焊工", "/?colour=access&layer=x"):
        assert client.get(bad).status_code == 400, bad


def test_access_classes():
    from web.map import access_classes

    classes, edges = access_classes(np.array([0.0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]))
    assert classes[0] == 0 and classes[-1] == 4 and len(edges) == 4
    assert list(classes) == sorted(classes)
