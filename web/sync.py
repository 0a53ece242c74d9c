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
* Every server process polls the published row (:class:`Follower`) and swaps to
  the new results when they appear: a move is visible in every worker within
  about a second after its recompute.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from geo.study import Study

from .store import Store

logger = logging.getLogger(__name__)

#: How often a process looks for newly published results (seconds).
POLL_S = 0.5
#: A running job whose heartbeat is older than this is taken again (its process died).
STALE_S = 60.0
HEARTBEAT_S = 5.0
#: Seconds between housekeeping rounds of the recompute loop (the retention purge).
HOUSEKEEPING_S = 3600.0


@dataclass(frozen=True)
class Served:
    """The study a process serves and the facilities version it reflects."""

    study: Study
    facilities_version: int


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
        on_publish: Callable[[Served], None] | None = None,
        stale_s: float = STALE_S,
        housekeeping: Callable[[], object] | None = None,
        housekeeping_s: float = HOUSEKEEPING_S,
    ) -> None:
        self.store = store
        self.stale_s = stale_s
        self.study = study
        self.on_publish = on_publish
        self.housekeeping = housekeeping
        self.housekeeping_s = housekeeping_s
        self._housekept = -math.inf
        self.wake = threading.Event()

    @property
    def worker(self) -> str:
        """``host:pid`` of the process computing (read at each claim: processes fork)."""
        return f"{socket.gethostname()}:{os.getpid()}"

    def run_once(self) -> dict[str, object] | None:
        """Take and compute the newest queued job; None when nothing is queued."""
        job = self.store.claim_job(self.worker, stale_s=self.stale_s)
        if job is None:
            return None
        job_id = int(job["id"])  # type: ignore[call-overload]
        beating = threading.Event()
        beat = threading.Thread(target=self._beat, args=(job_id, beating), daemon=True)
        beat.start()
        started = time.perf_counter()
        try:
            records, version = self.store.facilities_snapshot()
            frame = self.store.facilities_frame(records)
            study, change = self.study.with_facilities(frame)
            if self.study.use_cache and not study.use_cache:  # pragma: no cover - defensive
                raise RuntimeError("results cache disabled")
            published = self.store.publish(version, study.version)
            detail = {"layers": list(change.layers), "trades": list(change.trades)}
            self.store.finish_job(
                job_id,
                state="done",
                published_version=version,
                results_key=study.version,
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
            self.on_publish(Served(study, version))
        logger.info(
            "job %d: facilities version %d published as %s (%s) in %.2f s",
            job_id,
            version,
            study.version,
            ", ".join(change.layers) or "no layer",
            time.perf_counter() - started,
        )
        return self.store.job(job_id)

    def run_pending(self) -> None:
        """Compute until nothing is queued."""
        while self.run_once() is not None:
            pass

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
                if self.run_once() is None:
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
        Read and replace the process's :class:`Served` (the app's extension).

    warm
        Called with a newly read study before it is served (renders what the
        first visits would otherwise wait for).
    """

    def __init__(
        self,
        store: Store,
        get: Callable[[], Served],
        put: Callable[[Served], None],
        warm: Callable[[Study], None] | None = None,
    ) -> None:
        self.store = store
        self.get = get
        self.put = put
        self.warm = warm
        self._pid: int | None = None
        self._lock = threading.Lock()

    def poll_once(self) -> bool:
        """Swap to the published results if they are newer; returns whether it swapped."""
        row = self.store.published()
        served = self.get()
        if row is None or int(row["facilities_version"]) <= served.facilities_version:
            return False
        key = str(row["results_key"])
        if key == served.study.version:
            self.put(Served(served.study, int(row["facilities_version"])))
            return True
        results = served.study.read_results(key)
        if results is None:  # not (yet) in this machine's cache: keep serving, retry
            logger.warning("published results %s are not in the results cache", key)
            return False
        study = served.study.with_results(results, key)
        if self.warm is not None:
            self.warm(study)
        self.put(Served(study, int(row["facilities_version"])))
        logger.info("now serving facilities version %s (%s)", row["facilities_version"], key)
        return True

    def ensure_running(self) -> None:
        """Start the polling thread in this process (once; again after a fork)."""
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            threading.Thread(target=self._loop, name="skillcircle-follower", daemon=True).start()

    def _loop(self) -> None:
        while True:
            try:
                self.poll_once()
            except Exception:  # the database may be briefly locked or away: try again
                logger.exception("polling the published results")
            time.sleep(POLL_S)
