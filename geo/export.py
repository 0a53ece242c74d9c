"""Write tables as CSV, GeoJSON or XLSX, atomically.

Every output is first written to a temporary file beside the target and renamed
onto it only when writing succeeded (:func:`atomic_write`), so a failure never
leaves a half-written file and an older output stays intact.

Spreadsheet formula injection
-----------------------------
Names in a registry are user data: a cell such as ``=HYPERLINK(...)`` or
``@SUM(...)`` would run as a formula when the file is opened in Excel/WPS. So
text cells beginning with ``=``, ``+``, ``-``, ``@``, tab or carriage return
(:data:`FORMULA_PREFIXES`) are written as text:

* CSV: the cell gets a leading ``'`` (``'=cmd``), the usual OWASP advice; Excel
  shows the apostrophe, which makes the neutralisation visible.
* XLSX: the cell is stored as a string (not a formula) with Excel's
  "quote prefix" flag, so it shows unchanged as ``=cmd`` and stays text when
  edited. Numbers are never touched (``-3.5`` stays a number).
* GeoJSON is data, not a spreadsheet; values are written unchanged.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeGuard

import geopandas as gpd
import numpy as np
import pandas as pd
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from geo._errors import SettingsError
from geo._io import atomic_write

logger = logging.getLogger(__name__)

#: File types :func:`write_table` writes.
TABLE_SUFFIXES = (".csv", ".geojson", ".xlsx")

#: Text starting with one of these is written as text, never as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

#: Separator of list cells (e.g. trades) in CSV/XLSX.
LIST_SEPARATOR = "、"

#: Name of the XLSX sheet that lists the metadata.
METADATA_SHEET = "说明"

_MIN_WIDTH, _MAX_WIDTH = 8, 60
_WIDTH_SAMPLE = 1000  # rows looked at to size a column
_BAD_SHEET_CHARS = set("[]:*?/\\")


def write_table(
    df: pd.DataFrame | gpd.GeoDataFrame,
    path: Path,
    *,
    metadata: Mapping[str, str],
    sheet_name: str = "data",
    column_labels: Mapping[str, str] | None = None,
) -> Path:
    """Write ``df`` as CSV, GeoJSON or XLSX chosen by the suffix of ``path``.

    Parameters
    ----------
    df
        The table. For CSV/XLSX geometry columns are dropped; if all active
        geometries are points and there are no ``lon``/``lat`` columns, WGS84
        ``lon``/``lat`` columns are added instead. GeoJSON needs a GeoDataFrame
        with an active geometry; other geometry columns are left out.
    path
        ``.csv``: UTF-8 with BOM (Excel opens Chinese correctly), missing values
        as empty cells, booleans ``true``/``false``, lists joined with ``、``;
        ``metadata`` is not written (CSV has no place for it).
        ``.geojson``: a WGS84 FeatureCollection with a top-level ``"metadata"``
        member; missing values are ``null``, lists stay lists.
        ``.xlsx``: sheet ``sheet_name`` (bold, frozen header row, sized columns)
        and a sheet ``说明`` with one metadata key/value per row.
    metadata
        Provenance such as 网络来源, 生成时间, 参数, 样例数据说明.
    sheet_name
        XLSX data sheet name (at most 31 characters, none of ``[]:*?/\\``).
    column_labels
        Header text per column for CSV/XLSX (e.g. ``{"village_name": "村名"}``);
        columns not listed keep their names. GeoJSON keeps the column names so
        that programs reading it see stable keys.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    SettingsError
        If the suffix is not one of :data:`TABLE_SUFFIXES`, a GeoJSON is asked
        for without geometry, or ``sheet_name`` is not a valid sheet name.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise SettingsError(
            f"cannot write {path.name}: unknown file type {suffix or '(none)'!r}; "
            f"use one of {', '.join(TABLE_SUFFIXES)}"
        )
    meta = {str(k): str(v) for k, v in metadata.items()}
    if suffix == ".geojson":
        document = _feature_collection(df, meta, path.name)
        atomic_write(path, lambda tmp: _dump_json(document, tmp))
    else:
        table = _flat_table(df).rename(columns=dict(column_labels or {}))
        if suffix == ".csv":
            atomic_write(path, lambda tmp: _write_csv(table, tmp))
        else:
            _check_sheet_name(sheet_name)
            atomic_write(path, lambda tmp: _write_xlsx(table, tmp, sheet_name, meta))
    logger.info("wrote %s rows to %s", f"{len(df):,}", path)
    return path


