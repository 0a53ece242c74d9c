"""What the JSON API answers: one pydantic model per answer, for the OpenAPI document.

The views build their answers as dicts (fast: a village layer has 25,000
features); these models describe them (:mod:`web.openapi`) and the fuzz tests
check every answer against the document they make. Records read back from the
store or the study are described leniently (types, required keys; extra keys
allowed): rules added to an entity since a row was stored do not break reads.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel


class Answer(BaseModel):
    """An answer object: the keys listed, perhaps more."""

    model_config = ConfigDict(extra="allow")


# ---------------------------------------------------------------------- errors


class Error(Answer):
    """A refusal: ``error`` (a short word), ``message`` (what to do)."""

    error: str
    message: str = ""
    request_id: str | None = Field(None, description="Of a 500 answer: quote it to the admin.")


class RowProblem(BaseModel):
    row: str
    message: str


class FieldErrors(Error):  # noqa: N818 (an answer, not an exception)
    """A refused body: per field (``fields``) or, for uploads, per row (``problems``)."""

    fields: dict[str, str] | None = None
    problems: list[RowProblem] | None = None
    committed: bool | None = None


# -------------------------------------------------------------------- geometry


class Point(BaseModel):
    type: Literal["Point"]
    coordinates: list[float] = Field(min_length=2, max_length=2)


class Geometry(Answer):
    type: Literal["Polygon", "MultiPolygon", "GeometryCollection", "Point"]


class Feature(Answer):
    type: Literal["Feature"]
    properties: dict[str, Any]
    geometry: Geometry | None


class FeatureCollection(Answer):
    type: Literal["FeatureCollection"]
    features: list[Feature]


# ------------------------------------------------------------------ facilities


class FacilityRecord(Answer):
    """A facility as answers show it (:data:`geo.models.FACILITY_FIELDS`, lon/lat)."""

    id: str
    layer: str
    layer_name: str
    name: str
    county: str
    town: str
    address: str
    phone: str
    trades: list[str]
    capacity: int | None
    source: str
    is_sample: bool
    location_quality: str
    note: str
    lon: float
    lat: float


class Course(Answer):
    """A course as stored, with ``registered`` and ``seats_left``."""

    id: int
    facility_id: str
    title: str
    trade: str
    start_date: str
    end_date: str | None
    seats: int | None
    fee: float | None
    subsidy_note: str | None
    register_url: str | None
    register_phone: str | None
    registered: int | None = None
    seats_left: int | None = None


class Evaluation(Answer):
    """An evaluation session as stored, with ``registered`` and ``seats_left``."""

    id: int
    facility_id: str
    trade: str
    level: str
    date: str
    place: str | None
    seats: int | None
    registered: int | None = None
    seats_left: int | None = None


class Schedule(Answer):
    courses: list[Course]
    evaluations: list[Evaluation]


class FacilityProperties(FacilityRecord):
    lon: float | None = None  # type: ignore[assignment]
    lat: float | None = None  # type: ignore[assignment]


class FacilityFeature(Feature):
    properties: FacilityProperties  # type: ignore[assignment]
    geometry: Point  # type: ignore[assignment]


class Facilities(FeatureCollection):
    """Facilities as GeoJSON points."""

    features: list[FacilityFeature]  # type: ignore[assignment]


class FacilityDetail(FacilityRecord):
    """One facility with its upcoming courses and evaluation sessions."""

    courses: list[Course]
    evaluations: list[Evaluation]


class NearbyFacility(FacilityDetail):
    minutes: float
    distance_m: float | None = None


class Origin(Answer):
    lon: float
    lat: float


class Nearby(Answer):
    origin: Origin
    mode: str
    minutes: float
    facilities: list[NearbyFacility]
    network: str


# -------------------------------------------------------------------- villages


class VillageSummary(Answer):
    village_code: str
    village_name: str
    town: str
    county: str
    lon: float | None
    lat: float | None
    location_quality: str
    mode: str
    any_minutes: float | None
    covered: bool
    far_from_road: bool


class VillageFeature(Feature):
    properties: VillageSummary  # type: ignore[assignment]
    geometry: Point  # type: ignore[assignment]


class VillagesMetadata(Answer):
    mode: str
    minutes: float
    network: str


class Villages(FeatureCollection):
    """Villages as GeoJSON points, with minutes to the nearest facility."""

    features: list[VillageFeature]  # type: ignore[assignment]
    metadata: VillagesMetadata


class NearestOfLayer(Answer):
    layer_name: str
    minutes: float | None
    facility: FacilityRecord | None


class VillageMode(Answer):
    mode_name: str
    any_minutes: float | None
    covered: bool
    layers: dict[str, NearestOfLayer]
    access: dict[str, float] | None


class VillageDetail(Answer):
    """One village: per mode and layer, the nearest facility and its minutes."""

    village_code: str
    village_name: str
    town: str
    county: str
    lon: float | None
    lat: float | None
    location_quality: str
    far_from_road: bool
    modes: dict[str, VillageMode]


class IsochroneProperties(Answer):
    layer: str
    layer_name: str
    mode: str
    minutes: float


class IsochroneFeature(Feature):
    properties: IsochroneProperties  # type: ignore[assignment]


class Isochrones(FeatureCollection):
    """Union isochrones per layer (``geometry`` null when nothing is reached)."""

    features: list[IsochroneFeature]  # type: ignore[assignment]
    metadata: dict[str, str]


# ------------------------------------------------------------- stats and plan


class Layer(Answer):
    key: str
    name: str
    count: int
    sample_count: int


class Layers(Answer):
    layers: list[Layer]
    modes: dict[str, str]
    network: str
    coarse_network: bool


class Version(Answer):
    facilities_version: int | None
    latest_facilities_version: int | None
    content_version: int | None
    results_key: str
    jobs_waiting: int
    #: The server process that answered, and when it switched to the version it serves
    #: (``facilities_version``, ``noticed_at``, ``read_s``, ``served_at``, ``warm_s``,
    #: ``completed_at``; epoch seconds): what ``bench/serving.py`` reports per stage.
    process: int | None = None
    switch: dict[str, float | int | str] | None = None


class StatsRow(Answer):
    """Coverage of one county (or town): villages, covered, shares; per layer
    ``<layer>_covered`` and ``<layer>_share``."""

    county: str
    town: str | None = None
    population_2020: float | None = None
    villages: int
    covered: int
    share_covered: float
    uncovered: int
    villages_located: int
    covered_located: int
    uncovered_villages: str


class Stats(Answer):
    by: Literal["county", "town"]
    mode: str
    minutes: float
    rows: list[StatsRow]
    network: str
    population_note: str


class PlanVillage(Answer):
    village_code: str
    village_name: str
    lon: float
    lat: float
    weight: float


class PlanSite(Answer):
    villages: list[PlanVillage]


class Solver(Answer):
    method: str
    optimal: bool | None
    gap: float | None
    seconds: float


class Weights(Answer):
    kind: Literal["villages", "demand"]
    formula: str
    weeks: int | None = None
    signals: float | None = None
    villages_with_signals: int | None = None


class Plan(Answer):
    """New sites covering the most uncovered villages, ranked."""

    county: str
    layer: str
    mode: str
    minutes: float
    add: int
    candidates: str
    covered_before: int
    covered_after: int
    total: int
    solver: Solver
    sites: list[PlanSite]
    network: str
    weights: Weights


# ------------------------------------------------------------- search, 报名


class Register(BaseModel):
    online: bool
    url: str | None
    phone: str | None


class SearchItem(Answer):
    kind: Literal["course", "evaluation"]
    id: int
    facility_id: str
    facility_name: str
    layer: str
    trade: str
    level: str | None
    title: str
    start_date: str
    end_date: str | None
    seats: int | None
    seats_left: int | None
    registered: int
    fee: float | None
    subsidy_note: str | None
    register_: Register = Field(alias="register")
    minutes: float | None
    distance_m: int | None
    is_sample: bool


class Search(Answer):
    items: list[SearchItem]
    total: int
    origin: dict[str, Any] | None
    mode: str
    minutes: float | None = None


class Trades(Answer):
    trades: list[str]
    levels: list[str]


class Consent(BaseModel):
    version: str
    text: str
    retention_days: int


class Challenge(Answer):
    token: str
    question: str
    expires_in: int
    consent: Consent


class Registered(Answer):
    """Registered: the confirmation code (shown once) and how to withdraw."""

    code: str = Field(pattern="^[0-9A-HJKMNP-TV-Z]{8}$")
    id: int
    kind: Literal["course", "evaluation"]
    item_id: int
    title: str
    facility_id: str
    facility_name: str
    facility_phone: str | None
    start_date: str
    seats_left: int | None
    name: str
    phone_masked: str
    consent_version: str
    retention_days: int
    withdraw_url: str


class Withdrawn(Answer):
    withdrawn: bool


class DemandRow(Answer):
    village_code: str
    village_name: str
    town: str
    county: str
    lon: float | None
    lat: float | None
    trade: str
    scans: int
    searches: int
    notify: int
    total: int


class DemandTotals(BaseModel):
    scans: int
    searches: int
    notify: int


class Demand(Answer):
    rows: list[DemandRow]
    totals: DemandTotals
    weeks: int
    since: str


class DemandVillage(Answer):
    """A village's signals, all trades: scans, searches, notify-me, total."""

    village_code: str
    village_name: str
    town: str
    county: str
    scans: int
    searches: int
    notify: int
    total: int
    trades: dict[str, int] = Field(description="trade -> searches + notify, most first")


