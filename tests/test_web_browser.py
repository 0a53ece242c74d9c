"""A real headless Chromium on a live local server: the map, the 技能码 pages (search,
报名, withdrawal, notify-me), the admin console (courses, registrants, export, upload
preview), the phone layout at 360 px, the page weight of /q/<code>, and what every page
says when the API fails.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import re
import shutil
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from web import create_app
from web.records import CHINA_TIME

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
def app(study, database) -> Any:
    # no tile URL: the test must not reach the internet, and the map must work without tiles;
    # the registration limits are raised: every sign-up here comes from one address
    app = create_app(
        {
            "STUDY": study,
            "TILE_URL": "none",
            "DATABASE": database,
            "RATELIMIT_REGISTER": "1000 per minute",
            "RATELIMIT_CHALLENGE": "1000 per minute",
            "RATELIMIT_PHONE": "1000 per day",
            "RATELIMIT_DEMAND": "1000 per minute",
        }
    )
    return app


@pytest.fixture(scope="module")
def server(app) -> Iterator[str]:
    from werkzeug.serving import make_server

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


# ----------------------------------------------------------------- issue 16 pages

VILLAGE = "330402007024"  # 百福弄社区居委会, 南湖区建设街道
SCHOOL = "TS-330402-001"  # a technical school in 南湖区, minutes from the village
PHONE_WIDTH = 360


@contextmanager
def phone(driver) -> Iterator[None]:
    """The current tab as a phone 360 px wide (a desktop window cannot be that narrow)."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": PHONE_WIDTH, "height": 780, "deviceScaleFactor": 2, "mobile": True},
    )
    try:
        yield
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def scroll_width(driver) -> int:
    return int(driver.execute_script("return document.documentElement.scrollWidth"))


def in_days(days: int) -> str:
    return (dt.datetime.now(CHINA_TIME).date() + dt.timedelta(days=days)).isoformat()


