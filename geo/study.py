"""A loaded study area: data, network, routers and precomputed results, shared read-only.

:class:`Study` is what long-running users (the web app, batch exports) hold:
everything heavy — the graph per mode, per-village times for every layer and
mode, and union isochrones per layer x mode for a few thresholds — is computed
once in :meth:`Study.load` (or read from the on-disk cache) and never per request.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from shapely.geometry.base import BaseGeometry

from geo.access import access_scores
from geo.coverage import coverage_stats, coverage_table, update_layers
from geo.isochrones import union_isochrone
from geo.network import RoadNetwork, load_network
from geo.routing import Router
from geo.settings import LAYERS, MODES, Settings, check_layer, check_mode

logger = logging.getLogger(__name__)

#: Thresholds whose union isochrones are precomputed for every layer and mode.
DEFAULT_ISO_MINUTES: tuple[float, ...] = (15.0, 30.0, 45.0, 60.0)
_CACHE_VERSION = 5  # 5: edge snapping, edge-based drive, edge isochrones


@dataclass
class Study:
    """Facilities, places, network and precomputed coverage for one region."""

    settings: Settings
    network: RoadNetwork
    facilities: gpd.GeoDataFrame
    villages: gpd.GeoDataFrame
    towns: gpd.GeoDataFrame
    counties: gpd.GeoDataFrame
    routers: dict[str, Router]
    coverage: dict[str, gpd.GeoDataFrame]
    isochrones: dict[tuple[str, str, float], BaseGeometry]
    trade_minutes: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    access: dict[str, pd.DataFrame] = field(default_factory=dict)
    iso_minutes: tuple[float, ...] = DEFAULT_ISO_MINUTES
    load_seconds: float = 0.0
    modes: tuple[str, ...] = field(default_factory=lambda: tuple(MODES))
    use_cache: bool = True
    #: Per-study memo for derived views (the web app's rendered maps and plans);
    #: not copied by :meth:`with_facilities`.
    memo: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(
        cls,
        settings: Settings | None = None,
        *,
        osm_file: Path | str | None = None,
        facilities_path: Path | None = None,
        facilities: gpd.GeoDataFrame | None = None,
        villages_path: Path | None = None,
        modes: Sequence[str] = tuple(MODES),
        iso_minutes: Iterable[float] = DEFAULT_ISO_MINUTES,
        use_cache: bool = True,
        progress: bool = False,
    ) -> Study:
        """Load data and network and compute (or read cached) coverage and isochrones.

        ``facilities`` (a frame like :func:`geo.facilities.load_facilities` returns,
        e.g. from the web app's store) takes precedence over ``facilities_path``.
        """
        from tqdm import tqdm

        from geo.facilities import load_facilities
        from geo.places import load_counties, load_towns, load_villages

        started = time.perf_counter()
        settings = settings or Settings()
        modes = tuple(check_mode(m) for m in modes)
        iso_minutes = tuple(sorted({float(m) for m in iso_minutes} | {settings.minutes}))
        if facilities is None:
            facilities = load_facilities(facilities_path, settings)
        villages = load_villages(villages_path, settings)
        towns = load_towns(settings=settings)
        counties = load_counties(settings=settings)
        network = load_network(settings, osm_file, use_cache=use_cache)
        routers = {m: Router(network, m, settings) for m in modes}

        cache_file = _results_file(settings, network, facilities, villages, modes, iso_minutes)
        cached = _read_cache(cache_file) if use_cache else None
        if cached is not None:
            coverage, isos, trade_minutes, access = cached
            logger.info("results read from cache %s", cache_file)
        else:
            coverage = {m: coverage_table(routers[m], villages, facilities) for m in modes}
            trade_minutes = _trade_minutes(routers, villages, facilities)
            access = {
                m: access_scores(routers[m], villages, facilities, settings.minutes) for m in modes
            }
            isos = {}
            jobs = [(layer, m, t) for layer in LAYERS for m in modes for t in iso_minutes]
            for layer, m, t in tqdm(jobs, desc="等时圈 isochrones", disable=not progress):
                isos[(layer, m, t)] = _layer_isochrone(routers[m], facilities, layer, t)
            if use_cache:
                _write_cache(cache_file, (coverage, isos, trade_minutes, access))
        study = cls(
            use_cache=use_cache,
            settings=settings,
            network=network,
            facilities=facilities,
            villages=villages,
            towns=towns,
            counties=counties,
            routers=routers,
            coverage=coverage,
            isochrones=isos,
            trade_minutes=trade_minutes,
            access=access,
            iso_minutes=iso_minutes,
            modes=modes,
        )
        study.load_seconds = time.perf_counter() - started
        logger.info("study loaded in %.1f s (%s)", study.load_seconds, network.source.label)
        return study

    # ------------------------------------------------------------------ updates

    def with_facilities(self, facilities: gpd.GeoDataFrame) -> tuple[Study, StudyChange]:
        """A new study for a changed facility set, recomputing only what the change touches.

        Facilities are compared by id with the current ones. Only the layers of
        facilities that were added, removed, moved or changed layer or capacity
        are recomputed (their coverage columns, 2SFCA scores and isochrones, for
        every mode), and only the per-trade times of trades such facilities teach
        or stopped teaching. Text-only edits (name, phone...) recompute nothing.
        The current study is left untouched, so readers holding it stay consistent;
        the result is also written to the results cache, so a restart is fast.
        """
        started = time.perf_counter()
        layers, trades = _changed(self.facilities, facilities)
        coverage = dict(self.coverage)
        access = dict(self.access)
        isos = dict(self.isochrones)
        trade_minutes = dict(self.trade_minutes)
        if layers:
            for mode in self.modes:
                router = self.routers[mode]
                coverage[mode] = update_layers(coverage[mode], router, facilities, layers)
                if mode in access:
                    fresh = access_scores(
                        router, self.villages, facilities, self.settings.minutes, layers=layers
                    )
                    access[mode] = access[mode].assign(
                        **{column: fresh[column].to_numpy() for column in fresh.columns}
                    )
                for layer in layers:
                    for minutes in self.iso_minutes:
                        isos[(layer, mode, minutes)] = _layer_isochrone(
                            router, facilities, layer, minutes
                        )
        if trades:
            taught = _taught(facilities)
            for key in [k for k in trade_minutes if k[1] in trades]:
                del trade_minutes[key]
            trade_minutes.update(
                _trade_minutes(self.routers, self.villages, facilities, sorted(trades & taught))
            )
        study = replace(
            self,
            facilities=facilities,
            coverage=coverage,
            access=access,
            isochrones=isos,
            trade_minutes=trade_minutes,
        )
        if self.use_cache and (layers or trades):
            cache_file = _results_file(
                self.settings, self.network, facilities, self.villages, self.modes, self.iso_minutes
            )
            _write_cache(cache_file, (coverage, isos, trade_minutes, access))
        change = StudyChange(
            layers=tuple(sorted(layers)),
            trades=tuple(sorted(trades)),
            seconds=time.perf_counter() - started,
        )
        logger.info(
            "recomputed layers %s and %d trade(s) in %.2f s",
            ", ".join(change.layers) or "none",
            len(change.trades),
            change.seconds,
        )
        return study, change

    # ------------------------------------------------------------------ queries

    @property
    def trades(self) -> list[str]:
        """All trades (工种) taught by some facility, sorted."""
        return sorted(_taught(self.facilities))

    def village_trade_minutes(self, mode: str, trade: str) -> np.ndarray:
        """Minutes from every village (in ``villages`` order) to the nearest facility
        of any layer teaching ``trade``; NaN where none is within ``max_minutes``."""
        from geo._errors import SettingsError

        check_mode(mode)
        if (mode, trade) not in self.trade_minutes:
            raise SettingsError(f"unknown trade {trade!r}; known: {'、'.join(self.trades)}")
        return self.trade_minutes[(mode, trade)]

    def stats(self, mode: str, by: str, minutes: float | None = None) -> pd.DataFrame:
        """Coverage statistics per county or town for a mode."""
        check_mode(mode)
        population = self.counties.set_index("county")["population_2020"]
        return coverage_stats(
            self._coverage(mode), by, minutes or self.settings.minutes, population
        )

    def _coverage(self, mode: str) -> gpd.GeoDataFrame:
        if mode not in self.coverage:
            from geo._errors import SettingsError

            raise SettingsError(f"mode {mode!r} was not loaded; loaded: {', '.join(self.modes)}")
        return self.coverage[mode]

    def facility_row(self, fid: str) -> pd.Series | None:
        """The facility with this id, or None."""
        hit = self.facilities[self.facilities["id"] == str(fid)]
        return None if hit.empty else hit.iloc[0]

    def village_row(self, code: str) -> pd.Series | None:
        """The village with this 12-digit code, or None."""
        hit = self.villages[self.villages["village_code"] == str(code)]
        return None if hit.empty else hit.iloc[0]

    def filter_facilities(
        self, layer: str | None = None, county: str | None = None, trade: str | None = None
    ) -> gpd.GeoDataFrame:
        """Facilities of a layer / county / teaching a trade (工种)."""
        fac = self.facilities
        if layer:
            check_layer(layer)
            fac = fac[fac["layer"] == layer]
        if county:
            fac = fac[fac["county"] == county]
        if trade:
            fac = fac[fac["trades"].map(lambda ts: trade in (ts or []))]
        return fac

    def nearby(
        self,
        lon: float,
        lat: float,
        mode: str,
        *,
        minutes: float | None = None,
        layer: str | None = None,
        trade: str | None = None,
        limit: int = 20,
    ) -> pd.DataFrame:
        """Facilities reachable from a point within ``minutes``, nearest first.

        Returns the facility columns plus ``minutes`` and ``distance_m``
        (straight line). One bounded Dijkstra per call (milliseconds).
        """
        check_mode(mode)
        bound = self.settings.minutes if minutes is None else float(minutes)
        table, f_lon, f_lat, fx, fy = self.facility_table(layer, trade)
        router = self.routers[mode]
        seconds = router.one_to_many(lon, lat, f_lon, f_lat, max_minutes=bound)
        minutes_ = np.round(seconds / 60.0, 1)
        ok = np.flatnonzero(~np.isnan(minutes_))
        ox_, oy = router.to_metric([lon], [lat])
        distance = np.round(np.hypot(fx[ok] - ox_[0], fy[ok] - oy[0])).astype(int)
        order = np.lexsort((table["id"].to_numpy()[ok], distance, minutes_[ok]))[:limit]
        out = table.iloc[ok[order]].reset_index(drop=True)
        out["minutes"] = minutes_[ok[order]]
        out["distance_m"] = distance[order]
        return out

    def facility_table(
        self, layer: str | None, trade: str | None
    ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Facilities of a layer/trade as a plain table with lon/lat, plus their coordinates
        (WGS84 and metric), memoised per study: the per-request work is routing only."""
        memo = self.memo.setdefault("nearby_targets", {})
        if (layer, trade) not in memo:
            fac = self.filter_facilities(layer=layer, trade=trade)
            f_lon, f_lat = fac.geometry.x.to_numpy(), fac.geometry.y.to_numpy()
            table = pd.DataFrame(fac.drop(columns="geometry")).reset_index(drop=True)
            table["lon"] = np.round(f_lon, 6)
            table["lat"] = np.round(f_lat, 6)
            fx, fy = next(iter(self.routers.values())).to_metric(table["lon"], table["lat"])
            memo[(layer, trade)] = (table, f_lon, f_lat, fx, fy)
        return memo[(layer, trade)]  # type: ignore[no-any-return]

    def isochrone(self, layer: str, mode: str, minutes: float) -> BaseGeometry:
        """Precomputed union isochrone of a layer (minutes must be precomputed)."""
        check_layer(layer)
        check_mode(mode)
        key = (layer, mode, float(minutes))
        if key not in self.isochrones:
            from geo._errors import SettingsError

            allowed = ", ".join(f"{m:g}" for m in self.iso_minutes)
            raise SettingsError(
                f"isochrones are precomputed for minutes {allowed}; got {minutes:g}"
            )
        return self.isochrones[key]

    @property
    def sample_count(self) -> int:
        return int(self.facilities["is_sample"].sum())


def _layer_isochrone(
    router: Router, facilities: gpd.GeoDataFrame, layer: str, minutes: float
) -> BaseGeometry:
    group = facilities[facilities["layer"] == layer]
    return union_isochrone(
        router, group.geometry.x.to_numpy(), group.geometry.y.to_numpy(), minutes
    )


@dataclass(frozen=True)
class StudyChange:
    """What :meth:`Study.with_facilities` recomputed, and how long it took."""

    layers: tuple[str, ...]
    trades: tuple[str, ...]
    seconds: float


def _changed(old: gpd.GeoDataFrame, new: gpd.GeoDataFrame) -> tuple[set[str], set[str]]:
    """Layers and trades whose results a change from ``old`` to ``new`` facilities affects."""

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


def _trade_minutes(
    routers: dict[str, Router],
    villages: gpd.GeoDataFrame,
    facilities: gpd.GeoDataFrame,
    trades: Sequence[str] | None = None,
) -> dict[tuple[str, str], np.ndarray]:
    """Per mode and trade: minutes from each village to the nearest facility teaching it
    (every trade taught, or only ``trades``)."""
    lon = villages.geometry.x.to_numpy()
    lat = villages.geometry.y.to_numpy()
    if trades is None:
        trades = sorted(_taught(facilities))
    out = {}
    for trade in trades:
        teach = facilities[facilities["trades"].map(lambda ts, t=trade: t in (ts or []))]
        f_lon, f_lat = teach.geometry.x.to_numpy(), teach.geometry.y.to_numpy()
        for mode, router in routers.items():
            out[(mode, trade)] = np.round(router.nearest(lon, lat, f_lon, f_lat).minutes, 2)
    return out


# --------------------------------------------------------------------------- cache


def _file_digest(frame: pd.DataFrame) -> str:
    rows = pd.util.hash_pandas_object(frame.drop(columns="geometry").astype(str), index=False)
    digest = hashlib.sha256(np.asarray(rows).tobytes())
    for wkb in frame.geometry.to_wkb():
        digest.update(bytes(wkb))
    return digest.hexdigest()


def _taught(facilities: gpd.GeoDataFrame) -> set[str]:
    """Every trade (工种) some facility teaches."""
    return {t for ts in facilities["trades"] for t in (ts or [])}


def _results_file(
    settings: Settings,
    network: RoadNetwork,
    facilities: gpd.GeoDataFrame,
    villages: gpd.GeoDataFrame,
    modes: tuple[str, ...],
    iso_minutes: tuple[float, ...],
) -> Path:
    """Where the results of exactly these inputs are cached."""
    key = _results_key(settings, network, facilities, villages, modes, iso_minutes)
    return settings.cache_dir / "results" / f"{key}.pkl"


def _results_key(
    settings: Settings,
    network: RoadNetwork,
    facilities: gpd.GeoDataFrame,
    villages: gpd.GeoDataFrame,
    modes: tuple[str, ...],
    iso_minutes: tuple[float, ...],
) -> str:
    net_digest = hashlib.sha256(
        network.lon.tobytes()
        + network.lat.tobytes()
        + network.u.tobytes()
        + network.v.tobytes()
        + network.length_m.tobytes()
    ).hexdigest()
    parts = [
        str(_CACHE_VERSION),
        repr(settings.with_(data_dir=Path("."), cache_dir=Path("."))),
        net_digest,
        _file_digest(facilities),
        _file_digest(villages),
        repr(modes),
        repr(iso_minutes),
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


#: Results files start with this tag and the SHA-256 of the pickle that follows.
_MAGIC = b"skillcircle-results\x00"
#: Results files kept per cache directory (each admin change writes one).
KEEP_RESULTS = 8


def _read_cache(path: Path) -> Any:
    """The cached results, or None when missing, truncated, corrupt or from another version."""
    if not path.exists():
        return None
    size = len(_MAGIC) + 32
    try:
        blob = path.read_bytes()
        digest, payload = blob[len(_MAGIC) : size], blob[size:]
        if not blob.startswith(_MAGIC) or hashlib.sha256(payload).digest() != digest:
            raise ValueError("checksum mismatch (truncated or corrupt file)")
        return pickle.loads(payload)  # our own file, checksum verified
    except (OSError, ValueError, pickle.UnpicklingError, EOFError, AttributeError) as exc:
        logger.warning("ignoring unreadable results cache %s (rebuilding): %s", path, exc)
        return None


def _write_cache(path: Path, value: Any) -> None:
    """Write atomically (temp file + rename), then keep only the newest :data:`KEEP_RESULTS`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp")
    with tmp.open("wb") as fh:
        fh.write(_MAGIC + hashlib.sha256(payload).digest() + payload)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    old = sorted(path.parent.glob("*.pkl"), key=lambda p: p.stat().st_mtime, reverse=True)
    for stale in old[KEEP_RESULTS:]:
        stale.unlink(missing_ok=True)
