"""One pydantic model per entity: a facility, a course, an evaluation session, a village's result.

Everything that reads or writes one of them derives from the model here: the
facility columns and their order (:data:`FACILITY_COLUMNS`), the loaders and
registry imports (:mod:`geo.facilities`), the web store's tables and reads, the
admin API's request bodies (:func:`body_model`, PATCH bodies with every field
optional) and the GeoJSON/CSV/XLSX writers. So whatever an upload or an import
accepts can be edited with a PATCH afterwards, and the other way round.

Rules for text, the same on every path (those the admin API's PATCH has
enforced all along, so nothing it accepted is refused now, plus what a file
needs to be read back unchanged):

* surrounding whitespace is stripped;
* names and titles 1-100 characters, trades 1-30, other text at most 200,
  web addresses at most 500 (``http(s)://`` only);
* a phone is 3-30 digits, spaces and ``+ - ( )``: one number, never a formula
  such as ``=HYPERLINK(...)``;
* no control characters (a note may hold line breaks): an XLSX cell cannot hold them;
* no separator (``、 , ; /`` or a space) inside one trade: a trades cell is split on them.

Text that a spreadsheet would run as a formula (a name ``=HYPERLINK(...)``) is
data: it is kept, escaped on pages and written as text by :mod:`geo.export`.
Facility ids follow :data:`FACILITY_ID_PATTERN` (:func:`facility_id_problem`).

Records stored before a rule existed (an unsafe id, a 300-character name) are
read with ``context={"stored": True, "waived": [...]}``: the rules above and the
id pattern are then noted in ``waived`` instead of refused, so the store still
serves such a record and a PATCH can fix it. Types, required fields, layers and
numbers are never waived.

:func:`validate_rows` validates many rows at once and names each problem by its
row (:class:`geo._validate.Problem`), in the words of :func:`describe`.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal, TypeVar

import numpy as np
import pandas as pd
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    create_model,
    model_validator,
)
from pydantic_core import PydanticCustomError

from geo import _validate as v
from geo.settings import LAYERS

M = TypeVar("M", bound=BaseModel)

# --------------------------------------------------------------------------- ids

#: What a facility id may be, everywhere ids are made (files, registries, the admin
#: API): 1-64 ASCII letters, digits, ``_``, ``.`` and ``-``, starting with a letter
#: or digit, and no ``..``. So an id is one URL path segment and a file name as it
#: stands, and cannot be markup, a path (``/``, ``..``), a spreadsheet formula
#: (``= + - @``), whitespace, or a control or bidi character. Checked by
#: :func:`facility_id_problem`.
FACILITY_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_FACILITY_ID = re.compile(FACILITY_ID_PATTERN)


def facility_id_problem(fid: str) -> str | None:
    """What is wrong with a facility id, or None if it follows :data:`FACILITY_ID_PATTERN`.

    The one id check: the :class:`Facility` model (so loaders, registry imports,
    the store and the admin API) calls it.
    """
    if _FACILITY_ID.fullmatch(fid) and ".." not in fid:
        return None
    return (
        f"id {_shown(fid)} is not a safe id; use 1-64 letters A-Z/a-z, digits, '_', '.' or '-' "
        "(no '..'), starting with a letter or digit (e.g. TI-330402-001), or leave it empty "
        "to have one made"
    )


# --------------------------------------------------------------------------- text rules

#: Longest name or title, trade, other text and web address (characters).
NAME_MAX, TRADE_MAX, TEXT_MAX, URL_MAX = 100, 30, 200, 500
#: Most trades one facility may list.
MAX_TRADES = 50
#: Largest capacity (trainees per year) a facility may declare.
MAX_CAPACITY = 1_000_000
#: Most seats of a course or evaluation session.
MAX_SEATS = 100_000
#: Highest fee of a course, yuan.
MAX_FEE = 1_000_000

#: What splits a trades cell (``电工、焊工``) into trades; a trade holds none of them.
TRADE_SEPARATORS = re.compile(r"[、,，;；/\s]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc
_PHONE = re.compile(r"[0-9+\-() ]{3,30}")
_URL = re.compile(r"https?://[^\s<>\"']+")


def _shown(value: Any, limit: int = 40) -> str:
    """``repr`` of a value, cut to ``limit`` characters (a 300-character name stays readable)."""
    if isinstance(value, str) and len(value) > limit:
        return repr(value[:limit] + "…")
    return repr(value)


def text_problem(field: str, value: str, max_length: int, *, lines: bool = False) -> str | None:
    """What is wrong with a (stripped) text value, or None: its length or a control
    character (``lines`` allows line breaks)."""
    if len(value) > max_length:
        return (
            f"{field} has {len(value)} characters ({_shown(value, 20)}); at most {max_length} "
            "are allowed, shorten it"
        )
    if value.isprintable():  # the common case, checked in C
        return None
    for match in _CONTROL.finditer(value):
        if lines and match.group() == "\n":
            continue
        return (
            f"{field} {_shown(value)} holds the control character U+{ord(match.group()):04X}; "
            "retype the text without it"
        )
    return None


def _refuse(info: ValidationInfo, kind: str, message: str) -> None:
    """Refuse a value, or note the problem if a stored record is being read."""
    context = info.context if isinstance(info.context, dict) else {}
    waived = context.get("waived")
    if context.get("stored") and isinstance(waived, list):
        waived.append(message)
        return
    raise PydanticCustomError(kind, "{message}", {"message": message})


def _fail(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, "{message}", {"message": message})


#: Surrounding whitespace is stripped from every text field (in pydantic's core).
_STRIP = StringConstraints(strip_whitespace=True)


def _lines(value: Any) -> Any:
    """A note's Windows line breaks as ``\\n``."""
    return value.replace("\r\n", "\n") if isinstance(value, str) else value


