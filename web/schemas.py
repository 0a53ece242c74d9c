"""Request bodies of the admin API, derived from the entity models of :mod:`geo.models`.

A POST body has the fields a client may set, with the model's own rules, and
refuses unknown fields. A PATCH body is the same with every field optional: it
is checked first (types, unknown fields), then merged onto the stored record,
and the merge is validated by the POST body, so a patch can never leave a
record that a POST would refuse (e.g. an end date before the start). Field
errors are worded by :func:`geo.models.describe`, as the problems of an upload
or an import are.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from spectree.model_adapter.pydantic_adapter import BaseFile

from geo.models import (
    Course,
    DemandSignal,
    EvaluationSession,
    Facility,
    LayerKey,
    Mobile,
    Registration,
    VillageCode,
    body_model,
    noun_of,
)
from geo.models import field_errors as _field_errors

from ._params import plain_optional

#: The fields of :class:`geo.models.Facility` an admin sets; the others (county,
#: town code, layer name, source, location quality) are derived from them.
FACILITY_INPUT = (
    "id",
    "layer",
    "name",
    "lon",
    "lat",
    "town",
    "address",
    "phone",
    "trades",
    "capacity",
    "note",
    "is_sample",
)
_CRS = (
    Literal["wgs84", "gcj02", "bd09"],
    Field("wgs84", description="Coordinates as copied from 高德/腾讯 are gcj02, from 百度 bd09."),
)

FacilityBody = body_model(
    Facility,
    "FacilityBody",
    fields=FACILITY_INPUT,
    optional=("id",),
    extra={"crs": _CRS},
    doc="A facility as an admin writes it; coordinates in ``crs`` (converted to WGS84). "
    "Omit ``id`` to have one made, e.g. TB-330402-A001.",
)
FacilityPatch = body_model(
    FacilityBody, "FacilityPatch", partial=True, doc="Fields of a facility to change."
)


class CourseBody(Course):
    """A course (培训班) with registration details."""

    model_config = ConfigDict(extra="forbid", title="CourseBody")


class EvaluationBody(EvaluationSession):
    """A skill-evaluation session (技能等级认定)."""

    model_config = ConfigDict(extra="forbid", title="EvaluationBody")


CoursePatch = body_model(Course, "CoursePatch", partial=True, doc="Fields of a course to change.")
EvaluationPatch = body_model(
    EvaluationSession, "EvaluationPatch", partial=True, doc="Fields of a session to change."
)


class ChallengeAnswer(BaseModel):
    """The challenge of ``GET /api/register/challenge`` answered: its token and the number."""

    model_config = ConfigDict(extra="forbid", title="ChallengeAnswer")

    token: str = Field(max_length=200, description="The token of the challenge.")
    answer: int | str = Field(description="The number the question asks for.")


RegistrationBody = body_model(
    Registration,
    "RegistrationBody",
    fields=("kind", "item_id", "name", "phone"),
    extra={
        "consent": (
            Literal[True],
            Field(description="true: the worker read and accepted the consent text (告知书)."),
        ),
        "challenge": (ChallengeAnswer, Field(description="The answered challenge.")),
    },
    doc="A registration (报名): name and mobile number, consent, the answered challenge.",
)

#: What a confirmation code may look like as typed (letters, digits, spaces, dashes).
CODE_PATTERN = r"^[0-9A-Za-z -]{8,12}$"


class WithdrawBody(BaseModel):
    """Withdraw a registration: its confirmation code and the phone it was made with."""

    model_config = ConfigDict(extra="forbid", title="WithdrawBody")

    code: str = Field(pattern=CODE_PATTERN, description="报名确认码, 8 letters/digits.")
    phone: Mobile = Field(description="The mobile number of the registration.")


DemandBody = body_model(
    DemandSignal,
    "DemandBody",
    fields=("trade",),
    optional=("trade",),
    extra={
        "kind": (
            Literal["search", "notify"],
            Field(description="search: a search for a trade; notify: 有课通知我 for a trade."),
        ),
        "village": (
            VillageCode | None,
            Field(None, description="The village (12-digit code) the page is of, if any."),
        ),
    },
    doc="An anonymous demand signal (培训需求): no personal data is sent or kept.",
)


class AttendanceBody(BaseModel):
    """Mark whether a registrant attended (出勤)."""

    model_config = ConfigDict(extra="forbid", title="AttendanceBody", strict=True)

    attended: bool = Field(description="true: attended.")


class UploadForm(BaseModel):
    """A registry upload (multipart): the file, its coordinate system, the default layer."""

    model_config = ConfigDict(title="UploadForm", json_schema_extra=plain_optional)

    file: BaseFile = Field(description="CSV (UTF-8 or GBK), XLSX or GeoJSON, at most 50,000 rows.")
    crs: Literal["wgs84", "gcj02", "bd09"] = Field(
        description="Coordinates as copied from 高德/腾讯 are gcj02, from 百度 bd09."
    )
    layer: LayerKey | None = Field(None, description="The layer of rows that name none.")


#: POST body per entity (``facility`` or a store table).
BODIES: dict[str, type[BaseModel]] = {
    "facility": FacilityBody,
    "courses": CourseBody,
    "evaluations": EvaluationBody,
}
#: PATCH body per entity.
PATCHES: dict[str, type[BaseModel]] = {
    "facility": FacilityPatch,
    "courses": CoursePatch,
    "evaluations": EvaluationPatch,
}


def field_errors(exc: ValidationError, model: type[BaseModel] | None = None) -> dict[str, str]:
    """The messages of a validation error, per field, for a 400 body.

    Parameters
    ----------
    exc
        The pydantic error.
    model
        The model validated (names the record in messages).

    Returns
    -------
    dict
        ``{"field": "message"}`` (``"_"`` for whole-record errors).
    """
    return _field_errors(exc, noun_of(model) if model is not None else "record")


def as_stored(model: BaseModel) -> dict[str, Any]:
    """Model values as the store and JSON hold them.

    Parameters
    ----------
    model
        A validated entity.

    Returns
    -------
    dict
        Its values, dates as ISO text.
    """
    return model.model_dump(mode="json")
