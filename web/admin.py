"""Admin API: facilities, courses and evaluation sessions kept current by county unions.

``Authorization: Bearer <token>`` on every call (tokens from ``skillcircle admin
create-token``). A county token may change only facilities in its county — a
facility's county is where its point lies, so moving one across a county line
needs both counties' rights. No token or a bad one: 401; another county's
facility: 403; an invalid body: 400 with ``fields`` (field -> message) or, for
uploads, ``problems`` (row -> message); nothing is written then.

A facility change commits (with its audit entry), then the affected layers are
recomputed and the new study published: the map, API, exports and 技能码 pages
show it from the next request. Writes are serialised by one lock per app.
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    jsonify,
    make_response,
    render_template,
    request,
    send_file,
    url_for,
)
from pydantic import BaseModel, ValidationError
from werkzeug.datastructures import FileStorage

from geo import _validate as v
from geo._errors import FacilityDataError, SettingsError, TooManyRowsError
from geo.coords import to_wgs84
from geo.export import write_workbook
from geo.facilities import facility_id_prefix, facility_records, import_registry
from geo.geocode import Gazetteer, Geocoder, make_geocoder
from geo.models import Facility, validate_rows
from geo.settings import LAYERS
from geo.study import Study

from . import _params as p
from . import get_store
from . import responses as r
from .openapi import BEARER, Answers, query, spec
from .schemas import (
    BODIES,
    PATCHES,
    AttendanceBody,
    CourseBody,
    CoursePatch,
    EvaluationBody,
    EvaluationPatch,
    FacilityBody,
    FacilityPatch,
    UploadForm,
    as_stored,
    field_errors,
)
from .store import Principal, Write, mask_phone, now

bp = Blueprint("admin", __name__, url_prefix="/api/admin")
page = Blueprint("admin_page", __name__)

UPLOAD_SUFFIXES = (".csv", ".xlsx", ".geojson", ".json")
_FACILITY_FIELDS = tuple(FacilityBody.model_fields)
M = TypeVar("M", bound=BaseModel)


#: Refusals every admin call can give.
ADMIN_ERRORS: dict[str, Any] = {
    "HTTP_400": (r.FieldErrors, "invalid body or parameter: field errors"),
    "HTTP_401": (r.Error, "no, unknown or revoked token"),
    "HTTP_403": (r.Error, "the token's county may not change this"),
    "HTTP_404": (r.Error, "unknown facility or item"),
    "HTTP_413": (r.Error, "request body too large"),
    "HTTP_429": (r.Error, "rate limit"),
}


def _answers(*codes: str, **models: Any) -> Answers:
    """An admin operation's answers: ``models`` (or bodiless ``codes``) and the refusals."""
    return Answers(*codes, **{**ADMIN_ERRORS, **models})


def _fail(status: int, error: str, message: str, **extra: Any) -> NoReturn:
    abort(make_response(jsonify(error=error, message=message, **extra), status))


def _unauthorized(message: str, challenge: str) -> NoReturn:
    response = make_response(jsonify(error="unauthorized", message=message), 401)
    response.headers["WWW-Authenticate"] = challenge
    abort(response)


def _principal() -> Principal:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        _unauthorized("send Authorization: Bearer <token>", 'Bearer realm="skillcircle"')
    principal = get_store().authenticate(token.strip())
    if principal is None:
        _unauthorized(
            "unknown or revoked token", 'Bearer realm="skillcircle", error="invalid_token"'
        )
    return principal


@bp.before_request
def _authenticate() -> None:
    g.principal = _principal()


def _require_county(county: str, what: str) -> None:
    """Facility changes: a county token of ``county`` or a region-wide one (never staff)."""
    principal: Principal = g.principal
    if not principal.may_edit(county):
        _fail(403, "forbidden", f"token {principal.name!r} ({_scope(principal)}) may not {what}")


def _require_manage(fid: str, county: str, what: str) -> None:
    """A facility's courses, sessions and registrants: its staff, its county, the region."""
    principal: Principal = g.principal
    if not principal.may_manage(fid, county):
        _fail(403, "forbidden", f"token {principal.name!r} ({_scope(principal)}) may not {what}")


def _scope(principal: Principal) -> str:
    if principal.staff:
        return f"staff of facility {principal.facility_id}"
    return principal.county or "region-wide"


