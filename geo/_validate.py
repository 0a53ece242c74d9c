"""Input validation shared by the loaders: files, encodings, coordinates, duplicates.

Every check collects :class:`Problem` s instead of raising on the first one, so
that :func:`raise_problems` can tell the user about the first few bad rows in one
line. Message format (one line)::

    <file> <where>: <what is wrong>; <what to do>
    <file>: 7 problems | <where>: <what>; <what to do> | <where>: ... | and 2 more

``where`` is ``row N`` for tables, counted as a spreadsheet shows it (the header
is row 1, the first data row is row 2), and ``feature N`` (1-based) for GeoJSON.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pandas as pd

from geo._errors import InputDataError

#: (min_lon, min_lat, max_lon, max_lat) in WGS84 degrees, the order of shapely ``bounds``.
Bounds = tuple[float, float, float, float]


@dataclass(frozen=True)
class Area:
    """A lon/lat box that input points must lie in, and how a message names it.

    Attributes
    ----------
    bounds
        ``(min_lon, min_lat, max_lon, max_lat)`` in WGS84 degrees.
    name
        Words after "is outside", e.g. ``"the region 嘉兴市 (330400)"``.
    hint
        What else to try for a point outside it, appended to the loader's own
        hint (which is about the coordinate system), e.g. "use an OSM extract
        that covers it".
    """

    bounds: Bounds
    name: str
    hint: str = ""


class _Default(Enum):
    REGION = "region"


#: Default ``bounds`` of the loaders: the area of the settings' region
#: (:attr:`geo.region.Region.area`).
REGION = _Default.REGION

#: What the loaders accept as ``bounds``.
BoundsArg = Area | Bounds | None | _Default


def region_bounds(bounds: BoundsArg, settings: Any) -> Area | Bounds | None:
    """``bounds``, with :data:`REGION` replaced by the area of ``settings.region``."""
    if bounds is REGION:
        return settings.region.area  # type: ignore[no-any-return]
    return bounds  # type: ignore[return-value]


def as_area(bounds: Area | Bounds | None) -> Area | None:
    """An :class:`Area` for ``bounds``; a bare tuple is named "the given bounds"."""
    if bounds is None or isinstance(bounds, Area):
        return bounds
    min_lon, min_lat, max_lon, max_lat = (float(b) for b in bounds)
    return Area((min_lon, min_lat, max_lon, max_lat), "the given bounds")


def overlaps(a: Bounds, b: Bounds) -> bool:
    """Whether two lon/lat boxes share at least a point."""
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def describe_bounds(bounds: Bounds) -> str:
    """``lon 119.5 to 122.5, lat 29.8 to 31.6`` (at most 4 decimals, about 10 m)."""

    def deg(value: float) -> str:
        return f"{round(value, 4):g}"

    min_lon, min_lat, max_lon, max_lat = bounds
    return f"lon {deg(min_lon)} to {deg(max_lon)}, lat {deg(min_lat)} to {deg(max_lat)}"


#: How many problems a message lists before "and N more".
MAX_LISTED = 5


@dataclass(frozen=True)
class Problem:
    """One invalid row: ``order`` sorts problems in file order."""

    order: int
    where: str
    what: str


def table_row(position: int) -> str:
    """Name a 0-based data position as a spreadsheet row (header is row 1)."""
    return f"row {position + 2}"


def feature_row(position: int) -> str:
    """Name a 0-based feature position as a 1-based GeoJSON feature."""
    return f"feature {position + 1}"


def raise_problems(error: type[InputDataError], file: str, problems: Sequence[Problem]) -> None:
    """Raise ``error`` describing the first problems in file order; do nothing if none."""
    if not problems:
        return
    ordered = sorted(problems, key=lambda p: p.order)
    pairs = [(p.where, p.what) for p in ordered]
    if len(ordered) == 1:
        only = ordered[0]
        raise error(f"{file} {only.where}: {only.what}", pairs)
    listed = " | ".join(f"{p.where}: {p.what}" for p in ordered[:MAX_LISTED])
    more = len(ordered) - MAX_LISTED
    tail = f" | and {more} more" if more > 0 else ""
    raise error(f"{file}: {len(ordered)} problems | {listed}{tail}", pairs)


def fail(error: type[InputDataError], file: str, what: str) -> NoReturn:
    """Raise a whole-file problem (missing, unreadable, wrong structure)."""
    raise error(f"{file}: {what}")


def require_file(path: Path, error: type[InputDataError], hint: str) -> None:
    """Raise ``error`` unless ``path`` is an existing file; ``hint`` says how to get one."""
    if not path.exists():
        fail(error, str(path), f"file not found; {hint}")
    if not path.is_file():
        fail(error, str(path), f"is not a file; {hint}")


def decode(path: Path, error: type[InputDataError]) -> str:
    """Read ``path`` as text, trying UTF-8 (with or without BOM), then GBK/GB18030."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")  # a superset of GBK and GB2312
    except UnicodeDecodeError as exc:
        fail(
            error,
            path.name,
            f"cannot decode the text (byte {exc.start} is neither UTF-8 nor GBK); "
            "save the file as UTF-8 (Excel: 'CSV UTF-8') or GBK",
        )