def call(server: str, method: str, path: str, token: str | None = None, body: Any = None):
    """(status, JSON body) of an API call to the live server."""
    data = None if body is None else json.dumps(body).encode()
    url = server + urllib.parse.quote(path, safe="/?&=:,")
    request = urllib.request.Request(url, data=data, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            text = resp.read()
            return resp.status, json.loads(text) if text else None
    except urllib.error.HTTPError as exc:
        text = exc.read()
        return exc.code, json.loads(text) if text else None


_DIGITS = "零一二三四五六七八九"


def cn_number(text: str) -> int:
    """0-99 written in Chinese numerals (or digits)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    if "十" in text:
        tens, _, ones = text.partition("十")
        return (_DIGITS.index(tens) if tens else 1) * 10 + (_DIGITS.index(ones) if ones else 0)
    return _DIGITS.index(text)


def solve(question: str) -> int:
    """The answer to the registration's arithmetic question (e.g. 四十七加三等于多少？)."""
    found = re.match(r"\s*(.+?)\s*([加减])\s*(.+?)\s*等于", question)
    assert found, question
    a, b = cn_number(found[1]), cn_number(found[3])
    return a + b if found[2] == "加" else a - b


def add_course(server: str, token: str, fid: str = SCHOOL, **values: Any) -> dict:
    body = {"title": "焊工培训班", "trade": "焊工", "start_date": in_days(10), "seats": 10}
    status, course = call(
        server, "POST", f"/api/admin/facilities/{fid}/courses", token, body | values
    )
    assert status == 201, course
    return course


def register_by_api(server: str, course_id: int, name: str, number: str) -> tuple[int, Any]:
    """(status, body) of a sign-up for a course through the API, challenge answered."""
    _, challenge = call(server, "GET", "/api/register/challenge")
    body = {
        "kind": "course",
        "item_id": course_id,
        "name": name,
        "phone": number,
        "consent": True,
        "challenge": {"token": challenge["token"], "answer": str(solve(challenge["question"]))},
    }
    return call(server, "POST", "/api/registrations", body=body)


def search_in_page(driver, trade: str) -> None:
    """Pick a trade in the finder and wait for its answer."""
    from selenium.webdriver.support.ui import Select

    wait_for(driver, "return document.getElementById('find-status').textContent.includes('分钟内')")
    driver.execute_script("document.getElementById('find-status').textContent = ''")
    Select(driver.find_element("css selector", "#find-form [name=trade]")).select_by_value(trade)
    wait_for(driver, "return document.getElementById('find-status').textContent.includes('分钟内')")


def open_form(driver, key: str) -> Any:
    """Open the 报名 form of a result and wait for its challenge; the form element."""
    item = f'#find-list li[data-key="{key}"]'
    wait_for(driver, f"return document.querySelector('{item}') !== null")
    driver.execute_script(  # close a form left open (its 取消 button)
        f"var f = document.querySelector('{item} .reg-form');"
        " if (f) { f.querySelector('button[type=button]').click(); }"
    )
    driver.find_element("css selector", f"{item} .how button").click()
    wait_for(
        driver,
        f"var q = document.querySelector('{item} .reg-form .question');"
        " return q !== null && q.textContent.includes('等于');",
    )
    return driver.find_element("css selector", f"{item} .reg-form")


def fill_form(form, name: str, number: str, *, consent: bool = True, answer: str | None = None):
    form.find_element("name", "name").send_keys(name)
    form.find_element("name", "phone").send_keys(number)
    if consent:
        form.find_element("name", "consent").click()
    question = form.find_element("css selector", ".question").text
    form.find_element("name", "answer").send_keys(answer or str(solve(question)))


def console_login(driver, server: str, token: str) -> None:
    driver.get(server + "/q/withdraw")  # a page of the origin: forget an earlier token
    driver.execute_script("sessionStorage.clear()")
    driver.get(server + "/admin")
    driver.find_element("id", "token").send_keys(token)
    driver.find_element("css selector", "#login button").click()
    wait_for(driver, "return document.getElementById('who').textContent.includes('已登录')")
    assert not driver.find_element("id", "login").is_displayed()  # hidden once logged in
    assert driver.find_element("id", "logout").is_displayed()


def severe_except(driver, *allowed: str) -> list[dict]:
    """SEVERE browser log lines, but for failed loads answering the expected statuses."""
    return [
        e
        for e in severe(driver)
        if not any(f"status of {code}" in e["message"] for code in allowed)
    ]


def test_worker_finds_a_course_registers_and_the_staff_see_it(
    server, app, driver, database, tmp_path
):
    from selenium.webdriver.common.by import By

    from web.store import Store

    _, staff = Store(database).create_token("技师学院报名处", None, facility_id=SCHOOL)
    start = in_days(21)

    # the facility's staff add a course in the console: their token shows their facility only
    console_login(driver, server, staff)
    wait_for(driver, "return document.getElementById('fac-title').textContent.length > 0")
    assert len(driver.find_elements(By.CSS_SELECTOR, "#fac-list .pick")) == 1
    driver.find_element(By.CSS_SELECTOR, "[data-action=add][data-table=courses]").click()
    form = driver.find_element(By.ID, "courses-form")
    for name, value in {
        "title": "焊工（初级）周末班",
        "trade": "焊工",
        "seats": "8",
        "fee": "0",
        "subsidy_note": "取证后按规定申领补贴",
        "register_phone": "=HYPERLINK(1)",
    }.items():
        form.find_element(By.NAME, name).send_keys(value)
    # a date input takes its value through script (typing depends on the browser's locale)
    driver.execute_script(
        "var i = document.querySelector('#courses-form [name=start_date]'); i.value = arguments[0];"
        "i.dispatchEvent(new Event('input', {bubbles: true}));",
        start,
    )
    assert form.find_element(By.CSS_SELECTOR, "output[data-iso=start_date]").text == start
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    # the API's field error is shown next to its field, and nothing is saved
    error = "document.querySelector('#courses-form [data-err=register_phone]').textContent"
    wait_for(driver, f"return {error} !== ''")
    assert "register_phone" in form.find_element(By.CSS_SELECTOR, "[data-err=register_phone]").text
    form.find_element(By.NAME, "register_phone").clear()
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(driver, "return document.querySelector('#courses-table tr[data-id]') !== null")
    row = driver.find_element(By.CSS_SELECTOR, "#courses-table tr[data-id]")
    course_id = int(row.get_attribute("data-id"))
    assert "焊工（初级）周末班" in row.text and start in row.text and "名额 8" in row.text

    # a worker on the village's 技能码 page, on a phone, finds it among 焊工 courses
    with phone(driver):
        driver.get(f"{server}/q/{VILLAGE}")
        search_in_page(driver, "焊工")
        key = f"course:{course_id}"
        wait_for(driver, f"return document.querySelector('li[data-key=\"{key}\"]') !== null")
        item = driver.find_element(By.CSS_SELECTOR, f'li[data-key="{key}"]')
        status, found = call(
            server, "GET", f"/api/search?village={VILLAGE}&trade=焊工&mode=ebike&minutes=30"
        )
        mine = [i for i in found["items"] if i["kind"] == "course" and i["id"] == course_id]
        assert status == 200 and len(mine) == 1 and mine[0]["minutes"] <= 30
        text = item.text
        assert "焊工（初级）周末班" in text and start in text and "余 8 个名额" in text
        shown = math.floor(mine[0]["minutes"] + 0.5)  # as the page rounds (Math.round)
        assert f"{shown} 分钟" in text and "免费" in text
        form = open_form(driver, key)
        consent = form.find_element(By.CSS_SELECTOR, ".consent").text
        assert "目的" in consent and "保存期限" in consent and "撤回" in consent
        fill_form(form, "张三", "13812345678")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_for(driver, "return document.querySelector('.reg-ok .code') !== null")
        code = driver.find_element(By.CSS_SELECTOR, ".reg-ok .code").text
        assert re.fullmatch(r"[A-Za-z0-9]{8}", code), code
        done = driver.find_element(By.CSS_SELECTOR, ".reg-ok").text
        assert "撤回" in done and "天内删除" in done
        assert item.find_element(By.CSS_SELECTOR, ".seats").text == "余 7 个名额（共 8）"
        assert scroll_width(driver) <= PHONE_WIDTH
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "registered_360.png"))

    # the staff see the registrant, phone masked, mark attendance and export
    driver.get(server + "/admin")  # the token is still in this tab's sessionStorage
    wait_for(driver, f"return document.querySelector('#courses-table tr[data-id=\"{course_id}\"]')")
    row = driver.find_element(By.CSS_SELECTOR, f'#courses-table tr[data-id="{course_id}"]')
    assert "已报 1" in row.text and "余 7" in row.text
    row.find_element(By.XPATH, ".//button[text()='报名名单']").click()
    wait_for(driver, "return document.getElementById('reg-table').textContent.includes('张三')")
    listed = driver.find_element(By.ID, "reg-table").text
    assert "138****5678" in listed and "13812345678" not in driver.page_source
    driver.find_element(By.CSS_SELECTOR, "#reg-table input[type=checkbox]").click()
    wait_for(driver, "return document.getElementById('msg').textContent.includes('已标记到场')")
    _, regs = call(server, "GET", f"/api/admin/facilities/{SCHOOL}/registrations?item={key}", staff)
    assert [(r["name"], r["attended"]) for r in regs["items"]] == [("张三", True)]
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)}
    )
    driver.find_element(By.ID, "export").click()
    deadline = time.monotonic() + 30
    while not list(tmp_path.glob("*.xlsx")) and time.monotonic() < deadline:
        time.sleep(0.2)
    from openpyxl import load_workbook

    (path,) = tmp_path.glob("*.xlsx")
    book = load_workbook(path, read_only=True)
    try:
        header, *rows = [list(r) for r in book["报名"].iter_rows(values_only=True)]
    finally:
        book.close()
    listed = [dict(zip(header, r, strict=True)) for r in rows]
    (row,) = [r for r in listed if r["姓名"] == "张三"]
    # the facility's own export: the whole phone, the course, attendance as marked
    assert (row["姓名"], str(row["手机"]), row["项目"]) == (
        "张三",
        "13812345678",
        "焊工（初级）周末班",
    )
    assert (row["类型"], str(row["项目编号"]), row["出勤"]) == ("培训班", str(course_id), "是")
    assert str(row["开始日期"])[:10] == start
    assert severe_except(driver, "400") == []  # the refused register_phone


