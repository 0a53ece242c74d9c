"""JSON API (documented by /api/openapi.json). Bad parameters -> 400, unknown codes -> 404."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import shapely
from flask import Blueprint, Response, abort, jsonify, make_response, request

from geo._errors import SkillcircleError
from geo.settings import LAYERS, MODES

from . import _params as p
from . import get_store, get_study, remember, served
from .openapi import openapi_document
from .records import (
    clean,
    facilities_geojson,
    facility_dict,
    simplified,
    today,
    village_detail,
    village_index,
    village_summary,
)

bp = Blueprint("api", __name__, url_prefix="/api")


class _NotCachedError(Exception):
    """A non-200 answer: returned to the client, never remembered."""

    def __init__(self, response: Response) -> None:
        self.response = response


def memoised(view: Callable[..., Any]) -> Callable[..., Any]:
    """Serve a GET whose answer depends only on the data version and its arguments
    from the app's memo (:func:`web.remember`)."""

    @functools.wraps(view)
    def wrapper(**kwargs: Any) -> Any:
        key = (view.__name__, tuple(sorted(kwargs.items())), tuple(sorted(request.args.items())))

        def render() -> tuple[bytes, str]:
            response = make_response(view(**kwargs))
            if response.status_code != 200:
                raise _NotCachedError(response)
            return response.get_data(), str(response.mimetype)

        try:
            body, mimetype = remember("responses", key, render)
        except _NotCachedError as refused:
            return refused.response
        return Response(body, mimetype=mimetype)

    return wrapper


@bp.errorhandler(SkillcircleError)
def _our_error(exc: SkillcircleError) -> Any:
    return jsonify(error="bad request", message=str(exc)), 400


@bp.get("/openapi.json")
@memoised
def openapi() -> Any:
    return jsonify(openapi_document(get_study().settings.region))


@bp.get("/version")
def version() -> Any:
    """Which data the answers reflect: the facilities version served by this process,
    the newest in the store, the content version (courses, sessions) and pending jobs."""
    now = served()
    store = get_store()
    versions = store.data_versions()
    return jsonify(
        facilities_version=now.facilities_version,
        latest_facilities_version=versions["facilities"],
        content_version=versions["content"],
        results_key=now.study.version,
        jobs_waiting=store.jobs_waiting(),
    )


@bp.get("/layers")
@memoised
def layers() -> Any:
    study = get_study()
    fac = study.facilities
    rows = []
    for key, name in LAYERS.items():
        group = fac[fac["layer"] == key]
        rows.append(
            {
                "key": key,
                "name": name,
                "count": len(group),
                "sample_count": int(group["is_sample"].sum()),
            }
        )
    return jsonify(
        layers=rows,
        modes=dict(MODES),
        network=study.network.source.label,
        coarse_network=study.network.source.coarse,
    )


@bp.get("/facilities")
@memoised
def facilities() -> Any:
    study = get_study()
    frame = study.filter_facilities(layer=p.layer(), county=p.county(), trade=p.trade())
    return jsonify(facilities_geojson(frame))


@bp.get("/facilities/<fid>")
def facility(fid: str) -> Any:
    row = get_study().facility_row(fid)
    if row is None:
        abort(404, description=f"no facility {fid!r}")
    record = facility_dict(row)
    record.update(get_store().upcoming([fid], today(), per_facility=50)[fid])
    return jsonify(record)


@bp.get("/villages")
@memoised
def villages() -> Any:
    study = get_study()
    mode = p.mode()
    county = p.county()
    covered = p.boolean("covered")
    cov = study.coverage[mode]
    keep = np.ones(len(cov), dtype=bool)
    if county:
        keep &= (cov["county"] == county).to_numpy()
    if covered is not None:
        keep &= (cov["covered"] == covered).to_numpy()
    features = []
    for i in np.flatnonzero(keep):
        props = village_summary(study, mode, int(i))
        lon, lat = props["lon"], props["lat"]
        features.append(
            {
                "type": "Feature",
                "properties": props,
                "geometry": {"type": "Point", "coordinates": [lon, lat]},
            }
        )
    return jsonify(
        type="FeatureCollection",
        features=features,
        metadata={
            "mode": mode,
            "minutes": study.settings.minutes,
            "network": study.network.source.label,
        },
    )


@bp.get("/villages/<code>")
@memoised
def village(code: str) -> Any:
    study = get_study()
    index = village_index(study, code)
    if index is None:
        abort(404, description=f"no village with code {code!r}")
    return jsonify(village_detail(study, index))


@bp.get("/nearby")
def nearby() -> Any:
    study = get_study()
    lon, lat = p.lon_lat()
    mode = p.mode()
    minutes = p.number("minutes", 1, study.settings.max_minutes, default=study.settings.minutes)
    limit = p.integer("limit", 1, p.NEARBY_LIMIT_MAX, default=20)
    found = study.nearby(
        lon, lat, mode, minutes=minutes, layer=p.layer(), trade=p.trade(), limit=limit
    )
    schedule = get_store().upcoming([f["id"] for f in found], today())
    rows = [f | schedule[f["id"]] for f in found]
    return jsonify(
        origin={"lon": lon, "lat": lat},
        mode=mode,
        minutes=minutes,
        facilities=rows,
        network=study.network.source.label,
    )