def _noun(info: ValidationInfo) -> str:
    return _NOUNS.get(str((info.config or {}).get("title", "")), "record")


def _text(max_length: int, *, required: bool = False, lines: bool = False) -> Any:
    def check(value: str, info: ValidationInfo) -> str:
        if (value or not required) and len(value) <= max_length and value.isprintable():
            return value  # the common case, without a call
        field = info.field_name or "text"
        if required and not value:
            raise _fail("missing", _missing(field, _noun(info)))
        problem = text_problem(field, value, max_length, lines=lines)
        if problem:
            _refuse(info, "text", problem)
        return value

    return check


def _missing(field: str, noun: str) -> str:
    article = "an" if field[:1] in "aeiou" else "a"
    return f"{field} is missing or empty; give every {noun} {article} {field}"


def _schema(**schema: Any) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", **schema})


#: Text of at most 200 characters (may be empty).
Text = Annotated[str, _STRIP, AfterValidator(_text(TEXT_MAX)), _schema(maxLength=TEXT_MAX)]
#: A note: like :data:`Text`, line breaks allowed.
Note = Annotated[
    str,
    BeforeValidator(_lines),
    _STRIP,
    AfterValidator(_text(TEXT_MAX, lines=True)),
    _schema(maxLength=TEXT_MAX),
]
#: A name or title: 1-100 characters.
Name = Annotated[
    str,
    _STRIP,
    AfterValidator(_text(NAME_MAX, required=True)),
    _schema(minLength=1, maxLength=NAME_MAX),
]


def _check_trade(value: str, info: ValidationInfo) -> str:
    if not value:
        raise _fail("missing", _missing("trade", _noun(info)))
    problem = text_problem("trade", value, TRADE_MAX)
    if problem is None and TRADE_SEPARATORS.search(value):
        problem = (
            f"trade {_shown(value)} holds a separator (、 , ; / or a space); "
            "give one trade per item"
        )
    if problem:
        _refuse(info, "text", problem)
    return value


#: One trade (工种): 1-30 characters, no separators inside.
Trade = Annotated[
    str,
    _STRIP,
    AfterValidator(_check_trade),
    _schema(minLength=1, maxLength=TRADE_MAX, pattern=r"^[^、,，;；/\s]+$"),
]