def test_the_last_seat_is_taken_then_the_form_says_full(server, app, driver, database):
    from selenium.webdriver.common.by import By

    from web.store import Store

    _, county = Store(database).create_token("南湖区总工会（满员测试）", "南湖区")
    course = add_course(server, county, title="焊工（中级）速成班", seats=1, start_date=in_days(12))
    key = f"course:{course['id']}"
    with phone(driver):
        driver.get(f"{server}/q/{VILLAGE}")
        search_in_page(driver, "焊工")
        late = open_form(driver, key)  # this worker opens the form first ...
        first_tab = driver.current_window_handle
        driver.switch_to.new_window("tab")  # ... another takes the last seat meanwhile
        driver.get(f"{server}/q/{VILLAGE}")
        search_in_page(driver, "焊工")
        form = open_form(driver, key)
        fill_form(form, "李四", "13900001111")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_for(driver, "return document.querySelector('.reg-ok .code') !== null")
        item = driver.find_element(By.CSS_SELECTOR, f'li[data-key="{key}"]')
        assert item.find_element(By.CSS_SELECTOR, ".seats").text == "已满"
        assert not item.find_element(By.CSS_SELECTOR, ".how button").is_enabled()
        driver.close()
        driver.switch_to.window(first_tab)
        fill_form(late, "王五", "13700002222")
        late.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_for(
            driver, "return document.querySelector('.reg-form .msg').textContent.includes('已满')"
        )
        item = driver.find_element(By.CSS_SELECTOR, f'li[data-key="{key}"]')
        assert item.find_element(By.CSS_SELECTOR, ".seats").text == "已满"
        assert late.find_element(By.CSS_SELECTOR, "button[type=submit]").text == "已满"
        # a fresh page says 已满 at once
        driver.get(f"{server}/q/{VILLAGE}")
        search_in_page(driver, "焊工")
        item = driver.find_element(By.CSS_SELECTOR, f'li[data-key="{key}"]')
        assert item.find_element(By.CSS_SELECTOR, ".seats").text == "已满"
        assert not item.find_element(By.CSS_SELECTOR, ".how button").is_enabled()
    _, regs = call(
        server, "GET", f"/api/admin/facilities/{SCHOOL}/registrations?item={key}", county
    )
    assert [r["name"] for r in regs["items"]] == ["李四"]  # the refused sign-up wrote nothing
    # seats never below zero: the API still counts one seat taken of one, none left
    _, listed = call(server, "GET", f"/api/admin/facilities/{SCHOOL}/courses", county)
    (mine,) = [c for c in listed["items"] if c["id"] == course["id"]]
    assert (mine["seats"], mine["registered"], mine["seats_left"]) == (1, 1, 0)
    status, refused = register_by_api(server, course["id"], "孙八", "13500003333")
    assert (status, refused["error"]) == (409, "full")
    _, found = call(server, "GET", f"/api/search?village={VILLAGE}&trade=焊工")
    (item,) = [i for i in found["items"] if i["kind"] == "course" and i["id"] == course["id"]]
    assert (item["seats_left"], item["registered"]) == (0, 1)
    assert severe_except(driver, "409") == []


#: What the 报名 form says per refusal (error word or status of the API's answer).
REFUSED = {
    "duplicate": (409, {"error": "duplicate", "message": "x"}, "已报名此项"),
    "past": (410, {"error": "past", "message": "ended"}, "已开始或已结束"),
    "phone": (
        400,
        {"error": "invalid body", "message": "x", "fields": {"phone": "not a mobile"}},
        "手机号格式不对",
    ),
    "consent": (
        400,
        {"error": "invalid body", "message": "x", "fields": {"consent": "must be true"}},
        "勾选“同意”",
    ),
    "challenge": (400, {"error": "challenge", "message": "wrong"}, "验证题答案不对"),
    "rate limit": (429, {"error": "too many requests", "message": "slow"}, "太频繁"),
    "gone": (404, {"error": "not found", "message": "no course"}, "已取消或不存在"),
    "server": (500, {"error": "internal error", "request_id": "abc123"}, "服务器出错"),
    "network": (0, None, "网络错误"),
    "full": (409, {"error": "full", "message": "all seats are taken"}, "名额已满"),  # last: 已满
}


