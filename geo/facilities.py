"""Training facilities: load ``data/facilities.geojson``, import registries, write files.

A facility is a WGS84 Point with the properties in :data:`FACILITY_COLUMNS`,
the fields of :class:`geo.models.Facility`, whose rules every row passes here.
:func:`load_facilities` reads our own files (GeoJSON, or CSV/XLSX as
:func:`write_facilities` writes them); :func:`import_registry` turns a registry
as published by a bureau (CSV/XLSX/GeoJSON, Chinese or English headers,
WGS84/GCJ-02/BD-09 coordinates) into the same validated frame;
:func:`facilities_from_records` validates dicts (the web store's records);
:func:`facilities_to_geojson` is the one GeoJSON writer of facilities (files,
the API and the map) and :func:`facility_records` the one frame -> dicts converter.

Problems are reported as ``<file> feature N (id 'X'): ...`` for GeoJSON and
``<file> row N: ...`` for tables, where row 1 is the header, as a spreadsheet
shows it. All rows are checked first and the first few bad ones are listed.
"""

from __future__ import annotations

import json
import logging
import re
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import geopandas as gpd
import numpy as np
import pandas as pd

from geo import _validate as v
from geo._errors import FacilityDataError, SettingsError, TooManyRowsError
from geo._io import atomic_write
from geo.coords import check_crs, to_wgs84
from geo.models import (
    FACILITY_COLUMNS,
    FACILITY_ID_PATTERN,
    MAX_CAPACITY,
    Facility,
    facility_id_problem,
    split_trades,
    validate_rows,
)
from geo.settings import LAYERS, Settings, check_layer
from geo.tables import cells_row, frame_rows, read_rows, write_records

if TYPE_CHECKING:
    from geo.geocode import Geocoder, Placement

__all__ = [
    "FACILITY_COLUMNS",
    "FACILITY_ID_PATTERN",
    "FACILITY_SUFFIXES",
    "HEADER_ALIASES",
    "LAYER_PREFIXES",
    "MAX_CAPACITY",
    "facilities_from_records",
    "facilities_to_geojson",
    "facility_id_prefix",
    "facility_id_problem",
    "facility_records",
    "import_registry",
    "load_facilities",
    "split_trades",
    "write_facilities",
]

logger = logging.getLogger(__name__)

#: Prefix of generated ids per layer (``TS-IMP-0001``).
LAYER_PREFIXES: Mapping[str, str] = {
    "technical_school": "TS",
    "training_institution": "TI",
    "evaluation_org": "EO",
    "training_base": "TB",
    "master_studio": "MS",
    "village_station": "VS",
    "experience_site": "ES",
}

#: Registry headers we understand (compared after stripping spaces, case and
#: anything in brackets, so ``经度(GCJ-02)`` is ``经度``) -> our column.
HEADER_ALIASES: Mapping[str, str] = {
    **dict.fromkeys(["name", "名称", "机构名称", "单位名称", "培训机构名称", "站点名称"], "name"),
    **dict.fromkeys(["lon", "lng", "longitude", "经度"], "lon"),
    **dict.fromkeys(["lat", "latitude", "纬度"], "lat"),
    **dict.fromkeys(["address", "地址", "详细地址", "机构地址"], "address"),
    **dict.fromkeys(["phone", "tel", "电话", "联系电话"], "phone"),
    **dict.fromkeys(["trades", "工种", "培训工种", "培训项目"], "trades"),
    **dict.fromkeys(["county", "区县", "县市区", "所属区县", "县"], "county"),
    **dict.fromkeys(["town", "乡镇", "街道", "乡镇街道", "乡镇/街道", "镇街"], "town"),
    **dict.fromkeys(["town_code", "乡镇代码"], "town_code"),
    **dict.fromkeys(["capacity", "容量", "年培训能力", "培训能力"], "capacity"),
    **dict.fromkeys(["id", "编号"], "id"),
    **dict.fromkeys(["layer", "图层", "类别"], "layer"),
    **dict.fromkeys(["note", "备注"], "note"),
}

