"""Keeping every server process on the newest published results, and computing them.

The read model of one data version is a :class:`geo.results.Results` (coverage,
isochrones, 技能码 cards... and the facilities they are of), written once to the
results cache and read by every process. The store (:mod:`web.store`) says
which facilities version is published and which results it is.

* An admin write commits and queues a recompute job in the same transaction,
  and answers at once with the new data version and the job.
* A :class:`Recomputer` takes the newest queued job (it covers the older ones),
  reads the facilities and their version together, computes only what changed
  (:meth:`geo.study.Study.with_facilities`), writes the results to the cache and
  publishes them. It runs inline (tests), in a thread, or in a process of its
  own (``skillcircle serve``: the request workers never compute). A job whose
  process is killed keeps its heartbeat old and is taken again; until then the
  previous version is served, and no acknowledged write is lost (it is in the store).
* Every server process polls the published row (:class:`Follower`, every
  :data:`POLL_S`: one indexed read of a one-row table) and swaps to the new
  results as soon as it has read them; only then are the maps of the new
  version rendered (``warm``, in the follower's thread), so the switch never
  waits for them. The served version only moves forward.

Timing of one facility move (stages a bench reports, ``bench/serving.py``): the
job's ``detail`` holds ``timing`` (epoch seconds ``claimed_at``/``published_at``
and the seconds of each part of the recompute), and each process's
:attr:`Follower.last_switch` (shown by ``/api/version``) when it noticed the
publication, how long reading the results took, when it served them and how long
warming its maps took afterwards.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from geo.study import PARTIAL, Study

from .store import Store

logger = logging.getLogger(__name__)

#: How often a process looks for newly published results, and the recompute process
#: for queued jobs (seconds): each look is one small indexed read.
POLL_S = 0.1
#: A running job whose heartbeat is older than this is taken again (its process died).
STALE_S = 60.0
HEARTBEAT_S = 5.0
#: Seconds between housekeeping rounds of the recompute loop (the retention purge).
HOUSEKEEPING_S = 3600.0


@dataclass(frozen=True)
class Served:
    """The study a process serves, the facilities version it reflects and the results
    key it was published as (:attr:`geo.study.Study.cache_key`)."""

    study: Study
    facilities_version: int
    results_key: str = ""

    @property
    def key(self) -> str:
        return self.results_key or self.study.cache_key

    def newer_than(self, other: Served) -> bool:
        """Whether this may replace ``other``: a newer facilities version, or the same
        one with its isochrones completed (never completed -> partial)."""
        if self.facilities_version != other.facilities_version:
            return self.facilities_version > other.facilities_version
        return self.key != other.key and not self.key.endswith(PARTIAL)


class Recomputer:
    """Computes queued jobs: read the store, recompute what changed, cache, publish.

    Parameters
    ----------
    store
        The store (its own connections per thread/process).
    study
        The study to start from (its results are the base of the first increment).
    on_publish
        Called with each newly published :class:`Served` (the inline and thread
        modes hand it to their app at once).
    prepare
        Called with the :class:`Served` about to be published, before it is (the
        app's: render the map page once here, for every worker to read; an error is
        logged and the workers render it themselves).
    stale_s
        A running job whose heartbeat is older than this is taken again.
    housekeeping
        Called by :meth:`run_forever` at start and then every ``housekeeping_s``
        seconds (the app's: delete registrants' personal data past retention).
    """

    def __init__(
        self,
        store: Store,
        study: Study,
        on_publish: Callable[[Served], object] | None = None,
        prepare: Callable[[Served], object] | None = None,
        stale_s: float = STALE_S,
        housekeeping: Callable[[], object] | None = None,
        housekeeping_s: float = HOUSEKEEPING_S,
    ) -> None:
        self.store = store
        self.stale_s = stale_s
        self.study = study
        self.on_publish = on_publish
        self.prepare = prepare
        self.housekeeping = housekeeping
        self.housekeeping_s = housekeeping_s
        self._housekept = -math.inf
        self._unreadable = ""
        self.wake = threading.Event()

    @property
    def worker(self) -> str:
        """``host:pid`` of the process computing (read at each claim: processes fork)."""
        return f"{socket.gethostname()}:{os.getpid()}"

    def run_once(self, defer: bool = False) -> dict[str, object] | None:
        """Take and compute the newest queued job; None when nothing is queued.

        With ``defer`` only the isochrones of the standard threshold
        (``settings.minutes``: the maps' and 技能码 pages') are traced before the
        results are published (as partial results); :meth:`complete_published`
        traces the others and publishes the complete results right after.
        """
        if not self.store.jobs_waiting():  # a cheap read first: the claim is a write
            return None
        job = self.store.claim_job(self.worker, stale_s=self.stale_s)
        if job is None:
            return None
        job_id = int(job["id"])  # type: ignore[call-overload]
        beating = threading.Event()
        beat = threading.Thread(target=self._beat, args=(job_id, beating), daemon=True)
        beat.start()
        started = time.perf_counter()
        timing: dict[str, float] = {"claimed_at": round(time.time(), 3)}
        try:
            records, version = self.store.facilities_snapshot()
            frame = self.store.facilities_frame(records)
            timing["snapshot_s"] = round(time.perf_counter() - started, 4)
            minutes = (self.study.settings.minutes,) if defer else None
            study, change = self.study.with_facilities(frame, trace_minutes=minutes)
            timing.update(change.timings)
            timing["recompute_s"] = round(change.seconds, 4)
            if self.study.use_cache and not study.use_cache:  # pragma: no cover - defensive
                raise RuntimeError("results cache disabled")
            clock = time.perf_counter()
            self._prepare(Served(study, version, study.cache_key))
            timing["prepare_s"] = round(time.perf_counter() - clock, 4)
            clock = time.perf_counter()
            published = self.store.publish(version, study.cache_key)
            timing["publish_s"] = round(time.perf_counter() - clock, 4)
            timing["published_at"] = round(time.time(), 3)
            detail = {
                "layers": list(change.layers),
                "trades": list(change.trades),
                "timing": timing,
            }
            self.store.finish_job(
                job_id,
                state="done",
                published_version=version,
                results_key=study.cache_key,
                seconds=round(time.perf_counter() - started, 3),
                detail=json.dumps(detail, ensure_ascii=False),
            )
        except Exception as exc:  # a failed job must be visible; the old version stays served
            logger.exception("recompute job %d failed", job_id)
            self.store.finish_job(job_id, state="failed", detail=f"{type(exc).__name__}: {exc}")
            return self.store.job(job_id)
        finally:
            beating.set()
        self.study = study
        if published and self.on_publish is not None:
            self.on_publish(Served(study, version, study.cache_key))
        logger.info(
            "job %d: facilities version %d published as %s (%s) in %.2f s: %s",
            job_id,
            version,
            study.version,
            ", ".join(change.layers) or "no layer",
            time.perf_counter() - started,
            ", ".join(f"{k} {v:g}" for k, v in timing.items() if not k.endswith("_at")),
        )
        return self.store.job(job_id)

    def _prepare(self, served: Served) -> None:
        if self.prepare is None:
            return
        try:
            self.prepare(served)
        except Exception:  # the workers then render it themselves
            logger.exception("preparing facilities version %d", served.facilities_version)

    def run_pending(self) -> None:
        """Compute until nothing is queued."""
        while self.run_once() is not None:
            pass

    def complete_published(self) -> bool:
        """If partial results are published, trace their missing isochrones and publish
        the complete results (unless a newer version was published meanwhile). Also
        after a restart: the partial results are read from the cache. Returns whether
        it published."""
        row = self.store.published()
        if row is None or not str(row["results_key"]).endswith(PARTIAL):
            return False
        key, version = str(row["results_key"]), int(row["facilities_version"])
        base = self.study
        if base.cache_key != key:
            if key == self._unreadable:  # warned once; the next job publishes anew
                return False
            results = base.read_results(key)
            if results is None:
                logger.warning("published partial results %s are not in the cache", key)
                self._unreadable = key
                return False
            base = base.with_results(results, key)
        timing: dict[str, float] = {}
        started = time.perf_counter()
        study = base.complete(timing)
        published = self.store.publish(version, study.cache_key)
        self.study = study
        if published and self.on_publish is not None:
            self.on_publish(Served(study, version, study.cache_key))
        logger.info(
            "facilities version %d completed (%s isochrones) in %.2f s%s",
            version,
            timing.get("isochrones", 0),
            time.perf_counter() - started,
            "" if published else "; a newer version was published meanwhile",
        )
        return published

    def housekeep(self) -> None:
        """Run the housekeeping if it is due (errors are logged: the next round retries)."""
        if self.housekeeping is None or time.monotonic() - self._housekept < self.housekeeping_s:
            return
        self._housekept = time.monotonic()
        try:
            self.housekeeping()
        except Exception:
            logger.exception("housekeeping")

    def run_forever(self, stop: threading.Event, idle_s: float = POLL_S) -> None:
        """Compute jobs as they come (woken by :attr:`wake` or every ``idle_s``), and
        the housekeeping every ``housekeeping_s``."""
        while not stop.is_set():
            self.housekeep()
            try:
                # jobs first (a move is published with the standard isochrones only),
                # then the other isochrones of what is published
                if self.run_once(defer=True) is None and not self.complete_published():
                    self.wake.wait(idle_s)
                    self.wake.clear()
            except Exception:  # e.g. the database briefly unavailable: try again
                logger.exception("recompute loop")
                stop.wait(idle_s)

    def _beat(self, job_id: int, done: threading.Event) -> None:
        while not done.wait(min(HEARTBEAT_S, self.stale_s / 3)):
            try:
                self.store.heartbeat(job_id)
            except Exception:  # pragma: no cover - the next beat tries again
                logger.warning("heartbeat of job %d failed", job_id)


class Follower:
    """Swaps a process's study when newer results are published (polling the store).

    Parameters
    ----------
    store
        The store.
    get, put
        Read and replace the process's :class:`Served` (the app's extension);
        ``put`` refuses (returns False) a version older than the one served, so
        the served version never goes backwards.
    warm
        Called with a newly served study, after the switch (renders what the first
        visits would otherwise wait for; meanwhile they are answered as the app's
        policy says, see :func:`web.warm`).
    stagger_s
        Wait a random 0 to ``stagger_s`` seconds before reading new results, so that
        the workers of one server (which notice a publication within the same 0.1 s)
        do not all read and switch at once, each slowing the others' answers.

    Attributes
    ----------
    last_switch
        The newest switch of this process: ``facilities_version``, ``results_key``,
        ``noticed_at`` and ``served_at`` (epoch seconds), ``read_s`` (reading the
        results from the cache and building the study's lookup tables), ``warm_s``
        (the map page made ready afterwards) and ``completed_at`` (when the
        isochrones left for later were served).
    """

    def __init__(
        self,
        store: Store,
        get: Callable[[], Served],
        put: Callable[[Served], object],
        warm: Callable[[Study], None] | None = None,
        stagger_s: float = 0.0,
    ) -> None:
        self.store = store
        self.stagger_s = stagger_s
        self.get = get
        self.put = put
        self.warm = warm
        self.last_switch: dict[str, object] = {}
        self._pid: int | None = None
        self._lock = threading.Lock()
        self._switching = threading.Lock()

    def poll_once(self) -> bool:
        """Swap to the published results if they are newer; returns whether it swapped."""
        with self._switching:  # the loop and a caller (tests) never switch at once
            return self._poll()

    def _poll(self) -> bool:
        row = self.store.published()
        served = self.get()
        if row is None:
            return False
        version = int(row["facilities_version"])
        key = str(row["results_key"])
        if not Served(served.study, version, key).newer_than(served):
            return False
        noticed = time.time()
        if key == served.key:
            return self.put(Served(served.study, version, key)) is not False
        if self.stagger_s > 0:
            time.sleep(random.uniform(0.0, self.stagger_s))
        clock = time.perf_counter()
        results = served.study.read_results(key)
        if results is None:  # not (yet) in this machine's cache: keep serving, retry
            logger.warning("published results %s are not in the results cache", key)
            return False
        if results.facilities is not None and key.removesuffix(PARTIAL) == served.study.version:
            study = replace(served.study, results=results)  # completed: keep its tables
        else:
            study = served.study.with_results(results, key)
        study.build_tables()  # before it is served: no request builds them
        read_s = time.perf_counter() - clock
        if self.put(Served(study, version, key)) is False:  # another path served a newer one
            return False
        if study.version == served.study.version:  # the same data, its isochrones completed
            self.last_switch["completed_at"] = round(time.time(), 3)
            logger.info("facilities version %s: isochrones completed (%s)", version, key)
            return True
        switch: dict[str, object] = {
            "facilities_version": version,
            "results_key": key,
            "noticed_at": round(noticed, 3),
            "read_s": round(read_s, 4),
            "served_at": round(time.time(), 3),
        }
        self.last_switch = switch
        logger.info("now serving facilities version %s (%s), read in %.2f s", version, key, read_s)
        if self.warm is not None:
            clock = time.perf_counter()
            self.warm(study)
            switch["warm_s"] = round(time.perf_counter() - clock, 4)
        return True

    def ensure_running(self) -> None:
        """Start the polling thread in this process (once; again after a fork)."""
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._switching = threading.Lock()  # a lock held at the fork stays held
            threading.Thread(target=self._loop, name="skillcircle-follower", daemon=True).start()

    def _loop(self) -> None:
        while True:
            try:
                self.poll_once()
            except Exception:  # the database may be briefly locked or away: try again
                logger.exception("polling the published results")
            time.sleep(POLL_S)