def _validate(model: type[M], data: Any) -> M:
    if not isinstance(data, dict):
        _fail(400, "invalid body", "send a JSON object", fields={"_": "not a JSON object"})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        _fail(400, "invalid body", "some fields are invalid", fields=field_errors(exc, model))


def _patched(table: str, old: dict[str, Any], patch: Any) -> dict[str, Any]:
    """``old`` (the body fields of a stored record) with the fields a PATCH body sends.

    The patch is checked by the entity's PATCH model first (every field optional,
    unknown fields refused); the caller validates the merge with the POST body.
    """
    changes = _validate(PATCHES[table], patch).model_dump(mode="json", exclude_unset=True)
    return {**old, **changes}


@contextmanager
def _writing() -> Iterator[None]:
    """Serialise facility writes (read-modify-write, then recompute) within the app."""
    lock: threading.Lock = current_app.extensions.setdefault("skillcircle.lock", threading.Lock())
    with lock:
        yield


def _queued(tx: Write) -> dict[str, Any]:
    """The answer's part about the write's recompute (:mod:`web.sync`).

    The write is committed; its job recomputes the affected layers and publishes
    them. With ``RECOMPUTE=inline`` (the tests) that happens before the answer, and
    ``recomputed`` says what was recomputed; otherwise the answer comes at once
    and ``job`` says where to follow it (``GET /api/admin/jobs/<id>``).
    """
    out: dict[str, Any] = {"data_version": tx.versions.get("facilities")}
    if tx.job_id is None:
        return out
    if current_app.config["RECOMPUTE"] == "inline":
        current_app.extensions["skillcircle.recomputer"].run_pending()
    else:
        current_app.extensions["skillcircle.recomputer"].wake.set()
    job = get_store().job(tx.job_id) or {}
    out["job"] = _job_json(job)
    if job.get("state") == "done":
        detail = json.loads(job.get("detail") or "{}")
        out["recomputed"] = {
            "layers": detail.get("layers", []),
            "trades": detail.get("trades", []),
            "seconds": job.get("seconds"),
        }
    return out


def _job_json(job: dict[str, Any]) -> dict[str, Any]:
    fields = ("id", "state", "facilities_version", "published_version", "created_at")
    out = {k: job.get(k) for k in (*fields, "started_at", "finished_at", "seconds")}
    out["url"] = url_for("admin.job", job_id=job.get("id", 0))
    if job.get("state") == "failed":
        out["error"] = job.get("detail")
    return out


@bp.get("/jobs/<id:job_id>")
@spec.validate(resp=_answers(HTTP_200=r.Job), security=BEARER)
def job(job_id: int) -> Any:
    """重算任务 a recompute job: queued, running, done (with what it published) or failed."""
    found = get_store().job(p.row_id(job_id, "job"))
    if found is None:
        _fail(404, "not found", f"no job {job_id}")
    return jsonify(_job_json(found))


# ------------------------------------------------------------------ facilities


def _locate(lon: float, lat: float) -> tuple[str | None, str, str]:
    """County, nearest town seat in it (name, code) of a WGS84 point."""
    return _locate_many(np.array([lon]), np.array([lat]))[0]


def _locate_many(lon: np.ndarray, lat: np.ndarray) -> list[tuple[str | None, str, str]]:
    """Per WGS84 point: the county it lies in (None outside every county) and the nearest
    town seat of that county (name, code). Vectorised: a 50,000-row upload is one query."""
    from scipy.spatial import cKDTree

    study: Study = current_app.extensions["skillcircle"]
    points = np.asarray(shapely.points(lon, lat), dtype=object)
    tree = shapely.STRtree(study.counties.geometry.to_numpy())
    point_i, county_i = tree.query(points, predicate="within")
    county = np.full(len(points), -1)
    county[point_i[::-1]] = county_i[::-1]  # on a shared border: the first county listed
    names = study.counties["county"].astype(str).to_numpy()
    out: list[tuple[str | None, str, str]] = [(None, "", "")] * len(points)
    for c in np.unique(county[county >= 0]):
        rows = np.flatnonzero(county == c)
        towns = study.towns[study.towns["county"] == names[c]]
        if towns.empty:
            out_rows = [(str(names[c]), "", "")] * len(rows)
        else:
            seats = np.column_stack([towns.geometry.x, towns.geometry.y])
            _, nearest = cKDTree(seats).query(np.column_stack([lon[rows], lat[rows]]))
            town = towns["town"].astype(str).to_numpy()[nearest]
            code = towns["town_code"].astype(str).to_numpy()[nearest]
            out_rows = [(str(names[c]), t, k) for t, k in zip(town, code, strict=True)]
        for row, value in zip(rows, out_rows, strict=True):
            out[row] = value
    return out


