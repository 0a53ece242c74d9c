"""Training demand (培训需求): anonymous signals per village and trade, for reports and plans.

Signals are counted by the web app (:mod:`web.demand`) per village, trade, kind
and ISO week, without personal data: ``scan`` (a village's 技能码 page was
opened), ``search`` (a worker searched for a trade) and ``notify`` (a worker
asked to be told of a course of a trade). This module turns those counters
into the tables people read (the 需求 sheet, the map's 需求 layer) and into
weights of the maximal covering location problem (:func:`demand_weights`)::

    w_i = 1 + d_i,   d_i = scans + searches + notify of village i

so a village nobody signalled counts as much as before (1), and each signal adds
the weight of another village: with no signals at all a plan is unchanged.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

#: The kinds of signal, and the column each is summed into.
DEMAND_KINDS = ("scan", "search", "notify")
COLUMNS = {"scan": "scans", "search": "searches", "notify": "notify"}
#: The weights formula as plans report it.
DEMAND_WEIGHT_FORMULA = (
    "w = 1 + d per village, d = 技能码 scans + trade searches + notify-me requests "
    "recorded for the village (培训需求)"
)
#: Headers of the 需求 sheet.
SHEET_COLUMNS = {
    "village_code": "村代码",
    "village_name": "村",
    "town": "乡镇",
    "county": "区县",
    "trade": "工种",
    "scans": "扫码",
    "searches": "搜索",
    "notify": "通知我",
    "total": "合计",
}


def iso_week(day: dt.date, back: int = 0) -> str:
    """The ISO week of ``day`` (``2026-W07``), or of ``back`` weeks earlier."""
    year, week, _ = (day - dt.timedelta(weeks=back)).isocalendar()
    return f"{year:04d}-W{week:02d}"


#: China Standard Time (UTC+8, no daylight saving): dates on pages and weeks of demand
#: are counted in the workers' own calendar.
CHINA_TIME = dt.timezone(dt.timedelta(hours=8))
#: Weeks of demand signals that exports, the map layer and plans read by default.
DEFAULT_WEEKS = 52


def today_china() -> dt.date:
    """Today's date in China Standard Time (UTC+8)."""
    return dt.datetime.now(CHINA_TIME).date()


def since_week(weeks: int = DEFAULT_WEEKS, today: dt.date | None = None) -> str:
    """The first ISO week of the last ``weeks`` weeks up to ``today`` (China time)."""
    return iso_week(today or today_china(), back=weeks - 1)


def demand_note(since: str, weeks: int = DEFAULT_WEEKS) -> str:
    """What a 需求 sheet holds, for the export's metadata (CLI and web alike)."""
    return (
        f"anonymous 技能码 scans, searches and notify-me requests since {since} "
        f"({weeks} ISO weeks), per village and trade; no personal data"
    )


