"""A real headless Chromium loads the map and a 技能码 page from a live local server."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from web import create_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
ARTIFACTS = Path(__file__).resolve().parent / "_artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None or DRIVER is None,
        reason="Debian chromium and chromium-driver are not installed (apt-get install chromium "
        "chromium-driver)",
    ),
]


@pytest.fixture(scope="module")
def database(new_database) -> str:
    return new_database()


@pytest.fixture(scope="module")
def server(study, database) -> Iterator[str]:
    from werkzeug.serving import make_server

    # no tile URL: the test must not reach the internet, and the map must work without tiles
    app = create_app({"STUDY": study, "TILE_URL": "none", "DATABASE": database})
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def driver() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,900",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(DRIVER), options=options)
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()


def severe(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def wait_for(driver, script: str, timeout: float = 20):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: d.execute_script(script))


def test_map_page_in_browser(server, driver):
    driver.get(server + "/")
    wait_for(driver, "return document.querySelector('.leaflet-control-layers') !== null")
    # every overlay is listed in the layer control
    labels = driver.execute_script(
        "return Array.from(document.querySelectorAll('.leaflet-control-layers-overlays label'))"
        ".map(l => l.textContent.trim());"
    )
    for name in (
        "技工院校",
        "职业培训机构",
        "镇村培训站点",
        "区县边界",
        "村（按最近设施分钟着色）",
    ):
        assert any(name in label for label in labels), (name, labels)
    # circle markers (canvas) and marker clusters are on the map
    counts = driver.execute_script(
        "var n = 0, c = 0; var map = Object.values(window).find(v => v instanceof L.Map);"
        "map.eachLayer(function (l) { if (l instanceof L.CircleMarker) n++; });"
        "return [n, document.querySelectorAll('.marker-cluster').length];"
    )
    assert counts[0] > 1000 and counts[1] > 0, counts
    # each village is filled with its own band colour (set from its properties)
    fills = driver.execute_script(
        "var map = Object.values(window).find(v => v instanceof L.Map); var out = [];"
        "map.eachLayer(function (l) { if (l.feature && l.feature.properties.village_code)"
        " out.push([l.options.fillColor, l.feature.properties.colour]); });"
        "return out;"
    )
    assert len(fills) == 1202 and len({c for c, _ in fills}) >= 2
    assert all(shown == own for shown, own in fills)
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "map.png"))
    assert (ARTIFACTS / "map.png").stat().st_size > 10_000
    assert severe(driver) == []


def test_facility_popup_opens_with_contact(server, driver):
    driver.get(server + "/?mode=drive")
    wait_for(
        driver,
        "return window.skillcircle !== undefined"
        " && document.querySelector('.leaflet-control-layers') !== null",
    )
    text = driver.execute_script(
        "var map = Object.values(window).find(v => v instanceof L.Map); var out = null;"
        "map.eachLayer(function (l) { if (!out && l.feature && l.feature.properties.layer_name"
        " && l.getPopup()) { l.openPopup();"
        " out = document.querySelector('.leaflet-popup-content').textContent; } });"
        "return out;"
    )
    assert text and "电话" in text
    assert severe(driver) == []


def test_village_page_on_a_phone(server, driver):
    driver.set_window_size(360, 800)
    driver.get(server + "/q/330402007024")
    wait_for(driver, "return document.readyState === 'complete'")
    title = driver.find_element("css selector", "h1").text
    assert "百福弄社区" in title
    width = driver.execute_script("return document.documentElement.scrollWidth")
    assert width <= 360  # no horizontal scrolling at phone width
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "village_360.png"))
    assert severe(driver) == []
    driver.set_window_size(1400, 900)


def test_village_popup_links_to_its_qr_page(server, driver):
    driver.get(server + "/?mode=walk")
    wait_for(driver, "return window.skillcircle !== undefined")
    href = driver.execute_script(
        "var map = Object.values(window).find(v => v instanceof L.Map); var out = null;"
        "map.eachLayer(function (l) { if (!out && l.feature && l.feature.properties.village_code"
        " && l.getPopup()) { l.openPopup();"
        " out = document.querySelector('.leaflet-popup-content a').getAttribute('href'); } });"
        "return out;"
    )
    assert href is not None and href.startswith("/q/") and href[3:].isdigit(), href
    driver.get(server + href)
    assert "技能码" in driver.page_source
    assert severe(driver) == []


def test_plan_panel_draws_proposed_sites(server, driver):
    driver.get(server + "/?mode=ebike")
    wait_for(driver, "return window.skillcircle !== undefined")
    driver.execute_script(
        "var f = document.getElementById('plan-form'); f.county.value = '桐乡市';"
        "f.layer.value = 'technical_school'; f.add.value = '5';"
        "f.dispatchEvent(new Event('submit', {cancelable: true}));"
    )
    wait_for(driver, "return document.getElementById('plan-result').textContent.includes('→')", 60)
    text = driver.find_element("id", "plan-result").text
    assert "桐乡市" in text and "最优解" in text
    ranks = driver.execute_script(
        "return Array.from(document.querySelectorAll('.plan-rank')).map(e => e.textContent);"
    )
    assert sorted(ranks) == ["1", "2", "3", "4", "5"]
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "plan.png"))
    assert severe(driver) == []


def test_here_page_uses_the_phone_location(server, driver):
    driver.execute_cdp_cmd(
        "Browser.grantPermissions", {"permissions": ["geolocation"], "origin": server}
    )
    driver.execute_cdp_cmd(
        "Emulation.setGeolocationOverride",
        {"latitude": 30.7618, "longitude": 120.7552, "accuracy": 30},
    )
    driver.get(server + "/q/here")
    wait_for(driver, "return document.querySelectorAll('#here-list li').length > 0", 30)
    items = driver.find_elements("css selector", "#here-list li")
    assert len(items) == 30  # limit=30 within 30 minutes by e-bike from 建设街道
    assert "分钟" in items[0].text and "公里" in items[0].text
    assert severe(driver) == []
    driver.execute_cdp_cmd("Emulation.clearGeolocationOverride", {})


def test_admin_page_adds_a_course_that_the_village_page_shows(server, driver, database):
    from selenium.webdriver.common.by import By

    from web.store import Store

    _, token = Store(database).create_token("浏览器测试", "南湖区")
    driver.get(server + "/admin")
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "#login button").click()
    wait_for(driver, "return document.getElementById('who').textContent.includes('已登录')")
    form = driver.find_element(By.ID, "course")
    values = {
        "facility": "TS-330402-001",
        "title": "浏览器录入的电工班",
        "trade": "电工",
        "seats": "25",
        "register_phone": "0573-87654321",
    }
    for name, value in values.items():
        form.find_element(By.NAME, name).send_keys(value)
    # a date input takes the date through script (typing depends on the browser locale)
    driver.execute_script(
        "document.querySelector('#course [name=start_date]').value = '2099-05-01'"
    )
    form.find_element(By.CSS_SELECTOR, "button").click()
    wait_for(driver, "return document.getElementById('result').textContent.includes('HTTP 201')")
    driver.get(server + "/q/330402007024")
    wait_for(driver, "return document.readyState === 'complete'")
    assert "浏览器录入的电工班" in driver.page_source
    assert severe(driver) == []
