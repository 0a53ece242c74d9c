"""Everything derived from one version of the data, computed by one function, cached on disk.

:class:`Results` holds what depends only on (settings, network, villages,
facilities): per mode the coverage table and the 2SFCA scores, union isochrones
per layer x mode x threshold, and per trade (工种) the minutes from every village
to the nearest facility teaching it. :func:`compute_results` is the one way to
make them: with no ``base`` it computes every layer and trade; given the results
of an earlier facility set and what changed (:func:`affected`), it recomputes only
those layers and trades and keeps the rest. A full computation is the incremental
one over all layers.

:class:`ResultsCache` keeps results on disk, keyed by :func:`results_key` (a
digest of every input), written atomically (:func:`geo._io.atomic_write`) and
read back only if the format version and the SHA-256 of the payload match.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from geo._io import atomic_write
from geo.access import access_scores
from geo.coverage import coverage_table, update_layers
from geo.isochrones import union_isochrone
from geo.routing import target_chunks
from geo.settings import LAYERS, Settings

if TYPE_CHECKING:
    import geopandas as gpd
    from shapely.geometry.base import BaseGeometry

    from geo.network import RoadNetwork
    from geo.routing import Router

logger = logging.getLogger(__name__)

#: Version of the cached results; a file of another version is recomputed.
#: 8: with the facilities; 7: with 技能码 cards; 6: a Results dataclass; 5: a tuple.
FORMAT_VERSION = 8


@dataclass(frozen=True)
class Results:
    """The answers of one data version.

    Read-only by convention (plain dicts, so that the results pickle): share one
    between threads freely, never change it; :func:`compute_results` makes a new one.

    Attributes
    ----------
    modes, iso_minutes
        What was computed: travel modes and isochrone thresholds.
    coverage
        Mode -> :func:`geo.coverage.coverage_table` of every village.
    access
        Mode -> 2SFCA scores per village and layer (:func:`geo.access.access_scores`).
    isochrones
        ``(layer, mode, minutes)`` -> union isochrone of the layer.
    trade_minutes
        ``(mode, trade)`` -> minutes from every village (in village order) to the
        nearest facility teaching the trade; NaN beyond ``max_minutes``.
    facilities
        The facilities these results are of (so that a process that reads the
        results of a data version from the cache serves exactly that version).
    cards
        Layer -> the facilities each village's 技能码 card lists for that layer
        (:func:`card_rows`): columns ``village`` (position), ``rank``,
        ``facility_id`` and ``<mode>_minutes`` for every mode. Read by
        :func:`geo.products.village_card`, so a printed poster and the page its QR
        opens show the same facilities and minutes.
    """

    modes: tuple[str, ...]
    iso_minutes: tuple[float, ...]
    coverage: Mapping[str, gpd.GeoDataFrame]
    access: Mapping[str, pd.DataFrame]
    isochrones: Mapping[tuple[str, str, float], BaseGeometry]
    trade_minutes: Mapping[tuple[str, str], np.ndarray] = field(default_factory=dict)
    cards: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    facilities: gpd.GeoDataFrame | None = None

    @property
    def trades(self) -> list[str]:
        """Every trade with computed minutes, sorted."""
        return sorted({trade for _, trade in self.trade_minutes})


def compute_results(
    routers: Mapping[str, Router],
    villages: gpd.GeoDataFrame,
    facilities: gpd.GeoDataFrame,
    settings: Settings,
    iso_minutes: Sequence[float],
    *,
    base: Results | None = None,
    layers: Iterable[str] | None = None,
    trades: Iterable[str] | None = None,
    progress: bool = False,
    timings: dict[str, float] | None = None,
    trace_minutes: Collection[float] | None = None,
) -> Results:
    """Compute the results of ``facilities``, all of them or only what changed.

    Parameters
    ----------
    routers
        Mode -> router (the modes computed).
    villages, facilities
        The data (facilities with ``id, layer, capacity, trades`` and points).
    settings
        Threshold (``minutes``) for the 2SFCA catchment.
    iso_minutes
        Thresholds of the union isochrones.
    base
        Results of an earlier facility set on the same villages and network:
        only ``layers`` and ``trades`` are recomputed, the rest is kept.
        ``None``: compute everything.
    layers, trades
        With ``base``: the layers whose facilities were added, removed, moved or
        changed capacity, and the trades whose teaching facilities changed
        (:func:`affected`). Ignored without ``base``.
    progress
        Show a progress bar over the isochrones.
    timings
        If given, filled with the seconds spent per part (``coverage_s``,
        ``access_s``, ``cards_s``, ``isochrones_s``, ``trades_s``) and the count of
        isochrones traced (``isochrones``): what a recompute's log and job report.
    trace_minutes
        With ``base``: trace the changed layers' isochrones of only these thresholds
        now; their other thresholds are left out (never the base's, which are of the
        old facilities) until :func:`complete_isochrones` traces them.

    Returns
    -------
    Results
    """
    from tqdm import tqdm

    modes = tuple(routers)
    if base is None:
        layers, trades = list(LAYERS), None  # None: every trade taught
    else:
        layers = list(layers or ())
        trades = list(trades or ())
    coverage = dict(base.coverage) if base else {}
    access = dict(base.access) if base else {}
    isochrones = dict(base.isochrones) if base else {}
    trade_minutes = dict(base.trade_minutes) if base else {}
    cards = dict(base.cards) if base else {}
    spent = timings if timings is not None else {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        spent[name] = round(spent.get(name, 0.0) + now - clock, 4)
        clock = now

    if layers:
        for mode, router in routers.items():
            if base is None:
                coverage[mode] = coverage_table(router, villages, facilities)
                lap("coverage_s")
                access[mode] = access_scores(router, villages, facilities, settings.minutes)
            else:
                coverage[mode] = update_layers(coverage[mode], router, facilities, layers)
                lap("coverage_s")
                fresh = access_scores(router, villages, facilities, settings.minutes, layers=layers)
                access[mode] = access[mode].assign(
                    **{column: fresh[column].to_numpy() for column in fresh.columns}
                )
            lap("access_s")
        for layer in layers:
            cards[layer] = card_rows(routers, villages, facilities, layer, coverage, settings)
        lap("cards_s")
        now = iso_minutes if base is None or trace_minutes is None else trace_minutes
        jobs = [(layer, m, t) for layer in layers for m in modes for t in iso_minutes if t in now]
        for layer, mode, minutes in [
            (layer, m, t) for layer in layers for m in modes for t in iso_minutes if t not in now
        ]:
            isochrones.pop((layer, mode, float(minutes)), None)
        for layer, mode, minutes in tqdm(jobs, desc="等时圈 isochrones", disable=not progress):
            isochrones[(layer, mode, float(minutes))] = layer_isochrone(
                routers[mode], facilities, layer, minutes
            )
        lap("isochrones_s")
        spent["isochrones"] = len(jobs)
    taught = taught_trades(facilities)
    if trades is None:
        trades = sorted(taught)
    else:
        changed = set(trades)
        trade_minutes = {k: v for k, v in trade_minutes.items() if k[1] not in changed}
        trades = sorted(changed & taught)
    trade_minutes.update(_trade_minutes(routers, villages, facilities, trades))
    lap("trades_s")
    return Results(
        modes=modes,
        iso_minutes=tuple(float(m) for m in iso_minutes),
        coverage=coverage,
        access=access,
        isochrones=isochrones,
        trade_minutes=trade_minutes,
        cards=cards,
        facilities=facilities,
    )


def missing_isochrones(results: Results) -> list[tuple[str, str, float]]:
    """The (layer, mode, minutes) isochrones left out by ``trace_minutes``."""
    return [
        (layer, mode, minutes)
        for layer in LAYERS
        for mode in results.modes
        for minutes in results.iso_minutes
        if (layer, mode, minutes) not in results.isochrones
    ]


def complete_isochrones(
    routers: Mapping[str, Router],
    results: Results,
    timings: dict[str, float] | None = None,
) -> Results:
    """``results`` with every isochrone :func:`missing_isochrones` names traced (of
    ``results.facilities``)."""
    if results.facilities is None:
        raise ValueError("results without their facilities cannot be completed")
    started = time.perf_counter()
    missing = missing_isochrones(results)
    isochrones = dict(results.isochrones)
    for layer, mode, minutes in missing:
        isochrones[(layer, mode, minutes)] = layer_isochrone(
            routers[mode], results.facilities, layer, minutes
        )
    if timings is not None:
        timings["isochrones"] = len(missing)
        timings["isochrones_s"] = round(time.perf_counter() - started, 4)
    return replace(results, isochrones=isochrones)


#: A 技能码 card lists this many facilities per layer.
CARD_PER_LAYER = 3
#: A card searches this far first; a layer with nothing that close lists its nearest
#: facility from the coverage table (up to ``max_minutes``).
CARD_SEARCH_MINUTES = 60.0


def rank_mode(modes: Sequence[str]) -> str:
    """The mode cards rank facilities by: e-bike if computed, else the last mode."""
    return "ebike" if "ebike" in modes else modes[-1]


def card_rows(
    routers: Mapping[str, Router],
    villages: gpd.GeoDataFrame,
    facilities: gpd.GeoDataFrame,
    layer: str,
    coverage: Mapping[str, gpd.GeoDataFrame],
    settings: Settings,
) -> pd.DataFrame:
    """The facilities of ``layer`` each village's 技能码 card lists, with minutes per mode.

    Per village, the :data:`CARD_PER_LAYER` nearest facilities of the layer by
    :func:`rank_mode` within :data:`CARD_SEARCH_MINUTES` (ties by id); a village
    with none that close lists the layer's nearest from ``coverage`` (up to
    ``max_minutes``), or nothing. The listed facilities are then timed by every
    other mode (NaN beyond ``max_minutes``). One bounded reverse Dijkstra per
    facility and mode, in chunks of facilities
    (:meth:`geo.routing.Router.matrix_chunks`) so that a province's pairs are never all
    in memory at once: the ranking keeps a running top-k, the other modes time
    only the listed pairs (:func:`pair_seconds`).

    Returns
    -------
    pandas.DataFrame
        ``village`` (position in ``villages``), ``rank`` (1 = nearest),
        ``facility_id`` and ``<mode>_minutes`` (2 decimals) per mode, sorted by
        village and rank.
    """
    ranker = rank_mode(tuple(routers))
    group = facilities[facilities["layer"] == layer].reset_index(drop=True)
    ids = group["id"].astype(str).to_numpy()
    lon, lat = villages.geometry.x.to_numpy(), villages.geometry.y.to_numpy()
    f_lon, f_lat = group.geometry.x.to_numpy(), group.geometry.y.to_numpy()
    bound = min(CARD_SEARCH_MINUTES, settings.max_minutes)
    # the facilities in chunks, keeping a running top-k per village: the k nearest of
    # all are the k nearest of (the k nearest so far + the next chunk); (seconds, id)
    # orders a village's pairs totally, so the answer does not depend on the chunks
    key = ["origin", "seconds", "facility_id"]
    near = pd.DataFrame({"origin": [], "seconds": [], "facility_id": []})
    for _, pairs in routers[ranker].matrix_chunks(lon, lat, f_lon, f_lat, max_minutes=bound):
        if pairs.empty:
            continue
        pairs = pairs.assign(facility_id=ids[pairs["target"].to_numpy(np.int64)])[key]
        pairs = pd.concat([near, pairs], ignore_index=True) if len(near) else pairs
        pairs = pairs.sort_values(key, kind="stable")
        near = pairs.groupby("origin", sort=False).head(CARD_PER_LAYER)
    rows = pd.DataFrame(
        {
            "village": near["origin"].to_numpy(np.int64),
            "facility_id": near["facility_id"].to_numpy(object),
            "seconds": near["seconds"].to_numpy(float),
        }
    )
    nearest = coverage[ranker]
    fallback = np.setdiff1d(
        np.flatnonzero(nearest[f"{layer}_facility_id"].to_numpy() != ""), rows["village"]
    )
    if len(fallback):
        extra = pd.DataFrame(
            {
                "village": fallback,
                "facility_id": nearest[f"{layer}_facility_id"].to_numpy(object)[fallback],
                "seconds": 60.0 * nearest[f"{layer}_minutes"].to_numpy(float)[fallback],
            }
        )
        rows = pd.concat([rows, extra], ignore_index=True)
    rows = rows.sort_values(["village", "seconds", "facility_id"], ignore_index=True)
    rows["rank"] = rows.groupby("village").cumcount() + 1
    out = rows[["village", "rank", "facility_id"]].copy()
    position = {fid: i for i, fid in enumerate(ids)}
    target = rows["facility_id"].map(position).to_numpy(np.int64)
    for mode, router in routers.items():
        if mode == ranker:
            minutes = rows["seconds"].to_numpy(float) / 60.0
        else:
            village = rows["village"].to_numpy(np.int64)
            minutes = pair_seconds(router, lon, lat, f_lon, f_lat, village, target) / 60.0
        out[f"{mode}_minutes"] = np.round(minutes, 2)
    return out


def pair_seconds(
    router: Router,
    lon: np.ndarray,
    lat: np.ndarray,
    f_lon: np.ndarray,
    f_lat: np.ndarray,
    origin: np.ndarray,
    target: np.ndarray,
) -> np.ndarray:
    """Seconds of the given (origin, target) pairs only (NaN beyond ``max_minutes``).

    :meth:`geo.routing.Router.matrix` per chunk of the targets asked for
    (:func:`geo.routing.target_chunks`), from only the origins that ask for one of
    them: the same seconds as one matrix of all origins and targets, whose pairs
    do not depend on the other points, without its memory.
    """
    out = np.full(len(origin), np.nan)
    shown = np.unique(target)
    for part in target_chunks(len(shown), len(lon)):
        chunk = shown[part]
        asked = np.flatnonzero(np.isin(target, chunk))
        places = np.unique(origin[asked])
        timed = router.matrix(lon[places], lat[places], f_lon[chunk], f_lat[chunk])
        lookup = pd.Series(
            timed["seconds"].to_numpy(float),
            index=pd.MultiIndex.from_arrays(
                [
                    places[timed["origin"].to_numpy(np.int64)],
                    chunk[timed["target"].to_numpy(np.int64)],
                ]
            ),
        )
        wanted = pd.MultiIndex.from_arrays([origin[asked], target[asked]])
        out[asked] = lookup.reindex(wanted).to_numpy(float)
    return out


def compute_cards(
    routers: Mapping[str, Router],
    villages: gpd.GeoDataFrame,
    facilities: gpd.GeoDataFrame,
    settings: Settings,
) -> dict[str, pd.DataFrame]:
    """The 技能码 card rows of every layer for these villages alone (what
    :func:`compute_results` keeps in :attr:`Results.cards`; a village's rows do not
    depend on the other villages, so a county's cards equal its rows of the region's)."""
    ranker = rank_mode(tuple(routers))
    coverage = {ranker: coverage_table(routers[ranker], villages, facilities)}
    return {
        layer: card_rows(routers, villages, facilities, layer, coverage, settings)
        for layer in LAYERS
    }


def layer_isochrone(
    router: Router, facilities: gpd.GeoDataFrame, layer: str, minutes: float
) -> BaseGeometry:
    """The union isochrone of one layer's facilities."""
    group = facilities[facilities["layer"] == layer]
    lon = np.asarray(group.geometry.x, dtype=np.float64)
    lat = np.asarray(group.geometry.y, dtype=np.float64)
    return union_isochrone(router, lon, lat, minutes)


