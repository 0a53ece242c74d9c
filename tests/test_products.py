"""geo/products.py: one answer per product — the poster equals the page its QR opens,
the county export of the CLI equals the web's, and cards follow their rule."""

from __future__ import annotations

import html

import numpy as np
import openpyxl
import pandas as pd
import pytest
from click.testing import CliRunner

from geo.cli import main
from geo.products import minutes_text
from geo.results import CARD_PER_LAYER, CARD_SEARCH_MINUTES, rank_mode
from geo.settings import LAYERS, MODES
from web import create_app


@pytest.fixture(scope="module")
def client(study, new_database):
    app = create_app(
        {"TESTING": True, "STUDY": study, "DATABASE": new_database(), "TILE_URL": "none"}
    )
    return app.test_client()


def test_the_printed_poster_equals_the_page_its_qr_opens(study, client, tmp_path, monkeypatch):
    import geo.posters

    printed = []
    monkeypatch.setattr(geo.posters, "render_posters", lambda pages, out: printed.extend(pages))
    monkeypatch.setenv("SKILLCIRCLE_CACHE", str(tmp_path / "cache"))
    args = ["posters", "--county", "海盐县", "--town", "武原街道", "--out", str(tmp_path / "p.pdf")]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    wuyuan = study.villages[study.villages["town"] == "武原街道"]
    assert len(printed) == len(wuyuan) > 5
    for poster in printed:
        code = poster.url.rsplit("/", 1)[1]
        page = html.unescape(client.get(f"/q/{code}").get_data(as_text=True))
        index = int(np.flatnonzero(study.villages["village_code"] == code)[0])
        card = study.village_card(index)
        expected = [
            (section.layer_name, f["name"], {MODES[m]: f["times"][m] for m in card.modes})
            for section, f in card.nearest()
        ]
        assert [(ln.layer_name, ln.facility, ln.minutes) for ln in poster.lines] == expected
        for line in poster.lines:  # and the page shows each printed facility with its minutes
            start = page.index(f"<h2>{line.layer_name}</h2>")
            block = page[start : page.index("</section>", start)]
            assert line.facility in block
            for label, value in line.minutes.items():
                shown = minutes_text(value)
                assert f"{label} <strong>{shown}</strong>" in block or shown == "不可达"


def test_cards_list_the_nearest_by_the_rank_mode(study):
    ranker = rank_mode(study.modes)
    assert ranker == "ebike"
    index = int(np.flatnonzero(study.villages["village_code"] == "330402007024")[0])
    village = study.villages.iloc[index]
    card = study.village_card(index)
    for section in card.sections:
        group = study.facilities[study.facilities["layer"] == section.layer]
        seconds = study.routers[ranker].one_to_many(
            village.geometry.x, village.geometry.y, group.geometry.x, group.geometry.y
        )
        order = pd.DataFrame({"id": group["id"].to_numpy(), "minutes": seconds / 60})
        order = order.dropna().sort_values(["minutes", "id"])
        near = order[order["minutes"] <= CARD_SEARCH_MINUTES].head(CARD_PER_LAYER)
        if near.empty:  # nothing within the search: the layer's nearest, or nothing
            near = order.head(1)
        assert [f["id"] for f in section.facilities] == near["id"].tolist()
        for f, minutes in zip(section.facilities, near["minutes"], strict=True):
            assert f["times"][ranker] == pytest.approx(minutes, abs=0.006)
            for mode in study.modes:  # every mode times the listed facility itself
                alone = study.routers[mode].one_to_many(
                    village.geometry.x, village.geometry.y, [f["lon"]], [f["lat"]]
                )[0]
                expected = None if np.isnan(alone) else alone / 60
                assert (f["times"][mode] is None) == (expected is None)
                if expected is not None:
                    assert f["times"][mode] == pytest.approx(expected, abs=0.01)
    assert [s.layer for s in card.sections] == list(LAYERS)


def test_cli_and_web_county_exports_are_one_product(client, tmp_path, monkeypatch):
    monkeypatch.setenv("SKILLCIRCLE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "cli.xlsx"
    store = client.application.extensions["skillcircle.store"]
    database = store.url or str(store.path)
    args = ["export", "--county", "南湖区", "--mode", "ebike", "--out", str(out)]
    args += ["--database", database]  # the 需求 sheet reads the server's store
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    web = tmp_path / "web.xlsx"
    web.write_bytes(client.get("/export/南湖区.xlsx?mode=ebike").get_data())
    a, b = openpyxl.load_workbook(out), openpyxl.load_workbook(web)
    assert a.sheetnames == b.sheetnames
    for name in a.sheetnames:
        rows_a = [r for r in a[name].iter_rows(values_only=True)]
        rows_b = [r for r in b[name].iter_rows(values_only=True)]
        if name == "说明":  # the same metadata keys and values but the time stamp
            rows_a = [r for r in rows_a if r[0] != "生成时间 generated"]
            rows_b = [r for r in rows_b if r[0] != "生成时间 generated"]
        assert rows_a == rows_b, name


def test_facility_records_read_by_column_equal_the_rows_read_one_by_one(study):
    from geo.products import facility_record, facility_records

    rows = [facility_record(row) for _, row in study.facilities.iterrows()]
    assert facility_records(study.facilities) == rows and len(rows) == len(study.facilities)
    first = study.facilities.iloc[0]
    assert rows[0]["lon"] == round(first.geometry.x, 6) and rows[0]["id"] == first["id"]
    assert isinstance(rows[0]["trades"], list)
    # without geometry: lon/lat columns as they are, and the extra columns kept
    table = study.facilities.drop(columns="geometry").assign(
        lon=study.facilities.geometry.x, lat=study.facilities.geometry.y, minutes=12.5
    )
    plain = facility_records(table)
    assert plain == [facility_record(row) for _, row in table.iterrows()]
    assert plain[0]["minutes"] == 12.5
