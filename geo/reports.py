"""County reports for trade unions: town summary, uncovered villages, facilities, notes.

:func:`county_report` turns a coverage table (:func:`geo.coverage.coverage_table`)
into the tables of the ``skillcircle export`` workbook; :func:`write_report`
writes them as XLSX (sheets 汇总 / 未覆盖村 / 设施 / 说明), or the per-village
table as CSV (UTF-8 with BOM) or GeoJSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import geopandas as gpd
import numpy as np
import pandas as pd

from geo._errors import InputDataError, SettingsError
from geo.coverage import coverage_stats
from geo.export import write_table, write_workbook
from geo.facilities import facility_records
from geo.models import Facility, labels
from geo.settings import LAYERS

if TYPE_CHECKING:
    from geo.region import Region

SHARE_COLUMNS = ("覆盖率", "人口覆盖率")
#: Columns of the 设施 sheet: fields of :class:`geo.models.Facility`, headed by their titles.
REPORT_FACILITY_FIELDS = (
    "id",
    "layer_name",
    "name",
    "county",
    "town",
    "address",
    "phone",
    "trades",
    "capacity",
    "is_sample",
    "source",
    "location_quality",
    "lon",
    "lat",
)
_POP_ALIASES = {
    "village_code": ("village_code", "code", "村代码", "统计代码", "区划代码"),
    "people": ("people", "population", "人口", "常住人口"),
}


@dataclass(frozen=True)
class Report:
    """The tables of a county report."""

    summary: pd.DataFrame
    uncovered: pd.DataFrame
    facilities: pd.DataFrame
    villages: gpd.GeoDataFrame
    population_weighted: bool
    access: pd.DataFrame | None = None
    #: The 需求 sheet (:func:`geo.demand.demand_sheet`), when demand signals were given.
    demand: pd.DataFrame | None = None
    demand_note: str = ""


def check_county(county: str, region: Region) -> str | None:
    """``all`` -> None; a county of ``region`` -> itself; else SettingsError."""
    if county == "all":
        return None
    if county not in region.county_names:
        known = "、".join(region.county_names)
        raise SettingsError(
            f"unknown county {county!r} in {region.name}; use all or one of {known}"
        )
    return county


def load_population(path: Path, codes: pd.Series) -> pd.Series:
    """Read a village population file (CSV/XLSX: village code + people) -> Series by code.

    Raises
    ------
    InputDataError
        Missing file or columns, non-numeric or negative people, unknown or
        duplicate codes.
    """
    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"{path}: population file not found")
    try:
        if path.suffix.lower() == ".xlsx":
            table = pd.read_excel(path, dtype=str)
        else:
            try:
                table = pd.read_csv(path, dtype=str, encoding="utf-8-sig")
            except UnicodeDecodeError:
                table = pd.read_csv(path, dtype=str, encoding="gb18030")
    except (ValueError, OSError) as exc:
        raise InputDataError(f"{path.name}: cannot read ({exc}); use CSV or XLSX") from exc
    found = {}
    for key, names in _POP_ALIASES.items():
        match = [c for c in table.columns if str(c).strip().lower() in names]
        if not match:
            raise InputDataError(
                f"{path.name}: missing column {key} (or {'/'.join(names[1:])}); "
                f"found {', '.join(map(str, table.columns))}"
            )
        found[key] = match[0]
    code = table[found["village_code"]].astype(str).str.strip()
    people = pd.to_numeric(table[found["people"]], errors="coerce")
    bad = people.isna() | (people < 0)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0]) + 2
        raise InputDataError(f"{path.name} row {row}: people must be a number >= 0")
    if code.duplicated().any():
        dup = code[code.duplicated()].iloc[0]
        raise InputDataError(f"{path.name}: village code {dup} appears twice; keep one row")
    unknown = sorted(set(code) - set(codes.astype(str)))
    if unknown:
        raise InputDataError(
            f"{path.name}: {len(unknown)} unknown village code(s), e.g. {unknown[0]}; "
            "use the 12-digit codes of data/boundaries/villages.geojson"
        )
    return pd.Series(people.to_numpy(float), index=code.to_numpy(), name="people")


def county_report(
    coverage: gpd.GeoDataFrame,
    facilities: gpd.GeoDataFrame,
    county: str | None,
    minutes: float,
    population: pd.Series | None = None,
    access: pd.DataFrame | None = None,
) -> Report:
    """Build the report tables for one county (or all with ``None``).

    ``coverage`` is a coverage table; ``minutes`` is applied to its
    ``<layer>_minutes`` columns. With ``population`` (people per village code)
    the summary adds people covered; without it only village counts are given.
    ``access`` (rows aligned with ``coverage``, columns ``<layer>_access``) adds
    the 2SFCA scores to the village table and a 可达性 sheet.
    """
    if access is not None:
        coverage = coverage.assign(**{c: access[c].to_numpy() for c in access.columns})
    cov = coverage if county is None else coverage[coverage["county"] == county]
    fac = facilities if county is None else facilities[facilities["county"] == county]
    cov = cov.copy()
    cov["covered"] = (cov["any_minutes"] <= minutes).to_numpy()
    # 汇总: one row per town, the statistics of coverage_stats under Chinese headers
    stats = coverage_stats(cov, "town", minutes, people=population)
    columns = {
        "county": "区县",
        "town": "乡镇",
        "villages": "村数",
        "covered": "已覆盖村",
        "share_covered": "覆盖率",
        **{f"{layer}_covered": f"{name}覆盖村" for layer, name in LAYERS.items()},
        "villages_located": "有真实坐标的村",
    }
    if population is not None:
        columns |= {
            "people": "人口",
            "people_covered": "覆盖人口",
            "share_people_covered": "人口覆盖率",
        }
    summary = stats[list(columns)].rename(columns=columns)

    # 未覆盖村: nearest facility and minutes per layer
    names = facilities.set_index("id")["name"].to_dict()
    unc = cov[~cov["covered"]]
    uncovered = pd.DataFrame(
        {
            "村代码": unc["village_code"],
            "村": unc["village_name"],
            "乡镇": unc["town"],
            "区县": unc["county"],
            "定位": unc["location_quality"],
            "最近设施分钟": unc["any_minutes"],
        }
    )
    for layer, name in LAYERS.items():
        uncovered[f"{name}最近"] = unc[f"{layer}_facility_id"].map(names).fillna("")
        uncovered[f"{name}分钟"] = unc[f"{layer}_minutes"]

    titles = labels(Facility)
    facilities_table = pd.DataFrame(
        [{titles[f]: r[f] for f in REPORT_FACILITY_FIELDS} for r in facility_records(fac, 6)],
        columns=[titles[f] for f in REPORT_FACILITY_FIELDS],
    )
    scores = None
    if access is not None:
        scores = pd.DataFrame(
            {"村代码": cov["village_code"], "村": cov["village_name"], "乡镇": cov["town"]}
        )
        for layer, name in LAYERS.items():
            scores[f"{name}可达性"] = cov[f"{layer}_access"].round(4)
        scores = scores.reset_index(drop=True)
    return Report(
        summary,
        uncovered.reset_index(drop=True),
        facilities_table.reset_index(drop=True),
        cov,
        population is not None,
        scores,
    )


def write_report(report: Report, path: Path, metadata: Mapping[str, str]) -> Path:
    """XLSX: the four sheets; CSV/GeoJSON: the per-village table of the county."""
    meta = dict(metadata)
    meta["人口 population"] = (
        "population-weighted from the supplied file"
        if report.population_weighted
        else "no village population available: figures are counts of villages (村数)"
    )
    suffix = Path(path).suffix.lower()
    if suffix == ".xlsx":
        sheets = {"汇总": report.summary, "未覆盖村": report.uncovered, "设施": report.facilities}
        if report.demand is not None:
            sheets["需求"] = report.demand
            meta["需求 demand"] = report.demand_note or (
                "anonymous training-demand signals per village and trade: 技能码 scans, "
                "searches, notify-me requests (no personal data)"
            )
        if report.access is not None:
            sheets["可达性"] = report.access
            meta["可达性 access"] = (
                "2SFCA (two-step floating catchment) per layer: facility capacity per "
                + ("person" if report.population_weighted else "village")
                + " within the threshold; missing capacities take their layer's median"
            )
        return write_workbook(
            sheets,
            path,
            metadata=meta,
            percent_columns=SHARE_COLUMNS,
        )
    table = report.villages if suffix == ".geojson" else report.villages.drop(columns="geometry")
    return write_table(table, path, metadata=meta, sheet_name="村")
