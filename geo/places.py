"""Villages (the origins of every travel time), towns, counties and the city outline.

Villages come from ``data/boundaries/villages.geojson`` (built by the data
scripts) or from a user's own file passed as ``--villages FILE``: a GeoJSON of
Points or a CSV with at least ``village_code, village_name, lon, lat`` (WGS84).
Codes are kept as text so that 12-digit statistical codes never lose digits.

Rows are named as a spreadsheet shows them (``row 2`` is the first data row of
a CSV) and GeoJSON features 1-based (``feature 1``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from shapely.errors import GEOSException
from shapely.geometry import shape

from geo import _validate as v
from geo._errors import InputDataError
from geo.settings import Settings

logger = logging.getLogger(__name__)

#: Columns every village frame has, in this order (then extra columns, then geometry).
VILLAGE_COLUMNS = (
    "village_code",
    "village_name",
    "town",
    "county",
    "location_quality",
    "lon",
    "lat",
)

#: Columns a user's villages CSV must have.
REQUIRED_CSV_COLUMNS = ("village_code", "village_name", "lon", "lat")

_TEXT_DEFAULTS = {"town": "", "county": "", "location_quality": "user_supplied"}

_OUTSIDE_HINT = (
    "is it GCJ-02/BD-09? convert with `skillcircle import --crs gcj02` "
    "(or bd09); villages must be WGS84"
)

_VILLAGES_HINT = (
    "build data/boundaries/villages.geojson with the data scripts (see README) or pass "
    "--villages FILE (a CSV with village_code, village_name, lon, lat)"
)


def load_villages(
    path: Path | None = None,
    settings: Settings | None = None,
    *,
    bounds: v.Bounds | None = v.JIAXING_BOUNDS,
) -> gpd.GeoDataFrame:
    """Load and validate village points.

    Parameters
    ----------
    path
        A ``.geojson``/``.json`` FeatureCollection of Points or a ``.csv`` with at
        least ``village_code, village_name, lon, lat`` (optional ``town``,
        ``county``, ``location_quality``; other columns are kept as text).
        Defaults to ``settings.villages_path``.
    settings
        Supplies the default path; ``Settings()`` if omitted.
    bounds
        ``(min_lon, min_lat, max_lon, max_lat)`` every village must lie in;
        ``None`` disables the check. The default is a generous box around Jiaxing.

    Returns
    -------
    geopandas.GeoDataFrame
        EPSG:4326, one row per village in file order, with :data:`VILLAGE_COLUMNS`
        (text columns never NaN; ``location_quality`` defaults to
        ``"user_supplied"``), any extra columns of the file, and ``geometry``.

    Raises
    ------
    InputDataError
        If the file is missing, undecodable, broken or lacks required columns, or
        a row has an empty or repeated code, missing coordinates or lies outside
        ``bounds``. The message names the file and the first bad rows.
    """
    path = Path(path) if path is not None else (settings or Settings()).villages_path
    v.require_file(path, InputDataError, _VILLAGES_HINT)
    suffix = path.suffix.lower()
    if suffix in (".geojson", ".json"):
        table, lon, lat, where, raw = _villages_from_geojson(path)
    elif suffix == ".csv":
        table, lon, lat, where, raw = _villages_from_csv(path)
    else:
        v.fail(
            InputDataError,
            path.name,
            f"unknown villages file type {suffix!r}; use .geojson or .csv",
        )

    codes = table["village_code"].tolist()
    problems = [
        v.Problem(i, where[i], "village_code is empty; give every village a unique code")
        for i, code in enumerate(codes)
        if code == ""
    ]
    problems += v.duplicate_problems(
        codes, where, "village_code", "village codes must be unique; remove or renumber one"
    )
    problems += v.coordinate_problems(lon, lat, where, bounds, _OUTSIDE_HINT, raw)
    v.raise_problems(InputDataError, path.name, problems)

    for column, default in _TEXT_DEFAULTS.items():
        if column not in table:
            table[column] = default
        elif default:
            table[column] = table[column].where(table[column] != "", default)
    table["lon"] = lon
    table["lat"] = lat
    extras = [c for c in table.columns if c not in VILLAGE_COLUMNS]
    villages = gpd.GeoDataFrame(
        table[[*VILLAGE_COLUMNS, *extras]].reset_index(drop=True),
        geometry=gpd.points_from_xy(lon, lat),
        crs="EPSG:4326",
    )
    logger.info("loaded %s villages from %s", f"{len(villages):,}", path.name)
    return villages


def _villages_from_csv(
    path: Path,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, list[str], list[tuple[str, str]]]:
    table = v.read_csv(path, InputDataError)
    missing = [c for c in REQUIRED_CSV_COLUMNS if c not in table.columns]
    if missing:
        v.fail(
            InputDataError,
            path.name,
            f"missing column(s) {', '.join(missing)} (found: {', '.join(table.columns)}); "
            f"the header row needs {', '.join(REQUIRED_CSV_COLUMNS)}",
        )
    lon = v.to_numbers(table["lon"])
    lat = v.to_numbers(table["lat"])
    raw = list(zip(table["lon"], table["lat"], strict=True))
    where = [v.table_row(i) for i in range(len(table))]
    return table.drop(columns=["lon", "lat"]), lon, lat, where, raw


def _villages_from_geojson(
    path: Path,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, list[str], None]:
    features = v.read_feature_collection(path, InputDataError)
    problems = []
    records: list[dict[str, Any]] = []
    xy = np.full((len(features), 2), np.nan)
    for i, feature in enumerate(features):
        point = v.point_xy(feature)
        if isinstance(point, str):
            problems.append(v.Problem(i, v.feature_row(i), point))
            records.append({})
            continue
        xy[i] = point
        props = feature.get("properties") or {}
        if not isinstance(props, dict):
            problems.append(
                v.Problem(i, v.feature_row(i), "properties is not an object; write {...}")
            )
            props = {}
        records.append(props)
    v.raise_problems(InputDataError, path.name, problems)
    for column in ("village_code", "village_name"):
        if features and not any(column in r for r in records):
            v.fail(
                InputDataError,
                path.name,
                f"no feature has a {column!r} property; every village needs "
                "village_code and village_name",
            )
    table = pd.DataFrame.from_records(records).drop(columns=["lon", "lat"], errors="ignore")
    for column in ("village_code", "village_name"):
        if column not in table:  # an empty FeatureCollection
            table[column] = pd.Series(dtype=object)
    # codes and names are text; other properties keep their JSON types
    for column in table.columns:
        if column in VILLAGE_COLUMNS or column.endswith("code") or column in _TEXT_DEFAULTS:
            table[column] = [v.as_text(x) for x in table[column]]
    where = [v.feature_row(i) for i in range(len(features))]
    return table, xy[:, 0], xy[:, 1], where, None


def load_towns(path: Path | None = None, settings: Settings | None = None) -> gpd.GeoDataFrame:
    """Load ``data/boundaries/towns.geojson`` (towns/streets, 乡镇街道).

    Parameters
    ----------
    path
        A GeoJSON FeatureCollection; defaults to ``settings.towns_path``.
    settings
        Supplies the default path; ``Settings()`` if omitted.

    Returns
    -------
    geopandas.GeoDataFrame
        EPSG:4326, properties as columns (``*code`` columns as text), geometry last.

    Raises
    ------
    InputDataError
        If the file is missing, undecodable, not a FeatureCollection or a feature
        has no valid geometry.
    """
    path = Path(path) if path is not None else (settings or Settings()).towns_path
    return _load_boundaries(path, "towns")


def load_counties(path: Path | None = None, settings: Settings | None = None) -> gpd.GeoDataFrame:
    """Load ``data/boundaries/counties.geojson`` (the 7 counties, 区县); see :func:`load_towns`."""
    path = Path(path) if path is not None else (settings or Settings()).counties_path
    return _load_boundaries(path, "counties")


def load_city(path: Path | None = None, settings: Settings | None = None) -> gpd.GeoDataFrame:
    """Load ``data/boundaries/city.geojson`` (the city outline); see :func:`load_towns`."""
    path = Path(path) if path is not None else (settings or Settings()).city_path
    return _load_boundaries(path, "city")


def _load_boundaries(path: Path, what: str) -> gpd.GeoDataFrame:
    hint = f"build data/boundaries/{what}.geojson with the data scripts (see README)"
    v.require_file(path, InputDataError, hint)
    features = v.read_feature_collection(path, InputDataError)
    problems = []
    geometries = []
    records = []
    for i, feature in enumerate(features):
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        try:
            geometries.append(shape(geometry) if isinstance(geometry, dict) else None)
        except (ValueError, TypeError, AttributeError, KeyError, GEOSException) as exc:
            geometries.append(None)
            problems.append(
                v.Problem(i, v.feature_row(i), f"invalid geometry ({exc}); fix or remove it")
            )
            continue
        if geometries[-1] is None:
            problems.append(v.Problem(i, v.feature_row(i), "has no geometry; add one"))
        props = feature.get("properties") if isinstance(feature, dict) else None
        records.append(props if isinstance(props, dict) else {})
    v.raise_problems(InputDataError, path.name, problems)
    table = pd.DataFrame.from_records(records, index=range(len(records)))
    for column in table.columns:
        if str(column).endswith("code"):
            table[column] = [v.as_text(x) for x in table[column]]
    frame = gpd.GeoDataFrame(table, geometry=geometries, crs="EPSG:4326")
    logger.info("loaded %d %s from %s", len(frame), what, path.name)
    return frame