def _check_phone(value: str, info: ValidationInfo, required: bool = False) -> str:
    if (value or required) and not _PHONE.fullmatch(value):
        _refuse(
            info,
            "phone",
            f"{info.field_name or 'phone'} {_shown(value)} is not a phone number; use 3-30 "
            "digits, spaces and + - ( ), one number only",
        )
    return value


_PHONE_SCHEMA = r"^[0-9+\-() ]{3,30}$"
#: A phone number, or empty.
FacilityPhone = Annotated[
    str,
    _STRIP,
    AfterValidator(_check_phone),
    _schema(pattern=r"^$|" + _PHONE_SCHEMA, maxLength=30),
]
#: A phone number (not empty).
Phone = Annotated[
    str,
    _STRIP,
    AfterValidator(lambda value, info: _check_phone(value, info, required=True)),
    _schema(pattern=_PHONE_SCHEMA, maxLength=30),
]


def _check_url(value: str, info: ValidationInfo) -> str:
    field = info.field_name or "url"
    if len(value) > URL_MAX or not _URL.fullmatch(value):
        _refuse(
            info,
            "url",
            f"{field} {_shown(value)} is not a web address; write http:// or https:// and "
            f"the address, at most {URL_MAX} characters",
        )
    return value


#: A web address (``http(s)://``, no spaces or quotes), at most 500 characters.
Url = Annotated[
    str,
    _STRIP,
    AfterValidator(_check_url),
    _schema(maxLength=URL_MAX, pattern=r"^https?://[^\s<>\"']+$"),
]


def _check_id(value: str, info: ValidationInfo) -> str:
    if not value:
        context = info.context if isinstance(info.context, dict) else {}
        if context.get("id_optional"):
            return value  # made when the record is stored
        raise _fail("missing", _missing("id", _noun(info)))
    problem = facility_id_problem(value)
    if problem:
        _refuse(info, "facility_id", problem)
    return value


#: A facility id (:data:`FACILITY_ID_PATTERN`).
FacilityId = Annotated[
    str,
    _STRIP,
    AfterValidator(_check_id),
    _schema(pattern=FACILITY_ID_PATTERN, maxLength=64),
]


def _check_layer(value: str, info: ValidationInfo) -> str:
    if not value:
        raise _fail("missing", _missing("layer", _noun(info)))
    if value not in LAYERS:
        raise _fail("layer", f"unknown layer {_shown(value)}; use one of {', '.join(LAYERS)}")
    return value


#: One of the layer keys of :data:`geo.settings.LAYERS`.
LayerKey = Annotated[str, _STRIP, AfterValidator(_check_layer), _schema(enum=list(LAYERS))]


def split_trades(value: Any) -> list[str]:
    """Split a trades cell (``"电工、焊工"``, a list, or empty) into distinct trade names."""
    if isinstance(value, list | tuple | np.ndarray):
        parts = [v.as_text(x) if not isinstance(x, str) else x.strip() for x in value]
    else:
        parts = TRADE_SEPARATORS.split(v.as_text(value))
    return list(dict.fromkeys(p for p in parts if p))


def _trade_list(value: Any) -> Any:
    """A list of trades without repeats; a file's text cell is split by the reader first
    (:func:`split_trades`), a request body must send a list."""
    if value is None:
        return []
    if isinstance(value, list | tuple | np.ndarray):
        if all(isinstance(x, str) for x in value):
            return list(dict.fromkeys(x.strip() for x in value))
        return list(value)  # the item check names the one that is not text
    raise _fail(
        "trades",
        f'trades {_shown(value)} is not a list of names; write e.g. ["电工", "焊工"]',
    )


def _max_trades(value: list[str]) -> list[str]:
    if len(value) > MAX_TRADES:
        raise _fail(
            "trades", f"trades lists {len(value)} trades; at most {MAX_TRADES}, keep the main ones"
        )
    return value


