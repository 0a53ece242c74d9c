"""Capacity-aware accessibility: the two-step floating catchment area (2SFCA).

Luo & Wang (2003): for each facility j, the supply-to-demand ratio within its
catchment, R_j = S_j / sum_{i: t_ij <= T} D_i w(t_ij); for each demand point i,
A_i = sum_{j: t_ij <= T} R_j w(t_ij). With w = 1 (``decay="none"``) every
reachable place counts fully; ``decay="gaussian"`` weights by
(exp(-t²/2T²) - exp(-1/2)) / (1 - exp(-1/2)), 1 at t = 0 and 0 at T (Dai 2010).
A_i is capacity per person (e.g. training places per resident, or per village
when no population is known). Vectorised over the sparse pairs of
:meth:`geo.routing.Router.matrix`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from geo._errors import SettingsError
from geo.settings import LAYERS

if TYPE_CHECKING:
    import geopandas as gpd

    from geo.routing import Router


def _weights(minutes: NDArray[np.float64], limit: float, decay: str) -> NDArray[np.float64]:
    if decay == "none":
        return np.ones_like(minutes)
    if decay == "gaussian":
        edge = np.exp(-0.5)
        return (np.exp(-0.5 * (minutes / limit) ** 2) - edge) / (1 - edge)
    raise SettingsError(f"unknown decay {decay!r}; use none or gaussian")


def fill_capacity(capacity: ArrayLike) -> tuple[NDArray[np.float64], int]:
    """Replace missing capacities with the median of the known ones.

    Returns the filled array and how many values were filled. With no known
    capacity at all every facility counts as 1 (then scores compare counts).
    """
    numbers = pd.to_numeric(pd.Series(np.asarray(capacity, dtype=object)), errors="coerce")
    cap = numbers.to_numpy(dtype=float)
    missing = np.isnan(cap)
    fill = float(np.median(cap[~missing])) if (~missing).any() else 1.0
    return np.where(missing, fill, cap), int(missing.sum())


def two_step_fca(
    pairs: pd.DataFrame,
    demand: ArrayLike,
    capacity: ArrayLike,
    minutes: float,
    *,
    decay: str = "none",
) -> NDArray[np.float64]:
    """2SFCA score of every demand point.

    Parameters
    ----------
    pairs
        ``origin`` (demand index), ``target`` (facility index), ``seconds``;
        absent pairs are unreachable.
    demand
        People (or 1 per village) at each demand point, >= 0.
    capacity
        Capacity of each facility, >= 0 (fill missing values with :func:`fill_capacity`).
    minutes
        Catchment size T.
    decay
        ``none`` (classic) or ``gaussian``.

    Returns
    -------
    numpy.ndarray
        A_i per demand point (0 where no facility is in reach).
    """
    d = np.asarray(demand, dtype=float)
    s = np.asarray(capacity, dtype=float)
    if np.any(~np.isfinite(d)) or np.any(d < 0):
        raise SettingsError("demand must be finite numbers >= 0")
    if np.any(~np.isfinite(s)) or np.any(s < 0):
        raise SettingsError("capacity must be finite numbers >= 0; fill missing values first")
    if not minutes > 0:
        raise SettingsError(f"minutes must be positive, got {minutes!r}")
    near = pairs[pairs["seconds"] <= minutes * 60.0]
    i = near["origin"].to_numpy(np.int64)
    j = near["target"].to_numpy(np.int64)
    if len(i) and (i.max() >= len(d) or j.max() >= len(s) or min(i.min(), j.min()) < 0):
        raise SettingsError("pairs refer to demand or facility indices out of range")
    w = _weights(near["seconds"].to_numpy(float) / 60.0, minutes, decay)
    reached = np.bincount(j, weights=d[i] * w, minlength=len(s))
    ratio = np.divide(s, reached, out=np.zeros(len(s)), where=reached > 0)
    return np.bincount(i, weights=ratio[j] * w, minlength=len(d)).astype(float)


def access_scores(
    router: Router,
    villages: gpd.GeoDataFrame,
    facilities: gpd.GeoDataFrame,
    minutes: float,
    population: pd.Series | None = None,
    layers: Iterable[str] | None = None,
) -> pd.DataFrame:
    """2SFCA score per village (rows, in ``villages`` order) and layer (``<layer>_access``).

    ``layers`` limits the columns computed (default: all layers).

    Demand is 1 per village unless ``population`` (people by village code) is
    given; missing facility capacities take their layer's median
    (:func:`fill_capacity`). Scores are capacity per demand unit. The travel-time
    pairs are computed and summed in chunks of facilities
    (:meth:`geo.routing.Router.matrix_chunks`), never all at once; with more than
    one chunk the sums are added in another order (equal to ~1e-15 relative).
    """
    lon = villages.geometry.x.to_numpy()
    lat = villages.geometry.y.to_numpy()
    if population is None:
        demand = np.ones(len(villages))
    else:
        demand = villages["village_code"].map(population).fillna(0.0).to_numpy(float)
    out = {}
    for layer in LAYERS if layers is None else layers:
        group = facilities[facilities["layer"] == layer]
        if group.empty:
            out[f"{layer}_access"] = np.zeros(len(villages))
            continue
        capacity, _ = fill_capacity(group["capacity"].to_numpy())
        f_lon, f_lat = group.geometry.x.to_numpy(), group.geometry.y.to_numpy()
        # R_j needs only facility j's pairs and A_i is a sum over facilities: the
        # pairs stream in chunks of facilities (bounded memory at province scale)
        score = np.zeros(len(villages))
        for part, pairs in router.matrix_chunks(lon, lat, f_lon, f_lat, max_minutes=minutes):
            pairs = pairs.assign(target=pairs["target"] - part.start)
            score += two_step_fca(pairs, demand, capacity[part], minutes)
        out[f"{layer}_access"] = score
    return pd.DataFrame(out)
