"""Downloads for county unions: /export/<county>.<xlsx|csv|geojson>?mode=&minutes=&trade=."""

from __future__ import annotations

import io
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from flask import Blueprint, Response, abort, send_file

from geo.access import access_scores
from geo.coverage import coverage_table
from geo.reports import county_report, write_report
from geo.settings import MODES

from . import _params as p
from . import get_study

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
    mode = p.mode()
    minutes = p.number("minutes", 1, study.settings.max_minutes, default=study.settings.minutes)
    trade = p.trade()
    fac = study.facilities
    if trade or minutes != study.settings.minutes:
        fac = study.filter_facilities(trade=trade)
        router = study.routers[mode]
        table = coverage_table(router, study.villages, fac, minutes)
        scores = access_scores(router, study.villages, fac, minutes)
    else:
        table, scores = study.coverage[mode], study.access[mode]
    report = county_report(table, fac, None if county == "all" else county, minutes, None, scores)
    n_sample = int(fac["is_sample"].sum())
    meta = {
        "生成时间 generated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "路网 network": study.network.source.label,
        "方式 mode": f"{mode} ({MODES[mode]})",
        "阈值 minutes": f"{minutes:g}",
        "区县 county": county,
        "工种 trade": trade or "全部 all",
        "样例 sample": f"{n_sample} of {len(fac)} facilities are SAMPLE data (is_sample=true)",
        "区域 region": study.settings.region.label,
        "数据 attribution": (
            "© OpenStreetMap contributors, ODbL 1.0; see the region pack's README.md"
        ),
    }
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"export.{fmt}"
        write_report(report, out, meta)
        data = out.read_bytes()
    name = f"skillcircle_{county}_{mode}_{minutes:g}min.{fmt}"
    return send_file(
        io.BytesIO(data), mimetype=MIMETYPES[fmt], as_attachment=True, download_name=name
    )