#: The trades a facility teaches: a list of distinct trades (a file's cell
#: ``电工、焊工`` is split with :func:`split_trades` before).
Trades = Annotated[
    list[Trade],
    BeforeValidator(_trade_list),
    AfterValidator(_max_trades),
    WithJsonSchema(
        {
            "type": "array",
            "maxItems": MAX_TRADES,
            "items": {"type": "string", "minLength": 1, "maxLength": TRADE_MAX},
        }
    ),
]


def _capacity(value: Any) -> int | None:
    """Parse a capacity: None if empty, a whole number 0..MAX_CAPACITY, else refuse."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, str) and not value.strip():
        return None
    number = math.nan
    if not isinstance(value, bool | np.bool_):
        with contextlib.suppress(TypeError, ValueError, OverflowError):
            number = float(value)
    if not (math.isfinite(number) and number.is_integer() and 0 <= number <= MAX_CAPACITY):
        raise _fail(
            "capacity",
            f"capacity {_shown(value)} is not a whole number from 0 to {MAX_CAPACITY:,}; "
            "write the trainees per year or leave it empty",
        )
    return int(number)


#: Trainees per year, or None (unknown).
Capacity = Annotated[
    Annotated[int, Field(ge=0, le=MAX_CAPACITY)] | None, BeforeValidator(_capacity)
]


def _flag(value: Any) -> bool:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    raise _fail("flag", f"is_sample {_shown(value)} is not true/false; write true or false")


#: A strict true/false (``"yes"`` or 1 are refused).
Flag = Annotated[bool, BeforeValidator(_flag), WithJsonSchema({"type": "boolean"})]
Longitude = Annotated[float, Field(ge=-180, le=180)]
Latitude = Annotated[float, Field(ge=-90, le=90)]
Seats = Annotated[int, Field(ge=0, le=MAX_SEATS)]
Fee = Annotated[float, Field(ge=0, le=MAX_FEE)]
Minutes = Annotated[float, Field(ge=0)]
#: Levels of a skill-evaluation session (技能等级认定).
Level = Literal["初级", "中级", "高级", "技师"]


# --------------------------------------------------------------------------- models


class Entity(BaseModel):
    """Base of the entity models: unknown keys are ignored, NaN and infinity refused."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class Facility(Entity):
    """A training facility: a WGS84 point with its properties.

    The field order is the column order of every facility file and table
    (:data:`FACILITY_COLUMNS`, then ``lon``/``lat``). Empty ``layer_name``
    becomes the layer's Chinese label, empty ``source`` and ``location_quality``
    become ``user_supplied``.
    """

    model_config = ConfigDict(title="Facility")

    id: FacilityId = Field(
        description="Letters, digits, '_', '.', '-' (no '..'), starting with a letter or "
        "digit, at most 64, e.g. TI-330402-001.",
        title="编号",
    )
    layer: LayerKey = Field(description="Facility layer (设施图层).", title="图层")
    layer_name: Text = Field("", description="The layer's Chinese label.", title="类别")
    name: Name = Field(title="名称")
    county: Text = Field("", title="区县")
    town: Text = Field("", title="乡镇")
    town_code: Text = Field("", title="乡镇代码")
    address: Text = Field("", title="地址")
    phone: FacilityPhone = Field("", title="电话")
    trades: Trades = Field(default_factory=list, title="工种")
    capacity: Capacity = Field(None, description="Trainees per year.", title="培训能力")
    source: Text = Field("user_supplied", title="来源")
    is_sample: Flag = Field(False, description="Sample data, not a real facility.", title="样例")
    location_quality: Text = Field("user_supplied", title="定位")
    note: Note = Field("", title="备注")
    lon: Longitude = Field(description="WGS84 longitude.", title="经度")
    lat: Latitude = Field(description="WGS84 latitude.", title="纬度")

    @model_validator(mode="after")
    def _defaults(self) -> Facility:
        values = self.__dict__  # not setattr: this runs once per row of a 50,000-row upload
        if not self.layer_name:
            values["layer_name"] = LAYERS[self.layer]
        if not self.source:
            values["source"] = "user_supplied"
        if not self.location_quality:
            values["location_quality"] = "user_supplied"
        return self


