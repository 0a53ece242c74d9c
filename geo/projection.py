"""The metric CRS of a study area: the WGS 84 / UTM zone at the centre of its coordinates.

Distances, access legs and isochrone areas are computed in a projected CRS. A
UTM zone is 6° wide; its scale error stays below 0.1 % inside the zone but
grows to 15-30 % a few zones away, so the zone must follow the data: Jiaxing
and Shanghai are in 51N (EPSG:32651), Helsinki in 35N (EPSG:32635), Sydney in
56S (EPSG:32756). :func:`utm_crs` asks the PROJ database (pyproj) for the zone.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.typing import ArrayLike

from geo._errors import SettingsError

#: UTM is defined between these latitudes (polar regions use UPS instead).
UTM_LATITUDES = (-80.0, 84.0)


def utm_crs(lon: ArrayLike, lat: ArrayLike) -> str:
    """EPSG code of the WGS 84 / UTM zone at the median of WGS84 coordinates.

    Parameters
    ----------
    lon, lat
        WGS84 degrees (any shape; non-finite values are ignored). The median,
        not the mean, so that a few stray points do not move the zone.

    Returns
    -------
    str
        ``"EPSG:326zz"`` (north, also on the equator) or ``"EPSG:327zz"``
        (south). A median on a zone border belongs to the zone east of it, as
        in the UTM definition (120° E is zone 51).

    Raises
    ------
    SettingsError
        If there is no finite coordinate, or the median is outside UTM's
        latitudes (80° S-84° N) or not a longitude/latitude at all.

    Notes
    -----
    Data that straddle the antimeridian (180°) get a median far from both
    sides; set ``Settings.metric_crs`` explicitly for such areas.
    """
    x = np.asarray(lon, float).ravel()
    y = np.asarray(lat, float).ravel()
    finite = np.isfinite(x) & np.isfinite(y)
    if not finite.any():
        raise SettingsError(
            "no finite coordinates to choose a metric CRS from; give WGS84 lon/lat "
            "or set Settings.metric_crs explicitly"
        )
    return _utm_code(float(np.median(x[finite])), float(np.median(y[finite])))


@functools.cache
def _utm_code(lon: float, lat: float) -> str:
    """The zone of one point (cached: a network asks once per Router and mode)."""
    from pyproj.aoi import AreaOfInterest
    from pyproj.database import query_utm_crs_info

    south, north = UTM_LATITUDES
    if not (-180.0 <= lon <= 180.0 and south <= lat <= north):
        raise SettingsError(
            f"({lon:g}, {lat:g}) is not a longitude/latitude within UTM's 80° S-84° N; "
            "check that the coordinates are WGS84 degrees, or set Settings.metric_crs "
            "(e.g. a polar stereographic EPSG:3413/3031)"
        )
    prefix = "326" if lat >= 0 else "327"
    zones = [
        info
        for info in query_utm_crs_info(
            datum_name="WGS 84", area_of_interest=AreaOfInterest(lon, lat, lon, lat)
        )
        if info.auth_name == "EPSG" and info.code.startswith(prefix)
    ]
    if not zones:  # pragma: no cover - the PROJ database covers every UTM zone
        raise SettingsError(f"the PROJ database has no UTM zone for ({lon:g}, {lat:g})")
    # on a border both neighbours match: the eastern one (larger west edge) is the zone
    best = max(zones, key=lambda info: info.area_of_use.west if info.area_of_use else -180.0)
    return f"EPSG:{best.code}"
