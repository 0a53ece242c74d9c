"""培训需求: anonymous signals (scans counted server-side, searches, notify-me), aggregated per
village, trade, kind and ISO week; /api/demand, the map layer, the 需求 sheet, and plans
weighted by demand (w = 1 + d) through the API and the CLI."""

from __future__ import annotations

import datetime as dt
import io
import json

import openpyxl
import pandas as pd
import pytest
from click.testing import CliRunner

from geo.cli import main
from geo.demand import (
    DEMAND_WEIGHT_FORMULA,
    demand_frame,
    demand_weights,
    iso_week,
    today_china,
    village_totals,
)
from geo.models import DemandSignal
from web.demand import DemandBuffer

VILLAGE = "330402007024"  # 百福弄社区居委会, 南湖区建设街道
XIUZHOU_VILLAGE_PREFIX = "330411"


def week(back: int = 0) -> str:
    return iso_week(today_china(), back=back)


def test_iso_weeks():
    assert iso_week(dt.date(2026, 1, 1)) == "2026-W01"
    assert iso_week(dt.date(2027, 1, 1)) == "2026-W53"  # ISO: the Friday belongs to 2026
    assert iso_week(dt.date(2026, 1, 5), back=1) == "2026-W01"
    assert iso_week(dt.date(2026, 1, 5), back=2) == "2025-W52"
    assert sorted(["2026-W10", "2025-W52", "2026-W02"]) == ["2025-W52", "2026-W02", "2026-W10"]


