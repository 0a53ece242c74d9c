"""Course and evaluation search: upcoming only (China date), filters, order by start date then
travel time from a village (its 技能码 card's minutes) or a point, seats left, trades."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from signup import COURSE, body

from web import create_app
from web.records import today

VILLAGE = "330402007024"  # 百福弄社区居委会, 南湖区
SCHOOL = "TS-330402-001"


@pytest.fixture(scope="module")
def searched(study, tmp_path_factory):
    """An app with courses and sessions at several facilities (some past, one full)."""
    app = create_app(
        {
            "TESTING": True,
            "STUDY": study,
            "TILE_URL": "none",
            "DATABASE": str(tmp_path_factory.mktemp("search") / "s.sqlite3"),
            "RATELIMIT_ADMIN": "10000 per minute",
            "RATELIMIT_PUBLIC": "10000 per second",
        }
    )
    client = app.test_client()
    store = app.extensions["skillcircle.store"]
    _, token = store.create_token("t", None)
    headers = {"Authorization": f"Bearer {token}"}
    index = study.village_position(VILLAGE)
    card = study.village_card(index)
    on_card = [f["id"] for s in card.sections for f in s.facilities]
    village = study.villages.iloc[index]
    fac = study.facilities.set_index("id")
    # four facilities: two on the village's card, two far away (not on it)
    far = (
        fac.assign(
            d=np.hypot(fac.geometry.x - village.geometry.x, fac.geometry.y - village.geometry.y)
        )
        .sort_values("d")
        .index[-2:]
        .tolist()
    )
    chosen = [on_card[0], on_card[1], *far]
    day = dt.date.fromisoformat(today())
    made = {}
    for n, fid in enumerate(chosen):
        resp = client.post(
            f"/api/admin/facilities/{fid}/courses",
            json={
                **COURSE,
                "title": f"焊工（中级）班{n}",
                "start_date": "2099-03-01",
                "end_date": None,
            },
            headers=headers,
        )
        made[fid] = resp.get_json()["id"]
    extra = {
        "past": {
            **COURSE,
            "title": "已结束",
            "start_date": str(day - dt.timedelta(days=10)),
            "end_date": str(day - dt.timedelta(days=1)),
        },
        "running": {
            **COURSE,
            "title": "进行中电工班",
            "trade": "电工",
            "start_date": str(day - dt.timedelta(days=3)),
            "end_date": str(day),
        },
        "later": {
            **COURSE,
            "title": "养老护理员班",
            "trade": "养老护理员",
            "start_date": "2099-06-01",
            "end_date": None,
            "seats": 1,
            "fee": 800,
            "subsidy_note": "补贴50%",
        },
        "new_trade": {
            **COURSE,
            "title": "无人机驾驶员班",
            "trade": "无人机驾驶员",
            "start_date": "2099-07-01",
            "end_date": None,
        },
    }
    for key, course in extra.items():
        made[key] = client.post(
            f"/api/admin/facilities/{SCHOOL}/courses", json=course, headers=headers
        ).get_json()["id"]
    for level, date in (("中级", "2099-04-01"), ("高级", str(day - dt.timedelta(days=1)))):
        made[f"eval-{level}"] = client.post(
            f"/api/admin/facilities/{SCHOOL}/evaluations",
            json={"trade": "焊工", "level": level, "date": date, "seats": 2, "place": "实训楼"},
            headers=headers,
        ).get_json()["id"]
    # the 养老 course fills up
    assert (
        client.post(
            "/api/registrations", json=body(made["later"], "13800000000", client)
        ).status_code
        == 201
    )
    return app, client, made, chosen, card


def test_upcoming_only_and_seats(searched):
    _, client, made, _, _ = searched
    got = client.get("/api/search?limit=200").get_json()
    titles = {i["title"] for i in got["items"]}
    assert "已结束" not in titles and "进行中电工班" in titles  # ends today: still listed
    assert "焊工（高级）技能等级认定" not in titles and "焊工（中级）技能等级认定" in titles
    assert got["total"] == len(got["items"]) == 8
    later = next(i for i in got["items"] if i["id"] == made["later"] and i["kind"] == "course")
    assert (later["seats"], later["seats_left"], later["registered"]) == (1, 0, 1)
    assert later["fee"] == 800 and later["subsidy_note"] == "补贴50%"
    assert later["register"] == {"online": True, "url": None, "phone": "0573-12345678"}
    assert later["minutes"] is None and got["origin"] is None
    session = next(i for i in got["items"] if i["kind"] == "evaluation")
    assert session["date"] == session["start_date"] == "2099-04-01" and session["place"] == "实训楼"
    assert [i["start_date"] for i in got["items"]] == sorted(i["start_date"] for i in got["items"])


def test_filters(searched):
    client = searched[1]

    def titles(query):
        resp = client.get(f"/api/search?{query}")
        assert resp.status_code == 200, resp.get_json()
        return [i["title"] for i in resp.get_json()["items"]]

    assert set(titles("trade=电工")) == {"进行中电工班"}
    assert titles("trade=无人机驾驶员") == ["无人机驾驶员班"]
    assert titles("trade=木工") == []  # a trade nobody teaches: no error, nothing
    assert titles("kind=evaluation") == ["焊工（中级）技能等级认定"]
    # level: sessions of the level, and courses naming it in their title
    assert set(titles("level=中级")) == {
        "焊工（中级）技能等级认定",
        *[f"焊工（中级）班{n}" for n in range(4)],
    }
    assert titles("level=技师") == []
    assert titles("q=养老") == ["养老护理员班"]
    assert titles("q=建筑工业 护理") == ["养老护理员班"]  # words in facility name and title
    assert set(titles("from=2099-05-01")) == {"养老护理员班", "无人机驾驶员班"}
    assert len(titles("limit=2")) == 2
    for bad in (
        "kind=x",
        "level=大师",
        "from=2099-13-01",
        "from=tomorrow",
        "q=" + "x" * 51,
        "trade=电工、焊工",
        "limit=0",
        "mode=plane",
        "minutes=0",
        "village=123",
        "lon=120.7",
        "lon=200&lat=30",
    ):
        resp = client.get(f"/api/search?{bad}")
        assert resp.status_code == 400, bad
        assert resp.get_json()["message"]
    assert client.get("/api/search?village=330402999999").status_code == 404


def test_order_by_start_then_travel_time_from_a_village(searched, study):
    _, client, _, chosen, card = searched
    got = client.get(f"/api/search?village={VILLAGE}&mode=ebike&trade=焊工&kind=course").get_json()
    assert got["origin"]["village_code"] == VILLAGE and got["mode"] == "ebike"
    same_day = [i for i in got["items"] if i["start_date"] == "2099-03-01"]
    assert [i["facility_id"] for i in same_day] and {i["facility_id"] for i in same_day} == set(
        chosen
    )
    # minutes: the card's for facilities on it, else routed (bounded by max_minutes)
    shown = {f["id"]: f["times"]["ebike"] for s in card.sections for f in s.facilities}
    village = study.villages.iloc[study.village_position(VILLAGE)]
    router = study.routers["ebike"]
    fac = study.facilities.set_index("id")
    for item in same_day:
        fid = item["facility_id"]
        if fid in shown:
            assert item["minutes"] == pytest.approx(shown[fid], abs=0.05)
        else:
            seconds = router.one_to_many(
                village.geometry.x,
                village.geometry.y,
                [fac.loc[fid].geometry.x],
                [fac.loc[fid].geometry.y],
                max_minutes=study.settings.max_minutes,
            )[0]
            expected = None if np.isnan(seconds) else round(seconds / 60, 1)
            assert item["minutes"] == expected
    keys = [(i["minutes"] is None, i["minutes"] or 0, i["distance_m"]) for i in same_day]
    assert keys == sorted(keys)
    # "near me": only items within the minutes
    near = client.get(f"/api/search?village={VILLAGE}&mode=ebike&minutes=30&trade=焊工").get_json()
    assert near["minutes"] == 30
    assert near["items"] and all(
        i["minutes"] is not None and i["minutes"] <= 30 for i in near["items"]
    )
    assert {i["facility_id"] for i in near["items"]} < {i["facility_id"] for i in got["items"]} | {
        SCHOOL
    }


def test_search_from_a_point(searched, study):
    _, client, _, chosen, _ = searched
    fac = study.facilities.set_index("id").loc[chosen[0]]
    lon, lat = round(fac.geometry.x, 6), round(fac.geometry.y, 6)
    got = client.get(f"/api/search?lon={lon}&lat={lat}&mode=walk&minutes=15").get_json()
    assert got["origin"] == {"lon": lon, "lat": lat}
    first = got["items"][0]
    assert first["facility_id"] == chosen[0] and first["minutes"] <= 1 and first["distance_m"] <= 5
    assert client.get(f"/api/search?village={VILLAGE}&lon={lon}&lat={lat}").status_code == 400


def test_trades_and_new_items_show_at_once(searched, study):
    app, client = searched[:2]
    trades = client.get("/api/trades").get_json()
    assert trades["levels"] == ["初级", "中级", "高级", "技师"]
    assert set(study.trades) <= set(trades["trades"]) and "无人机驾驶员" in trades["trades"]
    before = client.get("/api/search?q=面点").get_json()["total"]
    store = app.extensions["skillcircle.store"]
    with store.write(None, "create", "course", "?") as tx:
        tx.insert_item("courses", SCHOOL, {**COURSE, "title": "中式面点班", "trade": "中式面点师"})
    assert client.get("/api/search?q=面点").get_json()["total"] == before + 1