def test_every_refusal_of_a_sign_up_reads_in_chinese(server, app, driver, database):
    """Real refusals (duplicate, wrong answer, and the form's own checks of phone and
    consent), then each answer of the API's contract with fetch stubbed in the page."""
    from selenium.webdriver.common.by import By

    from web.store import Store

    _, county = Store(database).create_token("南湖区总工会（拒绝测试）", "南湖区")
    course = add_course(server, county, title="电焊（高级）研修班", seats=5, start_date=in_days(15))
    key = f"course:{course['id']}"
    with phone(driver):
        driver.get(f"{server}/q/{VILLAGE}")
        search_in_page(driver, "焊工")
        form = open_form(driver, key)
        message = lambda: form.find_element(By.CSS_SELECTOR, ".msg").text  # noqa: E731
        # the form's own checks: nothing is sent
        fill_form(form, "赵六", "1381234", consent=False, answer="1")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        phone_error = form.find_element(By.CSS_SELECTOR, "[data-err=phone]").text
        consent_error = form.find_element(By.CSS_SELECTOR, "[data-err=consent]").text
        assert "11 位大陆手机号" in phone_error and "勾选" in consent_error
        # a wrong answer, from the server: a new question is asked
        first_question = form.find_element(By.CSS_SELECTOR, ".question").text
        form.find_element(By.NAME, "phone").clear()
        form.find_element(By.NAME, "phone").send_keys("13812340000")
        form.find_element(By.NAME, "consent").click()
        form.find_element(By.NAME, "answer").clear()
        form.find_element(By.NAME, "answer").send_keys(str(solve(first_question) + 1))
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_for(
            driver, "return document.querySelector('.reg-form .msg').textContent.includes('验证题')"
        )
        wait_for(
            driver, "return document.querySelector('.reg-form [type=submit]').disabled === false"
        )
        # right answer: registered; then the same phone again: duplicate
        form.find_element(By.NAME, "answer").send_keys(
            str(solve(form.find_element(By.CSS_SELECTOR, ".question").text))
        )
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_for(driver, "return document.querySelector('.reg-ok .code') !== null")
        form = open_form(driver, key)
        fill_form(form, "赵六", "13812340000")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_for(
            driver, "return document.querySelector('.reg-form .msg').textContent.includes('已报名')"
        )
        assert "无需重复报名" in message()

        # every other answer of the contract, with fetch stubbed for POSTs
        driver.execute_script(
            "var real = window.fetch; window.__stub = null;"
            "window.fetch = function (url, init) {"
            "  var s = window.__stub;"
            "  if (!s || !init || init.method !== 'POST') { return real.apply(this, arguments); }"
            "  if (s.status === 0) { return Promise.reject(new TypeError('offline')); }"
            "  return Promise.resolve(new Response(JSON.stringify(s.body),"
            "    {status: s.status, headers: {'Content-Type': 'application/json'}}));"
            "};"
        )
        for case, (status, body, expected) in REFUSED.items():
            form = open_form(driver, key)
            driver.execute_script(
                "window.__stub = {status: arguments[0], body: arguments[1]}", status, body
            )
            fill_form(form, "钱七", "13612345678")
            form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
            wait_for(
                driver,
                "var m = document.querySelector('.reg-form .msg');"
                " return m && m.textContent !== '' && m.textContent !== '正在提交……';",
            )
            assert expected in message(), (case, message())
            for field in (body or {}).get("fields", {}):
                shown = form.find_element(By.CSS_SELECTOR, f"[data-err={field}]").text
                assert shown and re.search("[\u4e00-\u9fff]", shown), (case, shown)
        driver.execute_script("window.__stub = null")
    assert severe_except(driver, "400", "409") == []


