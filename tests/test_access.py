"""geo/access.py: 2SFCA against a hand computation and its conservation property."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from geo._errors import SettingsError
from geo.access import fill_capacity, two_step_fca


def pairs(rows: list[tuple[int, int, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["origin", "target", "minutes"]).assign(
        seconds=lambda f: f["minutes"] * 60
    )


def test_hand_computed_example():
    # villages V0 (100 people), V1 (200), V2 (300); facilities F0 (capacity 60), F1 (30)
    # within 30 min: V0-F0 10', V1-F0 20', V1-F1 25', V2-F1 40' (too far)
    p = pairs([(0, 0, 10), (1, 0, 20), (1, 1, 25), (2, 1, 40)])
    score = two_step_fca(p, [100, 200, 300], [60, 30], 30)
    r0 = 60 / (100 + 200)  # F0 serves V0 and V1 = 0.2
    r1 = 30 / 200  # F1 serves V1 only = 0.15
    assert score == pytest.approx([r0, r0 + r1, 0.0])


def test_conservation_of_capacity():
    rng = np.random.default_rng(5)
    n_v, n_f = 50, 12
    rows = [
        (i, j, float(rng.uniform(1, 60)))
        for i in range(n_v)
        for j in range(n_f)
        if rng.random() < 0.3
    ]
    p = pairs(rows)
    demand = rng.integers(0, 500, n_v).astype(float)
    cap = rng.integers(10, 300, n_f).astype(float)
    score = two_step_fca(p, demand, cap, 30)
    near = p[p["minutes"] <= 30]
    serving = [j for j in range(n_f) if demand[near.loc[near["target"] == j, "origin"]].sum() > 0]
    assert (demand * score).sum() == pytest.approx(cap[serving].sum())


def test_gaussian_decay_weights():
    p = pairs([(0, 0, 0.0), (1, 0, 30.0)])
    score = two_step_fca(p, [1, 1], [10], 30, decay="gaussian")
    # the village at T gets weight 0: all capacity goes to the one at t = 0
    assert score == pytest.approx([10.0, 0.0])


def test_unreached_and_zero_demand():
    p = pairs([(0, 0, 5.0)])
    assert two_step_fca(p, [0, 10], [50, 20], 30) == pytest.approx([0.0, 0.0])


def test_fill_capacity():
    filled, n = fill_capacity([100, None, 300, np.nan])
    assert n == 2 and filled.tolist() == [100, 200, 300, 200]
    assert fill_capacity([None, None])[0].tolist() == [1.0, 1.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"demand": [-1]}, "demand"),
        ({"capacity": [np.nan]}, "capacity"),
        ({"minutes": 0}, "positive"),
        ({"decay": "linear"}, "unknown decay"),
    ],
)
def test_bad_input(kwargs, message):
    args = {"pairs": pairs([(0, 0, 5.0)]), "demand": [1], "capacity": [1], "minutes": 30} | kwargs
    with pytest.raises(SettingsError, match=message):
        two_step_fca(**args)