class Course(Entity):
    """A course (培训班) at a facility, with registration details."""

    model_config = ConfigDict(title="Course")

    title: Name = Field(title="名称")
    trade: Trade = Field(title="工种")
    start_date: dt.date = Field(title="开班日期")
    end_date: dt.date | None = Field(None, title="结业日期")
    seats: Seats = Field(title="名额")
    fee: Fee | None = Field(None, description="Yuan; 0 for free.", title="费用")
    subsidy_note: Text | None = Field(None, title="补贴说明")
    register_url: Url | None = Field(None, title="报名网址")
    register_phone: Phone | None = Field(None, title="报名电话")

    @model_validator(mode="after")
    def _dates(self) -> Course:
        if self.end_date is not None and self.end_date < self.start_date:
            raise _fail(
                "dates",
                f"end_date {self.end_date} is before start_date {self.start_date}; check the dates",
            )
        return self


class EvaluationSession(Entity):
    """A skill-evaluation session (技能等级认定) at a facility."""

    model_config = ConfigDict(title="EvaluationSession")

    trade: Trade = Field(title="工种")
    level: Level = Field(title="等级")
    date: dt.date = Field(title="日期")
    place: Text | None = Field(None, title="地点")
    seats: Seats | None = Field(None, title="名额")


#: A mainland China mobile number (11 digits, 1[3-9]...): the only phone a worker
#: registers with (the facility calls or texts it).
MOBILE_PATTERN = r"^1[3-9][0-9]{9}$"
_MOBILE = re.compile(MOBILE_PATTERN)
#: Separators people type inside a mobile number (``138 1234-5678``) and a country prefix.
_MOBILE_NOISE = re.compile(r"[\s\-()（）]")
#: Longest personal name (characters): enough for any Chinese or transliterated name.
PERSON_NAME_MAX = 30


def normalise_mobile(value: Any) -> Any:
    """``+86 138-1234-5678`` -> ``13812345678`` (text only; anything else is left as it is)."""
    if not isinstance(value, str):
        return value
    digits = _MOBILE_NOISE.sub("", value.strip())
    for prefix in ("+86", "0086", "86"):
        if digits.startswith(prefix) and len(digits) == len(prefix) + 11:
            return digits[len(prefix) :]
    return digits


def _check_mobile(value: str, info: ValidationInfo) -> str:
    if not _MOBILE.fullmatch(value):
        raise _fail(
            "mobile",
            f"{info.field_name or 'phone'} {_shown(value)} is not a mainland mobile number; "
            "write the 11 digits, e.g. 13812345678 / 请填写11位手机号",
        )
    return value


#: A mainland mobile number (:data:`MOBILE_PATTERN`), spaces, dashes and +86 removed first.
Mobile = Annotated[
    str,
    BeforeValidator(normalise_mobile),
    AfterValidator(_check_mobile),
    _schema(pattern=MOBILE_PATTERN, minLength=11, maxLength=11),
]
#: A person's name: 1-30 characters, no control characters.
PersonName = Annotated[
    str,
    _STRIP,
    AfterValidator(_text(PERSON_NAME_MAX, required=True)),
    _schema(minLength=1, maxLength=PERSON_NAME_MAX),
]
#: What one can register for: a course (courses table) or an evaluation session.
ItemKind = Literal["course", "evaluation"]
RowNumber = Annotated[int, Field(ge=1, le=2**63 - 1)]


class Registration(Entity):
    """A worker's registration (报名) for a course or an evaluation session.

    Only what the facility needs to admit the worker is kept (China's PIPL:
    minimum necessary): name, mobile number, when consent was given and to which
    consent text (its version). No address, no ID number, no IP address. The
    store deletes name and phone on withdrawal, with the item, and
    ``REGISTRATION_RETENTION_DAYS`` after the item ends; the anonymous row stays
    (counts).
    """

    model_config = ConfigDict(title="Registration")

    kind: ItemKind = Field(description="course 培训班 or evaluation 技能等级认定.", title="类型")
    item_id: RowNumber = Field(description="The course's or session's id.", title="项目编号")
    name: PersonName = Field(title="姓名")
    phone: Mobile = Field(description="Mainland mobile number, 11 digits.", title="手机")
    consent_at: dt.datetime = Field(description="When consent was given (UTC).", title="同意时间")
    consent_version: Text = Field(
        description="Version of the consent text shown.", title="同意书版本"
    )
    attended: bool = Field(False, description="Marked by the facility's staff.", title="出勤")


