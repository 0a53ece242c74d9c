"""Request parsing for the web app: one place, 4xx JSON with a clear message.

Query parameters: one pydantic model per operation (:class:`NearbyQuery`,
:class:`SearchQuery`, ...), which is both the OpenAPI description
(:mod:`web.openapi`) and the check (:func:`parse_query`; the map page still uses
:func:`mode`, :func:`layer`, ...). JSON request bodies (:func:`json_body`: size
and nesting limits) and integer path segments (:class:`RowId`). Numbers are read
as ASCII decimal text only: Python's ``float``/``int`` would also take ``1_0``,
``١٠`` or full-width digits.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, NoReturn, TypeVar, get_args

from flask import abort, current_app, jsonify, make_response, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo
from pydantic_core import PydanticCustomError, core_schema
from werkzeug.routing import BaseConverter

from geo._validate import MAX_JSON_DEPTH, JSONShapeError, loads_json
from geo.models import TRADE_MAX, TRADE_SEPARATORS, Level
from geo.settings import LAYERS, MODES

from . import get_study

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


def trade() -> str | None:
    value = request.args.get("trade") or None
    if value is not None and value not in get_study().trades:
        bad_request(f"unknown trade {value!r}; known: {'、'.join(get_study().trades)}")
    return value


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


# --------------------------------------------------------------- query models


@dataclass(frozen=True, eq=False)
class Checked:
    """Pydantic metadata: ``check`` validates the raw text, ``schema`` documents it
    (``Annotated[float, Checked(...)]``)."""

    check: Callable[[Any, ValidationInfo], Any]
    schema: Mapping[str, Any]

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        return core_schema.with_info_plain_validator_function(self.check)

    def __get_pydantic_json_schema__(self, core: Any, handler: Any) -> dict[str, Any]:
        return dict(self.schema)


def _refuse(message: str) -> NoReturn:
    raise PydanticCustomError("skillcircle", "{message}", {"message": message})


Bounds = Callable[[], tuple[float, float]]


def _study_bounds(what: str) -> Bounds:
    """Bounds read from the served study when a request is checked."""

    def bounds() -> tuple[float, float]:
        settings = get_study().settings
        if what == "max_minutes":
            return 1.0, float(settings.max_minutes)
        min_lon, min_lat, max_lon, max_lat = settings.region.bounds
        return (min_lon, max_lon) if what == "lon" else (min_lat, max_lat)

    return bounds


def decimal(low: float | str, high: float | None = None) -> Checked:
    """A decimal number in ASCII (:data:`DECIMAL`) from ``low`` to ``high``; ``low`` may
    name study bounds instead (``lon``, ``lat``, ``max_minutes``: 1 to the largest minutes),
    filled into the document per app (``x-skillcircle``)."""
    bounds: Bounds = (
        _study_bounds(low) if isinstance(low, str) else lambda: (float(low), float(high or 0))
    )

    def check(value: Any, info: ValidationInfo) -> float:
        name, raw = info.field_name, str(value)
        if not DECIMAL.fullmatch(raw):
            _refuse(f"{name} must be a decimal number such as 120.75; got {raw[:40]!r}")
        number, (lo, hi) = float(raw), bounds()
        if not math.isfinite(number) or not lo <= number <= hi:
            _refuse(f"{name} must be between {lo:g} and {hi:g}; got {raw[:40]}")
        return number

    schema: dict[str, Any] = {"type": "number"}
    if isinstance(low, str):
        schema["x-skillcircle"] = low
        if low == "max_minutes":
            schema["minimum"] = 1
    else:
        schema |= {"minimum": low, "maximum": high}
    return Checked(check, schema)


def whole(low: int, high: int) -> Checked:
    """A whole number in ASCII digits (:data:`WHOLE`) from ``low`` to ``high``."""

    def check(value: Any, info: ValidationInfo) -> int:
        raw = str(value)
        if not WHOLE.fullmatch(raw) or not low <= int(raw) <= high:
            _refuse(
                f"{info.field_name} must be a whole number from {low} to {high}; got {raw[:40]!r}"
            )
        return int(raw)

    schema = {"type": "integer", "minimum": low, "maximum": high}
    return Checked(check, schema)


def choice_of(values: Callable[[], tuple[str, ...]] | tuple[str, ...], mark: str = "") -> Checked:
    """One of ``values`` (or of what the callable gives when a request is checked)."""

    def check(value: Any, info: ValidationInfo) -> str:
        allowed = values() if callable(values) else values
        if value not in allowed:
            name = info.field_name
            _refuse(f"{name} must be one of {', '.join(allowed)}; got {str(value)[:40]!r}")
        return str(value)

    schema: dict[str, Any] = {"type": "string"}
    if mark:
        schema["x-skillcircle"] = mark
    else:
        schema["enum"] = list(values)  # type: ignore[arg-type]
    return Checked(check, schema)


def _pattern(regex: str, says: str, max_length: int | None = None) -> Checked:
    compiled = re.compile(regex)

    def check(value: Any, info: ValidationInfo) -> str:
        if not compiled.fullmatch(str(value)):
            _refuse(f"{info.field_name} must be {says}; got {str(value)[:40]!r}")
        return str(value)

    schema: dict[str, Any] = {"type": "string", "pattern": f"^{regex}$"}
    if max_length:
        schema["maxLength"] = max_length
    return Checked(check, schema)


def words(max_length: int) -> Checked:
    """Free text of at most ``max_length`` characters (spaces around it ignored)."""

    def check(value: Any, info: ValidationInfo) -> str:
        text = str(value).strip()
        if len(text) > max_length:
            _refuse(f"{info.field_name} must be at most {max_length} characters")
        return text

    return Checked(check, {"type": "string", "maxLength": max_length})


def _boolean(value: Any, info: ValidationInfo) -> bool:
    if str(value).lower() in ("true", "1", "yes"):
        return True
    if str(value).lower() in ("false", "0", "no"):
        return False
    _refuse(f"{info.field_name} must be true or false; got {str(value)[:40]!r}")


def _known_trade(value: Any, info: ValidationInfo) -> str:
    trades = get_study().trades
    if value not in trades:
        _refuse(f"unknown trade {str(value)[:40]!r}; known: {'、'.join(trades)}")
    return str(value)


def _any_trade(value: Any, info: ValidationInfo) -> str:
    text = str(value).strip()
    if len(text) > TRADE_MAX or TRADE_SEPARATORS.search(text):
        _refuse(f"{info.field_name} must be one trade name of at most {TRADE_MAX} characters")
    return text


def _date(value: Any, info: ValidationInfo) -> str:
    raw = str(value)
    try:
        return dt.date.fromisoformat(raw).isoformat() if len(raw) == 10 else _refuse("")
    except (ValueError, PydanticCustomError):
        _refuse(f"{info.field_name} must be a date YYYY-MM-DD; got {raw[:40]!r}")


Boolean = Annotated[bool, Checked(_boolean, {"type": "boolean"})]
#: A trade somebody teaches (the served study's trades).
KnownTrade = Annotated[str, Checked(_known_trade, {"type": "string"})]
#: Any well-formed trade name (nobody may teach it yet).
AnyTrade = Annotated[
    str,
    Checked(
        _any_trade,
        {
            "type": "string",
            "maxLength": TRADE_MAX,
            "pattern": rf"^[^{TRADE_SEPARATORS.pattern[1:-2]}]*$",
        },
    ),
]
Date = Annotated[str, Checked(_date, {"type": "string", "format": "date"})]
Mode = Annotated[str, choice_of(tuple(MODES))]
Layer = Annotated[str, choice_of(tuple(LAYERS))]
County = Annotated[
    str, choice_of(lambda: tuple(get_study().settings.region.county_names), mark="county")
]
VillageArg = Annotated[str, _pattern(r"[0-9]{12}", "a 12-digit village code")]
ItemArg = Annotated[
    str, _pattern(r"(course|evaluation):[0-9]{1,18}", "course:<id> or evaluation:<id>")
]
Lon = Annotated[float, decimal("lon")]
Lat = Annotated[float, decimal("lat")]
#: Minutes from 1 to the served settings' largest minutes.
Minutes = Annotated[float, decimal("max_minutes")]
Weeks = Annotated[int, whole(1, 1040)]


def plain_optional(schema: dict[str, Any]) -> None:
    """Optional query parameters are documented as their type (a query has no null)."""
    for prop in schema.get("properties", {}).values():
        options = prop.pop("anyOf", None)
        if options is not None:
            prop.update(next(o for o in options if o != {"type": "null"}))
        if "default" in prop and prop["default"] is None:
            del prop["default"]
        prop.pop("title", None)


class Query(BaseModel):
    """Query parameters of one operation: ``""`` is absent, unknown names are ignored."""

    model_config = ConfigDict(
        extra="ignore", json_schema_extra=plain_optional, populate_by_name=True
    )


Q = TypeVar("Q", bound=Query)


def parse_query(model: type[Q], args: Mapping[str, str]) -> Q:
    """``args`` checked by ``model``; a refusal is a 400 naming the first bad parameter."""
    data = {key: args.get(key) for key in args if args.get(key) not in (None, "")}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = ".".join(str(part) for part in error["loc"])
        if error["type"] == "missing":
            bad_request(f"{name} is required")
        bad_request(error["msg"] if error["type"] == "skillcircle" else f"{name}: {error['msg']}")


class FiltersQuery(Query):
    """``/api/facilities``: facilities of a layer, county, trade."""

    layer: Layer | None = Field(None, description="设施图层 facility layer")
    county: County | None = Field(None, description="区县 county")
    trade: KnownTrade | None = Field(None, description="工种 trade, e.g. 焊工")


class VillagesQuery(Query):
    mode: Mode = Field(DEFAULT_MODE, description="出行方式 travel mode")
    county: County | None = Field(None, description="区县 county")
    covered: Boolean | None = Field(None, description="只看已覆盖/未覆盖 filter by coverage")


class NearbyQuery(Query):
    lon: Lon = Field(description="经度 WGS84")
    lat: Lat = Field(description="纬度 WGS84")
    mode: Mode = Field(DEFAULT_MODE, description="出行方式 travel mode")
    minutes: Minutes | None = Field(None, description="时间阈值（分钟）")
    layer: Layer | None = Field(None, description="设施图层 facility layer")
    trade: KnownTrade | None = Field(None, description="工种 trade, e.g. 焊工")
    limit: Annotated[int, whole(1, NEARBY_LIMIT_MAX)] = Field(20, description="最多条数")


class IsochronesQuery(Query):
    layer: Layer | None = Field(None, description="设施图层 facility layer")
    mode: Mode = Field(DEFAULT_MODE, description="出行方式 travel mode")
    minutes: Minutes | None = Field(None, description="时间阈值（分钟）")


class StatsQuery(Query):
    by: Annotated[str, choice_of(("county", "town"))] = Field("county", description="按区县/乡镇")
    mode: Mode = Field(DEFAULT_MODE, description="出行方式 travel mode")


class PlanQuery(Query):
    county: County = Field(description="区县 (one county at a time)")
    layer: Layer = Field("village_station", description="设施图层 facility layer")
    mode: Mode = Field(DEFAULT_MODE, description="出行方式 travel mode")
    minutes: Minutes | None = Field(None, description="时间阈值（分钟）")
    add: Annotated[int, whole(1, PLAN_ADD_MAX)] = Field(5, description="新增站点数")
    candidates: Annotated[str, choice_of(("villages", "towns"))] = Field(
        "villages", description="候选点"
    )
    weights: Annotated[str, choice_of(("villages", "demand"))] = Field(
        "villages",
        description="权重 villages: 1 each; demand: w = 1 + demand signals of the village "
        "(scans + searches + notify), reported in weights",
    )
    weeks: Weeks = Field(52, description="需求统计周数 demand of the last N ISO weeks")


class SearchQuery(Query):
    q: Annotated[str, words(50)] = Field("", description="关键词 words in title, trade, facility")
    trade: AnyTrade | None = Field(None, description="工种 trade (exact)")
    level: Annotated[str, choice_of(get_args(Level))] | None = Field(
        None, description="等级 (evaluations; courses naming it in their title)"
    )
    kind: Annotated[str, choice_of(("all", "course", "evaluation"))] = Field(
        "all", description="培训班/技能评价"
    )
    village: VillageArg | None = Field(None, description="出发村 12位村代码 (or lon/lat)")
    lon: Lon | None = Field(None, description="经度 WGS84")
    lat: Lat | None = Field(None, description="纬度 WGS84")
    mode: Mode = Field(DEFAULT_MODE, description="出行方式 travel mode")
    minutes: Minutes | None = Field(
        None, description="附近 only items within these minutes of the origin (default: all)"
    )
    from_: Date | None = Field(None, alias="from", description="从该日起 items ending on or after")
    limit: Annotated[int, whole(1, 200)] = Field(50, description="最多条数")


class DemandQuery(Query):
    county: County | None = Field(None, description="区县 county")
    trade: AnyTrade | None = Field(None, description="工种 trade")
    weeks: Weeks = Field(52, description="最近几周 the last N ISO weeks (this one included)")


class AuditQuery(Query):
    limit: Annotated[int, whole(1, 1000)] = Field(100, description="条数")


class UploadQuery(Query):
    dry_run: Boolean = Field(
        False,
        description="预览 true: check every row and answer the preview, write nothing "
        "(status 200 with problems)",
    )


class RegistrantsQuery(Query):
    item: ItemArg | None = Field(None, description="只看一个项目 course:<id> or evaluation:<id>")


class ExportQuery(Query):
    """``/export/<county>.<fmt>``: the county report's mode, minutes and trade."""

    mode: Mode = Field(DEFAULT_MODE, description="出行方式 travel mode")
    minutes: Minutes | None = Field(None, description="时间阈值（分钟）")
    trade: KnownTrade | None = Field(None, description="工种 trade")
