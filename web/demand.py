"""培训需求: anonymous demand signals, counted per village, trade, kind and ISO week.

* a scan of a village's 技能码 page (``/q/<code>``, counted here, server-side,
  also when the phone revalidates it with a 304);
* a search for a trade and a "notify me" (有课通知我) for a trade, sent by the
  phone page (``POST /api/demand``).

Nothing personal is kept: no IP address, no phone, no time finer than the ISO
week — only counters in the store's ``demand`` table. Each process adds its
signals to a small in-memory buffer flushed to the store every
``DEMAND_FLUSH_S`` seconds (one short transaction, never a write per scan);
counters lost in a crash are a few seconds' worth.

``GET /api/demand`` and ``GET /api/demand.geojson`` (the map's 需求 layer) read
the counters summed per village and trade (:func:`geo.demand.demand_rows`).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import Counter
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from pydantic import ValidationError

from geo.demand import (
    DEMAND_KINDS,
    demand_frame,
    demand_rows,
    iso_week,
    since_week,
    today_china,
    village_totals,
)

from . import _params as p
from . import get_store, get_study
from . import responses as r
from .openapi import Answers, query, spec
from .schemas import DemandBody, field_errors
from .store import Store

bp = Blueprint("demand", __name__, url_prefix="/api")

logger = logging.getLogger(__name__)

#: Seconds between flushes of a process's buffered signals (config ``DEMAND_FLUSH_S``).
FLUSH_S = 5.0


class DemandBuffer:
    """Signals counted in memory and added to the store in batches.

    Parameters
    ----------
    store
        Where the counters go (:meth:`web.store.Store.add_demand`).
    flush_s
        Flush when the oldest buffered signal is this old (0: at once).
    """

    def __init__(self, store: Store, flush_s: float = FLUSH_S) -> None:
        self.store = store
        self.flush_s = flush_s
        self._counts: Counter[tuple[str, str, str, str]] = Counter()
        self._lock = threading.Lock()
        self._since = time.monotonic()
        self._pid = os.getpid()

    def add(self, village: str, trade: str, kind: str) -> None:
        """Count one signal now (the ISO week of today in China).

        Parameters
        ----------
        village
            The village code ("" when not known).
        trade
            The trade (工种) asked about ("" for a scan).
        kind
            One of :data:`geo.demand.DEMAND_KINDS`.

        Raises
        ------
        ValueError
            For another kind.
        """
        if kind not in DEMAND_KINDS:
            raise ValueError(f"unknown demand kind {kind!r}")
        week = iso_week(today_china())
        with self._lock:
            if self._pid != os.getpid():  # a forked worker never flushes its parent's signals
                self._counts.clear()
                self._pid = os.getpid()
            if not self._counts:
                self._since = time.monotonic()
            self._counts[(village, trade, kind, week)] += 1
            due = time.monotonic() - self._since >= self.flush_s
        if due:
            self.flush()

    def flush(self) -> int:
        """Add the buffered signals to the store; returns how many. On a database error
        they stay buffered for the next flush."""
        with self._lock:
            if self._pid != os.getpid():
                self._counts.clear()
                self._pid = os.getpid()
            taken, self._counts = self._counts, Counter()
        if not taken:
            return 0
        try:
            self.store.add_demand(taken)
        except Exception:
            logger.exception(
                "could not store %d demand signals; kept for the next flush", len(taken)
            )
            with self._lock:
                self._counts.update(taken)
            return 0
        return sum(taken.values())


def init_app(app: Flask, store: Store) -> DemandBuffer:
    """The app's demand buffer, the scan counter and a flush at exit.

    Parameters
    ----------
    app
        The app (``DEMAND_FLUSH_S``: seconds signals are buffered).
    store
        Where the signals are added.

    Returns
    -------
    DemandBuffer
        The buffer, also in ``app.extensions["skillcircle.demand"]``.
    """
    buffer = DemandBuffer(store, float(app.config.get("DEMAND_FLUSH_S", FLUSH_S)))
    app.extensions["skillcircle.demand"] = buffer
    held = weakref.ref(buffer)  # the exit flush does not keep an app's store alive
    atexit.register(lambda: (found := held()) is not None and found.flush())

    @app.after_request
    def count_scan(response: Response) -> Response:
        if (
            request.endpoint == "qr.village"
            and request.method == "GET"
            and response.status_code in (200, 304)
        ):
            code = (request.view_args or {}).get("code", "")
            if get_study().village_position(code) is not None:
                try:
                    buffer.add(code, "", "scan")
                except Exception:  # counting must never break the page
                    logger.exception("counting a scan")
        return response

    return buffer


def buffer() -> DemandBuffer:
    """The running app's demand buffer.

    Returns
    -------
    DemandBuffer
        The buffer :func:`init_app` made.
    """
    return current_app.extensions["skillcircle.demand"]  # type: ignore[no-any-return]


def known_trades() -> set[str]:
    """Trades a demand signal may name: those of the search catalogue.

    Returns
    -------
    set of str
        Trades taught by a facility or of an upcoming item.
    """
    from .search import catalogue

    return set(catalogue().trades)


@bp.post("/demand")
@spec.validate(
    json=DemandBody,
    resp=Answers(
        "HTTP_204",
        HTTP_400=(r.FieldErrors, "invalid body"),
        HTTP_413=(r.Error, "body too large"),
        HTTP_429=(r.Error, "rate limit"),
    ),
)
def signal() -> Any:
    """需求信号 an anonymous signal: a search or notify-me for a trade."""
    data = p.json_body()
    try:
        body = DemandBody.model_validate(data)
    except ValidationError as exc:
        fields = field_errors(exc, DemandBody)
        message = "; ".join(f"{k}: {v}" for k, v in fields.items())
        return jsonify(error="invalid body", message=message, fields=fields), 400
    trade = body.trade or ""
    if body.kind == "notify" and not trade:
        message = "notify needs a trade; 请选择工种"
        return jsonify(error="invalid body", message=message, fields={"trade": message}), 400
    if trade and trade not in known_trades():
        message = f"unknown trade {trade!r}; use one of GET /api/trades"
        return jsonify(error="invalid body", message=message, fields={"trade": message}), 400
    village = body.village or ""
    if village and get_study().village_position(village) is None:
        message = f"no village with code {village!r}"
        return jsonify(error="invalid body", message=message, fields={"village": message}), 400
    buffer().add(village, trade, body.kind)
    return "", 204


def _rows() -> tuple[list[dict[str, Any]], int]:
    q = query(p.DemandQuery)
    buffer().flush()
    frame = demand_frame(get_store().demand(since_week(q.weeks)))
    rows = demand_rows(frame, get_study().villages, county=q.county, trade=q.trade or None)
    return rows, q.weeks


@bp.get("/demand")
@spec.validate(
    query=p.DemandQuery, resp=Answers(HTTP_200=r.Demand, HTTP_400=(r.Error, "bad parameter"))
)
def demand() -> Any:
    """培训需求 anonymous demand per village and trade.

    Signals per village and trade of the last ``weeks`` ISO weeks (this one included)."""
    rows, weeks = _rows()
    totals = {k: sum(row[k] for row in rows) for k in ("scans", "searches", "notify")}
    return jsonify(rows=rows, totals=totals, weeks=weeks, since=since_week(weeks))


@bp.get("/demand.geojson")
@spec.validate(
    query=p.DemandQuery, resp=Answers(HTTP_200=r.DemandMap, HTTP_400=(r.Error, "bad parameter"))
)
def demand_geojson() -> Any:
    """需求图层 villages with signals, for the map (GeoJSON).

    One point per village with signals, ``total`` for its size."""
    rows, weeks = _rows()
    features = [
        {
            "type": "Feature",
            "properties": {k: v for k, v in row.items() if k not in ("lon", "lat")},
            "geometry": {"type": "Point", "coordinates": [row["lon"], row["lat"]]},
        }
        for row in village_totals(rows)
    ]
    return jsonify(
        type="FeatureCollection",
        features=features,
        metadata={
            "weeks": weeks,
            "since": since_week(weeks),
            "note": "anonymous counts of 技能码 scans, searches and notify-me requests",
        },
    )