#: Anonymous demand signals (培训需求): a 技能码 scan of a village's page, a search for a
#: trade, a "notify me" for a trade.
DemandKind = Literal["scan", "search", "notify"]
#: A village's 12-digit statistical code, or empty (not known).
VillageCode = Annotated[
    str, _STRIP, Field(pattern=r"^(?:[0-9]{12})?$"), _schema(pattern=r"^(?:[0-9]{12})?$")
]
#: An ISO week, ``2026-W07``.
IsoWeek = Annotated[str, Field(pattern=r"^[0-9]{4}-W[0-9]{2}$")]


def _optional_trade(value: Any) -> Any:
    return "" if value is None else value


def _check_optional_trade(value: str, info: ValidationInfo) -> str:
    return value if value == "" else _check_trade(value, info)


#: A trade, or empty (a scan has none).
OptionalTrade = Annotated[
    str,
    BeforeValidator(_optional_trade),
    _STRIP,
    AfterValidator(_check_optional_trade),
    _schema(maxLength=TRADE_MAX, pattern=r"^[^、,，;；/\s]*$"),
]


class DemandSignal(Entity):
    """Demand signals of one kind for one village and trade in one ISO week: a counter.

    No personal data and no IP address: only how many. ``village_code`` is
    empty when the signal came without a village (a search from /q/here),
    ``trade`` empty for scans.
    """

    model_config = ConfigDict(title="DemandSignal")

    village_code: VillageCode = Field("", title="村代码")
    trade: OptionalTrade = Field("", title="工种")
    kind: DemandKind = Field(title="类型")
    week: IsoWeek = Field(title="周")
    signals: Annotated[int, Field(ge=0)] = Field(1, title="次数")


#: The first columns of a village result, before the per-layer ones.
VILLAGE_KEYS = (
    "village_code",
    "village_name",
    "town",
    "county",
    "lon",
    "lat",
    "location_quality",
)


def _village_result() -> type[Entity]:
    fields: dict[str, Any] = {
        "village_code": (str, Field(title="村代码")),
        "village_name": (str, Field(title="村")),
        "town": (str, Field(title="乡镇")),
        "county": (str, Field(title="区县")),
        "lon": (Longitude, Field(title="经度")),
        "lat": (Latitude, Field(title="纬度")),
        "location_quality": (str, Field(title="定位")),
    }
    for layer, label in LAYERS.items():
        fields[f"{layer}_minutes"] = (
            Minutes | None,
            Field(None, description="None: unreachable.", title=f"{label}分钟"),
        )
        fields[f"{layer}_facility_id"] = (
            str,
            Field("", description="'' if unreachable.", title=f"{label}最近"),
        )
    fields |= {
        "any_minutes": (Minutes | None, Field(None, title="最近设施分钟")),
        "covered": (bool, Field(title="已覆盖")),
        "nearest_road_m": (float, Field(ge=0, title="距道路米")),
        "far_from_road": (bool, Field(title="远离道路")),
    }
    return create_model(  # type: ignore[no-any-return, call-overload]
        "VillageResult",
        __base__=Entity,
        __doc__=(
            "One village's row of a coverage table (the CLI contract): minutes to and "
            "id of the nearest facility of every layer, any layer, coverage flag."
        ),
        **fields,
    )


#: One village's row of a coverage table (:func:`geo.coverage.coverage_table`):
#: :data:`VILLAGE_KEYS`, ``<layer>_minutes`` and ``<layer>_facility_id`` per layer,
#: ``any_minutes``, ``covered``, ``nearest_road_m``, ``far_from_road``.
VillageResult = _village_result()

