"""JSON API (documented by /api/openapi.json). Bad parameters -> 400, unknown codes -> 404."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import shapely
from flask import Blueprint, Response, abort, current_app, jsonify, make_response, request

from geo._errors import SkillcircleError
from geo.settings import LAYERS, MODES
from geo.study import IsochronesPendingError

from . import _params as p
from . import get_store, get_study, remember, served
from . import responses as r
from .openapi import Answers, openapi_document, query, spec
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
    """Serve a GET from the app's memo (:func:`web.remember`).

    For views whose answer depends only on the data version and their arguments;
    answers other than 200 are not kept.

    Parameters
    ----------
    view
        The view function.

    Returns
    -------
    callable
        The view, answering from the memo.
    """

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


@bp.errorhandler(IsochronesPendingError)
def _pending(exc: IsochronesPendingError) -> Any:
    """Isochrones still being traced after a facility change (never the old ones)."""
    response = jsonify(error="being recomputed", message=str(exc))
    response.headers["Retry-After"] = "2"
    return response, 503


def _ok(model: Any) -> Answers:
    """Answers of a GET with query parameters: the result, or a bad parameter (400)."""
    return Answers(HTTP_200=model, HTTP_400=(r.Error, "bad parameter"))


NOT_FOUND = (r.Error, "unknown code or id")


@bp.get("/openapi.json")
@spec.validate(resp=Answers(HTTP_200=r.OpenAPI))
@memoised
def openapi() -> Any:
    """This document (OpenAPI 3.1)."""
    return jsonify(openapi_document(get_study().settings))


@bp.get("/version")
@spec.validate(resp=Answers(HTTP_200=r.Version))
def version() -> Any:
    """Which data the answers reflect: the facilities version served by this process,
    the newest in the store, the content version (courses, sessions) and pending jobs."""
    now = served()
    store = get_store()
    versions = store.data_versions()
    follower = current_app.extensions["skillcircle.follower"]
    return jsonify(
        facilities_version=now.facilities_version,
        latest_facilities_version=versions["facilities"],
        content_version=versions["content"],
        results_key=now.study.version,
        jobs_waiting=store.jobs_waiting(),
        process=os.getpid(),
        switch=follower.last_switch,
    )


@bp.get("/layers")
@spec.validate(resp=Answers(HTTP_200=r.Layers))
@memoised
def layers() -> Any:
    """设施图层与数量 layers and counts."""
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
@spec.validate(query=p.FiltersQuery, resp=_ok(r.Facilities))
@memoised
def facilities() -> Any:
    """设施 facilities (GeoJSON)."""
    study = get_study()
    q = query(p.FiltersQuery)
    frame = study.filter_facilities(layer=q.layer, county=q.county, trade=q.trade)
    return jsonify(facilities_geojson(frame))


@bp.get("/facilities/<fid>")
@spec.validate(resp=Answers(HTTP_200=r.FacilityDetail, HTTP_404=NOT_FOUND))
def facility(fid: str) -> Any:
    """一个设施及近期课程、评价 one facility with upcoming courses."""
    row = get_study().facility_row(fid)
    if row is None:
        abort(404, description=f"no facility {fid!r}")
    record = facility_dict(row)
    record.update(get_store().upcoming([fid], today(), per_facility=50)[fid])
    return jsonify(record)


@bp.get("/villages")
@spec.validate(query=p.VillagesQuery, resp=_ok(r.Villages))
@memoised
def villages() -> Any:
    """村与覆盖 villages with minutes to the nearest facility (GeoJSON)."""
    study = get_study()
    q = query(p.VillagesQuery)
    mode, county, covered = q.mode, q.county, q.covered
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
@spec.validate(resp=Answers(HTTP_200=r.VillageDetail, HTTP_404=NOT_FOUND))
@memoised
def village(code: str) -> Any:
    """一个村各方式各图层最近设施 one village, nearest per layer and mode."""
    study = get_study()
    index = village_index(study, code)
    if index is None:
        abort(404, description=f"no village with code {code!r}")
    return jsonify(village_detail(study, index))


@bp.get("/nearby")
@spec.validate(query=p.NearbyQuery, resp=_ok(r.Nearby))
def nearby() -> Any:
    """附近培训 facilities reachable from a point, nearest first."""
    study = get_study()
    q = query(p.NearbyQuery)
    lon, lat, mode = q.lon, q.lat, q.mode
    minutes = q.minutes or study.settings.minutes
    found = study.nearby(
        lon, lat, mode, minutes=minutes, layer=q.layer, trade=q.trade, limit=q.limit
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
@spec.validate(
    query=p.IsochronesQuery,
    resp=Answers(
        HTTP_200=r.Isochrones,
        HTTP_400=(r.Error, "bad parameter"),
        HTTP_503=(r.Error, "being traced after a facility change (Retry-After)"),
    ),
)
@memoised
def isochrones() -> Any:
    """图层等时圈 union isochrones per layer (GeoJSON)."""
    study = get_study()
    q = query(p.IsochronesQuery)
    mode, layer = q.mode, q.layer
    minutes = q.minutes or study.settings.minutes
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
@spec.validate(query=p.PlanQuery, resp=_ok(r.Plan))
def plan() -> Any:
    """规划新增站点 new sites covering the most uncovered villages."""
    study = get_study()
    q = query(p.PlanQuery)
    county, layer, mode, add, weeks = q.county, q.layer, q.mode, q.add, q.weeks
    minutes = q.minutes or study.settings.minutes
    candidates, weights = q.candidates, q.weights
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
    from geo.demand import demand_summary

    signals, villages = demand_summary(solved.demand)
    return {
        "kind": "demand",
        "formula": formula,
        "weeks": weeks,
        "signals": signals,
        "villages_with_signals": villages,
    }


@bp.get("/stats")
@spec.validate(query=p.StatsQuery, resp=_ok(r.Stats))
@memoised
def stats() -> Any:
    """覆盖统计 coverage statistics."""
    study = get_study()
    q = query(p.StatsQuery)
    by, mode = q.by, q.mode
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