def test_scans_are_counted_server_side_also_when_revalidated(client, store):
    first = client.get(f"/q/{VILLAGE}")
    assert first.status_code == 200
    again = client.get(f"/q/{VILLAGE}", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    client.get(f"/q/{VILLAGE}")
    client.get("/q/330402999999")  # unknown village: 404, not counted
    client.get("/q/330402999999", headers={"If-None-Match": first.headers["ETag"]})
    client.get("/q/f/TS-330402-001")  # a facility's page: no village
    client.get(f"/q/{VILLAGE}.png")  # the QR image is not a scan
    assert store.demand() == [{"village_code": VILLAGE, "trade": "", "kind": "scan", "signals": 3}]
    row = store.conn.execute("SELECT * FROM demand").fetchone()
    assert row["week"] == week() and row["signals"] == 3


def test_signals_aggregate_per_village_trade_kind_and_week(client, store):
    for kind, trade, village in [
        ("search", "焊工", VILLAGE),
        ("search", "焊工", VILLAGE),
        ("notify", "焊工", VILLAGE),
        ("search", "电工", VILLAGE),
        ("search", "焊工", None),  # from /q/here: no village
    ]:
        data = {"kind": kind, "trade": trade} | ({"village": village} if village else {})
        resp = client.post("/api/demand", json=data)
        assert resp.status_code == 204, resp.get_json()
    client.get(f"/q/{VILLAGE}")
    # an older week, straight into the store
    store.add_demand({(VILLAGE, "焊工", "search", week(3)): 10})
    counted = {(r["village_code"], r["trade"], r["kind"]): r["signals"] for r in store.demand()}
    assert counted == {
        (VILLAGE, "焊工", "search"): 12,
        (VILLAGE, "焊工", "notify"): 1,
        (VILLAGE, "电工", "search"): 1,
        ("", "焊工", "search"): 1,
        (VILLAGE, "", "scan"): 1,
    }
    weeks = {r["week"] for r in store.conn.execute("SELECT week FROM demand")}
    assert weeks == {week(), week(3)}

    got = client.get("/api/demand").get_json()
    rows = {(r["village_code"], r["trade"]): r for r in got["rows"]}
    welding = rows[(VILLAGE, "焊工")]
    assert (welding["scans"], welding["searches"], welding["notify"]) == (0, 12, 1)
    assert welding["village_name"] == "百福弄社区居委会" and welding["county"] == "南湖区"
    assert welding["town"] and welding["lon"] and welding["lat"]
    assert rows[("", "焊工")]["village_name"] == "" and rows[("", "焊工")]["lon"] is None
    assert got["totals"] == {"scans": 1, "searches": 14, "notify": 1}
    this_week = client.get("/api/demand?weeks=1").get_json()
    assert this_week["totals"] == {"scans": 1, "searches": 4, "notify": 1}
    assert this_week["since"] == week()
    mine = client.get("/api/demand?county=南湖区&trade=焊工").get_json()["rows"]
    assert [(r["village_code"], r["trade"]) for r in mine] == [(VILLAGE, "焊工")]
    assert client.get("/api/demand?county=秀洲区").get_json()["rows"] == []
    assert client.get("/api/demand?county=火星区").status_code == 400

    layer = client.get("/api/demand.geojson").get_json()
    assert layer["type"] == "FeatureCollection" and len(layer["features"]) == 1
    (feature,) = layer["features"]
    assert feature["properties"]["village_code"] == VILLAGE
    assert feature["properties"]["total"] == 15  # 1 scan + 12 + 1 searches + 1 notify
    assert list(feature["properties"]["trades"]) == ["焊工", "电工"]
    assert feature["properties"]["trades"]["焊工"] == 13


@pytest.mark.parametrize(
    "data",
    [
        {"kind": "scan", "trade": "焊工"},  # scans are counted by the server only
        {"kind": "notify"},  # notify needs a trade
        {"kind": "search", "trade": "不存在的工种"},
        {"kind": "search", "trade": "焊工、电工"},
        {"kind": "search", "trade": "焊工", "village": "330402999999"},
        {"kind": "search", "trade": "焊工", "village": "12"},
        {"kind": "search", "trade": "焊工", "phone": "13812345678"},  # nothing personal
        {"trade": "焊工"},
        {"kind": "search", "trade": 7},
    ],
)
def test_bad_signals_are_refused_and_count_nothing(client, store, data):
    resp = client.post("/api/demand", json=data)
    assert resp.status_code == 400 and resp.get_json()["message"]
    assert store.demand() == []


def test_the_demand_table_holds_nothing_personal(client, store):
    client.post("/api/demand", json={"kind": "notify", "trade": "焊工", "village": VILLAGE})
    columns = [c[0] for c in store.conn.execute("SELECT * FROM demand").description]
    assert columns == list(DemandSignal.model_fields)  # counters only: no IP, no time
    if store.path is not None:
        raw = store.path.read_bytes() + store.path.with_name(store.path.name + "-wal").read_bytes()
        assert b"127.0.0.1" not in raw


def test_buffer_flushes_in_batches_and_keeps_signals_on_failure(store, monkeypatch):
    buffer = DemandBuffer(store, flush_s=3600)
    for _ in range(5):
        buffer.add(VILLAGE, "", "scan")
    assert store.demand() == []  # buffered
    monkeypatch.setattr(store, "add_demand", lambda counts: (_ for _ in ()).throw(OSError("down")))
    assert buffer.flush() == 0
    monkeypatch.undo()
    assert buffer.flush() == 5
    assert store.demand()[0]["signals"] == 5
    with pytest.raises(ValueError):
        buffer.add(VILLAGE, "", "like")


def test_demand_sheet_in_the_county_export(client, store):
    store.add_demand({(VILLAGE, "焊工", "notify", week()): 4, (VILLAGE, "", "scan", week()): 9})
    resp = client.get("/export/南湖区.xlsx")
    assert resp.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(resp.data))
    sheet = book["需求"]
    header = [c.value for c in sheet[1]]
    assert header == ["村代码", "村", "乡镇", "区县", "工种", "扫码", "搜索", "通知我", "合计"]
    rows = {(r[0], r[4]): r for r in sheet.iter_rows(min_row=2, values_only=True)}
    assert rows[(VILLAGE, "焊工")][5:] == (0, 0, 4, 4)
    assert rows[(VILLAGE, None)][5:] == (9, 0, 0, 9) or rows[(VILLAGE, "")][5:] == (9, 0, 0, 9)
    notes = {r[0]: r[1] for r in book["说明"].iter_rows(values_only=True)}
    assert any("需求" in str(k) for k in notes)
    other = openpyxl.load_workbook(io.BytesIO(client.get("/export/秀洲区.xlsx").data))
    assert other["需求"].max_row == 1  # another county: header only


# --------------------------------------------------------------------------- plans


