"""Request bodies of the admin API (pydantic): validation, field errors and OpenAPI schemas.

A POST body is validated as a whole. A PATCH body is merged onto the stored
record and the result is validated by the same model, so a patch can never
leave a record that a POST would refuse (e.g. an end date before the start).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from geo.facilities import FACILITY_ID_PATTERN, MAX_CAPACITY, facility_id_problem
from geo.settings import LAYERS

#: One of the layer keys of :data:`geo.settings.LAYERS` (pydantic lists them in the schema).
LayerKey = Literal[tuple(LAYERS)]  # type: ignore[valid-type]

Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Trade = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=30)]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9+\-() ]{3,30}$")]
Url = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=500, pattern=r"^https?://[^\s<>\"']+$")
]
Level = Literal["初级", "中级", "高级", "技师"]


def _safe_id(value: str) -> str:
    problem = facility_id_problem(value)
    if problem:
        raise ValueError(problem)
    return value


#: A facility id, checked by the same code as files and registries (geo/facilities.py).
FacilityId = Annotated[
    str,
    AfterValidator(_safe_id),
    WithJsonSchema({"type": "string", "pattern": FACILITY_ID_PATTERN, "maxLength": 64}),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class FacilityBody(_Body):
    """A facility as an admin writes it; coordinates in ``crs`` (converted to WGS84)."""

    id: FacilityId | None = Field(
        None,
        description="Omit to have one generated, e.g. TI-330402-A001. Letters, digits, "
        "'_', '.', '-' (no '..'), starting with a letter or digit, at most 64.",
    )
    layer: LayerKey
    name: Name
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    crs: Literal["wgs84", "gcj02", "bd09"] = Field(
        "wgs84", description="Coordinates as copied from 高德/腾讯 are gcj02, from 百度 bd09."
    )
    town: Text = ""
    address: Text = ""
    phone: Phone | Literal[""] = ""
    trades: list[Trade] = Field(default_factory=list, max_length=50)
    capacity: int | None = Field(None, ge=0, le=MAX_CAPACITY, description="Trainees per year.")
    note: Text = ""
    is_sample: bool = False


class CourseBody(_Body):
    """A course (培训班) with registration details."""

    title: Name
    trade: Trade
    start_date: dt.date
    end_date: dt.date | None = None
    seats: int = Field(ge=0, le=100_000)
    fee: float | None = Field(None, ge=0, le=1_000_000, description="Yuan; 0 for free.")
    subsidy_note: Text | None = None
    register_url: Url | None = None
    register_phone: Phone | None = None

    @model_validator(mode="after")
    def _dates(self) -> CourseBody:
        if self.end_date is not None and self.end_date < self.start_date:
            raise ValueError("end_date is before start_date")
        return self


class EvaluationBody(_Body):
    """A skill-evaluation session (技能等级认定)."""

    trade: Trade
    level: Level
    date: dt.date
    place: Text | None = None
    seats: int | None = Field(None, ge=0, le=100_000)


BODIES: dict[str, type[_Body]] = {
    "facility": FacilityBody,
    "courses": CourseBody,
    "evaluations": EvaluationBody,
}


def field_errors(exc: ValidationError) -> dict[str, str]:
    """``{"field": "message"}`` for a 400 body (``"_"`` for whole-record errors)."""
    out: dict[str, str] = {}
    for error in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in error["loc"]) or "_"
        out.setdefault(loc, error["msg"])
    return out


def as_stored(model: BaseModel) -> dict[str, Any]:
    """Model values with dates as ISO text (what SQLite and JSON hold)."""
    return model.model_dump(mode="json")