_NOUNS = {
    "Facility": "facility",
    "FacilityBody": "facility",
    "FacilityPatch": "facility",
    "Course": "course",
    "CourseBody": "course",
    "CoursePatch": "course",
    "EvaluationSession": "session",
    "EvaluationBody": "session",
    "EvaluationPatch": "session",
    "VillageResult": "village",
    "Registration": "registration",
    "RegistrationBody": "registration",
    "DemandSignal": "signal",
    "DemandBody": "signal",
}

#: Properties of every facility, in this order (then the point): the fields of
#: :class:`Facility` without ``lon``/``lat``.
FACILITY_COLUMNS: tuple[str, ...] = tuple(
    f for f in Facility.model_fields if f not in ("lon", "lat")
)
#: Facility fields shown on cards, pages and the public API (the town code is internal).
FACILITY_FIELDS: tuple[str, ...] = tuple(c for c in FACILITY_COLUMNS if c != "town_code")


def labels(model: type[BaseModel]) -> dict[str, str]:
    """Field -> Chinese header (the field's title) for CSV/XLSX written for people."""
    return {name: info.title or name for name, info in model.model_fields.items()}


# --------------------------------------------------------------------------- derived bodies


def body_model(
    model: type[BaseModel],
    name: str,
    *,
    fields: Sequence[str] | None = None,
    optional: Iterable[str] = (),
    extra: Mapping[str, tuple[Any, Any]] | None = None,
    partial: bool = False,
    doc: str | None = None,
) -> Any:
    """A request body derived from ``model``: unknown fields are refused (``extra="forbid"``).

    Returns a pydantic model class, built at run time (so typed ``Any``).

    Parameters
    ----------
    model
        The entity model whose field types (with all their rules) the body takes.
    name
        Class name (also the OpenAPI schema name).
    fields
        The fields a client may send, in order (default: all of ``model``).
    optional
        Fields made optional with default None (e.g. a POST's ``id``: omitted, one is made).
    extra
        More fields, ``name -> (type, Field(...))`` (e.g. the ``crs`` of coordinates).
    partial
        Every field optional, default None: a PATCH body. Only the fields sent are
        changed (``model_dump(exclude_unset=True)``); the merged record is then
        validated by the full body, so a PATCH can never leave a record a POST
        would refuse.
    doc
        The docstring (OpenAPI description).
    """
    optional = set(optional)
    definitions: dict[str, Any] = {}
    for field in fields or list(model.model_fields):
        info = model.model_fields[field]
        annotation = (
            Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        )
        if partial or field in optional:
            definitions[field] = (
                annotation | None,  # type: ignore[operator]
                Field(None, description=info.description, title=info.title),
            )
        else:
            definitions[field] = (info.annotation, copy.copy(info))
    for field, definition in (extra or {}).items():
        definitions[field] = (
            (definition[0] | None, Field(None, description=definition[1].description))
            if partial
            else definition
        )
    base = type(
        f"_{name}Base",
        (BaseModel,),
        {"model_config": ConfigDict(extra="forbid", allow_inf_nan=False, title=name)},
    )
    return create_model(name, __base__=base, __doc__=doc or model.__doc__, **definitions)  # type: ignore[no-any-return, call-overload]


# --------------------------------------------------------------------------- problems