def test_upload_preview_lists_every_row_problem_and_commits_only_when_confirmed(
    server, app, driver, database, tmp_path
):
    from selenium.webdriver.common.by import By

    from web.store import Store

    store = Store(database)
    _, county = store.create_token("南湖区总工会（导入测试）", "南湖区")
    probe = app.test_client().post(
        "/api/admin/facilities/upload?dry_run=1",
        data={"file": (io.BytesIO("名称,经度,纬度\n".encode()), "probe.csv"), "crs": "wgs84"},
        headers={"Authorization": f"Bearer {county}"},
        content_type="multipart/form-data",
    )
    if "preview" not in (probe.get_json() or {}):
        pytest.skip(
            "needs the issue-16 upload dry run (POST /api/admin/facilities/upload?dry_run=1 "
            "answering preview and committed: false) from branch workers; not on main yet"
        )
    header = "名称,经度,纬度,工种,电话\n"
    good = [
        "南湖焊接培训中心,120.7623,30.7531,焊工,0573-81111111",
        "东栅技能驿站,120.7901,30.7612,育婴员,",
    ]
    long_name = f"{'培' * 300},120.7800,30.7400,电工,"  # refused when the file is read
    elsewhere = [  # refused when rows are placed: another county; no county of the region
        "桐乡培训点,120.5646,30.6227,电工,",
        "杭州某培训点,120.10,30.30,电工,",
    ]
    rows_file = tmp_path / "名录.csv"
    count = store.facility_count()

    def preview(rows: list[str]) -> None:
        rows_file.write_text(header + "\n".join(rows) + "\n", "utf-8")
        form = driver.find_element(By.ID, "upload")
        form.find_element(By.NAME, "file").clear()
        form.find_element(By.NAME, "file").send_keys(str(rows_file))
        driver.execute_script("document.getElementById('upload-summary').textContent = ''")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_for(
            driver,
            "var s = document.getElementById('upload-summary').textContent;"
            " return s !== '' && !s.includes('正在校验');",
        )

    def problems() -> list[str]:
        return [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#upload-problems li")]

    console_login(driver, server, county)
    driver.find_element(By.CSS_SELECTOR, ".tabs [data-tab=upload]").click()
    preview([good[0], long_name, good[1]])
    assert len(problems()) == 1 and problems()[0].startswith("row 3")
    assert "300 characters" in problems()[0]
    assert not driver.find_element(By.ID, "commit").is_enabled()
    assert "不会导入任何行" in driver.find_element(By.ID, "upload-summary").text

    # rows the server places: each row previewed, the refused ones flagged with their problem
    preview([good[0], elsewhere[0], good[1], elsewhere[1]])
    rows = driver.find_elements(By.CSS_SELECTOR, "#upload-table tr")
    assert len(rows) == 1 + 4  # a header and every row of the file
    flagged = driver.find_elements(By.CSS_SELECTOR, "#upload-table tr.bad")
    cells = [[td.text for td in r.find_elements(By.TAG_NAME, "td")] for r in flagged]
    assert [c[0] for c in cells] == ["row 3", "row 5"]
    assert "not in 南湖区" in cells[0][-1] and "outside" in cells[1][-1]
    assert [p.split("：")[0] for p in problems()] == ["row 3", "row 5"]
    assert not driver.find_element(By.ID, "commit").is_enabled()
    assert store.facility_count() == count  # previews wrote nothing

    # the corrected file: no problems, still nothing written until 确认导入
    preview(good)
    wait_for(driver, "return document.getElementById('commit').disabled === false")
    assert "将新增 2" in driver.find_element(By.ID, "upload-summary").text
    assert driver.find_elements(By.CSS_SELECTOR, "#upload-table tr.bad") == []
    assert store.facility_count() == count
    driver.find_element(By.ID, "commit").click()
    wait_for(
        driver, "return document.getElementById('upload-summary').textContent.includes('已导入')"
    )
    assert "新增 2" in driver.find_element(By.ID, "upload-summary").text
    assert store.facility_count() == count + 2
    assert severe(driver) == []


@pytest.mark.parametrize("page", ["village", "facility", "here", "admin", "withdraw"])
def test_phone_pages_have_no_horizontal_scroll_at_360_px(server, app, driver, database, page):
    from selenium.webdriver.common.by import By

    from web.store import Store

    if page == "admin":
        _, county = Store(database).create_token("南湖区总工会（手机）", "南湖区")
    with phone(driver):
        if page == "here":
            driver.execute_cdp_cmd(
                "Browser.grantPermissions", {"permissions": ["geolocation"], "origin": server}
            )
            driver.execute_cdp_cmd(
                "Emulation.setGeolocationOverride",
                {"latitude": 30.7618, "longitude": 120.7552, "accuracy": 30},
            )
        path = {
            "village": f"/q/{VILLAGE}",
            "facility": f"/q/f/{SCHOOL}",
            "here": "/q/here",
            "admin": "/admin",
            "withdraw": "/q/withdraw",
        }[page]
        driver.get(server + path)
        wait_for(driver, "return document.readyState === 'complete'")
        if page in ("village", "facility", "here"):
            wait_for(
                driver,
                "return document.getElementById('find-status').textContent.includes('分钟内')",
                30,
            )
        if page == "here":
            wait_for(driver, "return document.querySelectorAll('#here-list li').length > 0", 30)
        if page == "admin":
            console_login(driver, server, county)
            wait_for(driver, "return document.querySelectorAll('#fac-list .pick').length > 0")
            driver.find_element(By.CSS_SELECTOR, "#fac-list .pick").click()
            driver.find_element(By.CSS_SELECTOR, "[data-action=add][data-table=courses]").click()
            wait_for(driver, "return document.getElementById('courses-form').hidden === false")
            for tab in ("audit", "upload"):  # the other tabs of the console, wide tables too
                driver.find_element(By.CSS_SELECTOR, f".tabs [data-tab={tab}]").click()
                wait_for(driver, f"return document.getElementById('tab-{tab}').hidden === false")
                assert scroll_width(driver) <= PHONE_WIDTH, tab
            driver.find_element(By.CSS_SELECTOR, ".tabs [data-tab=facilities]").click()
        assert scroll_width(driver) <= PHONE_WIDTH, page
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / f"{page}_360.png"))
        if page == "here":
            driver.execute_cdp_cmd("Emulation.clearGeolocationOverride", {})
    assert severe(driver) == []


#: The budget of the 技能码 page on a phone: HTML + CSS + JS + its first data calls.
PAGE_BUDGET = 100_000


