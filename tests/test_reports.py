"""geo/reports.py and `skillcircle export`: county workbooks for trade unions."""

from __future__ import annotations

import json

import openpyxl
import pandas as pd
import pytest
from click.testing import CliRunner

from geo._errors import InputDataError, SettingsError
from geo.cli import main
from geo.reports import check_county, load_population
from geo.settings import Settings


@pytest.fixture
def runner(tmp_path, monkeypatch) -> CliRunner:
    monkeypatch.setenv("SKILLCIRCLE_CACHE", str(tmp_path / "cache"))
    # a store of its own: not the checkout's instance store (demand recorded by a dev server)
    monkeypatch.setenv("SKILLCIRCLE_DATABASE", str(tmp_path / "store.sqlite3"))
    monkeypatch.delenv("SKILLCIRCLE_DATABASE_URL", raising=False)
    return CliRunner()


def export(runner, *args):
    return runner.invoke(main, ["export", *args], catch_exceptions=False)


def test_county_workbook(runner, tmp_path):
    out = tmp_path / "nanhu.xlsx"
    result = export(runner, "--county", "南湖区", "--mode", "ebike", "--out", str(out))
    assert result.exit_code == 0, result.output
    book = openpyxl.load_workbook(out)
    assert book.sheetnames == ["汇总", "未覆盖村", "设施", "可达性", "说明"]
    summary = book["汇总"]
    header = [c.value for c in summary[1]]
    assert header[:5] == ["区县", "乡镇", "村数", "已覆盖村", "覆盖率"]
    rows = list(summary.iter_rows(min_row=2, values_only=True))
    assert len(rows) == 13  # 南湖区 has 13 towns/streets
    assert sum(r[2] for r in rows) == 143
    assert summary.freeze_panes == "A2" and summary["E2"].number_format == "0.0%"
    facilities = book["设施"]
    assert facilities.max_row - 1 == len(
        [1 for r in facilities.iter_rows(min_row=2, values_only=True) if r[3] == "南湖区"]
    )
    notes = {r[0]: r[1] for r in book["说明"].iter_rows(min_row=2, values_only=True)}
    assert "bundled_coarse" in notes["路网 network"]
    assert "SAMPLE" in notes["样例 sample"]
    assert "counts of villages" in notes["人口 population"]
    assert "2SFCA" in notes["可达性 access"]
    access = list(book["可达性"].iter_rows(values_only=True))
    assert access[0][:3] == ("村代码", "村", "乡镇") and len(access) == 144  # header + 143


def test_access_scores_in_exports_match_the_model(runner, tmp_path):
    from geo.access import access_scores
    from geo.facilities import load_facilities
    from geo.network import load_network
    from geo.places import load_villages
    from geo.routing import Router
    from geo.settings import Settings

    out = tmp_path / "all.csv"
    assert (
        export(
            runner, "--county", "all", "--mode", "drive", "--format", "csv", "--out", str(out)
        ).exit_code
        == 0
    )
    table = pd.read_csv(out, encoding="utf-8-sig", dtype={"village_code": str})
    settings = Settings(cache_dir=tmp_path / "c")
    villages, facilities = load_villages(settings=settings), load_facilities(settings=settings)
    router = Router(load_network(settings), "drive", settings)
    expected = access_scores(router, villages, facilities, 30)
    assert table["training_base_access"].to_numpy() == pytest.approx(
        expected["training_base_access"].to_numpy()
    )
    # capacity is conserved: with 1 per village, the scores add up to the capacity in reach
    from geo.access import fill_capacity

    bases = facilities[facilities["layer"] == "training_base"]
    pairs = router.matrix(
        villages.geometry.x, villages.geometry.y, bases.geometry.x, bases.geometry.y, max_minutes=30
    )
    capacity, _ = fill_capacity(bases["capacity"].to_numpy())
    served = sorted(set(pairs["target"]))
    assert table["training_base_access"].sum() == pytest.approx(capacity[served].sum())


def test_uncovered_sheet_matches_coverage(runner, tmp_path):
    xlsx = tmp_path / "all.xlsx"
    csv = tmp_path / "all.csv"
    assert export(runner, "--county", "all", "--mode", "walk", "--out", str(xlsx)).exit_code == 0
    assert (
        export(
            runner, "--county", "all", "--mode", "walk", "--format", "csv", "--out", str(csv)
        ).exit_code
        == 0
    )
    villages = pd.read_csv(csv, encoding="utf-8-sig", dtype={"village_code": str})
    assert csv.read_bytes().startswith(b"\xef\xbb\xbf")  # BOM for Excel
    assert len(villages) == 1202
    uncovered = villages.loc[~villages["covered"], "village_code"].tolist()
    sheet = openpyxl.load_workbook(xlsx)["未覆盖村"]
    codes = [r[0] for r in sheet.iter_rows(min_row=2, values_only=True)]
    assert sorted(codes) == sorted(uncovered) and len(codes) > 0


def test_population_weighting(runner, tmp_path):
    pop = tmp_path / "pop.csv"
    pop.write_text("村代码,人口\n330402007024,1200\n330402007029,800\n", encoding="utf-8")
    out = tmp_path / "p.xlsx"
    result = export(
        runner, "--county", "南湖区", "--mode", "walk", "--population", str(pop), "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    sheet = openpyxl.load_workbook(out)["汇总"]
    header = [c.value for c in sheet[1]]
    rows = {
        r[1]: dict(zip(header, r, strict=True))
        for r in sheet.iter_rows(min_row=2, values_only=True)
    }
    assert rows["建设街道"]["人口"] == 2000  # both villages are in 建设街道
    assert rows["建设街道"]["覆盖人口"] == 2000 and rows["建设街道"]["人口覆盖率"] == 1


def test_trade_filter_and_geojson(runner, tmp_path):
    out = tmp_path / "w.geojson"
    result = export(
        runner,
        "--county",
        "海宁市",
        "--mode",
        "ebike",
        "--trade",
        "焊工",
        "--format",
        "geojson",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert len(doc["features"]) == 236
    assert doc["metadata"]["工种 trade"] == "焊工"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--county", "上海市"], "unknown county"),
        (["--county", "南湖区", "--trade", "火箭工"], "火箭工"),
        (["--county", "南湖区", "--format", "csv"], "must end in .csv"),
    ],
)
def test_export_bad_input(runner, tmp_path, args, needle):
    out = tmp_path / "x.xlsx"
    result = runner.invoke(main, ["export", *args, "--out", str(out)])
    assert result.exit_code != 0 and needle in result.output
    assert "Traceback" not in result.output and not out.exists()


def test_check_county():
    region = Settings().region
    assert check_county("all", region) is None and check_county("海盐县", region) == "海盐县"
    with pytest.raises(SettingsError, match=r"unknown county '\.\./etc' in 嘉兴市"):
        check_county("../etc", region)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("code,people\n330402007024,abc\n", "row 2"),
        ("code,people\n999999999999,5\n", "unknown village code"),
        ("code,people\n330402007024,5\n330402007024,6\n", "appears twice"),
        ("name,people\nx,5\n", "missing column village_code"),
    ],
)
def test_bad_population_file(tmp_path, content, message):
    path = tmp_path / "pop.csv"
    path.write_text(content, encoding="utf-8")
    codes = pd.Series(["330402007024"])
    with pytest.raises(InputDataError, match=message):
        load_population(path, codes)