def test_demand_weights_formula():
    frame = demand_frame(
        [
            {"village_code": "A", "trade": "焊工", "kind": "search", "signals": 2},
            {"village_code": "A", "trade": "", "kind": "scan", "signals": 3},
            {"village_code": "", "trade": "焊工", "kind": "notify", "signals": 5},
        ]
    )
    weights = demand_weights(pd.Series(["A", "B"]), frame)
    assert weights.tolist() == [6.0, 1.0]  # 1 + (2 + 3); no signals: 1
    assert "w = 1 + d" in DEMAND_WEIGHT_FORMULA
    empty = demand_frame([])
    assert demand_weights(pd.Series(["A"]), empty).tolist() == [1.0]
    assert village_totals([]) == []


PLAN = "/api/plan?county=南湖区&layer=training_base&mode=walk&minutes=15&add=1"


def _village_left_out(plan: dict, study) -> str:
    """An uncovered village of 南湖区 the plan does not cover, reachable on the network."""
    covered = {v["village_code"] for site in plan["sites"] for v in site["villages"]}
    cov = study.coverage["walk"]
    nanhu = cov[(cov["county"] == "南湖区") & ~cov["far_from_road"]]
    uncovered = nanhu[~(nanhu["training_base_minutes"] <= 15)]
    for code in uncovered["village_code"]:
        if code not in covered:
            return str(code)
    pytest.fail("every uncovered village is covered by the plan")


def test_demand_changes_a_plan(client, store, study):
    plain = client.get(PLAN).get_json()
    assert plain["weights"]["kind"] == "villages"
    same = client.get(PLAN + "&weights=demand").get_json()  # no signals yet: the same plan
    assert [s["site_id"] for s in same["sites"]] == [s["site_id"] for s in plain["sites"]]
    assert same["weights"]["signals"] == 0
    wanted = _village_left_out(plain, study)
    store.add_demand({(wanted, "焊工", "notify", week()): 400, (wanted, "", "scan", week()): 600})
    weighted = client.get(PLAN + "&weights=demand").get_json()
    assert weighted["weights"] == {
        "kind": "demand",
        "formula": DEMAND_WEIGHT_FORMULA,
        "weeks": 52,
        "signals": 1000.0,
        "villages_with_signals": 1,
    }
    (site,) = weighted["sites"]
    assert site["site_id"] != plain["sites"][0]["site_id"]
    newly = {v["village_code"]: v["weight"] for v in site["villages"]}
    assert newly[wanted] == 1001.0
    assert weighted["covered_after"] - weighted["covered_before"] >= 1001
    assert client.get(PLAN).get_json() == plain  # unweighted plans are unchanged
    assert client.get(PLAN + "&weights=people").status_code == 400


def test_plan_command_weights_by_demand(tmp_path, monkeypatch, study, app, store):
    monkeypatch.setenv("SKILLCIRCLE_CACHE", str(study.settings.cache_dir))
    plain = app.test_client().get(PLAN).get_json()
    wanted = _village_left_out(plain, study)
    store.add_demand({(wanted, "焊工", "search", week()): 1000})
    weighted = app.test_client().get(PLAN + "&weights=demand").get_json()
    out = tmp_path / "plan.geojson"
    location = store.url or str(store.path)
    args = ["plan", "--county", "南湖区", "--layer", "training_base", "--mode", "walk",
            "--minutes", "15", "--add", "1", "--out", str(out)]  # fmt: skip
    done = CliRunner().invoke(
        main, [*args, "--weights", "demand", "--database", location], catch_exceptions=False
    )
    assert done.exit_code == 0, done.output
    result = json.loads(out.read_text())
    (feature,) = result["features"]
    assert feature["properties"]["site_id"] == weighted["sites"][0]["site_id"]
    weights = result["metadata"]["权重 weights"]
    assert weights.startswith(DEMAND_WEIGHT_FORMULA) and "1000 signals in 1 villages" in weights
    missing = CliRunner().invoke(
        main, [*args, "--weights", "demand", "--database", str(tmp_path / "none.sqlite3")]
    )
    assert missing.exit_code == 1 and "no store with demand signals" in missing.output
    population = tmp_path / "people.csv"
    population.write_text(f"village_code,people\n{wanted},100\n")
    both = CliRunner().invoke(
        main,
        [
            *args,
            "--weights",
            "demand",
            "--database",
            location,
            "--population",
            str(population),
        ],
    )
    assert both.exit_code == 1 and "not both" in both.output