def test_qr_page_weight_is_under_100_kb(server, app, driver, database):
    """Every resource /q/<code> loads on a phone (the page, its CSS and scripts, the QR
    image, the first data calls) as the browser received it (bodies as served, compressed
    when the app compresses) and uncompressed, with a full first page of search results."""
    from web.store import Store

    _, county = Store(database).create_token("南湖区总工会（页面重量）", "南湖区")
    html = app.test_client().get("/q/" + VILLAGE).get_data(as_text=True)
    first_page = json.loads(re.search(r'id="sc-config"[^>]*>(.*?)</script>', html, re.S)[1])
    for n in range(first_page["limits"]["search"] + 2):  # more items than the first page
        add_course(
            server,
            county,
            title=f"电工（中级）上岗证培训班第{n + 1}期（周末及夜间班）",
            trade="电工",
            start_date=in_days(5 + n),
            end_date=in_days(35 + n),
            fee=1200,
            subsidy_note="取得证书后可按规定申领职业技能提升补贴，详询培训机构",
            register_phone="0573-82222222",
        )
    with phone(driver):
        driver.get(f"{server}/q/{VILLAGE}")
        wait_for(
            driver,
            "return document.getElementById('find-status').textContent.includes('分钟内')"
            " && document.querySelector('#find-form [name=trade]').options.length > 1",
        )
        shown = driver.execute_script("return document.querySelectorAll('#find-list li').length")
        entries = driver.execute_script(
            "return performance.getEntriesByType('navigation').concat("
            "performance.getEntriesByType('resource'))"
            ".map(e => [e.name, e.encodedBodySize, e.decodedBodySize]);"
        )
    assert shown == first_page["limits"]["search"]  # a full first page of results
    assert all(name.startswith(server + "/") for name, _, _ in entries), entries  # no CDN
    sizes = {name.removeprefix(server): size for name, size, _ in entries}  # as served
    raw = {name.removeprefix(server): size for name, _, size in entries}  # uncompressed
    kinds = {re.sub(r"[?].*", "", name) for name in sizes}
    assert {f"/q/{VILLAGE}", "/static/util.js", "/static/worker.js", "/static/style.css"} <= kinds
    assert {"/api/search", "/api/trades"} <= kinds, kinds
    assert not any("leaflet" in name.lower() or "folium" in name for name in kinds)
    # the uncompressed bytes fetched independently
    refetched = {}
    for name in raw:
        request = urllib.request.Request(server + name, headers={"Accept-Encoding": "identity"})
        with urllib.request.urlopen(request, timeout=60) as resp:
            refetched[name] = len(resp.read())
    assert refetched == raw
    total, total_raw = sum(sizes.values()), sum(raw.values())
    report = f"page weight of /q/<code>: {total} bytes as served ({total_raw} uncompressed)"
    print(report, sizes)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "page_weight.json").write_text(
        json.dumps(
            {"served_bytes": total, "raw_bytes": total_raw, "served": sizes, "raw": raw},
            indent=1,
        )
    )
    assert total_raw <= PAGE_BUDGET, raw  # within budget even for a client without gzip
    assert total <= PAGE_BUDGET, sizes


def test_notify_me_is_counted_and_the_map_shows_demand(server, app, driver, study):
    from selenium.webdriver.common.by import By

    _, listed = call(server, "GET", "/api/trades")
    _, courses = call(server, "GET", f"/api/search?village={VILLAGE}&minutes=120&limit=200")
    offered = {i["trade"] for i in courses["items"]}
    trade = next(t for t in listed["trades"] if t not in offered)
    with phone(driver):
        driver.get(f"{server}/q/{VILLAGE}")
        search_in_page(driver, trade)
        wait_for(driver, "return document.getElementById('notify').hidden === false")
        assert trade in driver.find_element(By.ID, "notify-text").text
        driver.find_element(By.ID, "notify-button").click()
        wait_for(
            driver, "return document.getElementById('notify-button').textContent.includes('已登记')"
        )
    _, after = call(server, "GET", f"/api/demand?trade={trade}")
    mine = [r for r in after["rows"] if r["village_code"] == VILLAGE and r["trade"] == trade]
    assert len(mine) == 1 and mine[0]["notify"] == 1 and mine[0]["searches"] >= 1
    assert after["totals"]["notify"] >= 1

    driver.get(server + "/")
    wait_for(driver, "return window.skillcircle !== undefined && skillcircle.map() !== null")
    driver.find_element(By.ID, "demand-toggle").click()
    wait_for(
        driver, "return document.getElementById('demand-status').textContent.includes('个村有需求')"
    )
    dots = driver.execute_script("return skillcircle.demand().getLayers().length")
    _, every = call(server, "GET", "/api/demand")
    villages = {r["village_code"] for r in every["rows"] if r["village_code"]}
    assert dots == len(villages) >= 1
    assert f"{len(villages)} 个村有需求" in driver.find_element(By.ID, "demand-status").text
    driver.find_element(By.ID, "demand-toggle").click()
    wait_for(driver, "return skillcircle.demand() === null")
    assert severe(driver) == []


def test_a_failed_plan_says_why_instead_of_computing_forever(server, driver):
    driver.get(server + "/?mode=ebike")
    wait_for(driver, "return window.skillcircle !== undefined && skillcircle.map() !== null")
    driver.execute_script(
        "var f = document.getElementById('plan-form'); f.add.value = '0';"
        "f.dispatchEvent(new Event('submit', {cancelable: true}));"
    )
    wait_for(
        driver, "return !document.getElementById('plan-result').textContent.includes('计算中')"
    )
    text = driver.find_element("id", "plan-result").text
    assert text.startswith("规划失败") and "add" in text
    # the server is down: the page says so
    driver.execute_script("window.fetch = () => Promise.reject(new TypeError('offline'));")
    driver.execute_script(
        "var f = document.getElementById('plan-form'); f.add.value = '3';"
        "f.dispatchEvent(new Event('submit', {cancelable: true}));"
    )
    wait_for(
        driver, "return document.getElementById('plan-result').textContent.includes('网络错误')"
    )
    assert severe_except(driver, "400") == []