def demand_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Counter rows (``village_code``, ``trade``, ``kind``, ``signals``, e.g. from
    :meth:`web.store.Store.demand`) as one row per village and trade with a column
    per kind (``scans``, ``searches``, ``notify``) and ``total``."""
    frame = pd.DataFrame(list(rows), columns=["village_code", "trade", "kind", "signals"])
    if frame.empty:
        return pd.DataFrame(columns=["village_code", "trade", *COLUMNS.values(), "total"]).astype(
            {c: "int64" for c in [*COLUMNS.values(), "total"]}
        )
    wide = frame.pivot_table(
        index=["village_code", "trade"],
        columns="kind",
        values="signals",
        aggfunc="sum",
        fill_value=0,
    )
    wide = wide.reindex(columns=list(DEMAND_KINDS), fill_value=0).rename(columns=COLUMNS)
    wide = wide.astype("int64")
    wide["total"] = wide[list(COLUMNS.values())].sum(axis=1)
    return wide.reset_index()


def demand_rows(
    frame: pd.DataFrame,
    villages: gpd.GeoDataFrame,
    *,
    county: str | None = None,
    trade: str | None = None,
) -> list[dict[str, Any]]:
    """One dict per village and trade: the village's name, town, county and point and
    the counts, most signals first. Rows without a village have empty names and no
    point; a ``county`` keeps only its villages, a ``trade`` only that trade."""
    info = _village_info(villages)
    out = []
    for row in frame.to_dict("records"):
        code = str(row["village_code"])
        place = info.get(code, _NO_VILLAGE)
        if county is not None and place["county"] != county:
            continue
        if trade is not None and row["trade"] != trade:
            continue
        out.append(
            {
                "village_code": code,
                **place,
                "trade": str(row["trade"]),
                **{c: int(row[c]) for c in (*COLUMNS.values(), "total")},
            }
        )
    out.sort(key=lambda r: (-r["total"], r["village_code"], r["trade"]))
    return out


_NO_VILLAGE = {"village_name": "", "town": "", "county": "", "lon": None, "lat": None}


def _village_info(villages: gpd.GeoDataFrame) -> dict[str, dict[str, Any]]:
    codes = villages["village_code"].astype(str).to_numpy()
    lon = np.round(villages.geometry.x.to_numpy(), 6)
    lat = np.round(villages.geometry.y.to_numpy(), 6)
    names = villages["village_name"].astype(str).to_numpy()
    towns = villages["town"].astype(str).to_numpy() if "town" in villages else [""] * len(codes)
    counties = (
        villages["county"].astype(str).to_numpy() if "county" in villages else [""] * len(codes)
    )
    return {
        c: {"village_name": n, "town": t, "county": k, "lon": float(x), "lat": float(y)}
        for c, n, t, k, x, y in zip(codes, names, towns, counties, lon, lat, strict=True)
    }


def village_totals(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows of :func:`demand_rows` summed per village (those with a point): the counts,
    ``total`` and ``trades`` (trade -> searches + notify, most first) for the map."""
    per: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["lon"] is None:
            continue
        entry = per.setdefault(
            row["village_code"],
            {
                **{k: row[k] for k in ("village_code", "village_name", "town", "county")},
                "lon": row["lon"],
                "lat": row["lat"],
                **{c: 0 for c in (*COLUMNS.values(), "total")},
                "trades": {},
            },
        )
        for column in (*COLUMNS.values(), "total"):
            entry[column] += row[column]
        if row["trade"]:
            asked = row["searches"] + row["notify"]
            entry["trades"][row["trade"]] = entry["trades"].get(row["trade"], 0) + asked
    for entry in per.values():
        entry["trades"] = dict(sorted(entry["trades"].items(), key=lambda kv: (-kv[1], kv[0])))
    return sorted(per.values(), key=lambda e: (-e["total"], e["village_code"]))


def demand_per_village(frame: pd.DataFrame) -> pd.Series:
    """Signals per village code (every kind and trade), villages without signals absent."""
    known = frame[frame["village_code"].astype(str) != ""]
    return known.groupby("village_code")["total"].sum().astype(float)


def demand_weights(codes: pd.Series, frame: pd.DataFrame) -> np.ndarray:
    """MCLP weights of villages ``codes``: ``1 + d`` (:data:`DEMAND_WEIGHT_FORMULA`)."""
    signals = demand_per_village(frame)
    return 1.0 + codes.astype(str).map(signals).fillna(0.0).to_numpy(float)


def demand_summary(points: pd.DataFrame) -> tuple[float, int]:
    """What demand added to a plan: the signals and the villages with any.

    Parameters
    ----------
    points
        The plan's villages with their ``weight`` (``1 + d``, :func:`demand_weights`).

    Returns
    -------
    tuple
        The sum of ``d``, and how many villages have ``d > 0``.
    """
    weight = points["weight"]
    return float(weight.sum() - len(points)), int((weight > 1).sum())


def demand_sheet(
    frame: pd.DataFrame, villages: gpd.GeoDataFrame, county: str | None
) -> pd.DataFrame:
    """The 需求 sheet of a county report: per village and trade, under Chinese headers
    (rows without a village only in the report of all counties)."""
    rows = demand_rows(frame, villages, county=county)
    table = pd.DataFrame(rows, columns=list(SHEET_COLUMNS))
    return table.rename(columns=SHEET_COLUMNS).reset_index(drop=True)
