"""Course and evaluation search for workers: ``/api/search`` and ``/api/trades``.

Every upcoming course and evaluation session of the region (China date), with
its facility, seats left, fee and how to register, filtered by trade, level,
kind and free text and sorted by start date, then travel time from a village
or a point.

Fast on the phone page: the catalogue (items joined with their facilities, the
text searched, the facilities' coordinates) is built once per data version —
the served results, the store's content version (any course, session or
registration change) and today's date — and kept in the app's memo. Travel
times from a village are its 技能码 card's (the same minutes the page shows)
plus one bounded Dijkstra from the village point to the other facilities with
items, remembered per village, mode and bound; from a lon/lat point one
bounded Dijkstra.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from flask import Blueprint, jsonify

from geo.settings import LAYERS, MODES
from geo.study import Study

from . import _params as p
from . import get_store, get_study, remember
from . import responses as r
from .openapi import Answers, query, spec
from .records import clean, today

bp = Blueprint("search", __name__, url_prefix="/api")

#: Levels of evaluation sessions, lowest first.
LEVELS = ("初级", "中级", "高级", "技师")
KINDS = ("all", "course", "evaluation")
#: Longest free-text query (characters).
Q_MAX = 50
#: Most items one answer lists.
LIMIT_MAX = 200


@dataclass(frozen=True)
class Catalogue:
    """The upcoming items of one data version, ready to filter.

    ``items`` are JSON-ready records (without seats left, ``minutes`` and
    ``distance_m``); the arrays, aligned with them, are what the filters and the
    order read. ``facility`` maps each item to a row of the facility arrays
    (``-1``: its facility is not in the served results yet: no point, no minutes).
    """

    items: list[dict[str, Any]]
    text: list[str]
    kind: np.ndarray
    trade: np.ndarray
    level: np.ndarray
    start: np.ndarray
    end: np.ndarray
    ident: np.ndarray
    facility: np.ndarray
    #: Per level: items of that level (sessions) or naming it in their title (courses).
    levels: dict[str, np.ndarray]
    facility_ids: list[str]
    lon: np.ndarray
    lat: np.ndarray
    x: np.ndarray
    y: np.ndarray
    trades: list[str]


def items_key() -> tuple[int, str]:
    """What the catalogue depends on besides the served results.

    Returns
    -------
    tuple
        The store's items version (courses and sessions; registrations do not
        change it) and today's date in China.
    """
    return get_store().data_versions().get("items", 0), today()


def catalogue() -> Catalogue:
    """The catalogue of the served data version (built once, then remembered).

    Returns
    -------
    Catalogue
        Upcoming items joined with their facilities, as arrays for filtering.
    """
    key = items_key()
    return remember("search-catalogue", key, lambda: _build(key[1]))


def seats_taken() -> dict[tuple[str, int], int]:
    """Active registrations per item, read once per content version.

    Returns
    -------
    dict
        ``(kind, item id)`` -> active registrations.
    """
    content = get_store().data_versions()["content"]
    return remember("search-seats", content, get_store().registered_counts)


def _build(day: str) -> Catalogue:
    study = get_study()
    store = get_store()
    upcoming = store.upcoming_items(day)
    targets = study.facility_targets(None, None)
    row_of = {fid: i for i, fid in enumerate(targets.ids.tolist())}
    used: dict[str, int] = {}
    missing: dict[str, dict[str, Any] | None] = {}
    items: list[dict[str, Any]] = []
    text: list[str] = []
    facility: list[int] = []
    for table, rows in (("courses", upcoming["courses"]), ("evaluations", upcoming["evaluations"])):
        for row in rows:
            fid = str(row["facility_id"])
            if fid in row_of:
                record: dict[str, Any] | None = targets.records[row_of[fid]]
                position = used.setdefault(fid, len(used))
            else:  # added since the served results: listed without a point
                if fid not in missing:
                    missing[fid] = store.facility(fid)
                record, position = missing[fid], -1
            if record is None:
                continue
            item = _item(table, row, record)
            items.append(item)
            facility.append(position)
            text.append(
                " ".join(
                    str(item.get(k) or "")
                    for k in ("title", "trade", "level", "facility_name", "county", "town", "place")
                ).lower()
            )
    ids = list(used)
    rows_used = [row_of[fid] for fid in ids]
    kind = np.array([i["kind"] for i in items], dtype=object)
    level = np.array([i["level"] or "" for i in items], dtype=object)
    titles = [i["title"] for i in items]
    levels = {
        name: (level == name) | ((kind == "course") & np.array([name in t for t in titles], bool))
        for name in LEVELS
    }
    return Catalogue(
        items=items,
        text=text,
        kind=kind,
        trade=np.array([i["trade"] for i in items], dtype=object),
        level=level,
        start=np.array([i["start_date"] for i in items], dtype="U10"),
        end=np.array([i["end_date"] or i["start_date"] for i in items], dtype="U10"),
        ident=np.array([i["id"] for i in items], dtype=np.int64),
        facility=np.asarray(facility, dtype=np.int64),
        levels=levels,
        facility_ids=ids,
        lon=targets.lon[rows_used],
        lat=targets.lat[rows_used],
        x=targets.x[rows_used],
        y=targets.y[rows_used],
        trades=sorted(set(study.trades) | {str(i["trade"]) for i in items}),
    )


def _item(table: str, row: dict[str, Any], facility: dict[str, Any]) -> dict[str, Any]:
    """One search result (without seats left and travel time)."""
    course = table == "courses"
    phone = (row.get("register_phone") if course else None) or facility.get("phone") or None
    out: dict[str, Any] = {
        "kind": "course" if course else "evaluation",
        "id": int(row["id"]),
        "facility_id": str(row["facility_id"]),
        "facility_name": facility.get("name", ""),
        "layer": facility.get("layer", ""),
        "layer_name": LAYERS.get(str(facility.get("layer", "")), ""),
        "county": facility.get("county", ""),
        "town": facility.get("town", ""),
        "address": facility.get("address", ""),
        "trade": row["trade"],
        "seats": row["seats"],
        "is_sample": bool(facility.get("is_sample", False)),
    }
    if course:
        out |= {
            "title": row["title"],
            "level": None,
            "start_date": str(row["start_date"]),
            "end_date": str(row["end_date"]) if row.get("end_date") else None,
            "fee": clean(row.get("fee")),
            "subsidy_note": row.get("subsidy_note"),
            "place": None,
        }
    else:
        out |= {
            "title": f"{row['trade']}（{row['level']}）技能等级认定",
            "level": row["level"],
            "date": str(row["date"]),
            "start_date": str(row["date"]),
            "end_date": None,
            "fee": None,
            "subsidy_note": None,
            "place": row.get("place"),
        }
    out["register"] = {
        "online": row["seats"] is not None,
        "url": row.get("register_url") if course else None,
        "phone": phone,
    }
    return out


# ------------------------------------------------------------------ travel times


def _village_minutes(cat: Catalogue, index: int, mode: str, bound: float) -> np.ndarray:
    """Minutes from a village to every catalogue facility (NaN beyond ``bound``): its
    技能码 card's minutes where the card lists the facility, else routed (bounded)."""

    def compute() -> np.ndarray:
        study = get_study()
        village = study.villages.iloc[index]
        minutes = _routed(cat, village.geometry.x, village.geometry.y, mode, bound)
        position = {fid: i for i, fid in enumerate(cat.facility_ids)}
        for section in study.village_card(index).sections:
            for record in section.facilities:
                i = position.get(str(record["id"]))
                shown = record["times"].get(mode)
                if i is not None and shown is not None:
                    minutes[i] = round(float(shown), 1)
        return minutes

    key = (items_key(), "village", index, mode, bound)
    return remember("search-minutes", key, compute)