#: Deepest nesting of arrays and objects read from JSON. A GeoJSON MultiPolygon
#: needs 6 levels; Python's parser recurses and fails near 1000 (RecursionError).
MAX_JSON_DEPTH = 64

_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class JSONShapeError(ValueError):
    """JSON text nested deeper than allowed, or holding a number too long to read."""


def json_depth(text: str) -> int:
    """Deepest nesting of ``[`` and ``{`` outside strings, found without parsing or recursion."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    if not brackets:
        return 0
    codes = np.frombuffer(brackets.encode("ascii"), dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


def loads_json(text: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` with a nesting limit: the one JSON reader for files and request bodies.

    Raises
    ------
    json.JSONDecodeError
        If ``text`` is not JSON.
    JSONShapeError
        If it nests deeper than ``max_depth`` or holds an integer longer than
        Python reads (4300 digits).
    """
    depth = json_depth(text)
    if depth > max_depth:
        raise JSONShapeError(f"JSON nested {depth} levels deep (at most {max_depth} are read)")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except RecursionError as exc:  # not expected after the depth check; never a crash
        raise JSONShapeError(f"JSON nested too deeply (at most {max_depth} levels)") from exc
    except ValueError as exc:  # int() refuses integers of more than 4300 digits
        raise JSONShapeError("JSON holds a number of more than 4300 digits") from exc


def read_json(path: Path, error: type[InputDataError]) -> Any:
    """Parse a JSON file, turning encoding, syntax and shape errors into ``error``."""
    text = decode(path, error)
    try:
        return loads_json(text)
    except json.JSONDecodeError as exc:
        fail(
            error,
            path.name,
            f"broken JSON at line {exc.lineno}, column {exc.colno} ({exc.msg}); "
            "fix the file or write it again",
        )
    except JSONShapeError as exc:
        fail(error, path.name, f"{exc}; fix the file or write it again")


def read_feature_collection(path: Path, error: type[InputDataError]) -> list[Any]:
    """Return the ``features`` list of a GeoJSON FeatureCollection file."""
    data = read_json(path, error)
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        found = data.get("type") if isinstance(data, dict) else type(data).__name__
        fail(
            error,
            path.name,
            f"is not a GeoJSON FeatureCollection (top-level type is {found!r}); "
            'write {"type": "FeatureCollection", "features": [...]}',
        )
    features = data.get("features")
    if not isinstance(features, list):
        fail(error, path.name, "the FeatureCollection has no 'features' list; add one")
    if not features:
        fail(error, path.name, "the FeatureCollection is empty; add at least one Point feature")
    return features


def read_csv(path: Path, error: type[InputDataError]) -> pd.DataFrame:
    """Read a CSV as all-text columns ("" for empty cells), headers stripped."""
    text = decode(path, error)
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        fail(error, path.name, f"cannot read the CSV ({exc}); check quotes and separators")
    return clean_table(frame)


def read_table(path: Path, error: type[InputDataError]) -> pd.DataFrame:
    """Read a ``.csv`` (:func:`read_csv`) or the first sheet of an ``.xlsx`` as text cells."""
    if path.suffix.lower() == ".csv":
        return read_csv(path, error)
    try:
        frame = pd.read_excel(path, dtype=str, engine="openpyxl")
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        fail(
            error,
            path.name,
            f"cannot read the workbook ({exc}); open it in Excel and save as .xlsx",
        )
    return clean_table(frame)