def protect_text(text: str) -> str:
    """Prefix ``'`` to text a spreadsheet would run as a formula (CSV rule)."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float | np.floating) and math.isnan(value)


def _has_geometry(df: pd.DataFrame) -> TypeGuard[gpd.GeoDataFrame]:
    return isinstance(df, gpd.GeoDataFrame) and df.active_geometry_name in df.columns


def _flat_table(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` without its geometry column (points become lon/lat), as a plain DataFrame."""
    if not _has_geometry(df):
        return pd.DataFrame(df).reset_index(drop=True)
    geometry = df.geometry
    shapes = [c for c in df.columns if isinstance(df[c].dtype, gpd.array.GeometryDtype)]
    table = pd.DataFrame(df.drop(columns=shapes)).reset_index(drop=True)
    points = geometry.notna() & (geometry.geom_type == "Point")
    if len(df) and points.all() and "lon" not in table and "lat" not in table:
        wgs84 = geometry.to_crs("EPSG:4326") if geometry.crs is not None else geometry
        table["lon"] = wgs84.x.to_numpy()
        table["lat"] = wgs84.y.to_numpy()
    return table


def _csv_cell(value: Any) -> Any:
    if _is_missing(value):
        return ""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, list | tuple | np.ndarray):
        return protect_text(LIST_SEPARATOR.join(str(x) for x in value))
    if isinstance(value, str):
        return protect_text(value)
    return value


def _write_csv(table: pd.DataFrame, tmp: Path) -> None:
    out = pd.DataFrame(index=table.index)
    for position, column in enumerate(table.columns):
        series = table.iloc[:, position]
        is_number = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
        keep = is_number or pd.api.types.is_datetime64_any_dtype(series)
        out[protect_text(str(column))] = series if keep else series.map(_csv_cell).astype(object)
    out.to_csv(tmp, index=False, encoding="utf-8-sig", na_rep="", lineterminator="\n")


def _xlsx_value(value: Any) -> Any:
    if _is_missing(value):
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)  # Excel has no time zones
    if isinstance(value, list | tuple | np.ndarray):
        value = LIST_SEPARATOR.join(str(x) for x in value)
    if isinstance(value, int | dt.date):
        return value
    return ILLEGAL_CHARACTERS_RE.sub("", str(value))


def _display_width(value: Any) -> int:
    text = "" if value is None else str(value)
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _fill_sheet(sheet: Worksheet, header: list[Any], rows: list[list[Any]]) -> None:
    """Header (bold, frozen) + rows; text that looks like a formula stays text."""
    sheet.append([_xlsx_value(h) for h in header])
    for row in rows:
        sheet.append([_xlsx_value(x) for x in row])
    for row_cells in sheet.iter_rows():
        for cell in row_cells:
            if isinstance(cell.value, str) and cell.value.startswith(FORMULA_PREFIXES):
                cell.data_type = "s"  # openpyxl took a leading "=" for a formula
                cell.quotePrefix = True
    bold = Font(bold=True)
    for cell in sheet[1]:
        cell.font = bold
    sheet.freeze_panes = "A2"
    last = min(sheet.max_row, _WIDTH_SAMPLE + 1)  # iter_cols would create empty rows beyond
    for index, column_cells in enumerate(sheet.iter_cols(max_row=last), start=1):
        width = max((_display_width(c.value) for c in column_cells), default=0) + 2
        sheet.column_dimensions[get_column_letter(index)].width = min(
            max(width, _MIN_WIDTH), _MAX_WIDTH
        )