def test_demand_rows_are_summed_per_village_for_the_map(server, driver, study):
    """The 需求 layer's arithmetic on rows of the demand API's shape (no backend needed):
    per village, over trades; coordinates from the row or else from the map's villages."""
    driver.get(server + "/?mode=walk")
    wait_for(driver, "return window.skillcircle !== undefined && skillcircle.map() !== null")
    other = study.villages.iloc[5]
    rows = [
        {
            "village_code": VILLAGE,
            "trade": "焊工",
            "scans": 0,
            "searches": 2,
            "notify": 1,
            "lon": 120.76,
            "lat": 30.76,
        },
        {
            "village_code": VILLAGE,
            "trade": "",
            "scans": 4,
            "searches": 0,
            "notify": 0,
            "lon": 120.76,
            "lat": 30.76,
        },
        {
            "village_code": VILLAGE,
            "trade": "电工",
            "scans": 0,
            "searches": 1,
            "notify": 0,
            "lon": 120.76,
            "lat": 30.76,
        },
        {
            "village_code": other["village_code"],
            "trade": "焊工",
            "scans": 0,
            "searches": 0,
            "notify": 3,
        },  # no coordinates in the row: the map's village point
        {"village_code": "", "trade": "育婴员", "scans": 0, "searches": 5, "notify": 0},
    ]
    out = driver.execute_script("return skillcircle.demandTotals(arguments[0])", rows)
    by_code = {v["code"]: v for v in out["villages"]}
    mine = by_code[VILLAGE]
    assert (mine["total"], mine["scans"], mine["searches"], mine["notify"]) == (8, 4, 3, 1)
    assert mine["trades"] == {"焊工": 3, "电工": 1}
    theirs = by_code[other["village_code"]]
    assert theirs["total"] == 3
    assert (theirs["lon"], theirs["lat"]) == pytest.approx((other.geometry.x, other.geometry.y))
    assert out["unplaced"] == 5
    assert severe(driver) == []


def test_withdrawal_page_deletes_the_sign_up_and_returns_the_seat(server, driver, database):
    from selenium.webdriver.common.by import By

    from web.store import Store

    _, county = Store(database).create_token("南湖区总工会（撤回测试）", "南湖区")
    course = add_course(server, county, title="焊工（初级）撤回测试班", seats=3)
    status, done = register_by_api(server, course["id"], "周九", "13812349876")
    assert status == 201 and done["seats_left"] == 2
    with phone(driver):
        driver.get(server + done["withdraw_url"])  # the link the confirmation shows
        form = driver.find_element(By.ID, "withdraw-form")
        assert form.find_element(By.NAME, "code").get_attribute("value") == done["code"]
        # a wrong phone: the same answer as an unknown code, nothing deleted
        form.find_element(By.NAME, "phone").send_keys("13800000000")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        msg = "document.querySelector('#withdraw-form .msg').textContent"
        wait_for(driver, f"return {msg}.includes('不匹配')")
        _, listed = call(server, "GET", f"/api/admin/facilities/{SCHOOL}/courses", county)
        (mine,) = [c for c in listed["items"] if c["id"] == course["id"]]
        assert mine["seats_left"] == 2
        # the phone as people type it: spaces and +86
        form.find_element(By.NAME, "phone").clear()
        form.find_element(By.NAME, "phone").send_keys("+86 138 1234 9876")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_for(driver, f"return {msg}.includes('已撤回')")
        assert scroll_width(driver) <= PHONE_WIDTH
    _, listed = call(server, "GET", f"/api/admin/facilities/{SCHOOL}/courses", county)
    (mine,) = [c for c in listed["items"] if c["id"] == course["id"]]
    assert (mine["registered"], mine["seats_left"]) == (0, 3)
    _, regs = call(
        server,
        "GET",
        f"/api/admin/facilities/{SCHOOL}/registrations?item=course:{course['id']}",
        county,
    )
    assert regs["items"] == []
    assert severe_except(driver, "404") == []


def test_a_plan_weighted_by_demand_differs_from_an_unweighted_one(server, driver, study, database):
    """Demand signals at a village no unweighted plan covers pull the plan there: the API's
    answers differ, and the map's plan panel (按培训需求加权) shows the weighted one."""
    from geo.demand import iso_week, today_china
    from web.store import Store

    plan = "/api/plan?county=南湖区&layer=training_base&mode=walk&add=1"
    _, plain = call(server, "GET", plan)
    assert plain["weights"]["kind"] == "villages"
    covered = {v["village_code"] for site in plain["sites"] for v in site["villages"]}
    cov = study.coverage["walk"]
    left_out = cov[
        (cov["county"] == "南湖区")
        & ~cov["far_from_road"]
        & ~(cov["training_base_minutes"] <= study.settings.minutes)
        & ~cov["village_code"].isin(covered)
    ]
    wanted = str(left_out["village_code"].iloc[0])
    Store(database).add_demand({(wanted, "焊工", "notify", iso_week(today_china())): 500})
    _, weighted = call(server, "GET", plan + "&weights=demand")
    assert weighted["weights"]["kind"] == "demand" and weighted["weights"]["signals"] >= 500
    assert [s["site_id"] for s in weighted["sites"]] != [s["site_id"] for s in plain["sites"]]
    newly = {v["village_code"]: v["weight"] for s in weighted["sites"] for v in s["villages"]}
    assert newly[wanted] >= 501
    _, again = call(server, "GET", plan)
    assert again["sites"] == plain["sites"]  # the unweighted plan is unchanged

    driver.get(server + "/?mode=walk")
    wait_for(driver, "return window.skillcircle !== undefined && skillcircle.map() !== null")

    def submit(weights: bool) -> str:
        driver.execute_script(
            "var f = document.getElementById('plan-form'); f.county.value = '南湖区';"
            "f.layer.value = 'training_base'; f.add.value = '1'; f.weights.checked = arguments[0];"
            "document.getElementById('plan-result').textContent = '';"
            "f.dispatchEvent(new Event('submit', {cancelable: true}));",
            weights,
        )
        wait_for(driver, "return document.getElementById('plan-result').textContent.includes('→')")
        return driver.find_element("id", "plan-result").text

    def covers(answer: dict) -> str:  # as JavaScript prints numbers (27.0 as 27)
        return (
            f"覆盖 {answer['covered_before']:g} → {answer['covered_after']:g} / {answer['total']:g}"
        )

    shown = submit(False)
    assert covers(plain) + " 个村" in shown and "需求" not in shown
    shown = submit(True)
    w = weighted["weights"]
    assert covers(weighted) + "（需求加权值）" in shown, shown
    assert f"{w['villages_with_signals']} 个村共 {w['signals']:g} 次" in shown, shown
    assert "需求加权" in shown
    assert severe(driver) == []