#: Registry columns copied onto a facility as they are (besides name, trades, capacity).
_TEXT_COLUMNS = ("county", "town", "town_code", "address", "phone", "note")
_BRACKETED = re.compile(r"[(（\[【].*?[)）\]】]")
_LAYER_BY_LABEL = {label: key for key, label in LAYERS.items()}
_GEOJSON_SUFFIXES = (".geojson", ".json")


def facility_id_prefix(layer: str, county_code: str) -> str:
    """Prefix of the ids the admin API makes for a layer in a county: ``TB-330402-A``.

    Only the letters and digits of ``county_code`` are used, so every id made
    with it follows :data:`FACILITY_ID_PATTERN`.
    """
    code = re.sub(r"[^A-Za-z0-9]", "", county_code)[:12] or "X"
    return f"{LAYER_PREFIXES.get(layer, 'FAC')}-{code}-A"


def load_facilities(
    path: Path | None = None,
    settings: Settings | None = None,
    *,
    bounds: v.BoundsArg = v.REGION,
) -> gpd.GeoDataFrame:
    """Load and validate a facilities file (the ``data/facilities.geojson`` format).

    Parameters
    ----------
    path
        A FeatureCollection of Points whose properties are the fields of
        :class:`geo.models.Facility` (:data:`FACILITY_COLUMNS`), or a ``.csv`` /
        ``.xlsx`` with those columns and ``lon``/``lat`` as
        :func:`write_facilities` writes it; ``id``, ``layer`` and ``name`` are
        required. Defaults to ``settings.facilities_path``.
    settings
        Supplies the default path; ``Settings()`` if omitted.
    bounds
        The area every facility must lie in, as in
        :func:`geo.places.load_villages` (default: the settings' region);
        ``None`` disables the check.

    Returns
    -------
    geopandas.GeoDataFrame
        EPSG:4326 with :data:`FACILITY_COLUMNS` and ``geometry``, in file order.
        Missing optional properties get defaults: text ``""``, ``trades`` ``[]``,
        ``capacity`` missing (nullable ``Int64``), ``is_sample`` False,
        ``source`` and ``location_quality`` ``"user_supplied"``, ``layer_name``
        the layer's Chinese label. Unknown properties are dropped.

    Raises
    ------
    FacilityDataError
        If the file is missing, undecodable, not a FeatureCollection (or nested
        deeper than ``MAX_JSON_DEPTH``), or a feature is not a Point, or a row
        breaks a rule of :class:`geo.models.Facility` (lacks ``id``/``layer``/
        ``name``, has an unsafe (:func:`facility_id_problem`) or repeated id, an
        unknown layer, text too long or starting like a formula, a bad phone,
        capacity or is_sample) or lies outside ``bounds``.
    """
    settings = settings or Settings()
    path = Path(path) if path is not None else settings.facilities_path
    bounds = v.region_bounds(bounds, settings)
    v.require_file(
        path,
        FacilityDataError,
        "build data/facilities.geojson with the data scripts or `skillcircle import` a registry",
    )
    read = _facility_table if path.suffix.lower() in (".csv", ".xlsx") else _facility_features
    rows = read(path)
    frame, problems = _validated(
        rows.records,
        rows.where,
        rows.lon,
        rows.lat,
        bounds,
        _WGS84_HINT,
        raw=rows.raw,
        reported=rows.reported,
    )
    v.raise_problems(FacilityDataError, path.name, problems)
    logger.info("loaded %d facilities from %s (%s)", len(frame), path.name, _count(frame))
    return frame


_WGS84_HINT = (
    "facilities must be WGS84; if the source is GCJ-02/BD-09 re-import it with "
    "`skillcircle import --crs gcj02` (or bd09)"
)


class _Rows(NamedTuple):
    """The rows of a facilities file, before validation (:func:`_validated`'s input)."""

    records: list[dict[str, Any]]
    where: list[str]  # how messages name each row
    lon: np.ndarray
    lat: np.ndarray
    raw: list[tuple[str, str]] | None = None  # the coordinate cells as written
    reported: Sequence[v.Problem] = ()  # rows already found bad (not a Point)