def taught_trades(facilities: gpd.GeoDataFrame) -> set[str]:
    """Every trade (工种) some facility teaches."""
    return {t for ts in facilities["trades"] for t in (ts or [])}


def _trade_minutes(
    routers: Mapping[str, Router],
    villages: gpd.GeoDataFrame,
    facilities: gpd.GeoDataFrame,
    trades: Sequence[str],
) -> dict[tuple[str, str], np.ndarray]:
    """Per mode and trade: minutes from each village to the nearest facility teaching it."""
    lon = villages.geometry.x.to_numpy()
    lat = villages.geometry.y.to_numpy()
    out = {}
    for trade in trades:
        teach = facilities[facilities["trades"].map(lambda ts, t=trade: t in (ts or []))]
        f_lon, f_lat = teach.geometry.x.to_numpy(), teach.geometry.y.to_numpy()
        for mode, router in routers.items():
            out[(mode, trade)] = np.round(router.nearest(lon, lat, f_lon, f_lat).minutes, 2)
    return out


def affected(old: gpd.GeoDataFrame, new: gpd.GeoDataFrame) -> tuple[set[str], set[str]]:
    """Layers and trades whose results a change from ``old`` to ``new`` facilities affects.

    Facilities are compared by id. A facility added, removed, moved or changed in
    layer or capacity affects its layer(s) and the trades it teaches (taught);
    a change of the trades taught affects only those trades; a text edit (name,
    phone...) affects nothing.
    """

    def keyed(frame: gpd.GeoDataFrame) -> dict[str, tuple[Any, ...]]:
        capacity = [None if pd.isna(c) else int(c) for c in frame["capacity"]]
        return {
            str(fid): (layer, round(x, 7), round(y, 7), cap, tuple(ts or ()))
            for fid, layer, x, y, cap, ts in zip(
                frame["id"],
                frame["layer"],
                frame.geometry.x,
                frame.geometry.y,
                capacity,
                frame["trades"],
                strict=True,
            )
        }

    before, after = keyed(old), keyed(new)
    layers: set[str] = set()
    trades: set[str] = set()
    for fid in before.keys() | after.keys():
        a, b = before.get(fid), after.get(fid)
        if a == b:
            continue
        if a is None or b is None or a[:4] != b[:4]:  # added, removed, moved, layer/capacity
            for rec in (a, b):
                if rec is not None:
                    layers.add(rec[0])
                    trades.update(rec[4])
        else:  # only the trades taught changed
            trades.update(set(a[4]) ^ set(b[4]))
    return layers, trades