def _facility_record(body: Any, old: dict[str, Any] | None) -> dict[str, Any]:
    """Validated store record of a :data:`~web.schemas.FacilityBody` (new, or ``old``
    edited): its fields with the county and town of its point, checked by :class:`Facility`."""
    principal: Principal = g.principal
    x, y = to_wgs84([body.lon], [body.lat], body.crs)
    lon, lat = round(float(x[0]), 7), round(float(y[0]), 7)
    moved = old is None or (lon, lat) != (old["lon"], old["lat"])
    county, town, town_code = _locate(lon, lat)
    if county is None:
        region = current_app.extensions["skillcircle"].settings.region
        _fail(
            400,
            "invalid body",
            f"the point is outside the counties of {region.label}",
            fields={"lon": f"({lon}, {lat}) is not in {region.name}; check crs and lon/lat order"},
        )
    _require_county(county, f"place a facility in {county}")
    if body.town:
        town, town_code = body.town, _town_code(county, body.town)
    record = {
        **body.model_dump(exclude={"crs"}),
        "id": body.id or "",  # a new facility without an id gets one when it is stored
        "layer_name": LAYERS[body.layer],
        "county": county,
        "town": town,
        "town_code": town_code,
        "source": old["source"] if old else f"admin:{principal.name}",
        "location_quality": (
            f"admin_entered_{body.crs}" if moved or old is None else old["location_quality"]
        ),
        "lon": lon,
        "lat": lat,
    }
    (facility,), problems = validate_rows(
        Facility, [record], [f"facility {body.id or '(new)'}"], context={"id_optional": True}
    )
    if facility is None:
        message = "; ".join(p.what for p in problems)
        _fail(400, "invalid body", message, fields={"_": message})
    return facility.model_dump()


def _town_code(county: str, town: str) -> str:
    study: Study = current_app.extensions["skillcircle"]
    hit = study.towns[(study.towns["county"] == county) & (study.towns["town"] == town)]
    return "" if hit.empty else str(hit["town_code"].iloc[0])


def _id_prefix(layer: str, county: str) -> str:
    """Prefix of generated ids: per layer and county, so counties never share a sequence."""
    adcode = current_app.extensions["skillcircle"].settings.region.county(county).adcode
    return facility_id_prefix(layer, adcode)


def _existing(fid: str) -> dict[str, Any]:
    record = get_store().facility(fid)
    if record is None:
        _fail(404, "not found", f"no facility {fid!r}")
    return record


@bp.get("/whoami")
@spec.validate(resp=_answers(HTTP_200=r.WhoAmI), security=BEARER)
def whoami() -> Any:
    """令牌信息 the token's name and county."""
    principal: Principal = g.principal
    facility = get_store().facility(principal.facility_id) if principal.facility_id else None
    return jsonify(
        name=principal.name,
        county=principal.county,
        facility_id=principal.facility_id,
        facility_name=facility["name"] if facility else None,
        token_id=principal.token_id,
    )


@bp.get("/facilities")
@spec.validate(resp=_answers(HTTP_200=r.AdminFacilities), security=BEARER)
def list_facilities() -> Any:
    """可编辑的设施 the facilities this token may manage: its county's (staff: its own)."""
    principal: Principal = g.principal
    records = get_store().facility_records()
    mine = [r for r in records if principal.may_manage(r["id"], r["county"])]
    return jsonify(count=len(mine), facilities=mine)


@bp.post("/facilities")
@spec.validate(
    json=FacilityBody,
    resp=_answers(
        HTTP_201=r.FacilityWritten, HTTP_409=(r.Error, "the id exists: PATCH it instead")
    ),
    security=BEARER,
)
def create_facility() -> Any:
    """新增设施 add a facility (recomputes its layer)."""
    data = p.json_body()
    with _writing():
        body = _validate(FacilityBody, data)
        if body.id and get_store().facility(body.id) is not None:
            _fail(409, "conflict", f"facility {body.id!r} exists; PATCH it instead")
        record = _facility_record(body, None)
        with get_store().write(g.principal, "create", "facility", record["id"]) as tx:
            if not record["id"]:
                record["id"] = tx.new_facility_id(_id_prefix(body.layer, record["county"]))
            tx.put_facility(record)
            tx.entity_id, tx.county, tx.after = record["id"], record["county"], record
    return jsonify(facility=record, **_queued(tx)), 201