def _facility_table(path: Path) -> _Rows:
    """The rows of a CSV/XLSX as :func:`write_facilities` writes it."""
    _check_size(path)
    cells, where, _ = read_rows(path, FacilityDataError)
    records = [cells_row(Facility, row) for row in cells]
    return _Rows(
        records,
        where,
        np.array([_float_or_nan(r.get("lon")) for r in records], dtype=float),
        np.array([_float_or_nan(r.get("lat")) for r in records], dtype=float),
        raw=[(v.as_text(r.get("lon")), v.as_text(r.get("lat"))) for r in records],
    )


def _facility_features(path: Path) -> _Rows:
    """The features of a GeoJSON FeatureCollection: properties and Point coordinates,
    named ``feature N (id 'X')``; a feature that is not a Point is reported."""
    features = v.read_feature_collection(path, FacilityDataError)
    records = []
    xy = np.full((len(features), 2), np.nan)
    where = [v.feature_row(i) for i in range(len(features))]
    not_points: list[v.Problem] = []
    for i, feature in enumerate(features):
        point = v.point_xy(feature)
        props = feature.get("properties") if isinstance(feature, dict) else None
        props = props if isinstance(props, dict) else {}
        fid = v.as_text(props.get("id"))
        if fid:
            where[i] = f"{where[i]} (id {fid!r})"
        if isinstance(point, str):
            not_points.append(v.Problem(i, where[i], point))
        else:
            xy[i] = point
        records.append(props)
    return _Rows(records, where, xy[:, 0], xy[:, 1], reported=not_points)


