"""Request parsing for the web app: one place, 4xx JSON with a clear message.

Query parameters (:func:`number`, :func:`integer`, ...), JSON request bodies
(:func:`json_body`: size and nesting limits) and integer path segments
(:class:`RowId`). Numbers are read as ASCII decimal text only: Python's
``float``/``int`` would also take ``1_0``, ``١٠`` or full-width digits.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, NoReturn

from flask import abort, current_app, jsonify, make_response, request
from werkzeug.routing import BaseConverter

from geo._validate import MAX_JSON_DEPTH, JSONShapeError, loads_json
from geo.settings import LAYERS, MODES

from . import get_study

VILLAGE_CODE = re.compile(r"^\d{12}$")

#: A decimal number as the API document means it: ASCII digits, optional sign,
#: point and exponent; no ``_``, spaces, ``nan``/``inf`` or non-ASCII digits.
DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")
#: A whole number: ASCII digits only, at most 18 (below 2**63, what SQLite holds).
WHOLE = re.compile(r"[0-9]{1,18}")
#: Largest row id SQLite stores (2**63 - 1).
MAX_ROW_ID = 2**63 - 1
#: Largest JSON request body the admin API reads (config ``MAX_JSON_LENGTH``).
MAX_JSON_LENGTH = 256 * 1024


def bad_request(
    message: str, status: int = 400, error: str = "bad request", **extra: Any
) -> NoReturn:
    """Abort with ``status`` and a JSON body ``{"error": error, "message": message, **extra}``."""
    abort(make_response(jsonify(error=error, message=message, **extra), status))


def choice(name: str, allowed: tuple[str, ...], default: str) -> str:
    """A parameter that must be one of ``allowed`` (``default`` when absent)."""
    value = request.args.get(name) or default
    if value not in allowed:
        bad_request(f"{name} must be {' or '.join(allowed)}; got {value!r}")
    return value


#: The travel mode of pages and answers without ``?mode=``.
DEFAULT_MODE = "ebike"
#: Most facilities one ``/api/nearby`` answer lists (``limit=``).
NEARBY_LIMIT_MAX = 200
#: Most new sites one ``/api/plan`` places (``add=``).
PLAN_ADD_MAX = 50


def mode(default: str = DEFAULT_MODE) -> str:
    value = request.args.get("mode", default)
    if value not in MODES:
        bad_request(f"mode must be one of {', '.join(MODES)}; got {value!r}")
    return value


def layer(required: bool = False) -> str | None:
    value = request.args.get("layer") or None
    if value is None and required:
        bad_request(f"layer is required: one of {', '.join(LAYERS)}")
    if value is not None and value not in LAYERS:
        bad_request(f"layer must be one of {', '.join(LAYERS)}; got {value!r}")
    return value


def county() -> str | None:
    value = request.args.get("county") or None
    names = get_study().settings.region.county_names
    if value is not None and value not in names:
        bad_request(f"county must be one of {'、'.join(names)}; got {value!r}")
    return value


def trade() -> str | None:
    value = request.args.get("trade") or None
    if value is not None and value not in get_study().trades:
        bad_request(f"unknown trade {value!r}; known: {'、'.join(get_study().trades)}")
    return value


def number(name: str, low: float, high: float, default: float | None = None) -> float:
    raw = request.args.get(name)
    if raw is None or raw == "":
        if default is None:
            bad_request(f"{name} is required")
        return float(default)  # type: ignore[arg-type]
    if not DECIMAL.fullmatch(raw):
        bad_request(f"{name} must be a decimal number such as 120.75; got {raw[:40]!r}")
    value = float(raw)
    if not math.isfinite(value) or not (low <= value <= high):
        bad_request(f"{name} must be between {low:g} and {high:g}; got {raw}")
    return value


def integer(name: str, low: int, high: int, default: int) -> int:
    """A whole-number parameter from ``low`` to ``high`` (``default`` when absent)."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not WHOLE.fullmatch(raw) or not (low <= int(raw) <= high):
        bad_request(f"{name} must be a whole number from {low} to {high}; got {raw[:40]!r}")
    return int(raw)


def boolean(name: str) -> bool | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    bad_request(f"{name} must be true or false; got {raw!r}")
    return None


def lon_lat() -> tuple[float, float]:
    """``lon``/``lat`` inside the bounds of the study's region (:attr:`Region.bounds`)."""
    min_lon, min_lat, max_lon, max_lat = get_study().settings.region.bounds
    lon = number("lon", min_lon, max_lon)
    lat = number("lat", min_lat, max_lat)
    return lon, lat


def json_body() -> dict[str, Any]:
    """The request's JSON object: the one parser of admin request bodies.

    413 when the body is over ``MAX_JSON_LENGTH`` bytes (config); 400 when it is
    not ``application/json``, not UTF-8, broken, nested deeper than
    :data:`geo._validate.MAX_JSON_DEPTH` or holding a number too long to read,
    or not an object. Parsed without recursion limits being reached: deep
    nesting is refused before Python's parser sees it.
    """
    limit = int(current_app.config.get("MAX_JSON_LENGTH", MAX_JSON_LENGTH))

    def refuse(message: str, status: int = 400) -> NoReturn:
        bad_request(message, status, error="invalid body", fields={"_": message})

    if not request.is_json:
        refuse("send a JSON object with Content-Type: application/json")
    if request.content_length is not None and request.content_length > limit:
        refuse(f"JSON body larger than {limit // 1024} KB", 413)
    raw = request.get_data(cache=True)
    if len(raw) > limit:
        refuse(f"JSON body larger than {limit // 1024} KB", 413)
    try:
        data = loads_json(raw.decode("utf-8"), MAX_JSON_DEPTH)
    except UnicodeDecodeError as exc:
        refuse(f"the body is not UTF-8 (byte {exc.start}); send UTF-8 JSON")
    except json.JSONDecodeError as exc:
        refuse(f"broken JSON at line {exc.lineno}, column {exc.colno} ({exc.msg})")
    except JSONShapeError as exc:
        refuse(f"{exc}; send a flat JSON object")
    if not isinstance(data, dict):
        refuse(f"send a JSON object ({{...}}), not {_JSON_TYPES.get(type(data), 'that')}")
    return data


_JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number"}
_JSON_TYPES.update({bool: "true/false", type(None): "null"})


class RowId(BaseConverter):
    """``<id:item_id>``: a row id in 1-19 ASCII digits (``<int:>`` also takes ``١٢``).

    Longer numbers do not match the route (404); the view checks the range with
    :func:`row_id` (raising here would turn a 404 into werkzeug's 405).
    """

    regex = r"[0-9]{1,19}"
    weight = 50

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: Any) -> str:
        return str(int(value))


def row_id(value: int, what: str) -> int:
    """``value`` if SQLite can hold it as a row id (1 to 2**63 - 1), else 404."""
    if not 1 <= value <= MAX_ROW_ID:
        bad_request(f"no {what} {value}; ids are whole numbers from 1", 404, error="not found")
    return value
