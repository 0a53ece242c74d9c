"""The answers users take away, made once and shared by the CLI, the web app and the posters.

* :func:`village_card`: what a village's 技能码 lists — per layer the nearest
  facilities with minutes by every mode. The printed poster and the page its QR
  opens are both drawn from it, so they show the same facilities and minutes.
* :func:`county_export`: the county report for trade unions (汇总 / 未覆盖村 /
  设施 / 可达性) with its metadata, for ``skillcircle export`` and ``/export/...``.
* :func:`run_metadata`: the metadata block every output carries (network,
  mode, thresholds, access-leg rule, region, attribution).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from geo.models import FACILITY_FIELDS
from geo.settings import LAYERS, MODES, Settings
from geo.tables import plain

if TYPE_CHECKING:
    import geopandas as gpd

    from geo.network import NetworkSource
    from geo.reports import Report
    from geo.routing import Router

__all__ = ["FACILITY_FIELDS", "clean", "facility_record", "facility_records"]

#: A JSON-safe value: NaN/None/NA -> None, numpy scalars -> Python, lists kept.
clean = plain


def facility_record(row: pd.Series) -> dict[str, Any]:
    """A facility row as a JSON-safe dict: :data:`geo.models.FACILITY_FIELDS` (the
    :class:`geo.models.Facility` fields people see), ``lon``/``lat`` (6 decimals),
    and ``minutes``/``distance_m`` when the row has them."""
    geom = row.get("geometry")
    if geom is not None:
        return _record(row, round(geom.x, 6), round(geom.y, 6))
    return _record(row, plain(row.get("lon")), plain(row.get("lat")))


def facility_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """:func:`facility_record` of every row, read column by column (a whole registry in
    one pass: a server builds its card index when it switches to new results, while
    it answers requests)."""
    kept = [k for k in (*FACILITY_FIELDS, *_EXTRAS, "lon", "lat") if k in frame.columns]
    columns = [frame[k].tolist() for k in kept]
    rows = [dict(zip(kept, values, strict=True)) for values in zip(*columns, strict=True)]
    if "geometry" not in frame.columns:
        return [_record(row, plain(row.get("lon")), plain(row.get("lat"))) for row in rows]
    lon = [round(x, 6) for x in frame.geometry.x.tolist()]
    lat = [round(y, 6) for y in frame.geometry.y.tolist()]
    return [_record(row, x, y) for row, x, y in zip(rows, lon, lat, strict=True)]


#: Columns a facility record takes when its row has them (answers of nearby searches).
_EXTRAS = ("minutes", "distance_m")


def _record(row: pd.Series | dict[str, Any], lon: Any, lat: Any) -> dict[str, Any]:
    """The record of ``row`` (a frame's row, or a dict of its cells) at ``lon``/``lat``."""
    out = {k: plain(row.get(k)) for k in FACILITY_FIELDS}
    out["trades"] = list(out["trades"] or [])
    out["lon"], out["lat"] = lon, lat
    for extra in _EXTRAS:
        if extra in row:
            out[extra] = plain(row[extra])
    return out


# --------------------------------------------------------------------------- 技能码 cards


@dataclass(frozen=True)
class CardSection:
    """One layer of a card: its facilities, nearest first, each a
    :func:`facility_record` with ``times`` (mode -> minutes, None if unreachable)."""

    layer: str
    layer_name: str
    facilities: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class VillageCard:
    """What a village's 技能码 shows."""

    village_code: str
    village_name: str
    town: str
    county: str
    location_quality: str
    lon: float
    lat: float
    modes: tuple[str, ...]
    sections: tuple[CardSection, ...]

    def nearest(self) -> list[tuple[CardSection, dict[str, Any]]]:
        """The first facility of every layer that has one (what a poster prints)."""
        return [(s, s.facilities[0]) for s in self.sections if s.facilities]


class CardIndex:
    """The 技能码 cards of a study, ready to read one village at a time.

    Built once per data version (:meth:`geo.study.Study.village_card` keeps one):
    the card rows of every layer sorted by village with each village's slice
    found by binary search, and every facility's JSON record. A card then costs
    a few dictionary copies, whatever the region's size.

    Parameters
    ----------
    villages, facilities
        The study's data.
    cards
        Layer -> :func:`geo.results.card_rows` of the same villages.
    """

    def __init__(
        self,
        villages: gpd.GeoDataFrame,
        facilities: gpd.GeoDataFrame,
        cards: Mapping[str, pd.DataFrame],
    ) -> None:
        self.villages = villages
        ids = facilities["id"].astype(str).tolist()
        self.records = dict(zip(ids, facility_records(facilities), strict=True))
        columns = next(iter(cards.values())).columns
        self.modes = tuple(c.removesuffix("_minutes") for c in columns if c.endswith("_minutes"))
        self.layers: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for layer, rows in cards.items():
            rows = rows.sort_values(["village", "rank"], kind="stable")
            minutes = rows[[f"{m}_minutes" for m in self.modes]].to_numpy(float)
            self.layers[layer] = (
                rows["village"].to_numpy(np.int64),
                rows["facility_id"].astype(str).to_numpy(),
                minutes,
            )

    def card(self, index: int) -> VillageCard:
        """The card of the village at position ``index``."""
        village = self.villages.iloc[index]
        sections = []
        for layer, name in LAYERS.items():
            items: list[dict[str, Any]] = []
            if layer in self.layers:
                where, ids, minutes = self.layers[layer]
                lo, hi = np.searchsorted(where, [index, index + 1])
                for fid, times in zip(ids[lo:hi], minutes[lo:hi], strict=True):
                    record = dict(self.records[fid])
                    record["times"] = {m: clean(t) for m, t in zip(self.modes, times, strict=True)}
                    items.append(record)
            sections.append(CardSection(layer, name, tuple(items)))
        return VillageCard(
            village_code=str(village["village_code"]),
            village_name=str(village["village_name"]),
            town=str(village.get("town", "")),
            county=str(village.get("county", "")),
            location_quality=str(village.get("location_quality", "")),
            lon=round(float(village.geometry.x), 6),
            lat=round(float(village.geometry.y), 6),
            modes=self.modes,
            sections=tuple(sections),
        )


def village_cards(
    villages: gpd.GeoDataFrame,
    facilities: gpd.GeoDataFrame,
    cards: Mapping[str, pd.DataFrame],
    indices: Sequence[int] | None = None,
) -> list[VillageCard]:
    """Cards of the villages at ``indices`` (positions; default all); see :class:`CardIndex`."""
    index = CardIndex(villages, facilities, cards)
    positions = range(len(villages)) if indices is None else indices
    return [index.card(int(i)) for i in positions]


# --------------------------------------------------------------------------- metadata


def run_metadata(
    settings: Settings, source: NetworkSource, mode: str, **extra: Any
) -> dict[str, str]:
    """The metadata block of an output (XLSX 说明 sheet, GeoJSON ``metadata``).

    Parameters
    ----------
    settings
        Thresholds, access rule and the region.
    source
        Where the road network came from (its label and whether it is coarse).
    mode
        The travel mode of the figures.
    **extra
        More rows (``"区县 county": "南湖区"``...), appended in order.
    """
    region = settings.region
    meta = {
        "生成时间 generated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "区域 region": region.label,
        "路网 network": source.label,
        "方式 mode": f"{mode} ({MODES[mode]})",
        "阈值 minutes": f"{settings.minutes:g}",
        "最长 max_minutes": f"{settings.max_minutes:g} (longer = unreachable, empty)",
        "接驳 access leg": (
            "to the nearest usable road segment, straight line"
            + (f" x {settings.detour_factor:g}" if source.coarse else "")
            + f" at {settings.access_kmh[mode]:g} km/h, "
            f"at most {settings.access_max_m(source.coarse):g} m (farther: unreachable)"
        ),
        "数据 attribution": (
            f"{source.attribution}; sources and licences in the region pack's README.md"
        ),
    }
    meta.update({k: str(v) for k, v in extra.items()})
    return meta


def sample_note(facilities: pd.DataFrame) -> str:
    """How many facilities are sample data (every output says it)."""
    n_sample = int(facilities["is_sample"].sum())
    return (
        f"{n_sample} of {len(facilities)} facilities are SAMPLE data (is_sample=true, "
        "names start with 样例·); the rest are real names/points (see the region's README.md)"
    )


# --------------------------------------------------------------------------- county export


@dataclass(frozen=True)
class CountyExport:
    """The county report and the metadata its file carries."""

    report: Report
    metadata: dict[str, str]


def county_export(
    router: Router,
    villages: gpd.GeoDataFrame,
    facilities: gpd.GeoDataFrame,
    source: NetworkSource,
    *,
    county: str | None,
    minutes: float,
    trade: str | None = None,
    population: pd.Series | None = None,
    coverage: gpd.GeoDataFrame | None = None,
    access: pd.DataFrame | None = None,
    demand: pd.DataFrame | None = None,
    demand_note: str = "",
) -> CountyExport:
    """The report of one county (``None``: all) for one mode, with its metadata.

    Parameters
    ----------
    router
        Network and mode (its settings hold the region and thresholds).
    villages, facilities
        The data; ``facilities`` already filtered to ``trade`` if one is given.
    source
        The network's source, for the metadata.
    county, minutes, trade, population
        What the report is of: county name or None, threshold, trade (only
        named in the metadata here) and people per village code.
    coverage, access
        Precomputed coverage table and 2SFCA scores of exactly these inputs (the
        web app's results); computed here when absent.
    demand, demand_note
        Training-demand signals (:func:`geo.demand.demand_frame`): a 需求 sheet per
        village and trade, and what they are (weeks, source) for its metadata.
    """
    from geo.access import access_scores
    from geo.coverage import coverage_table
    from geo.reports import county_report

    settings = router.settings
    if coverage is None:
        coverage = coverage_table(router, villages, facilities, minutes)
    if access is None or population is not None:
        access = access_scores(router, villages, facilities, minutes, population)
    report = county_report(coverage, facilities, county, minutes, population, access)
    if demand is not None:
        from dataclasses import replace

        from geo.demand import demand_sheet

        report = replace(
            report, demand=demand_sheet(demand, villages, county), demand_note=demand_note
        )
    meta = run_metadata(
        settings.with_(minutes=minutes, max_minutes=max(minutes, settings.max_minutes)),
        source,
        router.mode,
        **{
            "区县 county": county or "all",
            "工种 trade": trade or "全部 all",
            "样例 sample": sample_note(facilities),
        },
    )
    return CountyExport(report, meta)


def minutes_text(value: float | None) -> str:
    """Minutes as a page and a poster print them: ``12`` or ``不可达``."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "不可达"
    return f"{value:.0f}"
