"""Rows of an entity model (:mod:`geo.models`) in and out of frames and files.

The columns and their order come from the model; CSV/XLSX are written with
:func:`geo.export.write_table` (atomic, formula-safe) and read back as text
cells that the model parses, so every entity round-trips::

    write_records(Course, courses, Path("courses.xlsx"), metadata={})
    read_records(Course, Path("courses.xlsx"), InputDataError) == courses

Facilities have their own writer and loader on top of these
(:func:`geo.facilities.write_facilities`, :func:`geo.facilities.load_facilities`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, get_origin

import numpy as np
import pandas as pd
from pydantic import BaseModel

from geo import _validate as v
from geo._errors import InputDataError
from geo.export import FORMULA_PREFIXES, write_table
from geo.models import split_trades, validate_rows

M = TypeVar("M", bound=BaseModel)

#: Files :func:`read_rows` reads.
ROW_SUFFIXES = (".geojson", ".json", ".csv", ".xlsx")


def plain(value: Any) -> Any:
    """A frame cell as a plain Python value: NaN/None/NA -> None, numpy scalars ->
    Python, arrays and tuples -> lists."""
    if isinstance(value, list | tuple | np.ndarray):
        return [plain(x) for x in value]
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def frame_rows(frame: pd.DataFrame, model: type[BaseModel]) -> list[dict[str, Any]]:
    """The rows of a (Geo)DataFrame as dicts of ``model``'s fields (plain Python values).

    Columns the model lacks are left out. If the model has ``lon``/``lat`` and
    the frame has point geometry but no such columns, they come from its points
    (in WGS84).
    """
    names = list(model.model_fields)
    columns: dict[str, list[Any]] = {
        name: [plain(x) for x in frame[name].tolist()] for name in names if name in frame.columns
    }
    if (
        "lon" in names
        and "lon" not in columns
        and isinstance(frame, pd.DataFrame)
        and hasattr(frame, "geometry")
    ):
        points = frame.geometry
        if points.crs is not None and not points.crs.equals("EPSG:4326"):
            points = points.to_crs("EPSG:4326")
        columns["lon"] = [float(x) for x in points.x]
        columns["lat"] = [float(y) for y in points.y]
    return [{name: column[i] for name, column in columns.items()} for i in range(len(frame))]


def cells_row(model: type[BaseModel], cells: Mapping[str, Any]) -> dict[str, Any]:
    """A row of text cells (CSV/XLSX) as input for ``model``.

    Empty cells of optional fields are left out (the field's default),
    ``true``/``false`` cells of true/false fields become booleans, list cells
    (``电工、焊工``) are split with :func:`geo.models.split_trades`, and other
    text is parsed by the model's own rules (numbers, dates). Columns the model
    lacks are dropped.
    """
    out: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name not in cells:
            continue
        text = v.as_text(cells[name])
        if text == "" and not info.is_required():
            continue
        if info.annotation is bool and text.lower() in ("true", "false"):
            out[name] = text.lower() == "true"
        elif get_origin(info.annotation) is list:
            out[name] = split_trades(text)
        else:
            out[name] = text
    return out


def _unprotect(cell: str) -> str:
    """Undo :func:`geo.export.protect_text`: ``'=x`` as written to a CSV is ``=x``."""
    if cell.startswith("'") and cell[1:].startswith(FORMULA_PREFIXES):
        return cell[1:]
    return cell


def read_rows(
    path: Path, error: type[InputDataError]
) -> tuple[list[dict[str, Any]], list[str], bool]:
    """The rows of a GeoJSON, CSV or XLSX file and how a message names each.

    Returns
    -------
    (rows, where, cells)
        GeoJSON: each feature's properties, with ``lon``/``lat`` from its Point
        unless they hold them, named ``feature N``; ``cells`` False. CSV/XLSX:
        the text cells of each row (a CSV cell ``'=x`` is ``=x`` again), named
        ``row N`` as a spreadsheet shows it; ``cells`` True (pass them through
        :func:`cells_row`).

    Raises
    ------
    InputDataError
        ``error``: the file is missing, unreadable, of another type, or a
        feature is not a Point.
    """
    path = Path(path)
    v.require_file(path, error, "check the path")
    suffix = path.suffix.lower()
    if suffix in (".geojson", ".json"):
        features = v.read_feature_collection(path, error)
        rows: list[dict[str, Any]] = []
        where = [v.feature_row(i) for i in range(len(features))]
        problems = []
        for i, feature in enumerate(features):
            point = v.point_xy(feature)
            props = feature.get("properties") if isinstance(feature, dict) else None
            row = dict(props) if isinstance(props, dict) else {}
            if isinstance(point, str):
                problems.append(v.Problem(i, where[i], point))
            else:  # properties holding lon/lat (a coverage table's rounded ones) win
                row.setdefault("lon", point[0])
                row.setdefault("lat", point[1])
            rows.append(row)
        v.raise_problems(error, path.name, problems)
        return rows, where, False
    if suffix not in (".csv", ".xlsx"):
        v.fail(error, path.name, f"unknown file type {suffix!r}; use .geojson, .csv or .xlsx")
    table = v.read_table(path, error)
    if suffix == ".csv":
        table = table.apply(lambda column: column.map(_unprotect))
    records = [{str(k): x for k, x in r.items()} for r in table.to_dict(orient="records")]
    return records, [v.table_row(i) for i in range(len(table))], True


def read_records(
    model: type[M],
    path: Path,
    error: type[InputDataError],
    *,
    context: Mapping[str, Any] | None = None,
) -> list[M]:
    """Read and validate the rows of a file written by :func:`write_records`.

    Raises
    ------
    InputDataError
        ``error`` naming the file, the rows and what to do, if it cannot be read
        or a row breaks a rule of ``model``.
    """
    rows, where, cells = read_rows(path, error)
    if cells:
        rows = [cells_row(model, row) for row in rows]
    items, problems = validate_rows(model, rows, where, context=context)
    v.raise_problems(error, Path(path).name, problems)
    return [item for item in items if item is not None]


def table_frame(model: type[BaseModel], items: Sequence[BaseModel]) -> pd.DataFrame:
    """Validated items as a table with ``model``'s fields as columns, in order (dates
    as ISO text, lists as lists, None where empty): what the writers take."""
    return pd.DataFrame(
        [item.model_dump(mode="json") for item in items], columns=list(model.model_fields)
    )


def write_records(
    model: type[BaseModel],
    items: Sequence[BaseModel],
    path: Path,
    *,
    metadata: Mapping[str, str],
    sheet_name: str = "data",
) -> Path:
    """Write validated items as CSV or XLSX (columns: ``model``'s fields, in order).

    Lists are joined with ``、``, formula-like text is written as text (see
    :mod:`geo.export`), and :func:`read_records` reads the file back to the same
    items. Raises :class:`~geo._errors.SettingsError` for another suffix.
    """
    path = Path(path)
    if path.suffix.lower() not in (".csv", ".xlsx"):
        from geo._errors import SettingsError

        raise SettingsError(f"cannot write {path.name}: use .csv or .xlsx")
    return write_table(table_frame(model, items), path, metadata=metadata, sheet_name=sheet_name)