def import_registry(
    path: Path,
    layer: str,
    crs: str,
    *,
    id_prefix: str | None = None,
    id_tag: str | None = "IMP",
    bounds: v.BoundsArg = v.REGION,
    geocoder: Geocoder | None = None,
    settings: Settings | None = None,
    max_rows: int | None = None,
) -> gpd.GeoDataFrame:
    """Convert a published registry into validated facilities.

    Parameters
    ----------
    path
        ``.csv`` (UTF-8 with or without BOM, or GBK/GB18030), ``.xlsx`` (first
        sheet) or ``.geojson``/``.json`` (Points; properties read like columns).
        Headers may be Chinese or English (see :data:`HEADER_ALIASES`); ``name``
        is required, and ``lon``/``lat`` or an ``address`` (地址/详细地址) column
        (GeoJSON takes lon/lat from the Point). Rows whose lon and lat are both
        empty are placed by their address (with the row's county and town cells
        in front), see ``geocoder``.
    layer
        The layer of every row (a key of ``LAYERS``), unless the file has a
        ``layer``/``类别`` column; its cells may be keys or Chinese labels, empty
        cells fall back to ``layer``.
    crs
        Coordinate system of the file: ``wgs84``, ``gcj02`` or ``bd09``.
    id_prefix
        Prefix of generated ids; default per layer (:data:`LAYER_PREFIXES`).
        Rows without an id get ``<prefix>-<id_tag>-<n>`` where ``n`` is the data
        row number (first data row 1), so ids are stable while rows stay in place.
    id_tag
        Middle part of generated ids (``IMP``). ``None`` leaves the id of such rows
        empty: the web upload gives them ids per county when it stores them.
    bounds
        Region check after conversion to WGS84 (default: the area of
        ``settings.region``); ``None`` disables it.
    geocoder
        Places rows by address (:func:`geo.geocode.make_geocoder`); default the
        offline gazetteer of the region of ``settings``, built only if a row
        needs it. Such rows get their point, ``county``, ``town`` and
        ``town_code`` from it and its ``location_quality``
        (``village_from_address``, ``town_from_address``, ``geocoded_amap:…``).
    settings
        Supplies the region (and its gazetteer); ``Settings()`` if omitted.
    max_rows
        Refuse a file of more data rows (:class:`geo._errors.TooManyRowsError`);
        the web upload sets it, the CLI does not.

    Returns
    -------
    geopandas.GeoDataFrame
        Same schema as :func:`load_facilities`, with ``source`` =
        ``"import:<file name>"``, ``is_sample`` False and ``location_quality``
        ``"registry_<crs>"`` (rows placed by address: the geocoder's label).

    Raises
    ------
    SettingsError
        If ``layer`` or ``crs`` is unknown.
    FacilityDataError
        If the file is missing, cannot be decoded or read, has no data rows,
        lacks required columns, or rows have empty names, non-numeric
        coordinates, a capacity that is not a whole number, an unknown layer,
        an unsafe (:func:`facility_id_problem`) or repeated id, lie outside
        ``bounds`` or have an address that cannot be placed (unmatched,
        ambiguous, outside the region). Row numbers are those a spreadsheet shows.
    GeocoderError
        If an online geocoder refuses the key, its quota is spent or it does not answer.
    """
    check_layer(layer)
    bounds = v.region_bounds(bounds, settings or Settings())
    crs_key = check_crs(crs)
    path = Path(path)
    table, where = _read_registry(path, max_rows)
    raw = list(zip(table["lon"], table["lat"], strict=True))
    lon, lat = to_wgs84(v.to_numbers(table["lon"]), v.to_numbers(table["lat"]), crs_key)
    records = _registry_records(
        table,
        layer,
        source=f"import:{path.name}",
        quality=f"registry_{crs_key}",
        id_prefix=id_prefix,
        id_tag=id_tag,
    )
    placed, address_problems = (
        _place_by_address(records, raw, where, geocoder, settings)
        if "address" in table
        else ({}, [])
    )
    for i, place in placed.items():
        lon[i], lat[i] = place.lon, place.lat
    hint = f"the file was read as {crs_key}; is --crs right, and are the columns lon/lat?"
    facilities, problems = _validated(
        records,
        where,
        lon,
        lat,
        bounds,
        hint,
        raw=raw,
        reported=address_problems,
        require_id=id_tag is not None,
    )
    v.raise_problems(FacilityDataError, path.name, problems)
    logger.info(
        "imported %d facilities from %s (%s, %s)%s",
        len(facilities),
        path.name,
        crs_key,
        _count(facilities),
        f"; {len(placed)} placed by address" if placed else "",
    )
    return facilities


def _read_registry(path: Path, max_rows: int | None) -> tuple[pd.DataFrame, list[str]]:
    """The registry's cells under our column names (:data:`HEADER_ALIASES`) and how
    messages name each row; a file placed by address gets empty ``lon``/``lat``."""
    v.require_file(path, FacilityDataError, "check the path of the registry file")
    _check_size(path)
    suffix = path.suffix.lower()
    if suffix in _GEOJSON_SUFFIXES:
        table, where = _registry_geojson(path)
    elif suffix in (".csv", ".xlsx"):
        table = v.read_table(path, FacilityDataError)
        where = [v.table_row(i) for i in range(len(table))]
    else:
        v.fail(
            FacilityDataError,
            path.name,
            f"unknown registry file type {suffix!r}; use .csv, .xlsx or .geojson "
            "(save .xls files as .xlsx)",
        )
    if table.empty:
        v.fail(
            FacilityDataError,
            path.name,
            "has no data rows under the header; add one row per facility",
        )
    if max_rows is not None and len(table) > max_rows:
        raise TooManyRowsError(
            f"{path.name}: {len(table):,} rows, more than the {max_rows:,} one file may hold; "
            "split it into files of at most that many rows"
        )
    table = _rename_headers(table, path.name)
    by_address = "address" in table.columns and "lon" not in table and "lat" not in table
    missing = [c for c in ("name", "lon", "lat") if c not in table.columns]
    if by_address:
        missing.remove("lon")
        missing.remove("lat")
    if missing:
        v.fail(
            FacilityDataError,
            path.name,
            f"missing column(s) {', '.join(missing)}; add a header "
            + " / ".join(f"{c} ({_aliases(c)})" for c in missing)
            + (f", or an address column ({_aliases('address')})" if "lon" in missing else ""),
        )
    if by_address:
        table["lon"] = table["lat"] = ""
    return table, where


