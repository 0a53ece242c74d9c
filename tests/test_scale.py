"""Province scale: work done in chunks gives the answers of the work done at once,
on the bundled Jiaxing data; census gaps stay integer columns with empty cells."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import openpyxl
import pandas as pd
import pytest
from click.testing import CliRunner

import geo.routing
from geo._errors import InputDataError
from geo.access import access_scores
from geo.cli import main
from geo.coverage import coverage_stats
from geo.places import load_counties
from geo.products import village_cards
from geo.region import bundled_region_dir
from geo.results import card_rows, pair_seconds
from geo.routing import target_chunks
from geo.settings import LAYERS

#: A budget that cuts every Jiaxing layer with more than 16 facilities into chunks.
SMALL_BUDGET = 20_000


def test_target_chunks_cover_the_targets_within_the_budget():
    for n_targets, n_origins, budget in [(2260, 25547, 4_000_000), (516, 1202, 20_000), (7, 3, 1)]:
        parts = target_chunks(n_targets, n_origins, budget)
        covered = np.concatenate([np.arange(n_targets)[p] for p in parts])
        assert covered.tolist() == list(range(n_targets))
        assert all((p.stop - p.start) * n_origins <= max(budget, n_origins) for p in parts)
    assert [p.stop - p.start for p in target_chunks(2260, 25547, 4_000_000)][:2] == [128, 128]
    assert len(target_chunks(516, 1202)) == 1  # Jiaxing: one chunk, as before
    assert target_chunks(0, 1202) == []


@pytest.mark.parametrize("mode", ["walk", "drive"])
def test_matrix_of_chunks_is_the_matrix(study, mode):
    router = study.routers[mode]
    vil, fac = study.villages, study.facilities
    lon, lat = vil.geometry.x.to_numpy(), vil.geometry.y.to_numpy()
    f_lon, f_lat = fac.geometry.x.to_numpy(), fac.geometry.y.to_numpy()
    whole = router.matrix(lon, lat, f_lon, f_lat, max_minutes=45, metres=True)
    assert len(whole) > 10_000
    parts = target_chunks(len(fac), len(vil), SMALL_BUDGET)
    assert len(parts) > 10
    pieces = []
    for part in parts:  # one matrix per slice of the targets
        piece = router.matrix(lon, lat, f_lon[part], f_lat[part], max_minutes=45, metres=True)
        pieces.append(piece.assign(target=piece["target"] + part.start))
    chunks = router.matrix_chunks(
        lon, lat, f_lon, f_lat, max_minutes=45, budget=SMALL_BUDGET, metres=True
    )
    streamed = [(part, piece) for part, piece in chunks]
    assert [part for part, _ in streamed] == parts
    for chunked in (pieces, [piece for _, piece in streamed]):
        together = pd.concat(chunked, ignore_index=True)
        together = together.sort_values(["origin", "seconds", "target"], ignore_index=True)
        pd.testing.assert_frame_equal(together, whole)


def test_matrix_pairs_agree_with_one_to_many(study):
    """The matrix's fastest-candidate step, checked against an independent search."""
    router = study.routers["ebike"]
    vil = study.villages.iloc[::97]
    fac = study.facilities[study.facilities["layer"] == "training_institution"]
    pairs = router.matrix(vil.geometry.x, vil.geometry.y, fac.geometry.x, fac.geometry.y)
    got = np.full((len(vil), len(fac)), np.nan)
    got[pairs["origin"], pairs["target"]] = pairs["seconds"]
    for i, (x, y) in enumerate(zip(vil.geometry.x, vil.geometry.y, strict=True)):
        alone = router.one_to_many(x, y, fac.geometry.x, fac.geometry.y)
        np.testing.assert_allclose(got[i], alone, rtol=1e-9)
    assert np.isfinite(got).sum() > 100


def test_cards_in_chunks_equal_the_cards_at_once(study, monkeypatch):
    monkeypatch.setattr(geo.routing, "PAIR_BUDGET", SMALL_BUDGET)
    chunked_layers = 0
    for layer in LAYERS:
        n = int((study.facilities["layer"] == layer).sum())
        chunked_layers += len(target_chunks(n, len(study.villages))) > 1
        rows = card_rows(
            study.routers, study.villages, study.facilities, layer, study.coverage, study.settings
        )
        pd.testing.assert_frame_equal(rows, study.results.cards[layer])
    assert chunked_layers >= 3


