"""WGS84 <-> GCJ-02 <-> BD-09 conversion, vectorised over numpy arrays.

GCJ-02 ("Mars coordinates", 高德/腾讯) is WGS84 plus a published obfuscation
offset on the Krasovsky ellipsoid; BD-09 (百度) adds a further rotation/shift to
GCJ-02. The forward formulas are the public ones (as in *eviltransform* and
*coord-convert*, which work on scalars only). The inverses have no closed form,
so they are solved by fixed-point iteration until the residual is below 1e-9
degrees (about 0.1 mm): round trips are far below the 1 m the project needs.

Outside mainland China (the usual rough box) GCJ-02 is the identity, so all
conversions return their input unchanged there.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from geo._errors import SettingsError

CRS_NAMES = ("wgs84", "gcj02", "bd09")
CrsName = Literal["wgs84", "gcj02", "bd09"]

_A = 6378245.0  # Krasovsky 1940 semi-major axis
_EE = 0.00669342162296594323  # Krasovsky eccentricity squared
_X_PI = np.pi * 3000.0 / 180.0
_TOL_DEG = 1e-9
_MAX_ITER = 30

FloatArray = NDArray[np.float64]


def in_china(lon: ArrayLike, lat: ArrayLike) -> NDArray[np.bool_]:
    """True where the point lies in the rough mainland-China box where GCJ-02 applies."""
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    return (lon >= 72.004) & (lon <= 137.8347) & (lat >= 0.8293) & (lat <= 55.8271)


def _transform_lat(x: FloatArray, y: FloatArray) -> FloatArray:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    ret += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    ret += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    ret += (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    return ret


def _transform_lon(x: FloatArray, y: FloatArray) -> FloatArray:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    ret += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    ret += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    ret += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    return ret


def _as_arrays(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    lon_a, lat_a = np.broadcast_arrays(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    return lon_a.astype(float, copy=True), lat_a.astype(float, copy=True)


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Convert WGS84 lon/lat (degrees) to GCJ-02; identity outside China."""
    lon_a, lat_a = _as_arrays(lon, lat)
    dlat = _transform_lat(lon_a - 105.0, lat_a - 35.0)
    dlon = _transform_lon(lon_a - 105.0, lat_a - 35.0)
    radlat = lat_a / 180.0 * np.pi
    magic = 1 - _EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrtmagic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * np.cos(radlat) * np.pi)
    inside = in_china(lon_a, lat_a)
    return np.where(inside, lon_a + dlon, lon_a), np.where(inside, lat_a + dlat, lat_a)


def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Convert GCJ-02 lon/lat to BD-09 (Baidu)."""
    x, y = _as_arrays(lon, lat)
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    bd_lon = z * np.cos(theta) + 0.0065
    bd_lat = z * np.sin(theta) + 0.006
    inside = in_china(x, y)
    return np.where(inside, bd_lon, x), np.where(inside, bd_lat, y)


def _invert(forward, lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:  # type: ignore[no-untyped-def]
    """Solve forward(x) = target by fixed-point iteration (the offsets vary slowly)."""
    t_lon, t_lat = _as_arrays(lon, lat)
    x, y = t_lon.copy(), t_lat.copy()
    for _ in range(_MAX_ITER):
        f_lon, f_lat = forward(x, y)
        d_lon, d_lat = f_lon - t_lon, f_lat - t_lat
        x -= d_lon
        y -= d_lat
        if np.all(np.abs(d_lon) < _TOL_DEG) and np.all(np.abs(d_lat) < _TOL_DEG):
            break
    return x, y


def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Convert GCJ-02 lon/lat to WGS84 (iterative inverse, error < 1 mm)."""
    return _invert(wgs84_to_gcj02, lon, lat)


def bd09_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Convert BD-09 lon/lat to GCJ-02 (iterative inverse)."""
    return _invert(gcj02_to_bd09, lon, lat)


def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Convert WGS84 lon/lat to BD-09."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Convert BD-09 lon/lat to WGS84."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


def to_wgs84(lon: ArrayLike, lat: ArrayLike, crs: str) -> tuple[FloatArray, FloatArray]:
    """Convert from ``crs`` (``wgs84``, ``gcj02`` or ``bd09``) to WGS84.

    Raises
    ------
    SettingsError
        If ``crs`` is not one of the three names.
    """
    crs = check_crs(crs)
    if crs == "gcj02":
        return gcj02_to_wgs84(lon, lat)
    if crs == "bd09":
        return bd09_to_wgs84(lon, lat)
    return _as_arrays(lon, lat)


def check_crs(crs: str) -> str:
    """The name of ``crs`` in :data:`CRS_NAMES` (``GCJ-02`` -> ``gcj02``).

    Raises
    ------
    SettingsError
        If ``crs`` is not one of the three names.
    """
    key = crs.lower().replace("-", "").replace("_", "")
    if key not in CRS_NAMES:
        raise SettingsError(f"unknown coordinate system {crs!r}; use one of {', '.join(CRS_NAMES)}")
    return key