def describe(error: Mapping[str, Any], noun: str = "record") -> str:
    """One pydantic error in the project's words: ``<field> <value>: what; what to do``."""
    kind = str(error.get("type", ""))
    loc = error.get("loc") or ()
    field = str(loc[0]) if loc else "record"
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if isinstance(ctx.get("message"), str):  # one of ours: already in our words
        return str(ctx["message"])
    shown = _shown(value)
    if kind == "missing":
        return _missing(field, noun)
    if kind == "extra_forbidden":
        return f"{field} is not a field of a {noun}; remove it"
    if kind in ("string_type", "string_unicode"):
        return f"{field} {shown} is not text; write it in quotes"
    if kind.startswith("int_"):
        return f"{field} {shown} is not a whole number; write digits only"
    if kind.startswith("float_") or kind == "finite_number":
        return f"{field} {shown} is not a finite number; write a decimal number"
    if kind in ("greater_than_equal", "greater_than"):
        return f"{field} {shown} is too small; it must be at least {ctx.get('ge', ctx.get('gt'))}"
    if kind in ("less_than_equal", "less_than"):
        return f"{field} {shown} is too large; it must be at most {ctx.get('le', ctx.get('lt'))}"
    if kind.startswith("date_") or kind.startswith("datetime_"):
        return f"{field} {shown} is not a date; write YYYY-MM-DD"
    if kind.startswith("bool_"):
        return f"{field} {shown} is not true/false; write true or false"
    if kind == "literal_error":
        return f"{field} {shown} is not one of {ctx.get('expected', '')}; use one of them"
    if kind == "list_type":
        return f"{field} {shown} is not a list; write [..]"
    if kind == "too_long":
        return f"{field} has too many items; at most {ctx.get('max_length')}"
    message = str(error.get("msg", "")).removeprefix("Value error, ")
    return f"{field} {shown}: {message}" if loc else message


def field_errors(exc: ValidationError, noun: str = "record") -> dict[str, str]:
    """``{"field": "message"}`` of a validation error (``"_"`` for whole-record errors)."""
    out: dict[str, str] = {}
    for error in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in error["loc"]) or "_"
        out.setdefault(loc, describe(error, noun))
    return out


def noun_of(model: type[BaseModel]) -> str:
    """What a message calls one record of ``model`` (``facility``, ``course``...)."""
    return _NOUNS.get(str(model.model_config.get("title") or model.__name__), "record")


def validate_rows(
    model: type[M],
    rows: Sequence[Mapping[str, Any]],
    where: Sequence[str],
    *,
    context: Mapping[str, Any] | None = None,
    waived: list[v.Problem] | None = None,
) -> tuple[list[M | None], list[v.Problem]]:
    """Validate every row with ``model``; problems are named by ``where[i]`` in row order.

    Parameters
    ----------
    model
        The entity model.
    rows
        Field -> value per row.
    where
        How to name each row in a message (``row 5``, ``feature 3 (id 'X')``).
    context
        Validation context (e.g. ``{"id_optional": True}``: ids may be empty).
    waived
        Read stored records: the rules in the module docstring are not enforced
        but noted here, one :class:`~geo._validate.Problem` each.

    Returns
    -------
    (items, problems)
        The validated model per row (None where it has problems) and the problems.
    """
    noun = noun_of(model)
    items: list[M | None] = []
    problems: list[v.Problem] = []
    notes: list[str] = []
    ctx: dict[str, Any] = dict(context or {})
    if waived is not None:
        ctx |= {"stored": True, "waived": notes}
    validate = model.model_validate
    for i, row in enumerate(rows):
        try:
            items.append(validate(row, context=ctx))
        except ValidationError as exc:
            items.append(None)
            problems += [v.Problem(i, where[i], describe(e, noun)) for e in exc.errors()]
        if notes and waived is not None:
            waived += [v.Problem(i, where[i], note) for note in notes]
            notes.clear()
    return items, problems


def column_problems(model: type[BaseModel], columns: Iterable[str], what: str) -> list[str]:
    """What differs between the columns of a table and ``model``'s fields (names, not order).

    Parameters
    ----------
    model
        The entity model.
    columns
        The table's columns (a store table without its own keys, a frame...).
    what
        How the message names the table (``"table courses"``).
    """
    have = list(columns)
    want = list(model.model_fields)
    out = []
    missing = [c for c in want if c not in have]
    unexpected = [c for c in have if c not in want]
    if missing:
        out.append(f"{what} lacks column(s) {', '.join(missing)} of the {model.__name__} model")
    if unexpected:
        out.append(f"{what} has column(s) {', '.join(unexpected)} the {model.__name__} model lacks")
    return out