def test_pair_seconds_time_only_the_pairs_asked(study, monkeypatch):
    monkeypatch.setattr(geo.routing, "PAIR_BUDGET", SMALL_BUDGET)
    router = study.routers["drive"]
    vil, fac = study.villages, study.facilities
    lon, lat = vil.geometry.x.to_numpy(), vil.geometry.y.to_numpy()
    f_lon, f_lat = fac.geometry.x.to_numpy(), fac.geometry.y.to_numpy()
    rng = np.random.default_rng(5)
    origin = rng.integers(0, len(vil), 3000)
    target = rng.integers(0, len(fac), 3000)
    got = pair_seconds(router, lon, lat, f_lon, f_lat, origin, target)
    whole = router.matrix(lon, lat, f_lon, f_lat)
    table = np.full((len(vil), len(fac)), np.nan)
    table[whole["origin"], whole["target"]] = whole["seconds"]
    np.testing.assert_array_equal(got, table[origin, target])
    assert np.isfinite(got).mean() > 0.5


@pytest.mark.parametrize("mode", ["walk", "drive"])
def test_access_in_chunks_equals_access_at_once(study, monkeypatch, mode):
    whole = study.results.access[mode]
    monkeypatch.setattr(geo.routing, "PAIR_BUDGET", SMALL_BUDGET)
    chunked = access_scores(
        study.routers[mode], study.villages, study.facilities, study.settings.minutes
    )
    assert list(chunked.columns) == list(whole.columns)
    for column in whole.columns:  # sums over facilities added chunk by chunk
        np.testing.assert_allclose(chunked[column], whole[column], rtol=1e-12, atol=0)
    assert (whole["village_station_access"] > 0).sum() > 100


def test_one_village_card_equals_its_card_among_all(study):
    every = village_cards(study.villages, study.facilities, study.results.cards)
    for index in [0, 17, 600, len(study.villages) - 1]:
        alone = village_cards(study.villages, study.facilities, study.results.cards, [index])
        assert alone == [every[index]]
        assert sum(len(s.facilities) for s in alone[0].sections) >= 7


# --------------------------------------------------------------------------- census gaps


def _pack_with_census_gap(tmp_path, value=None):
    """A copy of the bundled pack whose first county (南湖区) has ``value`` as population."""
    pack = tmp_path / "pack"
    shutil.copytree(bundled_region_dir(), pack, ignore=shutil.ignore_patterns("__*"))
    path = pack / "boundaries" / "counties.geojson"
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["features"][0]["properties"]["county"] == "南湖区"
    doc["features"][0]["properties"]["population_2020"] = value
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return pack


def test_a_county_without_census_stays_an_integer_column(tmp_path, study):
    pack = _pack_with_census_gap(tmp_path)
    counties = load_counties(pack / "boundaries" / "counties.geojson")
    assert str(counties["population_2020"].dtype) == "Int64"
    assert counties["population_2020"].isna().tolist() == [True] + [False] * 6
    population = counties.set_index("county")["population_2020"]
    stats = coverage_stats(study.coverage["walk"], "county", 30, population=population)
    assert str(stats["population_2020"].dtype) == "Int64"
    bundled = load_counties(bundled_region_dir() / "boundaries" / "counties.geojson")
    known = dict(zip(bundled["county"], bundled["population_2020"], strict=True))
    assert stats.set_index("county")["population_2020"].drop("南湖区").to_dict() == {
        k: v for k, v in known.items() if k != "南湖区"
    }


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_stats_write_census_gaps_as_empty_integer_cells(tmp_path, monkeypatch, suffix):
    pack = _pack_with_census_gap(tmp_path)
    monkeypatch.setenv("SKILLCIRCLE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / f"stats{suffix}"
    result = CliRunner().invoke(main, ["--region", str(pack), "stats", "--out", str(out)])
    assert result.exit_code == 0, result.output
    if suffix == ".csv":
        with out.open(encoding="utf-8-sig", newline="") as handle:
            rows = {r["county"]: r["population_2020"] for r in csv.DictReader(handle)}
    else:
        sheet = openpyxl.load_workbook(out).worksheets[0]
        header = [c.value for c in sheet[1]]
        county, column = header.index("county"), header.index("population_2020")
        rows = {r[county]: r[column] for r in sheet.iter_rows(min_row=2, values_only=True)}
    assert rows["南湖区"] in ("", None)
    bundled = load_counties(bundled_region_dir() / "boundaries" / "counties.geojson")
    for county, people in zip(bundled["county"], bundled["population_2020"], strict=True):
        if county != "南湖区":
            expected = str(int(people)) if suffix == ".csv" else int(people)
            assert rows[county] == expected  # "1112992", never "1112992.0"
            assert isinstance(rows[county], str if suffix == ".csv" else int)


@pytest.mark.parametrize("value", ["many", -5, 12.5])
def test_a_census_figure_that_is_not_a_count_is_refused(tmp_path, value):
    pack = _pack_with_census_gap(tmp_path, value)
    with pytest.raises(InputDataError, match=r"counties.geojson feature 1: population_2020"):
        load_counties(pack / "boundaries" / "counties.geojson")