#: Per page: how to load it, what it says once its API calls fail (the network is down).
OFFLINE = {
    "village": (f"/q/{VILLAGE}", "find-status", "查询失败：网络错误"),
    "here": ("/q/here", "here-status", "查询失败：网络错误"),
    "demand layer": ("/", "demand-status", "需求加载失败：网络错误"),
    "plan": ("/", "plan-result", "规划失败：网络错误"),
    "console login": ("/admin", "who", "登录失败：网络错误"),
    "withdraw": ("/q/withdraw", "withdraw-form", "网络错误"),
}


@pytest.mark.parametrize("case", OFFLINE)
def test_every_page_says_when_its_api_calls_fail(server, driver, case):
    """Issue 15: no fetch without an error state. The browser blocks every /api/ request
    (as a dropped connection would); each page says so instead of loading forever."""
    from selenium.webdriver.common.by import By

    path, where, expected = OFFLINE[case]
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*/api/*"]})
    try:
        with phone(driver):
            if case == "here":
                driver.execute_cdp_cmd(
                    "Browser.grantPermissions", {"permissions": ["geolocation"], "origin": server}
                )
                driver.execute_cdp_cmd(
                    "Emulation.setGeolocationOverride",
                    {"latitude": 30.7618, "longitude": 120.7552, "accuracy": 30},
                )
            driver.get(server + path)
            wait_for(driver, "return document.readyState === 'complete'")
            if case == "demand layer":
                driver.find_element(By.ID, "demand-toggle").click()
            elif case == "plan":
                driver.execute_script(
                    "var f = document.getElementById('plan-form');"
                    "f.dispatchEvent(new Event('submit', {cancelable: true}));"
                )
            elif case == "console login":
                driver.execute_script("sessionStorage.clear()")
                driver.find_element(By.ID, "token").send_keys("any-token")
                driver.find_element(By.CSS_SELECTOR, "#login button").click()
            elif case == "withdraw":
                form = driver.find_element(By.ID, "withdraw-form")
                form.find_element(By.NAME, "code").send_keys("ABCD2345")
                form.find_element(By.NAME, "phone").send_keys("13812345678")
                form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
            wait_for(
                driver,
                f"return document.getElementById('{where}').textContent.includes('{expected}')",
            )
            if case == "here":
                wait_for(
                    driver,
                    "return document.getElementById('find-status').textContent"
                    ".includes('查询失败：网络错误')",
                )
                driver.execute_cdp_cmd("Emulation.clearGeolocationOverride", {})
    finally:
        driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})
        driver.execute_cdp_cmd("Network.disable", {})
    blocked = [e for e in severe(driver) if "ERR_BLOCKED_BY_CLIENT" not in e["message"]]
    assert blocked == []


def test_an_evaluation_session_is_found_by_level_and_registered(server, driver, database):
    """技能评价 sessions: filtered by kind and level, shown with their place, 报名 as for
    courses; the staff list shows the registrant under the session."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from web.store import Store

    _, county = Store(database).create_token("南湖区总工会（评价测试）", "南湖区")
    sessions = {}
    for level, days in (("中级", 9), ("高级", 8)):
        body = {"trade": "焊工", "level": level, "date": in_days(days), "seats": 4}
        body["place"] = f"{level}考场（实训楼三楼）"
        status, made = call(
            server, "POST", f"/api/admin/facilities/{SCHOOL}/evaluations", county, body
        )
        assert status == 201, made
        sessions[level] = made
    with phone(driver):
        driver.get(f"{server}/q/{VILLAGE}")
        search_in_page(driver, "焊工")
        status = "document.getElementById('find-status').textContent"
        for name, value in (("kind", "evaluation"), ("level", "中级")):
            driver.execute_script(f"{status} = ''")
            Select(
                driver.find_element(By.CSS_SELECTOR, f"#find-form [name={name}]")
            ).select_by_value(value)
            wait_for(driver, f"return {status}.includes('分钟内')")
        keys = driver.execute_script(
            "return Array.from(document.querySelectorAll('#find-list li'))"
            ".map(li => li.dataset.key)"
        )
        _, found = call(
            server,
            "GET",
            f"/api/search?village={VILLAGE}&trade=焊工&kind=evaluation&level=中级&mode=ebike"
            "&minutes=30",
        )
        assert keys == [f"evaluation:{i['id']}" for i in found["items"]]
        key = f"evaluation:{sessions['中级']['id']}"
        assert key in keys and f"evaluation:{sessions['高级']['id']}" not in keys
        item = driver.find_element(By.CSS_SELECTOR, f'li[data-key="{key}"]')
        assert "焊工" in item.text and "中级" in item.text and "评价" in item.text
        assert "中级考场（实训楼三楼）" in item.text and in_days(9) in item.text
        assert "余 4 个名额（共 4）" in item.text
        form = open_form(driver, key)
        fill_form(form, "吴十", "139 0000 4444")  # typed with spaces
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_for(driver, "return document.querySelector('.reg-ok .code') !== null")
        assert item.find_element(By.CSS_SELECTOR, ".seats").text == "余 3 个名额（共 4）"
        assert scroll_width(driver) <= PHONE_WIDTH
    _, regs = call(
        server, "GET", f"/api/admin/facilities/{SCHOOL}/registrations?item={key}", county
    )
    assert [(r["kind"], r["name"], r["phone_masked"]) for r in regs["items"]] == [
        ("evaluation", "吴十", "139****4444")
    ]
    assert severe(driver) == []
