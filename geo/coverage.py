"""Per-village travel times to each facility layer, coverage flags and statistics.

:func:`coverage_table` answers the core question — for every village, how many
minutes to the nearest facility of each layer by one mode, and is it inside the
T-minute circle — as one row per village with the CLI contract's columns.
:func:`coverage_stats` aggregates it per county or town.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import geopandas as gpd
import numpy as np
import pandas as pd

from geo.models import VILLAGE_KEYS, VillageResult
from geo.routing import Router
from geo.settings import LAYERS

logger = logging.getLogger(__name__)

#: The village columns a coverage table starts with (:data:`geo.models.VILLAGE_KEYS`).
BASE_COLUMNS = list(VILLAGE_KEYS)


def layer_columns(layers: list[str] | None = None) -> list[str]:
    """The per-layer contract columns ``<layer>_minutes, <layer>_facility_id``."""
    cols = []
    for layer in layers or list(LAYERS):
        cols += [f"{layer}_minutes", f"{layer}_facility_id"]
    return cols


def coverage_columns() -> list[str]:
    """All columns of a coverage table, in contract order: the fields of
    :data:`geo.models.VillageResult` (then any extras a caller adds)."""
    return list(VillageResult.model_fields)


def coverage_table(
    router: Router,
    villages: gpd.GeoDataFrame,
    facilities: gpd.GeoDataFrame,
    minutes: float | None = None,
) -> gpd.GeoDataFrame:
    """Minutes from each village to the nearest facility of every layer.

    Parameters
    ----------
    router
        Network and mode.
    villages
        Points with ``village_code, village_name, town, county, location_quality``.
    facilities
        Points with ``id`` and ``layer``.
    minutes
        Coverage threshold (default ``router.settings.minutes``).

    Returns
    -------
    geopandas.GeoDataFrame
        One row per village, contract columns first. Unreachable (beyond
        ``max_minutes``) is NaN minutes and an empty facility id. ``covered`` is
        ``any_minutes <= minutes``. ``far_from_road`` flags villages whose
        nearest road is farther than ``settings.access_flag_m`` or than the snap bound
        ``access_max_m`` (then it is unreachable).
    """
    threshold = router.settings.minutes if minutes is None else float(minutes)
    lon = villages.geometry.x.to_numpy(float)
    lat = villages.geometry.y.to_numpy(float)
    out = pd.DataFrame(
        {
            "village_code": villages["village_code"].astype(str).to_numpy(),
            "village_name": villages["village_name"].to_numpy(),
            "town": villages["town"].to_numpy(),
            "county": villages["county"].to_numpy(),
            "lon": lon.round(6),
            "lat": lat.round(6),
            "location_quality": villages["location_quality"].to_numpy(),
        }
    )
    _fill_layers(out, router, lon, lat, facilities, LAYERS, threshold)
    nearest_m = router.access(lon, lat).nearest_m
    out["nearest_road_m"] = np.round(nearest_m, 0)
    # beyond the snap bound a village is unreachable; flag it (and far ones on the coarse network)
    out["far_from_road"] = nearest_m > min(router.settings.access_flag_m, router.access_max_m)
    out = out[coverage_columns()]  # the contract's order is the model's (geo/models.py)
    gdf = gpd.GeoDataFrame(out, geometry=gpd.points_from_xy(lon, lat), crs="EPSG:4326")
    logger.info(
        "coverage %s: %d of %d villages within %g min of any facility",
        router.mode,
        int(out["covered"].sum()),
        len(out),
        threshold,
    )
    return gdf


def layer_nearest(
    router: Router, lon: np.ndarray, lat: np.ndarray, group: gpd.GeoDataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """Minutes (2 decimals, NaN if unreachable) and id ('' if none) of the nearest of ``group``."""
    res = router.nearest(lon, lat, group.geometry.x.to_numpy(), group.geometry.y.to_numpy())
    facility_id = np.full(len(lon), "", dtype=object)
    hit = res.target >= 0
    facility_id[hit] = group["id"].astype(str).to_numpy()[res.target[hit]]
    return np.round(res.minutes, 2), facility_id


def _fill_layers(
    table: pd.DataFrame,
    router: Router,
    lon: np.ndarray,
    lat: np.ndarray,
    facilities: gpd.GeoDataFrame,
    layers: Iterable[str],
    threshold: float,
) -> None:
    """(Re)compute the columns of ``layers``, then ``any_minutes`` and ``covered``, in place."""
    for layer in layers:
        minutes_, ids = layer_nearest(router, lon, lat, facilities[facilities["layer"] == layer])
        table[f"{layer}_minutes"] = minutes_
        table[f"{layer}_facility_id"] = ids
    any_min = table[[f"{layer}_minutes" for layer in LAYERS]].min(axis=1, skipna=True)
    table["any_minutes"] = any_min
    table["covered"] = (any_min <= threshold).to_numpy()


def update_layers(
    table: gpd.GeoDataFrame,
    router: Router,
    facilities: gpd.GeoDataFrame,
    layers: Iterable[str],
    minutes: float | None = None,
) -> gpd.GeoDataFrame:
    """A copy of a :func:`coverage_table` result with only ``layers`` recomputed.

    Used after a facility of those layers was added, moved or removed: the other
    layers' columns are kept, ``any_minutes`` and ``covered`` are re-derived.
    """
    threshold = router.settings.minutes if minutes is None else float(minutes)
    out = table.copy()
    lon = out.geometry.x.to_numpy(float)
    lat = out.geometry.y.to_numpy(float)
    _fill_layers(out, router, lon, lat, facilities, layers, threshold)
    return out


def coverage_stats(
    coverage: pd.DataFrame,
    by: str,
    minutes: float,
    population: pd.Series | None = None,
    people: pd.Series | None = None,
) -> pd.DataFrame:
    """Villages (and people) covered per layer and overall, per county or per town.

    Parameters
    ----------
    coverage
        Output of :func:`coverage_table`.
    by
        ``county`` or ``town``.
    minutes
        Threshold applied to each ``<layer>_minutes`` column.
    population
        Optional population per county (index: county name), added as a column.
    people
        Optional people per village (index: village code): adds ``people``,
        ``people_covered`` and ``share_people_covered`` (None where no people).

    Returns
    -------
    pandas.DataFrame
        ``county`` (and ``town``), ``villages``, ``covered``, ``share_covered``,
        ``<layer>_covered`` and ``<layer>_share`` per layer, ``uncovered`` (count),
        ``villages_located``/``covered_located`` (villages with a real point, i.e.
        ``location_quality`` starting with ``point_``, and how many are covered) and
        ``uncovered_villages`` (names joined with "、"), sorted by key; the people
        columns with ``people``.
    """
    from geo._errors import SettingsError

    if by not in ("county", "town"):
        raise SettingsError(f"unknown grouping {by!r}; use county or town")
    keys = ["county"] if by == "county" else ["county", "town"]
    frame = coverage.copy()
    flags = {}
    for layer in LAYERS:
        flags[f"{layer}_covered"] = frame[f"{layer}_minutes"] <= minutes
    frame = frame.assign(**flags, _any=frame["any_minutes"] <= minutes)
    grouped = frame.groupby(keys, sort=True)
    stats = grouped.size().rename("villages").to_frame()
    stats["covered"] = grouped["_any"].sum().astype(int)
    stats["share_covered"] = (stats["covered"] / stats["villages"]).round(4)
    for layer in LAYERS:
        stats[f"{layer}_covered"] = grouped[f"{layer}_covered"].sum().astype(int)
        stats[f"{layer}_share"] = (stats[f"{layer}_covered"] / stats["villages"]).round(4)
    stats["uncovered"] = stats["villages"] - stats["covered"]
    # villages placed by a fallback (e.g. at their town seat) inherit its times: report
    # coverage among villages with a real point separately
    located = frame["location_quality"].astype(str).str.startswith("point_")
    stats["villages_located"] = located.groupby([frame[k] for k in keys]).sum().astype(int)
    stats["covered_located"] = (
        (located & frame["_any"]).groupby([frame[k] for k in keys]).sum().astype(int)
    )
    names = frame.loc[~frame["_any"]].groupby(keys, sort=True)["village_name"]
    stats["uncovered_villages"] = names.agg(lambda s: "、".join(s.astype(str)))
    stats["uncovered_villages"] = stats["uncovered_villages"].fillna("")
    if people is not None:
        weight = frame["village_code"].map(people).fillna(0.0).astype(float)
        stats["people"] = weight.groupby([frame[k] for k in keys]).sum()
        stats["people_covered"] = (
            weight.where(frame["_any"], 0.0).groupby([frame[k] for k in keys]).sum()
        )
        share = (stats["people_covered"] / stats["people"]).round(4)
        stats["share_people_covered"] = share.where(stats["people"] > 0, None)
    stats = stats.reset_index()
    if population is not None and by == "county":
        stats.insert(1, "population_2020", stats["county"].map(population))
    return stats