def _registry_records(
    table: pd.DataFrame,
    layer: str,
    *,
    source: str,
    quality: str,
    id_prefix: str | None,
    id_tag: str | None,
) -> list[dict[str, Any]]:
    """One facility record per row: the kept cells, the row's layer (its cell, key or
    Chinese label, else ``layer``) and its id (its cell, else made as
    :func:`import_registry` describes, or empty when ``id_tag`` is None)."""
    cells = list(table["layer"]) if "layer" in table else [""] * len(table)
    layers = [_LAYER_BY_LABEL.get(x, x) if x else layer for x in cells]
    ids = list(table["id"]) if "id" in table else [""] * len(table)
    for n, (fid, row_layer) in enumerate(zip(ids, layers, strict=True), start=1):
        if not fid and id_tag is not None:
            prefix = id_prefix or LAYER_PREFIXES.get(row_layer, "FAC")
            ids[n - 1] = f"{prefix}-{id_tag}-{n:04d}"
    kept = {
        c: table[c].tolist() for c in (*_TEXT_COLUMNS, "name", "trades", "capacity") if c in table
    }
    return [
        {
            **{c: column[i] for c, column in kept.items()},
            "id": ids[i],
            "layer": layers[i],
            "source": source,
            "is_sample": False,
            "location_quality": quality,
        }
        for i in range(len(table))
    ]


def _place_by_address(
    records: list[dict[str, Any]],
    raw: Sequence[tuple[str, str]],
    where: Sequence[str],
    geocoder: Geocoder | None,
    settings: Settings | None,
) -> tuple[dict[int, Placement], list[v.Problem]]:
    """Place the rows whose lon and lat cells are both empty by address; fill their records.

    The row's county and town cells go in front of its address (``桐乡市`` +
    ``乌镇镇`` + ``民合村15号``) unless it names them, so they narrow the match.
    """
    problems = []
    texts = []
    for i, (x, y) in enumerate(raw):
        if v.as_text(x) or v.as_text(y):
            continue
        record = records[i]
        address = v.as_text(record.get("address"))
        if not address:
            problems.append(
                v.Problem(
                    i,
                    where[i],
                    "no lon/lat and no address; give lon/lat (经度/纬度) or an address (地址)",
                )
            )
            continue
        units = (v.as_text(record.get(c)) for c in ("county", "town"))
        texts.append((i, "".join(u for u in units if u and u not in address) + address))
    if not texts:
        return {}, problems
    if geocoder is None:
        from geo.geocode import Gazetteer

        geocoder = Gazetteer.from_settings(settings or Settings())
    placed: dict[int, Placement] = {}
    for (i, _), found in zip(texts, geocoder.locate([t for _, t in texts]), strict=True):
        if isinstance(found, str):
            problems.append(v.Problem(i, where[i], found))
            continue
        placed[i] = found
        records[i].update(
            county=found.county,
            town=found.town,
            town_code=found.town_code,
            location_quality=found.location_quality,
        )
    logger.info(
        "placed %d of %d rows by address with the %s geocoder",
        len(placed),
        len(texts),
        geocoder.name,
    )
    return placed, problems