@bp.patch("/facilities/<fid>")
@spec.validate(json=FacilityPatch, resp=_answers(HTTP_200=r.FacilityWritten), security=BEARER)
def update_facility(fid: str) -> Any:
    """修改设施 change fields; a move recomputes the layer."""
    patch = p.json_body()
    with _writing():
        old = _existing(fid)
        _require_county(old["county"], f"change facility {fid} in {old['county']}")
        if "id" in patch and patch["id"] != fid:
            _fail(400, "invalid body", "ids cannot change", fields={"id": "cannot change"})
        fields = {k: old[k] for k in _FACILITY_FIELDS if k in old}
        if ("lon" in patch or "lat" in patch) and "town" not in patch:
            fields["town"] = ""  # moved: derive the town again
        body = _validate(FacilityBody, _patched("facility", fields, patch))
        record = _facility_record(body, old)
        with get_store().write(g.principal, "update", "facility", fid) as tx:
            tx.put_facility(record)
            tx.county, tx.before, tx.after = record["county"], old, record
    return jsonify(facility=record, **_queued(tx))


@bp.delete("/facilities/<fid>")
@spec.validate(resp=_answers("HTTP_204"), security=BEARER)
def delete_facility(fid: str) -> Any:
    """删除设施 delete a facility and its courses."""
    with _writing():
        old = _existing(fid)
        _require_county(old["county"], f"delete facility {fid} in {old['county']}")
        with get_store().write(g.principal, "delete", "facility", fid) as tx:
            tx.delete_facility(fid)
            tx.county, tx.before = old["county"], old
        queued = _queued(tx)
    headers = {"X-Data-Version": str(queued["data_version"])}
    if "job" in queued:
        headers["Location"] = queued["job"]["url"]
    return "", 204, headers


@bp.post("/facilities/upload")
@spec.validate(
    query=p.UploadQuery,
    form=UploadForm,
    resp=_answers(HTTP_200=r.UploadAnswer),
    security=BEARER,
)
def upload() -> Any:
    """批量导入 upsert a registry file: every row validated first, then all or nothing.

    ``?dry_run=1``: the same checks, nothing written: every row as it would be
    stored (``preview``), every row problem (``problems``) and what a commit would
    add and update, with status 200 even when rows have problems.
    """
    dry_run = query(p.UploadQuery).dry_run
    file, name, crs, layer = _upload_request()
    with _writing(), tempfile.TemporaryDirectory(prefix="skillcircle-upload-") as tmp:
        path = Path(tmp) / name
        try:
            file.save(path)
        finally:
            file.close()  # a large upload is spooled to a temporary file
        try:
            rows = _import_upload(path, layer, crs)
        except (FacilityDataError, SettingsError) as exc:
            return _refused_file(exc, name, dry_run)
        records = facility_records(rows)
        source = f"import:{file.filename}"[:200]
        row_name = v.feature_row if path.suffix.lower() in (".geojson", ".json") else v.table_row
        problems, forbidden, replaced = _place_upload_rows(records, row_name, source)
        where = [r["id"] or row_name(i) for i, r in enumerate(records)]
        items, invalid = validate_rows(Facility, records, where, context={"id_optional": True})
        problems += [{"row": p.where, "message": p.what} for p in invalid]
        if dry_run:
            return _upload_preview(records, row_name, problems, replaced)
        if problems:
            _fail(
                403 if forbidden else 400,
                "invalid upload",
                f"{len(problems)} row(s) refused",
                problems=problems,
                committed=False,
            )
        facilities = [item for item in items if item is not None]  # all, as nothing failed
        queued = _store_upload(facilities, replaced, str(file.filename)[:200], crs)
    return jsonify(
        added=len(facilities) - len(replaced),
        updated=len(replaced),
        ids=[f.id for f in facilities],
        **queued,
    )