def _routed(cat: Catalogue, lon: float, lat: float, mode: str, bound: float) -> np.ndarray:
    if not cat.facility_ids:
        return np.empty(0)
    seconds = get_study().routers[mode].one_to_many(lon, lat, cat.lon, cat.lat, max_minutes=bound)
    return np.round(seconds / 60.0, 1)


def _origin(q: p.SearchQuery) -> tuple[dict[str, Any] | None, int | None]:
    """The origin asked for: a village (code) or a lon/lat point, or none."""
    code = q.village
    if code is not None:
        if q.lon is not None or q.lat is not None:
            p.bad_request("give village or lon/lat, not both")
        study = get_study()
        index = study.village_position(code)
        if index is None:
            p.bad_request(f"no village with code {code!r}", 404, error="not found")
        village = study.villages.iloc[index]
        return {
            "village_code": code,
            "village_name": str(village["village_name"]),
            "town": str(village.get("town", "")),
            "county": str(village.get("county", "")),
            "lon": round(float(village.geometry.x), 6),
            "lat": round(float(village.geometry.y), 6),
        }, index
    if q.lon is not None or q.lat is not None:
        if q.lon is None or q.lat is None:
            p.bad_request(f"{'lon' if q.lon is None else 'lat'} is required")
        return {"lon": q.lon, "lat": q.lat}, None
    return None, None