def facilities_from_records(
    records: Sequence[Mapping[str, Any]],
    *,
    where: Sequence[str] | None = None,
    bounds: v.BoundsArg = v.REGION,
    label: str = "facilities",
    settings: Settings | None = None,
    waived: list[v.Problem] | None = None,
) -> gpd.GeoDataFrame:
    """Validate property dicts with WGS84 ``lon``/``lat`` into a facilities frame.

    The checks are those of :func:`load_facilities` (the
    :class:`geo.models.Facility` model, unique ids, coordinates inside
    ``bounds``); the web store keeps facilities this way.

    Parameters
    ----------
    waived
        Read records stored before a rule existed (e.g. an unsafe id): the rules
        that :mod:`geo.models` lets a stored record break are noted here instead
        of refused.

    Raises
    ------
    FacilityDataError
        With every problem in ``problems``; ``where`` names the records
        (default ``feature N``), ``label`` the collection in the message.
    """
    bounds = v.region_bounds(bounds, settings or Settings())
    where = list(where) if where is not None else [v.feature_row(i) for i in range(len(records))]
    lon = np.array([_float_or_nan(r.get("lon")) for r in records], dtype=float)
    lat = np.array([_float_or_nan(r.get("lat")) for r in records], dtype=float)
    frame, problems = _validated(
        records, where, lon, lat, bounds, "give WGS84 decimal degrees", waived=waived
    )
    v.raise_problems(FacilityDataError, label, problems)
    return frame


def _float_or_nan(value: Any) -> float:
    if isinstance(value, bool):
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def facility_records(gdf: gpd.GeoDataFrame, digits: int | None = 7) -> list[dict[str, Any]]:
    """JSON-ready dicts of a facilities frame: the fields of :class:`geo.models.Facility`
    (:data:`FACILITY_COLUMNS`, then ``lon``/``lat`` in WGS84 rounded to ``digits``).

    The one frame -> records converter (the web store keeps these dicts).

    Raises
    ------
    FacilityDataError
        If ``gdf`` lacks one of :data:`FACILITY_COLUMNS`.
    """
    missing = [c for c in FACILITY_COLUMNS if c not in gdf.columns]
    if missing:
        raise FacilityDataError(f"facilities frame lacks column(s) {', '.join(missing)}")
    records = frame_rows(gdf, Facility)
    for record in records:
        record["trades"] = list(record["trades"] or [])
        record["is_sample"] = bool(record["is_sample"])
        if digits is not None:
            record["lon"], record["lat"] = (
                round(record["lon"], digits),
                round(record["lat"], digits),
            )
    return records


def facilities_to_geojson(
    gdf: gpd.GeoDataFrame,
    *,
    fields: Sequence[str] = FACILITY_COLUMNS,
    digits: int | None = None,
) -> dict[str, Any]:
    """Return a GeoJSON FeatureCollection dict of facilities, ready for ``json.dump``.

    The one GeoJSON writer of facilities: files (:func:`write_facilities`), the
    API and the map. Properties are ``fields`` in that order (default
    :data:`FACILITY_COLUMNS`; missing values ``null``, ``trades`` a list, numpy
    scalars as plain Python values); geometry is a WGS84 Point, coordinates
    rounded to ``digits`` if given. Write it with ``ensure_ascii=False`` to keep
    Chinese readable.

    Raises
    ------
    FacilityDataError
        If ``gdf`` lacks one of :data:`FACILITY_COLUMNS`.
    """
    features = [
        {
            "type": "Feature",
            "properties": {k: record[k] for k in fields},
            "geometry": {"type": "Point", "coordinates": [record["lon"], record["lat"]]},
        }
        for record in facility_records(gdf, digits)
    ]
    return {"type": "FeatureCollection", "features": features}


#: Files :func:`write_facilities` writes.
FACILITY_SUFFIXES = (".geojson", ".csv", ".xlsx")


