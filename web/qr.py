"""技能码: phone pages per village and facility, their QR codes, and /q/here."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
import segno
from flask import Blueprint, Response, abort, render_template, url_for

from geo.settings import LAYERS, MODES

from . import get_store, get_study, public_base, remember
from .records import clean, facility_dict, today, village_detail, village_index

bp = Blueprint("qr", __name__, url_prefix="/q")

PER_LAYER = 3


def _qr_response(url: str, fmt: str) -> Response:
    qr = segno.make(url, error="m")
    buf = io.BytesIO()
    if fmt == "png":
        qr.save(buf, kind="png", scale=8, border=4)
        mimetype = "image/png"
    else:
        qr.save(buf, kind="svg", scale=8, border=4, xmldecl=False)
        mimetype = "image/svg+xml"
    resp = Response(buf.getvalue(), mimetype=mimetype)
    resp.headers["X-QR-URL"] = url
    return resp


def village_url(code: str) -> str:
    return public_base() + url_for("qr.village", code=code)


def facility_url(fid: str) -> str:
    return public_base() + url_for("qr.facility", fid=fid)


def _village_or_404(code: str) -> int:
    index = village_index(get_study(), code)
    if index is None:
        abort(404)
    return index


@bp.get("/here")
def here() -> str:
    study = get_study()
    return render_template("here.html", study=study, modes=MODES, layers=LAYERS)


@bp.get("/<code>")
def village(code: str) -> str:
    study = get_study()
    index = _village_or_404(code)
    detail = village_detail(study, index)
    sections = remember(  # the facilities and times change only with the data version
        "village_sections",
        code,
        lambda: _village_sections(study, index, detail["lon"], detail["lat"]),
    )
    shown = [f["id"] for section in sections for f in section["facilities"]]
    return render_template(
        "village.html",
        study=study,
        v=detail,
        sections=sections,
        schedule=get_store().upcoming(shown, today()),
        modes=MODES,
        qr_url=village_url(code),
    )


#: The 技能码 page searches this far first; a layer with nothing that close shows its
#: nearest facility from the precomputed coverage (up to ``max_minutes``).
SEARCH_MINUTES = 60.0


def _village_sections(study: Any, index: int, lon: float, lat: float) -> list[dict[str, Any]]:
    """Per layer, the nearest facilities (by e-bike if loaded) with minutes for every mode."""
    # rank by one mode (e-bike if loaded), then time only the facilities shown in the others
    rank_mode = "ebike" if "ebike" in study.modes else study.modes[-1]
    bound = min(SEARCH_MINUTES, study.settings.max_minutes)
    ranked = study.nearby(lon, lat, rank_mode, minutes=bound, limit=10_000)
    shown = ranked.groupby("layer", sort=False).head(PER_LAYER)
    coverage = study.coverage[rank_mode].iloc[index]
    farther = [
        coverage[f"{layer}_facility_id"]
        for layer in LAYERS
        if layer not in set(shown["layer"]) and coverage[f"{layer}_facility_id"]
    ]
    if farther:  # beyond the first search: the layer's nearest, already in the coverage
        table = study.facility_table(None, None)[0]
        extra = table[table["id"].isin(farther)].copy()
        minutes = {coverage[f"{lay}_facility_id"]: coverage[f"{lay}_minutes"] for lay in LAYERS}
        extra["minutes"] = np.round(extra["id"].map(minutes).to_numpy(float), 1)
        shown = pd.concat([shown, extra], ignore_index=True)
    times = {rank_mode: dict(zip(shown["id"], shown["minutes"], strict=True))}
    for mode in study.modes:
        if mode != rank_mode:
            seconds = study.routers[mode].one_to_many(lon, lat, shown["lon"], shown["lat"])
            times[mode] = dict(zip(shown["id"], np.round(seconds / 60.0, 1), strict=True))
    sections = []
    for layer, layer_name in LAYERS.items():
        items = []
        for _, row in shown[shown["layer"] == layer].iterrows():
            rec = facility_dict(row)
            rec["times"] = {m: clean(times[m][row["id"]]) for m in study.modes}
            items.append(rec)
        sections.append({"layer": layer, "layer_name": layer_name, "facilities": items})
    return sections


@bp.get("/<code>.<any(png, svg):fmt>")
def village_qr(code: str, fmt: str) -> Response:
    _village_or_404(code)
    return _qr_response(village_url(code), fmt)


def _facility_or_404(fid: str) -> Any:
    row = get_study().facility_row(fid)
    if row is None:
        abort(404)
    return row


@bp.get("/f/<fid>")
def facility(fid: str) -> str:
    study = get_study()
    rec = facility_dict(_facility_or_404(fid))
    schedule = get_store().upcoming([fid], today(), per_facility=20)[fid]
    return render_template(
        "facility.html", study=study, f=rec, schedule=schedule, qr_url=facility_url(fid)
    )


@bp.get("/f/<fid>.<any(png, svg):fmt>")
def facility_qr(fid: str, fmt: str) -> Response:
    _facility_or_404(fid)
    return _qr_response(facility_url(fid), fmt)