# ------------------------------------------------------------------------ routes


@bp.get("/search")
@spec.validate(
    query=p.SearchQuery,
    resp=Answers(
        HTTP_200=r.Search,
        HTTP_400=(r.Error, "bad parameter"),
        HTTP_404=(r.Error, "unknown village"),
    ),
)
def search() -> Any:
    """课程与评价搜索 upcoming courses and evaluation sessions, by start date then travel time."""
    study = get_study()
    args = query(p.SearchQuery)
    kind, trade, level, mode = args.kind, args.trade or None, args.level, args.mode
    limit = args.limit
    q = args.q.strip()
    near_only = args.minutes is not None
    minutes = args.minutes or study.settings.minutes
    first = max(args.from_ or "", today())
    origin, village = _origin(args)
    cat = catalogue()
    keep = _matching(cat, first, kind, trade, level, q)
    near_only = origin is not None and near_only
    bound = float(minutes) if near_only else float(study.settings.max_minutes)
    took, metres = _item_distances(study, cat, origin, village, mode, bound)
    if near_only:
        keep &= took <= minutes  # NaN (unknown, beyond the bound) is never <=
    rows = np.flatnonzero(keep)
    order = np.lexsort(
        (
            cat.ident[rows],
            cat.kind[rows].astype(str),
            np.nan_to_num(metres[rows], nan=np.inf),
            np.nan_to_num(took[rows], nan=np.inf),
            cat.start[rows],
        )
    )
    items = _answer_items(cat, rows[order[:limit]], took, metres)
    return jsonify(
        items=items,
        total=len(rows),
        origin=origin,
        mode=mode,
        mode_name=MODES[mode],
        minutes=minutes if near_only else None,
        today=today(),
        network=study.network.source.label,
    )


def _matching(
    cat: Catalogue, first: str, kind: str, trade: str | None, level: str | None, q: str
) -> np.ndarray:
    """Which catalogue items end on or after ``first`` and match the filters (all the
    words of ``q``, in any order)."""
    keep = cat.end >= first
    if kind != "all":
        keep &= cat.kind == kind
    if trade:
        keep &= cat.trade == trade
    if level:
        keep &= cat.levels[level]
    words = q.lower().split()
    if words:
        keep &= np.array([all(w in t for w in words) for t in cat.text], dtype=bool)
    return np.asarray(keep, dtype=bool)


def _item_distances(
    study: Study,
    cat: Catalogue,
    origin: dict[str, Any] | None,
    village: int | None,
    mode: str,
    bound: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Per catalogue item: minutes from the origin to its facility (NaN: no origin, no
    point, or beyond ``bound``) and the straight-line metres."""
    n_fac = len(cat.facility_ids)
    fac_minutes = np.full(n_fac + 1, np.nan)  # the last row: items without a point
    fac_metres = np.full(n_fac + 1, np.nan)
    if origin is not None and n_fac:
        if village is not None:
            fac_minutes[:n_fac] = _village_minutes(cat, village, mode, bound)
        else:
            key = (items_key(), "point", origin["lon"], origin["lat"], mode, bound)
            fac_minutes[:n_fac] = remember(
                "search-minutes",
                key,
                lambda: _routed(cat, origin["lon"], origin["lat"], mode, bound),
            )
        ox, oy = study.routers[mode].to_metric([origin["lon"]], [origin["lat"]])
        fac_metres[:n_fac] = np.round(np.hypot(cat.x - ox[0], cat.y - oy[0]))
    # -1 (no point) reads the NaN row
    return fac_minutes[cat.facility], fac_metres[cat.facility]


def _answer_items(
    cat: Catalogue, rows: np.ndarray, took: np.ndarray, metres: np.ndarray
) -> list[dict[str, Any]]:
    """The answered items as JSON, with seats left, minutes and distance."""
    taken = seats_taken()
    items = []
    for i in rows:
        item = cat.items[i]
        registered = taken.get((item["kind"], item["id"]), 0)
        seats = item["seats"]
        items.append(
            item
            | {
                "registered": registered,
                "seats_left": None if seats is None else max(0, seats - registered),
                "minutes": None if np.isnan(took[i]) else float(took[i]),
                "distance_m": None if np.isnan(metres[i]) else int(metres[i]),
            }
        )
    return items


@bp.get("/trades")
@spec.validate(resp=Answers(HTTP_200=r.Trades))
def trades() -> Any:
    """Trades (工种) taught by a facility or of an upcoming item, and evaluation levels."""
    return jsonify(trades=catalogue().trades, levels=list(LEVELS))
