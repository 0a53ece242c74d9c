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

_TEXT_DEFAULTS = {"town": "", "county": "", "location_quality": "user_supplied"}

_OUTSIDE_HINT = (
    "is it GCJ-02/BD-09? convert with `skillcircle import --crs gcj02` "
    "(or bd09); coordinates must be WGS84"
)

_VILLAGES_HINT = (
    "build data/boundaries/villages.geojson with the data scripts (see README) or pass "
    "--villages FILE (a CSV with village_code, village_name, lon, lat)"
)


def load_villages(
    path: Path | None = None,
    settings: Settings | None = None,
    *,
    bounds: v.BoundsArg = v.REGION,
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
        The area every village must lie in: a :class:`geo._validate.Area` (its
        name and hint go into the message, e.g. the road network's area from
        :func:`geo.network.input_area`) or a bare ``(min_lon, min_lat, max_lon,
        max_lat)``; ``None`` disables the check. The default is the area of
        the settings' region (:attr:`geo.region.Region.area`).

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
    settings = settings or Settings()
    path = Path(path) if path is not None else settings.villages_path
    bounds = v.region_bounds(bounds, settings)
    table = _read_points(path, "village_code", "village_name", "village", _VILLAGES_HINT, bounds)
    for column, default in _TEXT_DEFAULTS.items():
        if column not in table:
            table[column] = default
        elif default:
            table[column] = table[column].where(table[column] != "", default)
    villages = _to_frame(table, VILLAGE_COLUMNS)
    logger.info("loaded %s villages from %s", f"{len(villages):,}", path.name)
    return villages


def load_points(
    path: Path, *, bounds: v.BoundsArg = v.REGION, settings: Settings | None = None
) -> gpd.GeoDataFrame:
    """Load any points with an ``id`` (origins/targets of a travel-time matrix).

    Parameters
    ----------
    path
        A ``.csv`` with at least ``id, lon, lat`` (WGS84; optional ``name``;
        other columns kept as text) or a ``.geojson``/``.json`` FeatureCollection
        of Points with an ``id`` property.
    bounds
        As in :func:`load_villages`; ``None`` disables the region check.
    settings
        Supplies the default region; ``Settings()`` if omitted.

    Returns
    -------
    geopandas.GeoDataFrame
        EPSG:4326 in file order with ``id, name, lon, lat`` (ids as text, ``name``
        ``""`` if absent), any extra columns, and ``geometry``.

    Raises
    ------
    InputDataError
        As :func:`load_villages`, for the ``id`` column.
    """
    path = Path(path)
    bounds = v.region_bounds(bounds, settings or Settings())
    table = _read_points(path, "id", None, "point", "check the path", bounds)
    if "name" not in table:
        table["name"] = ""
    points = _to_frame(table, ("id", "name", "lon", "lat"))
    logger.info("loaded %s points from %s", f"{len(points):,}", path.name)
    return points


def _read_points(
    path: Path,
    key: str,
    name: str | None,
    what: str,
    hint: str,
    bounds: v.Area | v.Bounds | None,
) -> pd.DataFrame:
    """Read and validate a point table: ``key`` non-empty and unique, coordinates in ``bounds``.

    Returns the text columns of the file plus float ``lon``/``lat`` (WGS84).
    """
    v.require_file(path, InputDataError, hint)
    required = (key, name) if name else (key,)
    suffix = path.suffix.lower()
    if suffix in (".geojson", ".json"):
        table, lon, lat, where, raw = _points_from_geojson(path, required)
    elif suffix == ".csv":
        table, lon, lat, where, raw = _points_from_csv(path, required)
    else:
        v.fail(
            InputDataError,
            path.name,
            f"unknown {what}s file type {suffix!r}; use .geojson or .csv",
        )
    keys = table[key].tolist()
    problems = [
        v.Problem(i, where[i], f"{key} is empty; give every {what} a unique {key}")
        for i, code in enumerate(keys)
        if code == ""
    ]
    problems += v.duplicate_problems(
        keys, where, key, f"each {what} needs its own {key}; remove or renumber one"
    )
    problems += v.coordinate_problems(lon, lat, where, bounds, _OUTSIDE_HINT, raw)
    v.raise_problems(InputDataError, path.name, problems)
    table["lon"] = lon
    table["lat"] = lat
    return table


def _to_frame(table: pd.DataFrame, first: tuple[str, ...]) -> gpd.GeoDataFrame:
    extras = [c for c in table.columns if c not in first]
    return gpd.GeoDataFrame(
        table[[*first, *extras]].reset_index(drop=True),
        geometry=gpd.points_from_xy(table["lon"], table["lat"]),
        crs="EPSG:4326",
    )


def _points_from_csv(
    path: Path, required: tuple[str, ...]
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, list[str], list[tuple[str, str]]]:
    table = v.read_csv(path, InputDataError)
    needed = (*required, "lon", "lat")
    missing = [c for c in needed if c not in table.columns]
    if missing:
        v.fail(
            InputDataError,
            path.name,
            f"missing column(s) {', '.join(missing)} (found: {', '.join(table.columns)}); "
            f"the header row needs {', '.join(needed)}",
        )
    lon = v.to_numbers(table["lon"])
    lat = v.to_numbers(table["lat"])
    raw = list(zip(table["lon"], table["lat"], strict=True))
    where = [v.table_row(i) for i in range(len(table))]
    return table.drop(columns=["lon", "lat"]), lon, lat, where, raw


def _points_from_geojson(
    path: Path, required: tuple[str, ...]
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
    for column in required:
        if features and not any(column in r for r in records):
            v.fail(
                InputDataError,
                path.name,
                f"no feature has a {column!r} property; every feature needs "
                f"{' and '.join(required)}",
            )
    table = pd.DataFrame.from_records(records, index=range(len(records)))
    table = table.drop(columns=["lon", "lat"], errors="ignore")  # the Point is authoritative
    for column in required:
        if column not in table:  # an empty FeatureCollection
            table[column] = pd.Series(dtype=object)
    # codes, names and ids are text; other properties keep their JSON types
    text_columns = {*required, *VILLAGE_COLUMNS, *_TEXT_DEFAULTS, "id", "name"}
    for column in table.columns:
        if column in text_columns or str(column).endswith("code"):
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
    """Load ``data/boundaries/counties.geojson`` (the region's counties, 区县); see
    :func:`load_towns`. ``population_2020`` is a nullable integer column (``Int64``):
    a county without a census figure (e.g. districts redrawn after 2020) is ``<NA>``,
    and tables and spreadsheets show an empty cell, never a float."""
    path = Path(path) if path is not None else (settings or Settings()).counties_path
    frame = _load_boundaries(path, "counties")
    if "population_2020" in frame:
        frame["population_2020"] = _census_counts(frame["population_2020"], path.name)
    return frame


def _census_counts(values: pd.Series, file: str) -> pd.Series:
    """People per county as ``Int64`` (missing stays missing); anything else than a
    whole number >= 0 is an error naming the feature."""
    numbers = pd.to_numeric(values, errors="coerce")
    bad = (values.notna() & numbers.isna()) | (numbers < 0) | (numbers % 1 > 0)
    problems = [
        v.Problem(
            i,
            v.feature_row(i),
            f"population_2020 {values.iloc[i]!r} is not a whole "
            "number of people; fix it or leave it empty (null)",
        )
        for i in np.flatnonzero(bad.to_numpy()).tolist()
    ]
    v.raise_problems(InputDataError, file, problems)
    return numbers.astype("Int64")


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
    frame = gpd.GeoDataFrame(table, geometry=np.array(geometries, dtype=object), crs="EPSG:4326")
    logger.info("loaded %d %s from %s", len(frame), what, path.name)
    return frame