def _upload_request() -> tuple[FileStorage, str, str, str]:
    """The upload's file, a safe name for it, its declared ``crs`` and ``layer``; refuse
    staff tokens, a missing file, an unknown file type and an undeclared CRS."""
    principal: Principal = g.principal
    if principal.staff:
        _fail(403, "forbidden", "a facility-staff token cannot upload registries")
    file = request.files.get("file")
    if file is None or not file.filename:
        _fail(400, "invalid upload", "send the registry as multipart field 'file'")
    name = _safe_name(file.filename)
    suffix = Path(name).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        _fail(400, "invalid upload", f"file type {suffix or '(none)'}; use .csv, .xlsx or .geojson")
    crs = request.form.get("crs", "")
    if not crs:
        _fail(400, "invalid upload", "declare the coordinate system: crs=wgs84, gcj02 or bd09")
    return file, name, crs, request.form.get("layer", "")


def _import_upload(path: Path, layer: str, crs: str) -> gpd.GeoDataFrame:
    """The registry's rows (:func:`geo.facilities.import_registry`); too many: 413."""
    try:
        return import_registry(
            path,
            layer or "training_institution",
            crs,
            id_tag=None,  # rows without an id get one per county when stored
            geocoder=_upload_geocoder(),
            settings=current_app.extensions["skillcircle"].settings,
            max_rows=int(current_app.config["UPLOAD_MAX_ROWS"]),
        )
    except TooManyRowsError as exc:
        _fail(413, "too large", str(exc), committed=False)


def _refused_file(exc: FacilityDataError | SettingsError, name: str, dry_run: bool) -> Any:
    """A registry that cannot be read: 400 with its problems, or (dry run, bad rows) a
    200 preview with none."""
    listed = exc.problems if isinstance(exc, FacilityDataError) else []
    problems = [{"row": where, "message": what} for where, what in listed]
    if dry_run and isinstance(exc, FacilityDataError):
        return jsonify(
            preview=[],
            problems=problems or [{"row": name, "message": str(exc)}],
            would_add=0,
            would_update=0,
            valid=False,
            committed=False,
            message=str(exc),
        )
    _fail(400, "invalid upload", str(exc), problems=problems, committed=False)


def _place_upload_rows(
    records: list[dict[str, Any]], row_name: Callable[[int], str], source: str
) -> tuple[list[dict[str, str]], bool, dict[str, dict[str, Any]]]:
    """Fill each record's county, town and ``source`` from its point.

    Returns the row problems (outside the region, outside the token's county, a
    county that differs from the point's), whether any row was outside the token's
    county (the upload is then a 403), and the stored facility each given id replaces.
    """
    problems = []
    forbidden = False
    replaced = {}
    located = _locate_many(
        np.array([r["lon"] for r in records], float),
        np.array([r["lat"] for r in records], float),
    )
    for i, (record, (county, town, town_code)) in enumerate(zip(records, located, strict=True)):
        where = record["id"] or row_name(i)
        old = get_store().facility(record["id"]) if record["id"] else None
        if county is None:
            problems.append({"row": where, "message": "point is outside the region's counties"})
            continue
        if not g.principal.may_edit(county) or (
            old is not None and not g.principal.may_edit(old["county"])
        ):
            problems.append({"row": where, "message": f"not in {g.principal.county}"})
            forbidden = True
            continue
        record["county"] = record["county"] or county
        if record["county"] != county:
            problems.append(
                {"row": where, "message": f"county {record['county']} but point in {county}"}
            )
        record["town"] = record["town"] or town
        record["town_code"] = record["town_code"] or town_code
        record["source"] = source
        if old is not None:
            replaced[record["id"]] = old
    return problems, forbidden, replaced


def _upload_preview(
    records: list[dict[str, Any]],
    row_name: Callable[[int], str],
    problems: list[dict[str, str]],
    replaced: dict[str, dict[str, Any]],
) -> Any:
    """The dry run's answer: each row as it would be stored, the problems, the counts."""
    fields = ("id", "name", "layer", "county", "town", "lon", "lat", "location_quality")
    preview = [
        {"row": row_name(i), **{k: record.get(k) for k in fields}}
        for i, record in enumerate(records)
    ]
    return jsonify(
        preview=preview,
        problems=problems,
        would_add=len(records) - len(replaced),
        would_update=len(replaced),
        valid=not problems,
        committed=False,
    )


