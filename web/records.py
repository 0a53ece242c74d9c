"""Turning study rows into JSON-safe dicts shared by the API, the map and the QR pages."""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import shapely

from geo.demand import CHINA_TIME, today_china
from geo.facilities import facilities_to_geojson
from geo.models import FACILITY_FIELDS
from geo.products import clean
from geo.products import facility_record as facility_dict
from geo.settings import LAYERS, MODES
from geo.study import Study

__all__ = ["CHINA_TIME", "FACILITY_FIELDS", "clean", "facility_dict"]


def today() -> str:
    """Today's date in China (UTC+8), ISO (``2026-11-30``): courses ending earlier are past.

    Returns
    -------
    str
        The date as ``YYYY-MM-DD``.
    """
    return today_china().isoformat()


def facilities_geojson(frame: gpd.GeoDataFrame) -> dict[str, Any]:
    """Facilities for the API and the map.

    Parameters
    ----------
    frame
        Facilities as :func:`geo.facilities.load_facilities` returns them.

    Returns
    -------
    dict
        A FeatureCollection of :data:`FACILITY_FIELDS` with 6-decimal points.
    """
    return facilities_to_geojson(frame, fields=FACILITY_FIELDS, digits=6)


def village_summary(study: Study, mode: str, index: int) -> dict[str, Any]:
    """One village with its minutes to the nearest facility for a mode.

    Parameters
    ----------
    study
        The served study.
    mode
        The travel mode.
    index
        The village's position in ``study.villages``.

    Returns
    -------
    dict
        Code, names, point, location quality, ``any_minutes``, ``covered`` and
        ``far_from_road`` (NaN as None).
    """
    cov = study.coverage[mode].iloc[index]
    out = {
        "village_code": cov["village_code"],
        "village_name": cov["village_name"],
        "town": cov["town"],
        "county": cov["county"],
        "lon": clean(cov["lon"]),
        "lat": clean(cov["lat"]),
        "location_quality": cov["location_quality"],
        "mode": mode,
        "any_minutes": clean(cov["any_minutes"]),
        "covered": bool(cov["covered"]),
        "far_from_road": bool(cov["far_from_road"]),
    }
    return out


def village_detail(study: Study, index: int) -> dict[str, Any]:
    """A village with, per mode and layer, the nearest facility (record and minutes).

    Parameters
    ----------
    study
        The served study.
    index
        The village's position in ``study.villages``.

    Returns
    -------
    dict
        :func:`village_summary` without the per-mode keys, plus ``modes``: per mode
        its name, ``any_minutes``, ``covered``, ``layers`` and the 2SFCA ``access``.
    """
    fac = study.facilities.set_index("id", drop=False)
    base = village_summary(study, study.modes[0], index)
    for key in ("mode", "any_minutes", "covered"):
        base.pop(key)
    base["modes"] = {}
    for mode in study.modes:
        cov = study.coverage[mode].iloc[index]
        layers = {}
        for layer in LAYERS:
            fid = cov[f"{layer}_facility_id"]
            minutes = clean(cov[f"{layer}_minutes"])
            layers[layer] = {
                "layer_name": LAYERS[layer],
                "minutes": minutes,
                "facility": facility_dict(fac.loc[fid]) if fid else None,
            }
        access = study.access.get(mode)
        base["modes"][mode] = {
            "mode_name": MODES[mode],
            "any_minutes": clean(cov["any_minutes"]),
            "covered": bool(cov["covered"]),
            "layers": layers,
            "access": (
                {layer: round(float(access.iloc[index][f"{layer}_access"]), 6) for layer in LAYERS}
                if access is not None
                else None
            ),
        }
    return base


def village_index(study: Study, code: str) -> int | None:
    """The position of the village with this code.

    Parameters
    ----------
    study
        The served study.
    code
        A 12-digit village code.

    Returns
    -------
    int or None
        Its position in ``study.villages`` (a dict lookup per study), or None.
    """
    return study.village_position(code)


def simplified(geom: Any, tolerance: float = 0.0003) -> Any:
    """A lighter polygon for the browser, still valid.

    Parameters
    ----------
    geom
        A shapely (Multi)Polygon in WGS84.
    tolerance
        Degrees (0.0003: ~30 m).

    Returns
    -------
    shapely geometry
        The simplified geometry (made valid if simplifying broke it).
    """
    if geom.is_empty:
        return geom
    out = shapely.simplify(geom, tolerance, preserve_topology=True)
    return out if out.is_valid else shapely.make_valid(out)