class DemandFeature(Feature):
    properties: DemandVillage  # type: ignore[assignment]
    geometry: Point  # type: ignore[assignment]


class DemandMap(FeatureCollection):
    """Villages with signals, for the map."""

    features: list[DemandFeature]  # type: ignore[assignment]
    metadata: dict[str, Any]


class OpenAPI(Answer):
    """This document."""

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]


# ----------------------------------------------------------------------- admin


class WhoAmI(Answer):
    name: str
    county: str | None
    facility_id: str | None
    facility_name: str | None
    token_id: int


class Job(Answer):
    id: int
    state: Literal["queued", "running", "done", "failed"]
    facilities_version: int | None
    published_version: int | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    seconds: float | None
    url: str
    error: str | None = None


class Recomputed(Answer):
    layers: list[str]
    trades: list[str]
    seconds: float | None


class Queued(Answer):
    """A committed write: the data version, and its recompute job."""

    data_version: int | None
    job: Job | None = None
    recomputed: Recomputed | None = None


class StoredFacility(FacilityRecord):
    town_code: str


class FacilityWritten(Queued):
    facility: StoredFacility


class AdminFacilities(Answer):
    count: int
    facilities: list[StoredFacility]


class Uploaded(Queued):
    added: int
    updated: int
    ids: list[str]


