"""Downloads for county unions: /export/<county>.<xlsx|csv|geojson>?mode=&minutes=&trade=."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

from flask import Blueprint, Response, abort, request, send_file

from geo.demand import demand_frame, demand_note, since_week
from geo.products import county_export
from geo.reports import write_report

from . import _params as p
from . import get_store, get_study
from .demand import buffer as demand_buffer

bp = Blueprint("exports", __name__, url_prefix="/export")

MIMETYPES = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv; charset=utf-8",
    "geojson": "application/geo+json",
}


@bp.get("/<county>.<any(xlsx, csv, geojson):fmt>")
def county_file(county: str, fmt: str) -> Response:
    """The county report; the county must be one of the known names or ``all``."""
    study = get_study()
    if county != "all" and county not in study.settings.region.county_names:
        abort(404)
    q = p.parse_query(p.ExportQuery, request.args)
    mode, trade = q.mode, q.trade
    minutes = q.minutes or study.settings.minutes
    precomputed = not trade and minutes == study.settings.minutes
    demand_buffer().flush()
    since = since_week()
    fac = study.filter_facilities(trade=trade)
    made = county_export(
        study.routers[mode],
        study.villages,
        fac,
        study.network.source,
        county=None if county == "all" else county,
        minutes=minutes,
        trade=trade,
        coverage=study.coverage[mode] if precomputed else None,
        access=study.access[mode] if precomputed else None,
        demand=demand_frame(get_store().demand(since)),
        demand_note=demand_note(since),
    )
    report, meta = made.report, made.metadata
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"export.{fmt}"
        write_report(report, out, meta)
        data = out.read_bytes()
    name = f"skillcircle_{county}_{mode}_{minutes:g}min.{fmt}"
    return send_file(
        io.BytesIO(data), mimetype=MIMETYPES[fmt], as_attachment=True, download_name=name
    )
