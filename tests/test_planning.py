"""geo/planning.py and `skillcircle plan`: MCLP optimum equals brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from geo._errors import SettingsError
from geo.cli import main
from geo.planning import covers_from_pairs, plan_sites


def brute_force(covers: np.ndarray, w: np.ndarray, already: np.ndarray, k: int) -> float:
    best = 0.0
    for combo in itertools.combinations(range(covers.shape[1]), k):
        hit = covers[:, list(combo)].any(axis=1) & ~already
        best = max(best, float(w[hit].sum()))
    return best + float(w[already].sum())


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("k", [1, 2, 3])
def test_milp_equals_brute_force(seed, k):
    rng = np.random.default_rng(seed)
    covers = rng.random((12, 8)) < 0.25
    w = rng.integers(1, 20, 12).astype(float)
    already = rng.random(12) < 0.2
    res = plan_sites(covers, w, already, k)
    assert res.optimal and res.method == "milp"
    assert res.covered_after == pytest.approx(brute_force(covers, w, already, k))
    assert res.covered_before == pytest.approx(w[already].sum())
    assert res.total == pytest.approx(w.sum())


def test_greedy_is_worse_on_the_classic_trap():
    # sites 1 and 2 cover 3 points each (disjoint, 6 together); site 0 covers the middle 4,
    # straddling both: greedy takes site 0 first (4), then gains only 1 more -> 5 < 6
    covers = np.zeros((6, 3), dtype=bool)
    covers[[1, 2, 3, 4], 0] = True
    covers[[0, 1, 2], 1] = True
    covers[[3, 4, 5], 2] = True
    w = np.ones(6)
    greedy = plan_sites(covers, w, np.zeros(6, bool), 2, method="greedy")
    exact = plan_sites(covers, w, np.zeros(6, bool), 2)
    assert greedy.covered_after == 5 and exact.covered_after == 6
    assert not greedy.optimal and greedy.gap == pytest.approx(1 / 6)
    assert sorted(exact.chosen.tolist()) == [1, 2]


def test_ranking_gains_and_newly_covered():
    rng = np.random.default_rng(42)
    covers = rng.random((40, 15)) < 0.15
    w = rng.integers(1, 9, 40).astype(float)
    already = rng.random(40) < 0.3
    res = plan_sites(covers, w, already, 4)
    assert list(res.gains) == sorted(res.gains, reverse=True)
    seen: set[int] = set()
    for site, gain, rows in zip(res.chosen, res.gains, res.newly_covered, strict=True):
        assert not (set(rows) & seen) and not already[rows].any()
        assert covers[rows, site].all()
        assert w[rows].sum() == pytest.approx(gain)
        seen |= set(rows.tolist())
    assert res.covered_after - res.covered_before == pytest.approx(res.gains.sum())


def test_useless_sites_are_not_proposed():
    covers = np.array([[True, False, False], [False, False, False]])
    res = plan_sites(covers, np.ones(2), np.array([False, False]), 3)
    assert res.chosen.tolist() == [0] and res.covered_after == 1


def test_covers_from_pairs():
    pairs = pd.DataFrame(
        {"origin": [0, 0, 1, 2], "target": [1, 0, 1, 0], "seconds": [600.0, 2000.0, 1799.0, 1800.0]}
    )
    covers = covers_from_pairs(pairs, 3, 2, 30).toarray()
    assert covers.tolist() == [[False, True], [False, True], [True, False]]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "between 1"),
        ({"k": 9}, "between 1"),
        ({"method": "magic"}, "unknown method"),
        ({"weights": -np.ones(3)}, ">= 0"),
        ({"weights": np.ones(2)}, "one value per demand"),
    ],
)
def test_bad_input(kwargs, message):
    args = {
        "covers": np.ones((3, 2), bool),
        "weights": np.ones(3),
        "already_covered": np.zeros(3, bool),
        "k": 1,
    } | kwargs
    with pytest.raises(SettingsError, match=message):
        plan_sites(**args)


def test_plan_command_on_bundled_data(tmp_path, monkeypatch):
    monkeypatch.setenv("SKILLCIRCLE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "plan.csv"
    args = [
        "plan",
        "--county",
        "桐乡市",
        "--layer",
        "technical_school",
        "--mode",
        "ebike",
        "--add",
        "3",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out, encoding="utf-8-sig", dtype={"site_id": str})
    assert table["rank"].tolist() == [1, 2, 3]
    assert (table["covered_after"].diff().dropna() > 0).all()
    assert (
        table["newly_covered"].sum()
        == table["covered_after"].iloc[-1] - table["covered_before"].iloc[0]
    )
    greedy = tmp_path / "greedy.csv"
    CliRunner().invoke(main, [*args[:-2], "--method", "greedy", "--out", str(greedy)])
    g = pd.read_csv(greedy, encoding="utf-8-sig")
    assert g["covered_after"].iloc[-1] <= table["covered_after"].iloc[-1]
    bad = CliRunner().invoke(main, ["plan", "--county", "all", "--out", str(tmp_path / "x.csv")])
    assert bad.exit_code == 1 and "one county" in bad.output


def test_plan_with_a_candidates_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SKILLCIRCLE_CACHE", str(tmp_path / "cache"))
    cands = tmp_path / "cands.csv"
    cands.write_text("id,lon,lat\nC1,120.95,30.55\nC2,120.85,30.45\nC3,121.0,30.5\n")
    out = tmp_path / "plan.csv"
    args = [
        "plan",
        "--county",
        "海盐县",
        "--layer",
        "training_base",
        "--mode",
        "walk",
        "--add",
        "2",
        "--candidates",
        str(cands),
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out, encoding="utf-8-sig")
    assert set(table["site_id"]) <= {"C1", "C2", "C3"}
    assert (table["site_name"] == table["site_id"]).all()  # no names given: ids are shown