def _store_upload(
    facilities: list[Facility], replaced: dict[str, dict[str, Any]], filename: str, crs: str
) -> dict[str, Any]:
    """Write the facilities in one audited transaction; given ids first, so that a made
    id skips them. Returns the answer's part about the recompute (:func:`_queued`)."""
    with get_store().write(g.principal, "upload", "facility", filename) as tx:
        for facility in facilities:
            if facility.id:
                tx.put_facility(facility)
        for facility in facilities:
            if not facility.id:
                facility.id = tx.new_facility_id(_id_prefix(facility.layer, facility.county))
                tx.put_facility(facility)
        tx.county = g.principal.county
        tx.before = replaced or None
        tx.after = {"ids": [f.id for f in facilities], "crs": crs}
    return _queued(tx)


def _upload_geocoder() -> Geocoder:
    """Places upload rows without lon/lat by address: the served region's gazetteer, or the
    online service in config ``GEOCODER`` (``amap``/``tianditu``, env ``SKILLCIRCLE_GEOCODER``)
    with ``GEOCODER_KEY`` (env ``SKILLCIRCLE_AMAP_KEY``/``SKILLCIRCLE_TIANDITU_KEY``)."""
    study: Study = current_app.extensions["skillcircle"]
    config = current_app.config
    kind = config.get("GEOCODER") or os.environ.get("SKILLCIRCLE_GEOCODER") or "offline"
    gazetteer = Gazetteer.from_frames(
        study.counties, study.towns, study.villages, region=study.settings.region
    )
    return make_geocoder(
        kind,
        study.settings,
        key=config.get("GEOCODER_KEY"),
        url=config.get("GEOCODER_URL"),
        gazetteer=gazetteer,
    )


def _safe_name(filename: str) -> str:
    """A file name safe to create (path parts and odd characters removed; CJK kept)."""
    base = re.sub(r"[^\w.\-]", "_", Path(filename.replace("\\", "/")).name)[-80:]
    return base if base.strip("._") else "upload" + Path(filename).suffix.lower()


# --------------------------------------------------------- courses, evaluations


def list_items(fid: str, table: str) -> Any:
    _existing(fid)
    return jsonify(facility_id=fid, items=get_store().items(table, fid))


def create_item(fid: str, table: str) -> Any:
    data = p.json_body()
    facility = _existing(fid)
    _require_manage(fid, facility["county"], f"add {table} to {fid} in {facility['county']}")
    values = as_stored(_validate(BODIES[table], data))
    with get_store().write(g.principal, "create", table[:-1], "?") as tx:
        item_id = tx.insert_item(table, fid, values)
        tx.entity_id, tx.county, tx.after = str(item_id), facility["county"], values
        tx.facility_id = fid
    return jsonify(get_store().item(table, item_id)), 201