class PreviewRow(Answer):
    row: str
    id: str | None
    name: str | None
    layer: str | None
    county: str | None
    town: str | None
    lon: float | None
    lat: float | None
    location_quality: str | None


class UploadPreview(Answer):
    """``dry_run``: every row as it would be stored, every problem; nothing written."""

    preview: list[PreviewRow]
    problems: list[RowProblem]
    would_add: int
    would_update: int
    valid: bool
    committed: Literal[False]
    message: str | None = None


class UploadAnswer(RootModel[Uploaded | UploadPreview]):
    """The upload's answer: what was written, or (``dry_run``) the preview."""


class Courses(Answer):
    facility_id: str
    items: list[Course]


class Evaluations(Answer):
    facility_id: str
    items: list[Evaluation]


class AuditEntry(Answer):
    id: int
    at: str
    who: str
    action: str
    entity: str
    entity_id: str
    county: str | None
    before: Any
    after: Any


class AuditLog(Answer):
    entries: list[AuditEntry]


class RegistrationRow(Answer):
    """A registration as lists show it: the phone masked."""

    id: int
    kind: Literal["course", "evaluation"]
    item_id: int
    facility_id: str
    title: str
    start_date: str | None
    name: str
    phone_masked: str
    created_at: str
    consent_version: str
    attended: bool


class Registrations(Answer):
    facility_id: str
    count: int
    items: list[RegistrationRow]