@bp.get("/isochrones")
@memoised
def isochrones() -> Any:
    study = get_study()
    mode = p.mode()
    minutes = p.number("minutes", 1, study.settings.max_minutes, default=study.settings.minutes)
    layer = p.layer()
    features = []
    for key in [layer] if layer else list(LAYERS):
        geom = simplified(study.isochrone(key, mode, minutes))
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "layer": key,
                    "layer_name": LAYERS[key],
                    "mode": mode,
                    "minutes": minutes,
                },
                "geometry": shapely.geometry.mapping(geom) if not geom.is_empty else None,
            }
        )
    return jsonify(
        type="FeatureCollection",
        features=features,
        metadata={
            "network": study.network.source.label,
            "method": "union of reached-node access discs (docs/architecture.md)",
        },
    )


@bp.get("/plan")
def plan() -> Any:
    study = get_study()
    county = p.county()
    if county is None:
        p.bad_request("county is required (one county at a time)")
    layer = p.layer() or "village_station"
    mode = p.mode()
    minutes = p.number("minutes", 1, study.settings.max_minutes, default=study.settings.minutes)
    add = p.integer("add", 1, p.PLAN_ADD_MAX, default=5)
    candidates = p.choice("candidates", ("villages", "towns"), "villages")
    weights = p.choice("weights", ("villages", "demand"), "villages")
    weeks = p.integer("weeks", 1, 1040, default=52)
    demand = None
    if weights == "demand":
        demand = _demand_signals(weeks)
    # solved once per data version, parameter set and demand (bounded memo); minutes to
    # 0.1, so that 30.001 and 30.002 are one plan, not two MILP solutions
    key = (county, layer, mode, round(minutes, 1), add, candidates)
    signals = None if demand is None else (weeks, tuple(sorted(demand.items())))
    return jsonify(
        remember("plans", (*key, signals), lambda: _solve_plan(study, *key, demand, weeks))
    )


def _demand_signals(weeks: int) -> Any:
    """Demand signals per village code of the last ``weeks`` ISO weeks (web.demand)."""
    from geo.demand import demand_frame, demand_per_village, since_week

    from .demand import buffer

    buffer().flush()
    rows = get_store().demand(since_week(weeks))
    return demand_per_village(demand_frame(rows))


def _solve_plan(
    study: Any,
    county: str,
    layer: str,
    mode: str,
    minutes: float,
    add: int,
    candidates: str,
    demand: Any = None,
    weeks: int = 52,
) -> dict[str, Any]:
    """The plan of new sites as JSON (villages newly covered per site)."""
    from geo.demand import DEMAND_WEIGHT_FORMULA
    from geo.siting import plan_county, plan_table

    solved = plan_county(
        study.routers[mode],
        study.villages,
        study.towns,
        study.facilities,
        county=county,
        layer=layer,
        minutes=minutes,
        add=add,
        candidates=candidates,
        demand=demand,
    )
    table = plan_table(solved)
    points = solved.demand  # the county's villages with their weights
    sites = []
    for row, newly in zip(
        table.to_dict(orient="records"), solved.result.newly_covered, strict=True
    ):
        row.pop("geometry")
        row = {k: clean(v) for k, v in row.items()}
        row["villages"] = [
            {
                "village_code": v["village_code"],
                "village_name": v["village_name"],
                "lon": round(v.geometry.x, 6),
                "lat": round(v.geometry.y, 6),
                "weight": float(v["weight"]),
            }
            for _, v in points.iloc[newly].iterrows()
        ]
        sites.append(row)
    res = solved.result
    return {
        "county": county,
        "layer": layer,
        "mode": mode,
        "minutes": minutes,
        "add": add,
        "candidates": candidates,
        "covered_before": res.covered_before,
        "covered_after": res.covered_after,
        "total": res.total,
        "solver": {
            "method": res.method,
            "optimal": res.optimal,
            "gap": res.gap,
            "seconds": round(res.seconds, 3),
        },
        "sites": sites,
        "network": study.network.source.label,
        "weights": _weights_note(solved, demand, weeks, DEMAND_WEIGHT_FORMULA),
    }


def _weights_note(solved: Any, demand: Any, weeks: int, formula: str) -> dict[str, Any]:
    """How the plan weighted villages (its metadata)."""
    if demand is None:
        return {"kind": "villages", "formula": "w = 1 per village"}
    points = solved.demand
    return {
        "kind": "demand",
        "formula": formula,
        "weeks": weeks,
        "signals": float(points["weight"].sum() - len(points)),
        "villages_with_signals": int((points["weight"] > 1).sum()),
    }


@bp.get("/stats")
@memoised
def stats() -> Any:
    study = get_study()
    by = p.choice("by", ("county", "town"), "county")
    mode = p.mode()
    table = study.stats(mode, by)
    rows = [{k: clean(v) for k, v in rec.items()} for rec in table.to_dict(orient="records")]
    return jsonify(
        by=by,
        mode=mode,
        minutes=study.settings.minutes,
        rows=rows,
        network=study.network.source.label,
        population_note="2020 census per county only; counts are villages",
    )
