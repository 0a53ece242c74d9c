"""Metric CRS chosen from the data: the UTM zone at the centre of the coordinates."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from pyproj.aoi import AreaOfInterest
from pyproj.database import query_utm_crs_info


def utm_crs(lon: ArrayLike, lat: ArrayLike) -> str:
    """EPSG code (``"EPSG:326zz"``/``"EPSG:327zz"``) of the WGS84 UTM zone at the
    median of the given WGS84 coordinates."""
    lon = np.asarray(lon, float)
    lat = np.asarray(lat, float)
    ok = np.isfinite(lon) & np.isfinite(lat)
    if not ok.any():
        raise ValueError("no finite coordinates to choose a UTM zone from")
    c_lon, c_lat = float(np.median(lon[ok])), float(np.median(lat[ok]))
    info = query_utm_crs_info(
        datum_name="WGS 84",
        area_of_interest=AreaOfInterest(c_lon, c_lat, c_lon, c_lat),
    )
    return f"{info[0].auth_name}:{info[0].code}"