# --------------------------------------------------------------------------- cache


def frame_digest(frame: pd.DataFrame) -> str:
    """SHA-256 of a (Geo)DataFrame's cells and geometries."""
    rows = pd.util.hash_pandas_object(frame.drop(columns="geometry").astype(str), index=False)
    digest = hashlib.sha256(np.asarray(rows).tobytes())
    for wkb in frame.geometry.to_wkb():
        digest.update(bytes(wkb))
    return digest.hexdigest()


def network_digest(network: RoadNetwork) -> str:
    """SHA-256 of a network's geometry and topology."""
    return hashlib.sha256(
        network.lon.tobytes()
        + network.lat.tobytes()
        + network.u.tobytes()
        + network.v.tobytes()
        + network.length_m.tobytes()
    ).hexdigest()


def results_key(
    settings: Settings,
    network: RoadNetwork,
    facilities: gpd.GeoDataFrame,
    villages: gpd.GeoDataFrame,
    modes: Sequence[str],
    iso_minutes: Sequence[float],
) -> str:
    """The data version: a digest of every input the results depend on (32 hex digits)."""
    parts = [
        str(FORMAT_VERSION),
        repr(settings.with_(data_dir=Path("."), cache_dir=Path("."))),
        network_digest(network),
        frame_digest(facilities),
        frame_digest(villages),
        repr(tuple(modes)),
        repr(tuple(float(m) for m in iso_minutes)),
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


#: Results files start with this tag, the format version and the SHA-256 of the pickle.
MAGIC = b"skillcircle-results\x00"


class ResultsCache:
    """Results on disk, one file per data version (``<folder>/<key>.pkl``).

    Parameters
    ----------
    folder
        Where the files live (``<cache_dir>/results``).
    keep
        How many files are kept; older ones are removed after each write.
    """

    def __init__(self, folder: Path, keep: int = 8) -> None:
        self.folder = Path(folder)
        self.keep = keep

    def path(self, key: str) -> Path:
        """The file of the results with this key."""
        return self.folder / f"{key}.pkl"

    def read(self, key: str) -> Results | None:
        """The results of ``key``, or None when missing, truncated, corrupt or of another
        format version (then the caller computes them again)."""
        path = self.path(key)
        if not path.exists():
            return None
        head = len(MAGIC) + 4 + 32
        try:
            blob = path.read_bytes()
            version = int.from_bytes(blob[len(MAGIC) : len(MAGIC) + 4], "big")
            digest, payload = blob[len(MAGIC) + 4 : head], blob[head:]
            if not blob.startswith(MAGIC) or hashlib.sha256(payload).digest() != digest:
                raise ValueError("checksum mismatch (truncated or corrupt file)")
            if version != FORMAT_VERSION:
                raise ValueError(f"format version {version}, not {FORMAT_VERSION}")
            results = pickle.loads(payload)  # our own file, checksum verified
            if not isinstance(results, Results):
                raise ValueError(f"holds a {type(results).__name__}, not Results")
        except (OSError, ValueError, pickle.UnpicklingError, EOFError, AttributeError) as exc:
            logger.warning("ignoring unreadable results cache %s (rebuilding): %s", path, exc)
            return None
        return results

    def write(self, key: str, results: Results) -> Path:
        """Write atomically, then keep only the newest :attr:`keep` files."""
        payload = pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL)
        header = MAGIC + FORMAT_VERSION.to_bytes(4, "big") + hashlib.sha256(payload).digest()

        def write(tmp: Path) -> None:
            with tmp.open("wb") as fh:
                fh.write(header)
                fh.write(payload)

        path = atomic_write(self.path(key), write)
        files = sorted(self.folder.glob("*.pkl"), key=lambda p: p.stat().st_mtime, reverse=True)
        for stale in files[self.keep :]:
            stale.unlink(missing_ok=True)
        return path
