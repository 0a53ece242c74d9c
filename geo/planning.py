"""The maximal covering location problem (MCLP) on arrays.

Given which candidate site would cover which demand point (``covers``), choose
``k`` sites that maximise the weight of newly covered demand. ``milp`` solves
the textbook formulation exactly with SciPy's HiGHS (Church & ReVelle 1974)::

    max  sum_i w_i y_i
    s.t. y_i <= sum_j a_ij x_j     for every uncovered demand point i
         sum_j x_j = k,  x_j in {0, 1},  0 <= y_i <= 1

(``y`` need not be integral: for binary ``x`` an optimal ``y`` is binary.)
``greedy`` adds the site with the largest marginal gain k times and reports its
gap to the LP-relaxation bound. Either way the chosen sites are ranked by
marginal gain among themselves, so rank 1 is the single most useful site.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from geo._errors import SettingsError


@dataclass(frozen=True)
class PlanResult:
    """Chosen sites (ranked) and the coverage they add.

    ``gains[r]`` is the weight newly covered by ``chosen[r]`` given the sites
    ranked before it; ``newly_covered[r]`` lists those demand indices.
    ``gap`` is the relative optimality gap (0 when proven optimal).
    """

    chosen: NDArray[np.int64]
    gains: NDArray[np.float64]
    newly_covered: list[NDArray[np.int64]]
    covered_before: float
    covered_after: float
    total: float
    method: str
    optimal: bool
    gap: float
    seconds: float


def covers_from_pairs(
    pairs: pd.DataFrame, n_demand: int, n_cand: int, minutes: float
) -> sparse.csr_matrix:
    """Coverage matrix from ``Router.matrix`` pairs (``origin``, ``target``, ``seconds``)."""
    within = pairs[pairs["seconds"] <= minutes * 60.0]
    data = np.ones(len(within), dtype=bool)
    rows = within["origin"].to_numpy(np.int64)
    cols = within["target"].to_numpy(np.int64)
    return sparse.csr_matrix((data, (rows, cols)), shape=(n_demand, n_cand), dtype=bool)


def _check(
    covers: sparse.csr_matrix,
    weights: NDArray[np.float64],
    already: NDArray[np.bool_],
    k: int,
    method: str,
) -> None:
    n_demand, n_cand = covers.shape
    if len(weights) != n_demand or len(already) != n_demand:
        raise SettingsError(
            f"weights ({len(weights)}) and already_covered ({len(already)}) must have one value "
            f"per demand point ({n_demand})"
        )
    if np.any(~np.isfinite(weights)) or np.any(weights < 0):
        raise SettingsError("weights must be finite numbers >= 0")
    if not (1 <= k <= n_cand):
        raise SettingsError(f"number of new sites must be between 1 and {n_cand}; got {k}")
    if method not in ("milp", "greedy"):
        raise SettingsError(f"unknown method {method!r}; use milp or greedy")


def _rank(
    a: sparse.csc_matrix, w: NDArray[np.float64], open_: NDArray[np.bool_], sites: list[int]
) -> tuple[list[int], list[float], list[NDArray[np.int64]]]:
    """Order ``sites`` greedily by marginal gain; returns order, gains, newly covered rows."""
    covered = ~open_.copy()
    order, gains, newly = [], [], []
    remaining = list(sites)
    while remaining:
        best, best_gain, best_rows = -1, -1.0, np.empty(0, np.int64)
        for j in remaining:
            rows = a.indices[a.indptr[j] : a.indptr[j + 1]].astype(np.int64)
            rows = rows[~covered[rows]]
            gain = float(w[rows].sum())
            if gain > best_gain or (gain == best_gain and j < best):
                best, best_gain, best_rows = j, gain, rows
        order.append(best)
        gains.append(best_gain)
        newly.append(np.sort(best_rows).astype(np.int64))
        covered[best_rows] = True
        remaining.remove(best)
    return order, gains, newly


def _solve(
    a: sparse.csr_matrix, w: NDArray[np.float64], k: int, integral: bool, time_limit: float
) -> tuple[NDArray[np.float64], float, bool, float]:
    """MCLP over the open demand rows of ``a`` -> (x, objective, optimal, gap)."""
    n_open, n_cand = a.shape
    # variables: x (n_cand) then y (n_open); minimise -w.y
    c = np.concatenate([np.zeros(n_cand), -w])
    link = sparse.hstack([-a.astype(float), sparse.identity(n_open)], format="csr")  # y - Ax <= 0
    count = sparse.csr_matrix(np.concatenate([np.ones(n_cand), np.zeros(n_open)])[None, :])
    constraints = [LinearConstraint(link, -np.inf, 0.0), LinearConstraint(count, k, k)]
    integrality = np.concatenate([np.full(n_cand, 1 if integral else 0), np.zeros(n_open)])
    res = milp(
        c,
        constraints=constraints,
        integrality=integrality,
        bounds=Bounds(0, 1),
        options={"time_limit": time_limit},
    )
    if res.x is None:
        raise SettingsError(f"the solver found no solution ({res.message})")
    gap = float(getattr(res, "mip_gap", 0.0) or 0.0)
    return res.x[:n_cand], -float(res.fun), res.status == 0, gap


def plan_sites(
    covers: sparse.csr_matrix | NDArray[np.bool_],
    weights: NDArray[np.float64],
    already_covered: NDArray[np.bool_],
    k: int,
    *,
    method: str = "milp",
    time_limit: float = 60.0,
) -> PlanResult:
    """Choose ``k`` candidate sites that newly cover the most demand weight.

    Parameters
    ----------
    covers
        Demand x candidate boolean matrix: candidate j would cover demand i.
    weights
        Demand weights (1 per village, or people), >= 0.
    already_covered
        Demand already covered by existing facilities (contributes nothing).
    k
        Number of sites to open (1 .. number of candidates).
    method
        ``milp`` (exact, HiGHS) or ``greedy``.
    time_limit
        Seconds for the MILP solver; if it stops early ``optimal`` is False and
        ``gap`` says how far from proven.

    Returns
    -------
    PlanResult
        At most ``k`` sites: sites that would newly cover nothing are dropped,
        so fewer than ``k`` means fewer suffice.

    Raises
    ------
    SettingsError
        On inconsistent shapes, negative weights, bad ``k`` or ``method``.
    """
    started = time.perf_counter()
    a = sparse.csr_matrix(covers, dtype=bool)
    w = np.asarray(weights, dtype=float)
    already = np.asarray(already_covered, dtype=bool)
    _check(a, w, already, k, method)
    open_ = ~already
    rows = np.flatnonzero(open_)
    sub = a[rows].astype(float)
    total = float(w.sum())
    before = float(w[already].sum())
    if method == "milp" and len(rows):
        x, _, optimal, gap = _solve(sub, w[rows], k, True, time_limit)
        sites = [int(j) for j in np.flatnonzero(x > 0.5)]
    else:
        order, _, _ = _rank(a.tocsc(), w, open_, list(range(a.shape[1])))
        sites = order[:k]
        optimal, gap = False, 0.0
    order, gains, newly = _rank(a.tocsc(), w, open_, sites)
    # sites that add nothing (all demand they reach is covered already) are not proposed
    useful = [r for r, g in enumerate(gains) if g > 0]
    order = [order[r] for r in useful]
    newly = [newly[r] for r in useful]
    gains = [gains[r] for r in useful]
    after = before + float(sum(gains))
    if method == "greedy" and len(rows):
        _, bound, _, _ = _solve(sub, w[rows], k, False, time_limit)
        gained = after - before
        gap = max(0.0, (bound - gained) / bound) if bound > 0 else 0.0
        optimal = gap <= 1e-9
    return PlanResult(
        chosen=np.asarray(order, dtype=np.int64),
        gains=np.asarray(gains, dtype=float),
        newly_covered=newly,
        covered_before=before,
        covered_after=after,
        total=total,
        method=method,
        optimal=bool(optimal),
        gap=float(gap),
        seconds=time.perf_counter() - started,
    )