def _item(fid: str, table: str, item_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    facility = _existing(fid)
    item = get_store().item(table, p.row_id(item_id, table[:-1]))
    if item is None or item["facility_id"] != fid:
        _fail(404, "not found", f"no {table[:-1]} {item_id} at facility {fid!r}")
    _require_manage(fid, facility["county"], f"change {table} of {fid} in {facility['county']}")
    return facility, item


def update_item(fid: str, table: str, item_id: int) -> Any:
    patch = p.json_body()
    facility, item = _item(fid, table, item_id)
    model = BODIES[table]
    stored = {k: item[k] for k in model.model_fields if item.get(k) is not None}
    values = as_stored(_validate(model, _patched(table, stored, patch)))
    with get_store().write(g.principal, "update", table[:-1], str(item_id)) as tx:
        taken = tx.registered(table, item_id)  # counted in the transaction: no sign-up between
        if values.get("seats") is not None and values["seats"] < taken:
            message = (
                f"{taken} people are registered; seats cannot be fewer "
                "(delete registrations first) / 已有报名人数多于名额"
            )
            _fail(409, "conflict", message, fields={"seats": message})
        tx.update_item(table, item_id, values)
        tx.county, tx.before, tx.after = facility["county"], item, values
        tx.facility_id = fid
    return jsonify(get_store().item(table, item_id))


def delete_item(fid: str, table: str, item_id: int) -> Any:
    """Delete a course or session; the personal data of its registrations go with it."""
    facility, item = _item(fid, table, item_id)
    with get_store().write(g.principal, "delete", table[:-1], str(item_id)) as tx:
        tx.delete_item(table, item_id)
        tx.county, tx.before, tx.facility_id = facility["county"], item, fid
    return "", 204


# One route per table: each documents its own body and answer models.
_CONFLICT = (r.FieldErrors, "seats fewer than the people registered")


@bp.get("/facilities/<fid>/courses")
@spec.validate(resp=_answers(HTTP_200=r.Courses), security=BEARER)
def list_courses(fid: str) -> Any:
    """培训班 courses of a facility (past included; registered, seats_left)."""
    return list_items(fid, "courses")


@bp.post("/facilities/<fid>/courses")
@spec.validate(json=CourseBody, resp=_answers(HTTP_201=r.Course), security=BEARER)
def create_course(fid: str) -> Any:
    """新增培训班 add a course."""
    return create_item(fid, "courses")


@bp.patch("/facilities/<fid>/courses/<id:item_id>")
@spec.validate(
    json=CoursePatch, resp=_answers(HTTP_200=r.Course, HTTP_409=_CONFLICT), security=BEARER
)
def update_course(fid: str, item_id: int) -> Any:
    """修改培训班 change a course (fields merged)."""
    return update_item(fid, "courses", item_id)


@bp.delete("/facilities/<fid>/courses/<id:item_id>")
@spec.validate(resp=_answers("HTTP_204"), security=BEARER)
def delete_course(fid: str, item_id: int) -> Any:
    """删除培训班 delete a course (its registrants' personal data with it)."""
    return delete_item(fid, "courses", item_id)


@bp.get("/facilities/<fid>/evaluations")
@spec.validate(resp=_answers(HTTP_200=r.Evaluations), security=BEARER)
def list_evaluations(fid: str) -> Any:
    """技能评价 evaluation sessions of a facility (past included; registered, seats_left)."""
    return list_items(fid, "evaluations")


@bp.post("/facilities/<fid>/evaluations")
@spec.validate(json=EvaluationBody, resp=_answers(HTTP_201=r.Evaluation), security=BEARER)
def create_evaluation(fid: str) -> Any:
    """新增技能评价 add an evaluation session."""
    return create_item(fid, "evaluations")


@bp.patch("/facilities/<fid>/evaluations/<id:item_id>")
@spec.validate(
    json=EvaluationPatch,
    resp=_answers(HTTP_200=r.Evaluation, HTTP_409=_CONFLICT),
    security=BEARER,
)
def update_evaluation(fid: str, item_id: int) -> Any:
    """修改技能评价 change an evaluation session (fields merged)."""
    return update_item(fid, "evaluations", item_id)


@bp.delete("/facilities/<fid>/evaluations/<id:item_id>")
@spec.validate(resp=_answers("HTTP_204"), security=BEARER)
def delete_evaluation(fid: str, item_id: int) -> Any:
    """删除技能评价 delete a session (its registrants' personal data with it)."""
    return delete_item(fid, "evaluations", item_id)


@bp.get("/audit")
@spec.validate(query=p.AuditQuery, resp=_answers(HTTP_200=r.AuditLog), security=BEARER)
def audit() -> Any:
    """审计日志 audit log, newest first.

    A county token sees its county's entries, a staff token its facility's
    (registrations appear without name or phone)."""
    limit = query(p.AuditQuery).limit
    principal: Principal = g.principal
    return jsonify(
        entries=get_store().audit(principal.county, limit, facility_id=principal.facility_id)
    )


# ----------------------------------------------------------------- registrations

#: Columns of a facility's registrant export, in order, with their headers.
EXPORT_COLUMNS = {
    "id": "编号",
    "kind_name": "类型",
    "item_id": "项目编号",
    "title": "项目",
    "start_date": "开始日期",
    "name": "姓名",
    "phone": "手机",
    "created_at": "报名时间",
    "consent_version": "同意书版本",
    "attended": "出勤",
}


def _item_arg() -> tuple[str | None, int | None]:
    raw = query(p.RegistrantsQuery).item
    if raw is None:
        return None, None
    kind, _, number = raw.partition(":")
    return kind, int(number)


def _registration_json(row: dict[str, Any]) -> dict[str, Any]:
    """A registration as lists show it: the phone masked, never whole."""
    return {
        "id": row["id"],
        "kind": row["kind"],
        "item_id": row["item_id"],
        "facility_id": row["facility_id"],
        "title": row.get("title", ""),
        "start_date": row.get("start_date"),
        "name": row["name"],
        "phone_masked": mask_phone(row["phone"]),
        "created_at": row["consent_at"],
        "consent_version": row["consent_version"],
        "attended": row["attended"],
    }


@bp.get("/facilities/<fid>/registrations")
@spec.validate(query=p.RegistrantsQuery, resp=_answers(HTTP_200=r.Registrations), security=BEARER)
def list_registrations(fid: str) -> Any:
    """报名名单 registrants of a facility, phones masked.

    Staff see their facility's, a county its county's; ``item=course:<id>``: one item's."""
    facility = _existing(fid)
    _require_manage(fid, facility["county"], f"see the registrants of {fid}")
    kind, item_id = _item_arg()
    rows = get_store().registrations(fid, kind, item_id)
    return jsonify(
        facility_id=fid, count=len(rows), items=[_registration_json(row) for row in rows]
    )


@bp.get("/facilities/<fid>/registrations.xlsx")
@spec.validate(
    query=p.RegistrantsQuery,
    resp=_answers(HTTP_200=(None, "XLSX workbook (sheets 报名, 说明)")),
    security=BEARER,
)
def export_registrations(fid: str) -> Any:
    """报名导出 the facility's registrants with whole phones (its staff token only)."""
    facility = _existing(fid)
    principal: Principal = g.principal
    if principal.facility_id != fid:
        _fail(
            403,
            "forbidden",
            "only the facility's own staff token may export registrants with whole phone "
            "numbers (skillcircle admin create-token --facility <id>) / 仅本机构工作人员可导出",
        )
    kind, item_id = _item_arg()
    rows = get_store().registrations(fid, kind, item_id)
    table = pd.DataFrame(
        [
            {
                **row,
                "created_at": row["consent_at"],
                "kind_name": "培训班" if row["kind"] == "course" else "技能等级认定",
                "attended": "是" if row["attended"] else "否",
            }
            for row in rows
        ],
        columns=list(EXPORT_COLUMNS),
    ).rename(columns=EXPORT_COLUMNS)
    with get_store().write(principal, "export", "registrations", fid) as tx:
        tx.county, tx.facility_id = facility["county"], fid
        tx.after = {"rows": len(rows), "item": request.args.get("item") or None}
    metadata = {
        "机构 facility": f"{facility['name']} ({fid})",
        "导出 exported": now(),
        "个人信息 personal data": (
            "姓名和手机号仅用于安排报名者参加培训或评价；请妥善保管，用后删除 / "
            "personal data: use only to admit the registrants, keep safe, delete after use"
        ),
    }
    with tempfile.TemporaryDirectory(prefix="skillcircle-registrants-") as tmp:
        out = Path(tmp) / "registrations.xlsx"
        write_workbook({"报名": table}, out, metadata=metadata)
        data = out.read_bytes()
    response = send_file(
        io.BytesIO(data),
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        as_attachment=True,
        download_name=f"registrations_{fid}.xlsx",
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _managed_registration(reg_id: int) -> dict[str, Any]:
    """An active registration this token may manage; anything else is the same 404
    (another facility's staff learn nothing about its registrants)."""
    row = get_store().registration(p.row_id(reg_id, "registration"))
    principal: Principal = g.principal
    if row is None or not principal.may_manage(row["facility_id"], row["county"]):
        _fail(404, "not found", f"no registration {reg_id} of yours")
    return row


@bp.patch("/registrations/<id:reg_id>")
@spec.validate(json=AttendanceBody, resp=_answers(HTTP_200=r.RegistrationRow), security=BEARER)
def update_registration(reg_id: int) -> Any:
    """出勤 mark attendance."""
    data = p.json_body()
    body = _validate(AttendanceBody, data)
    _managed_registration(reg_id)
    if not get_store().update_registration(g.principal, reg_id, attended=body.attended):
        _fail(404, "not found", f"no registration {reg_id} of yours")
    row = get_store().registration(reg_id)
    return jsonify(_registration_json(row or {}))


@bp.delete("/registrations/<id:reg_id>")
@spec.validate(resp=_answers("HTTP_204"), security=BEARER)
def delete_registration(reg_id: int) -> Any:
    """删除报名 delete a registration's personal data (seat returned; the audit keeps no phone)."""
    _managed_registration(reg_id)
    if not get_store().update_registration(g.principal, reg_id, delete=True):
        _fail(404, "not found", f"no registration {reg_id} of yours")
    return "", 204


# ------------------------------------------------------------------------ page


@page.get("/admin")
def admin_page() -> str:
    from .pages import admin_context

    return render_template("admin.html", **admin_context())