def clean_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Strip headers and cells and turn missing cells into "" (all columns text)."""
    frame = frame.rename(columns=lambda c: str(c).strip())
    return frame.fillna("").astype(str).apply(lambda col: col.str.strip())


def point_xy(feature: Any) -> tuple[float, float] | str:
    """Return ``(lon, lat)`` of a GeoJSON Point feature, or a description of what is wrong."""
    if not isinstance(feature, dict):
        return 'is not a GeoJSON Feature object; each feature must be {"type": "Feature", ...}'
    geometry = feature.get("geometry")
    if not isinstance(geometry, dict):
        return "has no geometry; give it a Point geometry"
    if geometry.get("type") != "Point":
        return (
            f"geometry is a {geometry.get('type')!r}, not a Point; "
            "use one Point per facility/village"
        )
    coords = geometry.get("coordinates")
    if not isinstance(coords, list | tuple) or len(coords) < 2:
        return f"Point coordinates {coords!r} are not [lon, lat]; write [lon, lat]"
    lon, lat = coords[0], coords[1]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lon, lat)):
        return f"Point coordinates [{lon!r}, {lat!r}] are not numbers; write decimal degrees"
    return float(lon), float(lat)


def as_text(value: Any) -> str:
    """A cell or JSON value as stripped text: missing -> "", 3.0 -> "3" (codes stay exact)."""
    if value is None or value is pd.NA or (isinstance(value, float) and not np.isfinite(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def to_numbers(values: pd.Series) -> np.ndarray:
    """Parse text cells to floats; empty or unparsable cells become NaN."""
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def coordinate_problems(
    lon: np.ndarray,
    lat: np.ndarray,
    where: Sequence[str],
    bounds: Area | Bounds | None,
    hint: str,
    raw: Sequence[tuple[str, str]] | None = None,
) -> list[Problem]:
    """Problems for non-finite coordinates and, unless ``bounds`` is None, points outside it.

    Parameters
    ----------
    lon, lat
        WGS84 degrees, one per row.
    where
        How to name each row in a message (``row 5``, ``feature 3 (id 'X')``).
    bounds
        The :class:`Area` (or a bare ``(min_lon, min_lat, max_lon, max_lat)``)
        points must lie in; ``None`` skips the region check.
    hint
        What to do about out-of-region points (e.g. which ``--crs`` to use);
        the area's own hint follows it.
    raw
        The cells as the user typed them, shown when they are not numbers.
    """
    area = as_area(bounds)
    problems = []
    for i, (x, y) in enumerate(zip(lon, lat, strict=True)):
        if not (np.isfinite(x) and np.isfinite(y)):
            shown = f"({raw[i][0]!r}, {raw[i][1]!r})" if raw is not None else f"({x}, {y})"
            problems.append(
                Problem(
                    i,
                    where[i],
                    f"longitude/latitude {shown} are missing or not numbers; "
                    "fill in both in decimal degrees",
                )
            )
            continue
        if area is None:
            continue
        min_lon, min_lat, max_lon, max_lat = area.bounds
        if min_lon <= x <= max_lon and min_lat <= y <= max_lat:
            continue
        if min_lon <= y <= max_lon and min_lat <= x <= max_lat:
            todo = "longitude and latitude look swapped; swap the two columns"
        else:
            todo = f"{hint}; {area.hint}" if area.hint else hint
        problems.append(
            Problem(
                i,
                where[i],
                f"point ({x}, {y}) is outside {area.name} ({describe_bounds(area.bounds)}); {todo}",
            )
        )
    return problems


def duplicate_problems(
    values: Iterable[str], where: Sequence[str], label: str, todo: str
) -> list[Problem]:
    """Problems for every repeated non-empty value, naming the row it repeats."""
    first: dict[str, int] = {}
    problems = []
    for i, value in enumerate(values):
        if value == "":
            continue
        if value in first:
            problems.append(
                Problem(i, where[i], f"{label} {value!r} repeats {where[first[value]]}; {todo}")
            )
        else:
            first[value] = i
    return problems
