"""The pages' side of issue 15/16: one config object per page (no server values in the
scripts), URLs that the app serves, no executable inline script on the phone pages, the
技能码 card without JavaScript, the admin forms derived from the models."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from web import create_app
from web.pages import form_fields
from web.schemas import CourseBody, EvaluationBody

STATIC = Path(__file__).resolve().parents[1] / "web" / "static"
VILLAGE = "330402007024"  # 百福弄社区居委会, 南湖区建设街道
FACILITY = "TS-330402-001"
PAGES = ["/", f"/q/{VILLAGE}", f"/q/f/{FACILITY}", "/q/here", "/q/withdraw", "/admin"]


@pytest.fixture(scope="module")
def app(study, new_database):
    return create_app(
        {"TESTING": True, "STUDY": study, "DATABASE": new_database(), "TILE_URL": "none"}
    )


@pytest.fixture
def client(app):
    return app.test_client()


def page_config(html: str) -> dict:
    found = re.search(r'<script id="sc-config" type="application/json">(.*?)</script>', html, re.S)
    assert found, "no config object"
    return json.loads(found[1])


def inline_scripts(html: str) -> list[str]:
    """Inline <script> elements a browser would run (not JSON data blocks)."""
    out = []
    for attrs, body in re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S):
        if "src=" in attrs or "application/json" in attrs:
            continue
        out.append(body)
    return out


@pytest.mark.parametrize("path", PAGES)
def test_every_page_carries_the_served_settings(client, study, path):
    resp = client.get(path)
    assert resp.status_code == 200
    config = page_config(resp.get_data(as_text=True))
    settings = study.settings
    assert (config["minutes"], config["max_minutes"]) == (settings.minutes, settings.max_minutes)
    assert config["mode"] in config["modes"] and set(config["modes"]) == set(study.modes)
    assert config["levels"] == ["初级", "中级", "高级", "技师"]
    assert config["limits"]["upload_rows"] == client.application.config["UPLOAD_MAX_ROWS"]
    assert config["urls"]["nearby"] == "/api/nearby"
    assert config["urls"]["facility_page"] == "/q/f/{fid}"


def test_scripts_hold_no_server_values_or_urls():
    """Minutes, limits and API paths come from the config object (issue 15)."""
    for path in STATIC.glob("*.js"):
        text = path.read_text("utf-8")
        assert "/api/" not in text, path.name
        # e.g. "30分钟", "&minutes=30", "limit: 200", "120分钟内不可达"
        assert re.findall(r"(?<!\d)\d+ ?分钟", text) == [], path.name
        literal = r"\b(minutes|max_minutes|limit|add)\s*[:=]\s*\d"
        assert re.findall(literal, text) == [], path.name


def test_one_el_helper_and_fetch_wrapper():
    copies = {p.name for p in STATIC.glob("*.js") if "function el(" in p.read_text("utf-8")}
    assert copies == {"util.js"}
    fetches = {p.name for p in STATIC.glob("*.js") if "fetch(" in p.read_text("utf-8")}
    # util.js wraps fetch; admin.js downloads the XLSX export as a blob with its header
    assert fetches == {"util.js", "admin.js"}


def config_urls(config: dict) -> dict[str, str]:
    """The config's URLs by dotted name (admin.items.courses, ...)."""

    def flat(prefix: str, value: dict | str) -> dict[str, str]:
        if isinstance(value, str):
            return {prefix: value}
        return {k: v for key, sub in value.items() for k, v in flat(f"{prefix}.{key}", sub).items()}

    return {k.removeprefix("."): v for k, v in flat("", config["urls"]).items()}


def test_every_url_of_the_config_is_served(app, client):
    config = page_config(client.get(f"/q/{VILLAGE}").get_data(as_text=True))
    adapter = app.url_map.bind("localhost")
    samples = {"fid": FACILITY, "table": "courses", "id": "1", "code": VILLAGE}
    methods = {
        "register": "POST",
        "withdraw": "POST",
        "admin.upload": "POST",
        "admin.item.courses": "PATCH",
        "admin.item.evaluations": "PATCH",
        "admin.registration": "PATCH",
    }
    missing = []
    for name, url in config_urls(config).items():
        path = re.sub(r"\{(\w+)\}", lambda m: samples[m[1]], url)
        try:
            adapter.match(path, method=methods.get(name, "GET"))
        except Exception:  # NotFound or MethodNotAllowed
            missing.append(name)
    assert missing == []


@pytest.mark.parametrize("path", PAGES[1:])
def test_phone_pages_and_the_console_run_no_inline_script(client, path):
    html = client.get(path).get_data(as_text=True)
    assert inline_scripts(html) == []
    assert "util.js" in html


def test_the_map_script_calls_none_of_our_globals(client):
    html = client.get("/").get_data(as_text=True)
    generated = inline_scripts(html)  # folium's: its flags and the map
    assert len(generated) == 2 and "L.map(" in generated[1]
    assert not any(re.search(r"\bskillcircle\b|\bsc\.", code) for code in generated)
    assert html.index("app.js") < html.index(generated[1])  # hooks in place before it runs
    assert 'id="demand-toggle"' in html


def test_the_village_card_works_without_javascript(client, study):
    html = client.get(f"/q/{VILLAGE}").get_data(as_text=True)
    card = study.village_card(study.village_position(VILLAGE))
    for section, nearest in card.nearest():
        assert f"<h2>{section.layer_name}</h2>" in html
        assert f'href="/q/f/{nearest["id"]}"' in html
    # the search needs JavaScript: hidden until the script shows it, and says so
    assert re.search(r'<section id="finder" class="finder" hidden data-village="\d{12}"', html)
    assert "<noscript>" in html


def test_admin_forms_follow_the_models(client):
    course = {f["name"]: f for f in form_fields(CourseBody)}
    assert list(course) == list(CourseBody.model_fields)
    assert course["start_date"] | {"hint": ""} == {
        "name": "start_date",
        "label": "开班日期",
        "hint": "",
        "required": True,
        "input": "date",
    }
    assert course["end_date"]["input"] == "date" and not course["end_date"]["required"]
    assert (course["seats"]["min"], course["seats"]["step"]) == (0, "1")
    assert (
        course["title"]["maxlength"]
        == CourseBody.model_json_schema()["properties"]["title"]["maxLength"]
    )
    session = {f["name"]: f for f in form_fields(EvaluationBody)}
    assert session["level"]["options"] == ["初级", "中级", "高级", "技师"]
    html = client.get("/admin").get_data(as_text=True)
    assert 'id="courses-start_date" name="start_date" type="date" required' in html
    assert '<output class="iso" for="courses-start_date" data-iso="start_date">' in html
    assert 'id="evaluations-seats" name="seats" type="number" min="0"' in html
    assert "开班日期" in html and "结业日期" in html and "等级" in html


def test_withdraw_page_asks_for_code_and_phone(client):
    resp = client.get("/q/withdraw")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and 'id="withdraw-form"' in html
    assert 'name="code"' in html and 'name="phone"' in html and "撤回" in html
