"""Where to add stations: the data side of the maximal covering location problem.

:func:`plan_county` gathers demand (the county's villages, weighted by people when
a population is given), what existing facilities of a layer already cover,
candidate sites (villages, towns or a user file) and the coverage matrix from the
router, then solves with :func:`geo.planning.plan_sites` (exact MILP by default).
:func:`plan_table` turns the result into one row per proposed site.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd

from geo._errors import SettingsError
from geo.planning import PlanResult, covers_from_pairs, plan_sites
from geo.routing import Router
from geo.settings import check_layer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """A solved siting problem with the frames needed to report it."""

    result: PlanResult
    demand: gpd.GeoDataFrame  # the county's villages (village_code, village_name, ..., weight)
    candidates: gpd.GeoDataFrame  # id, name, geometry
    layer: str
    minutes: float
    mode: str
    #: What the demand weights are: ``villages`` (1 each), ``people`` or ``demand``.
    weights: str = "villages"


def candidate_sites(
    kind: str | gpd.GeoDataFrame, villages: gpd.GeoDataFrame, towns: gpd.GeoDataFrame
) -> gpd.GeoDataFrame:
    """Candidate points: ``villages`` (distinct village locations), ``towns``, or a frame.

    A frame (e.g. from :func:`geo.places.load_points`) needs ``id`` and point geometry.
    """
    if isinstance(kind, gpd.GeoDataFrame):
        out = kind.copy()
        ids = out["id"].astype(str)
        names = out["name"].fillna("").astype(str) if "name" in out else ids
        out["name"] = names.where(names.str.strip() != "", ids)
        return out[["id", "name", "geometry"]].reset_index(drop=True)
    if kind == "villages":
        # villages sharing a point (town-seat fallback) are one candidate site
        frame = villages.assign(_x=villages.geometry.x.round(6), _y=villages.geometry.y.round(6))
        frame = frame.drop_duplicates(["_x", "_y"])
        return gpd.GeoDataFrame(
            {"id": frame["village_code"].astype(str), "name": frame["village_name"]},
            geometry=frame.geometry.to_numpy(),
            crs="EPSG:4326",
        ).reset_index(drop=True)
    if kind == "towns":
        return gpd.GeoDataFrame(
            {"id": towns["town_code"].astype(str), "name": towns["town"]},
            geometry=towns.geometry.to_numpy(),
            crs="EPSG:4326",
        ).reset_index(drop=True)
    raise SettingsError(f"unknown candidates {kind!r}; use villages, towns or a CSV file")


def plan_county(
    router: Router,
    villages: gpd.GeoDataFrame,
    towns: gpd.GeoDataFrame,
    facilities: gpd.GeoDataFrame,
    *,
    county: str,
    layer: str,
    minutes: float,
    add: int,
    candidates: str | gpd.GeoDataFrame = "villages",
    population: pd.Series | None = None,
    demand: pd.Series | None = None,
    method: str = "milp",
) -> Plan:
    """Choose ``add`` new sites of ``layer`` in ``county`` that cover the most uncovered demand.

    Demand points are the county's villages, weighted 1 each, by people from
    ``population`` (by village code), or by training demand: ``1 + d`` with ``d``
    the village's demand signals from ``demand`` (by village code, see
    :data:`geo.demand.DEMAND_WEIGHT_FORMULA`). A village is covered when it
    reaches an existing facility of ``layer`` (anywhere) or a chosen site within
    ``minutes``. Candidates default to the county's distinct village locations
    (``towns``: its town seats).
    """
    check_layer(layer)
    if population is not None and demand is not None:
        raise SettingsError("weight villages by people or by demand, not both")
    demand_points = villages[villages["county"] == county].reset_index(drop=True)
    if demand_points.empty:
        raise SettingsError(f"no villages in county {county!r}")
    in_county_towns = towns[towns["county"] == county]
    cand = candidate_sites(candidates, demand_points, in_county_towns)
    lon, lat = demand_points.geometry.x.to_numpy(), demand_points.geometry.y.to_numpy()
    existing = facilities[facilities["layer"] == layer]
    now = router.nearest(lon, lat, existing.geometry.x, existing.geometry.y, max_minutes=minutes)
    already = np.isfinite(now.seconds)
    pairs = router.matrix(lon, lat, cand.geometry.x, cand.geometry.y, max_minutes=minutes)
    covers = covers_from_pairs(pairs, len(demand_points), len(cand), minutes)
    kind = "villages"
    if population is not None:
        weights = demand_points["village_code"].map(population).fillna(0.0).to_numpy(float)
        kind = "people"
    elif demand is not None:
        signals = demand_points["village_code"].astype(str).map(demand).fillna(0.0)
        weights = 1.0 + signals.to_numpy(float)
        kind = "demand"
    else:
        weights = np.ones(len(demand_points))
    result = plan_sites(covers, weights, already, min(add, len(cand)), method=method)
    logger.info(
        "plan %s %s: %.0f -> %.0f of %.0f covered with %d new sites (%s, %.2f s, gap %.4f)",
        county,
        layer,
        result.covered_before,
        result.covered_after,
        result.total,
        len(result.chosen),
        result.method,
        result.seconds,
        result.gap,
    )
    points = demand_points.assign(weight=weights, covered_before=already)
    return Plan(result, points, cand, layer, float(minutes), router.mode, kind)


def plan_table(plan: Plan) -> gpd.GeoDataFrame:
    """One row per proposed site: rank, place, villages newly covered, coverage before/after."""
    res = plan.result
    rows = []
    cumulative = res.covered_before
    for rank, (site, gain, newly) in enumerate(
        zip(res.chosen, res.gains, res.newly_covered, strict=True), start=1
    ):
        before = cumulative
        cumulative += float(gain)
        cand = plan.candidates.iloc[int(site)]
        names = plan.demand.iloc[newly]["village_name"].astype(str).tolist()
        rows.append(
            {
                "rank": rank,
                "site_id": cand["id"],
                "site_name": cand["name"],
                "lon": round(cand.geometry.x, 6),
                "lat": round(cand.geometry.y, 6),
                "newly_covered": len(newly),
                "newly_covered_weight": float(gain),
                "newly_covered_villages": "、".join(names),
                "covered_before": before,
                "covered_after": cumulative,
                "total": res.total,
                "share_before": round(before / res.total, 4) if res.total else None,
                "share_after": round(cumulative / res.total, 4) if res.total else None,
                "geometry": cand.geometry,
            }
        )
    columns = [
        "rank",
        "site_id",
        "site_name",
        "lon",
        "lat",
        "newly_covered",
        "newly_covered_weight",
        "newly_covered_villages",
        "covered_before",
        "covered_after",
        "total",
        "share_before",
        "share_after",
        "geometry",
    ]
    return gpd.GeoDataFrame(rows, columns=columns, geometry="geometry", crs="EPSG:4326")