def write_facilities(
    gdf: gpd.GeoDataFrame, path: Path, *, metadata: Mapping[str, str] | None = None
) -> Path:
    """Write facilities as GeoJSON, CSV or XLSX (by suffix), atomically.

    Every row is checked by :class:`geo.models.Facility` first (records stored
    before a rule existed are let through, as the store serves them). GeoJSON is
    :func:`facilities_to_geojson`; CSV (UTF-8 with BOM) and XLSX have the
    columns :data:`FACILITY_COLUMNS`, ``lon``, ``lat`` (trades joined with
    ``、``, formula-like text kept as text, ``metadata`` on the XLSX 说明 sheet).
    :func:`load_facilities` reads all three back to the same frame.

    Raises
    ------
    SettingsError
        If the suffix is not one of :data:`FACILITY_SUFFIXES`.
    FacilityDataError
        If the frame lacks a column or a row breaks a rule of the model.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FACILITY_SUFFIXES:
        raise SettingsError(f"cannot write {path.name}: use one of {', '.join(FACILITY_SUFFIXES)}")
    records = facility_records(gdf, digits=None)
    where = [f"facility {r['id']!r}" for r in records]
    items, problems = validate_rows(Facility, records, where, waived=[])
    v.raise_problems(FacilityDataError, path.name, problems)
    if suffix != ".geojson":
        checked = [item for item in items if item is not None]
        return write_records(Facility, checked, path, metadata=metadata or {}, sheet_name="设施")
    document = facilities_to_geojson(gdf)

    def write(tmp: Path) -> None:
        tmp.write_text(json.dumps(document, ensure_ascii=False, indent=1), encoding="utf-8")

    atomic_write(path, write)
    logger.info("wrote %d facilities to %s", len(records), path)
    return path


#: Properties read as text onto a facility (the model parses trades, capacity, is_sample).
_TEXT_FIELDS = tuple(c for c in FACILITY_COLUMNS if c not in ("trades", "capacity", "is_sample"))


def _validated(
    records: Sequence[Mapping[str, Any]],
    where: Sequence[str],
    lon: np.ndarray,
    lat: np.ndarray,
    bounds: v.Area | v.Bounds | None,
    hint: str,
    *,
    raw: Sequence[tuple[str, str]] | None = None,
    reported: Sequence[v.Problem] = (),
    require_id: bool = True,
    waived: list[v.Problem] | None = None,
) -> tuple[gpd.GeoDataFrame, list[v.Problem]]:
    """Check every record: the one place facility rows are validated.

    Each record runs through :class:`geo.models.Facility` (text cells, trades,
    capacity and is_sample parsed by its rules), then ids must be unique and
    coordinates finite and inside ``bounds``. ``reported`` are problems found
    before (a feature that is not a Point, an address that cannot be placed):
    their rows' coordinates are not checked again. ``require_id=False`` lets
    ids be empty (the caller makes them).

    Returns
    -------
    (frame, problems)
        The frame (:func:`load_facilities`' format; empty if there are problems)
        and every problem in file order.
    """
    skip = {p.order for p in reported}
    xy_problems = [
        p for p in v.coordinate_problems(lon, lat, where, bounds, hint, raw) if p.order not in skip
    ]
    no_point = skip | {p.order for p in xy_problems}
    rows = []
    for i, props in enumerate(records):
        row: dict[str, Any] = {c: _text(props.get(c)) for c in _TEXT_FIELDS}
        trades = props.get("trades")
        row["trades"] = split_trades(trades) if isinstance(trades, str) else trades
        row["capacity"] = props.get("capacity")
        if "is_sample" in props:
            row["is_sample"] = props["is_sample"]
        # a point already reported is not checked twice (0, 0 stands in; nothing is returned)
        row["lon"], row["lat"] = (0.0, 0.0) if i in no_point else (float(lon[i]), float(lat[i]))
        rows.append(row)
    context = {"id_optional": not require_id}
    items, problems = validate_rows(Facility, rows, where, context=context, waived=waived)
    problems = [*reported, *problems]
    problems += v.duplicate_problems(
        [row["id"] for row in rows], where, "id", "ids must be unique; renumber one"
    )
    problems += xy_problems
    if problems:
        return _to_frame([]), problems
    return _to_frame([item for item in items if item is not None]), []


def _text(value: Any) -> str:
    """A cell or property as text (the model strips it), numbers as :func:`v.as_text` has them."""
    return value if type(value) is str else v.as_text(value)


def _to_frame(items: Sequence[Facility]) -> gpd.GeoDataFrame:
    # a model's __dict__ holds exactly its field values (no serialiser: 50,000 rows)
    frame = pd.DataFrame(
        [item.__dict__ for item in items], columns=[*FACILITY_COLUMNS, "lon", "lat"]
    )
    frame["capacity"] = pd.array(list(frame["capacity"]), dtype="Int64")
    frame["is_sample"] = frame["is_sample"].astype(bool)
    points = gpd.points_from_xy(frame["lon"].astype(float), frame["lat"].astype(float))
    return gpd.GeoDataFrame(frame[list(FACILITY_COLUMNS)], geometry=points, crs="EPSG:4326")


#: Registry files larger than this are refused (a county's registry is kilobytes).
MAX_REGISTRY_BYTES = 50 * 1024 * 1024
#: An .xlsx unpacking to more than this, or compressed more than MAX_XLSX_RATIO : 1,
#: is refused before it is opened (a "zip bomb" would exhaust memory).
MAX_XLSX_UNPACKED = 200 * 1024 * 1024
MAX_XLSX_RATIO = 200


def _check_size(path: Path) -> None:
    size = path.stat().st_size
    if size > MAX_REGISTRY_BYTES:
        v.fail(
            FacilityDataError,
            path.name,
            f"file is {size / 2**20:.0f} MB; registries over {MAX_REGISTRY_BYTES // 2**20} MB "
            "are refused — split it by county",
        )
    if path.suffix.lower() != ".xlsx" or not zipfile.is_zipfile(path):
        return
    with zipfile.ZipFile(path) as archive:
        unpacked = sum(info.file_size for info in archive.infolist())
    if unpacked > MAX_XLSX_UNPACKED or unpacked > MAX_XLSX_RATIO * max(size, 1):
        v.fail(
            FacilityDataError,
            path.name,
            f"the workbook unpacks to {unpacked / 2**20:.0f} MB from {size / 2**20:.1f} MB "
            "(a zip bomb?); save the data as a plain .xlsx or .csv",
        )


def _registry_geojson(path: Path) -> tuple[pd.DataFrame, list[str]]:
    features = v.read_feature_collection(path, FacilityDataError)
    records = []
    problems = []
    for i, feature in enumerate(features):
        point = v.point_xy(feature)
        if isinstance(point, str):
            problems.append(v.Problem(i, v.feature_row(i), point))
            continue
        props = feature.get("properties")
        props = props if isinstance(props, dict) else {}
        records.append(
            {
                **{
                    k: (x if isinstance(x, list) else v.as_text(x))
                    for k, x in props.items()
                    if HEADER_ALIASES.get(_header_key(k)) not in ("lon", "lat")  # the Point wins
                },
                "lon": repr(point[0]),
                "lat": repr(point[1]),
            }
        )
    v.raise_problems(FacilityDataError, path.name, problems)
    table = pd.DataFrame.from_records(records, index=range(len(records)))
    return table.fillna(""), [v.feature_row(i) for i in range(len(features))]


def _rename_headers(table: pd.DataFrame, file: str) -> pd.DataFrame:
    mapping: dict[str, str] = {}
    seen: dict[str, str] = {}
    for header in table.columns:
        column = HEADER_ALIASES.get(_header_key(header))
        if column is None:
            logger.debug("%s: ignoring column %r", file, header)
            continue
        if column in seen:
            v.fail(
                FacilityDataError,
                file,
                f"columns {seen[column]!r} and {header!r} both mean {column}; keep one",
            )
        seen[column] = str(header)
        mapping[header] = column
    return table[list(mapping)].rename(columns=mapping)


def _header_key(header: Any) -> str:
    return _BRACKETED.sub("", str(header)).replace(" ", "").lower()


def _aliases(column: str) -> str:
    return "/".join(k for k, c in HEADER_ALIASES.items() if c == column)


def _count(facilities: gpd.GeoDataFrame) -> str:
    counts = facilities["layer"].value_counts()
    return ", ".join(f"{layer} {counts[layer]}" for layer in LAYERS if layer in counts) or "none"