def _write_xlsx(table: pd.DataFrame, tmp: Path, sheet_name: str, meta: Mapping[str, str]) -> None:
    _write_sheets({sheet_name: table}, tmp, meta, percent_columns=())


def _write_sheets(
    tables: Mapping[str, pd.DataFrame],
    tmp: Path,
    meta: Mapping[str, str],
    percent_columns: tuple[str, ...],
) -> None:
    book = Workbook()
    book.remove(book.worksheets[0])
    for name, table in tables.items():
        sheet = book.create_sheet(name)
        rows = [list(row) for row in table.itertuples(index=False, name=None)]
        _fill_sheet(sheet, list(table.columns), rows)
        for index, column in enumerate(table.columns, start=1):
            if str(column) in percent_columns:
                cells = sheet.iter_rows(
                    min_row=2, max_row=len(table) + 1, min_col=index, max_col=index
                )
                for (cell,) in cells:
                    cell.number_format = "0.0%"
    notes = book.create_sheet(METADATA_SHEET)
    _fill_sheet(notes, ["项目", "内容"], [[k, v] for k, v in meta.items()])
    book.save(tmp)


def write_workbook(
    tables: Mapping[str, pd.DataFrame],
    path: Path,
    *,
    metadata: Mapping[str, str],
    percent_columns: tuple[str, ...] = (),
) -> Path:
    """Write several tables as sheets of one XLSX (plus the ``说明`` sheet), atomically.

    Each sheet has a bold, frozen header and sized columns; columns named in
    ``percent_columns`` (shares between 0 and 1) are formatted as percentages.
    Geometry columns are dropped (points become ``lon``/``lat``).
    """
    path = Path(path)
    if path.suffix.lower() != ".xlsx":
        raise SettingsError(f"cannot write {path.name}: a workbook must end in .xlsx")
    for name in tables:
        _check_sheet_name(name)
    flat = {name: _flat_table(table) for name, table in tables.items()}
    meta = {str(k): str(v) for k, v in metadata.items()}
    atomic_write(path, lambda tmp: _write_sheets(flat, tmp, meta, percent_columns))
    logger.info("wrote %d sheets to %s", len(flat), path)
    return path


def _check_sheet_name(name: str) -> None:
    if not name or len(name) > 31 or _BAD_SHEET_CHARS & set(name) or name == METADATA_SHEET:
        raise SettingsError(
            f"invalid sheet name {name!r}: use 1-31 characters without []:*?/\\ "
            f"and other than {METADATA_SHEET!r}"
        )


def _json_value(value: Any) -> Any:
    if _is_missing(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple | np.ndarray):
        return [_json_value(x) for x in value]
    if isinstance(value, dt.date | pd.Timestamp):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _feature_collection(df: pd.DataFrame, meta: dict[str, str], name: str) -> dict[str, Any]:
    if not _has_geometry(df):
        raise SettingsError(
            f"cannot write {name}: the table has no geometry; write .csv or .xlsx instead"
        )
    out = df if df.crs is None or df.crs.equals("EPSG:4326") else df.to_crs("EPSG:4326")
    others = [
        c
        for c in out.columns
        if c != out.active_geometry_name and isinstance(out[c].dtype, gpd.array.GeometryDtype)
    ]
    out = out.drop(columns=others)
    for column in out.columns:
        if column != out.geometry.name:
            out[column] = pd.Series(
                [_json_value(x) for x in out[column].tolist()], index=out.index, dtype=object
            )
    features = out.to_geo_dict(na="null", drop_id=True)["features"]
    return {"type": "FeatureCollection", "metadata": meta, "features": features}


def _dump_json(document: Mapping[str, Any], tmp: Path) -> None:
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(document, handle, ensure_ascii=False, allow_nan=False)
