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

from geo.models import (
    Course,
    EvaluationSession,
    Facility,
    body_model,
    noun_of,
)
from geo.models import field_errors as _field_errors

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
    """``{"field": "message"}`` for a 400 body (``"_"`` for whole-record errors)."""
    return _field_errors(exc, noun_of(model) if model is not None else "record")


def as_stored(model: BaseModel) -> dict[str, Any]:
    """Model values with dates as ISO text (what SQLite and JSON hold)."""
    return model.model_dump(mode="json")
