"""A loaded study area: data, network, routers and the results of one data version.

:class:`Study` is what long-running users (the web app, batch exports) hold: the
inputs (settings and region, network, routers, facilities, villages, towns,
counties) and their :class:`geo.results.Results` — everything heavy, computed once
in :meth:`Study.load` (or read from the :class:`geo.results.ResultsCache`) and
never per request. A study never changes: a facility change makes a new one
(:meth:`Study.with_facilities`), recomputing only what the change touches.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from cachetools import LRUCache
from shapely.geometry.base import BaseGeometry

from geo._errors import SettingsError, SkillcircleError
from geo.coverage import coverage_stats
from geo.network import RoadNetwork, load_network
from geo.products import CardIndex, VillageCard, clean
from geo.results import (
    Results,
    ResultsCache,
    affected,
    complete_isochrones,
    compute_results,
    missing_isochrones,
    results_key,
    taught_trades,
)
from geo.routing import Router
from geo.settings import MODES, Settings, check_layer, check_mode

logger = logging.getLogger(__name__)

#: Thresholds whose union isochrones are precomputed for every layer and mode.
DEFAULT_ISO_MINUTES: tuple[float, ...] = (15.0, 30.0, 45.0, 60.0)
#: Results files kept per cache directory (each facility change writes one or two).
KEEP_RESULTS = 8
#: Suffix of the cache key of results whose isochrones are not all traced yet.
PARTIAL = "-partial"


@dataclass(frozen=True)
class Study:
    """Facilities, places, network and the results of one data version for one region.

    One class on purpose (~330 lines in sections: loading, updates, results,
    queries): it is the read-only unit the web app serves and swaps whole when a
    facility changes (a request keeps the study it started with). The work lives in
    :mod:`geo.results` (compute, incremental update, versioned cache),
    :mod:`geo.products` and :mod:`geo.routing`; the queries here are thin views of
    one version's results, sharing its bounded per-(layer, trade) target tables.

    Attributes
    ----------
    version
        The data version (:func:`geo.results.results_key`): equal inputs give equal
        versions, so caches of derived answers key on it.
    """

    settings: Settings
    network: RoadNetwork
    facilities: gpd.GeoDataFrame
    villages: gpd.GeoDataFrame
    towns: gpd.GeoDataFrame
    counties: gpd.GeoDataFrame
    routers: Mapping[str, Router]
    results: Results
    version: str
    load_seconds: float = 0.0
    use_cache: bool = True
    #: Facility targets per (layer, trade) for :meth:`nearby` and the card index
    #: (bounded; derived from this study's data only).
    _tables: LRUCache[tuple[str | None, str | None], Any] = field(
        default_factory=lambda: LRUCache(maxsize=512), repr=False, compare=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

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
        """Load data and network and compute (or read cached) results.

        An ``osm_file`` is clipped to the region's counties grown by
        ``settings.clip_halo_m`` while it is read (:mod:`geo.osmclip`).

        ``facilities`` (a frame like :func:`geo.facilities.load_facilities` returns,
        e.g. from the web app's store) takes precedence over ``facilities_path``.
        """
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
        clip = None
        if osm_file is not None:  # the region's data: read the file only around the region
            from geo.osmclip import clip_area

            clip = clip_area(counties, settings.clip_halo_m)
        network = load_network(
            settings, osm_file, use_cache=use_cache, clip=clip, progress=progress
        )
        routers = {m: Router(network, m, settings) for m in modes}
        version = results_key(settings, network, facilities, villages, modes, iso_minutes)
        cache = _cache(settings)
        results = cache.read(version) if use_cache else None
        if results is not None:
            logger.info("results read from cache %s", cache.path(version))
        else:
            results = compute_results(
                routers, villages, facilities, settings, iso_minutes, progress=progress
            )
            if use_cache:
                cache.write(version, results)
        study = cls(
            settings=settings,
            network=network,
            facilities=facilities,
            villages=villages,
            towns=towns,
            counties=counties,
            routers=routers,
            results=results,
            version=version,
            load_seconds=time.perf_counter() - started,
            use_cache=use_cache,
        )
        logger.info("study loaded in %.1f s (%s)", study.load_seconds, network.source.label)
        return study

    # ------------------------------------------------------------------ updates

    def with_facilities(
        self, facilities: gpd.GeoDataFrame, *, trace_minutes: Sequence[float] | None = None
    ) -> tuple[Study, StudyChange]:
        """A new study for a changed facility set, recomputing only what the change touches.

        Only the layers and trades :func:`geo.results.affected` names are
        recomputed (for every mode); text-only edits (name, phone...) recompute
        nothing. The current study is left untouched, so readers holding it stay
        consistent; the new results are also written to the results cache, so a
        restart is fast.

        With ``trace_minutes`` only those thresholds' isochrones of the changed
        layers are traced; the study is then *partial* (:attr:`cache_key`), its other
        isochrones raise :class:`IsochronesPendingError` until :meth:`complete`.
        """
        started = time.perf_counter()
        layers, trades = affected(self.facilities, facilities)
        timings: dict[str, float] = {"affected_s": round(time.perf_counter() - started, 4)}
        results = replace(self.results, facilities=facilities)  # a text edit: no recompute
        if layers or trades:
            results = compute_results(
                self.routers,
                self.villages,
                facilities,
                self.settings,
                self.iso_minutes,
                base=self.results,
                layers=layers,
                trades=trades,
                timings=timings,
                trace_minutes=trace_minutes,
            )
        clock = time.perf_counter()
        version = results_key(
            self.settings, self.network, facilities, self.villages, self.modes, self.iso_minutes
        )
        timings["key_s"] = round(time.perf_counter() - clock, 4)
        cache_key = version + PARTIAL if missing_isochrones(results) else version
        if self.use_cache and cache_key != self.cache_key:
            clock = time.perf_counter()
            _cache(self.settings).write(cache_key, results)
            timings["cache_write_s"] = round(time.perf_counter() - clock, 4)
        study = replace(
            self,
            facilities=facilities,
            results=results,
            version=version,
            _tables=LRUCache(maxsize=512),
            _lock=threading.Lock(),
        )
        change = StudyChange(
            layers=tuple(sorted(layers)),
            trades=tuple(sorted(trades)),
            seconds=time.perf_counter() - started,
            timings=timings,
        )
        logger.info(
            "recomputed layers %s and %d trade(s) in %.2f s (%s)",
            ", ".join(change.layers) or "none",
            len(change.trades),
            change.seconds,
            ", ".join(f"{k} {v:g}" for k, v in timings.items()),
        )
        return study, change

    def with_results(self, results: Results, version: str) -> Study:
        """This study serving other results of the same villages and network (read from
        the results cache by :meth:`read_results` under ``version``, a
        :attr:`cache_key`): another process computed them."""
        if results.facilities is None:
            raise SettingsError(f"results {version} carry no facilities; compute them again")
        return replace(
            self,
            facilities=results.facilities,
            results=results,
            version=version.removesuffix(PARTIAL),
            _tables=LRUCache(maxsize=512),
            _lock=threading.Lock(),
        )

    @property
    def cache_key(self) -> str:
        """Where the results are cached and how they are published: :attr:`version`, or
        ``<version>-partial`` while some isochrones are still to be traced."""
        return self.version + PARTIAL if missing_isochrones(self.results) else self.version

    def complete(self, timings: dict[str, float] | None = None) -> Study:
        """This study with the isochrones a partial one left out traced (and cached
        under :attr:`version`); itself if none is missing."""
        if not missing_isochrones(self.results):
            return self
        results = complete_isochrones(self.routers, self.results, timings)
        if self.use_cache:
            _cache(self.settings).write(self.version, results)
        # the same data version: answers remembered for it stay valid (the missing
        # isochrones were never answered)
        return replace(self, results=results)

    def read_results(self, version: str) -> Results | None:
        """Results of a data version from this study's results cache (None if absent)."""
        return _cache(self.settings).read(version)

    # ------------------------------------------------------------------ results

    @property
    def modes(self) -> tuple[str, ...]:
        """The travel modes the results hold."""
        return self.results.modes

    @property
    def iso_minutes(self) -> tuple[float, ...]:
        """The minutes of the stored isochrones."""
        return self.results.iso_minutes

    @property
    def coverage(self) -> Mapping[str, gpd.GeoDataFrame]:
        """Per mode: each village's minutes to each layer (:func:`geo.coverage.coverage_table`)."""
        return self.results.coverage

    @property
    def access(self) -> Mapping[str, pd.DataFrame]:
        """Per mode: each village's 2SFCA access score per layer."""
        return self.results.access

    @property
    def isochrones(self) -> Mapping[tuple[str, str, float], BaseGeometry]:
        """Isochrone unions per (layer, mode, minutes)."""
        return self.results.isochrones

    @property
    def trade_minutes(self) -> Mapping[tuple[str, str], np.ndarray]:
        """Per (mode, trade): each village's minutes to the nearest facility teaching it."""
        return self.results.trade_minutes

    # ------------------------------------------------------------------ queries

    @property
    def trades(self) -> list[str]:
        """All trades (工种) taught by some facility, sorted."""
        return sorted(taught_trades(self.facilities))

    def village_trade_minutes(self, mode: str, trade: str) -> np.ndarray:
        """Minutes from every village (in ``villages`` order) to the nearest facility
        of any layer teaching ``trade``; NaN where none is within ``max_minutes``."""
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
            raise SettingsError(f"mode {mode!r} was not loaded; loaded: {', '.join(self.modes)}")
        return self.coverage[mode]

    def facility_row(self, fid: str) -> pd.Series | None:
        """The facility with this id, or None."""
        hit = self.facilities[self.facilities["id"] == str(fid)]
        return None if hit.empty else hit.iloc[0]

    def village_card(self, index: int) -> VillageCard:
        """The 技能码 card of the village at position ``index`` (from the results)."""
        with self._lock:
            built = self._tables.get(("cards", None))
        if built is None:
            built = CardIndex(self.villages, self.facilities, self.results.cards)
            with self._lock:
                self._tables[("cards", None)] = built
        return built.card(index)  # type: ignore[no-any-return]

    def build_tables(self) -> None:
        """Build now the lookup tables the first requests would otherwise build (the
        技能码 card index, village positions, the targets of :meth:`nearby`): a server
        process does it before it serves this study, so no request waits for them."""
        if len(self.villages):
            self.village_card(0)
            self.village_position(str(self.villages["village_code"].iloc[0]))
        self.facility_targets(None, None)

    def village_position(self, code: str) -> int | None:
        """The position of the village with this 12-digit code in :attr:`villages`, or None."""
        with self._lock:
            positions = self._tables.get(("village_codes", None))
        if positions is None:
            codes = self.villages["village_code"].astype(str)
            positions = {code: i for i, code in enumerate(codes)}
            with self._lock:
                self._tables[("village_codes", None)] = positions
        found = positions.get(str(code))
        return None if found is None else int(found)

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
    ) -> list[dict[str, Any]]:
        """Facilities reachable from a point within ``minutes``, nearest first.

        Returns JSON-ready records: the facility columns (``lon``/``lat`` instead
        of the geometry) plus ``minutes`` (1 decimal) and ``distance_m`` (straight
        line, whole metres); ties by distance, then id. One bounded Dijkstra per
        call (a few milliseconds), nothing else per request.
        """
        check_mode(mode)
        bound = self.settings.minutes if minutes is None else float(minutes)
        targets = self.facility_targets(layer, trade)
        router = self.routers[mode]
        seconds = router.one_to_many(lon, lat, targets.lon, targets.lat, max_minutes=bound)
        minutes_ = np.round(seconds / 60.0, 1)
        ok = np.flatnonzero(~np.isnan(minutes_))
        ox_, oy = router.to_metric([lon], [lat])
        distance = np.round(np.hypot(targets.x[ok] - ox_[0], targets.y[ok] - oy[0])).astype(int)
        order = np.lexsort((targets.ids[ok], distance, minutes_[ok]))[:limit]
        return [
            {**targets.records[i], "minutes": float(minutes_[i]), "distance_m": int(d)}
            for i, d in zip(ok[order], distance[order], strict=True)
        ]

    def facility_targets(self, layer: str | None, trade: str | None) -> Targets:
        """Facilities of a layer/trade as records and coordinate arrays, kept per study
        (bounded): the per-request work of :meth:`nearby` is routing only."""
        with self._lock:
            hit = self._tables.get((layer, trade))
        if hit is None:
            fac = self.filter_facilities(layer=layer, trade=trade)
            lon, lat = fac.geometry.x.to_numpy(), fac.geometry.y.to_numpy()
            table = pd.DataFrame(fac.drop(columns="geometry")).reset_index(drop=True)
            table["lon"] = np.round(lon, 6)
            table["lat"] = np.round(lat, 6)
            records = [
                {k: clean(v) for k, v in row.items()} | {"trades": list(row["trades"] or [])}
                for row in table.astype(object).to_dict("records")
            ]
            x, y = next(iter(self.routers.values())).to_metric(table["lon"], table["lat"])
            hit = Targets(records, table["id"].to_numpy(str), lon, lat, x, y)
            with self._lock:
                self._tables[(layer, trade)] = hit
        return hit

    def isochrone(self, layer: str, mode: str, minutes: float) -> BaseGeometry:
        """Precomputed union isochrone of a layer (minutes must be precomputed)."""
        check_layer(layer)
        check_mode(mode)
        key = (layer, mode, float(minutes))
        if key not in self.isochrones and float(minutes) in self.iso_minutes:
            raise IsochronesPendingError(
                f"the {minutes:g}-minute isochrones of {layer} ({mode}) are being traced "
                "after a facility change; ask again in a few seconds"
            )
        if key not in self.isochrones:
            allowed = ", ".join(f"{m:g}" for m in self.iso_minutes)
            raise SettingsError(
                f"isochrones are precomputed for minutes {allowed}; got {minutes:g}"
            )
        return self.isochrones[key]

    @property
    def sample_count(self) -> int:
        """How many of the facilities are samples (``is_sample``)."""
        return int(self.facilities["is_sample"].sum())


class IsochronesPendingError(SkillcircleError):
    """An isochrone of a partial study (:meth:`Study.complete` traces it soon)."""


@dataclass(frozen=True)
class Targets:
    """Facilities as :meth:`Study.nearby` searches them: JSON-ready records, ids,
    WGS84 and metric coordinates (arrays aligned with the records)."""

    records: list[dict[str, Any]]
    ids: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    x: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class StudyChange:
    """What :meth:`Study.with_facilities` recomputed, and how long it took."""

    layers: tuple[str, ...]
    trades: tuple[str, ...]
    seconds: float
    #: Seconds per part (:func:`geo.results.compute_results`'s ``timings``, plus
    #: ``affected_s``, ``key_s`` and ``cache_write_s``).
    timings: Mapping[str, float] = field(default_factory=dict)


def _cache(settings: Settings) -> ResultsCache:
    return ResultsCache(settings.cache_dir / "results", keep=KEEP_RESULTS)
