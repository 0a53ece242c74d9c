"""One bounded memo for everything the web app derives from a data version.

Rendered maps, 技能码 sections, JSON answers and solved plans depend only on the
study (its :attr:`~geo.study.Study.version`) and the request's arguments. They
are kept in one least-recently-used cache (cachetools) per kind, keyed by the
version, so an admin change that publishes a new study makes the old answers
unreachable and they age out; nothing grows without bound.

:meth:`Memo.get_or_stale` serves a heavy value (the map page) stale while its
new version is being computed: the first caller computes it, the callers meanwhile
get the value of the previous version (labelled with that version by the caller).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from cachetools import LRUCache

T = TypeVar("T")

#: Entries kept per kind (maps are large: fewer of them).
SIZES = {"maps": 64, "plans": 256, "responses": 4096, "qr": 20_000, "pages": 5000, "index": 64}
DEFAULT_SIZE = 1024


class Memo:
    """Thread-safe, bounded memo of values computed from (version, key)."""

    def __init__(self) -> None:
        self._caches: dict[str, LRUCache[Hashable, Any]] = {}
        #: kind -> key -> the newest value computed of any version (for get_or_stale)
        self._latest: dict[str, LRUCache[Hashable, Any]] = {}
        #: (kind, version, key) being computed -> set when done
        self._flights: dict[tuple[str, str, Hashable], threading.Event] = {}
        self._lock = threading.Lock()

    def _cache(self, kind: str) -> LRUCache[Hashable, Any]:
        cache = self._caches.get(kind)
        if cache is None:
            cache = self._caches[kind] = LRUCache(maxsize=SIZES.get(kind, DEFAULT_SIZE))
        return cache

    def get(self, kind: str, version: str, key: Hashable, compute: Callable[[], T]) -> T:
        """The value of ``(version, key)`` in ``kind``, computed once by ``compute()``.

        Two threads asking at once may both compute it (each gets a correct value);
        the lock is not held while computing, so one slow answer never blocks others.
        """
        with self._lock:
            hit = self._cache(kind).get((version, key), _MISSING)
        if hit is not _MISSING:
            return hit  # type: ignore[no-any-return]
        value = compute()
        with self._lock:
            self._cache(kind)[(version, key)] = value
        return value

    def get_or_stale(
        self, kind: str, version: str, key: Hashable, compute: Callable[[], T]
    ) -> tuple[T, bool]:
        """``(value, fresh)``: the value of ``(version, key)``, or, while another thread
        computes it, the newest value of ``key`` of an earlier version (``fresh``
        False; the caller says which version it is). One thread computes a value at
        a time; with no earlier value the others wait for it.
        """
        flight = (kind, version, key)
        while True:
            with self._lock:
                hit = self._cache(kind).get((version, key), _MISSING)
                if hit is not _MISSING:
                    return hit, True
                running = self._flights.get(flight)
                if running is None:
                    done = self._flights[flight] = threading.Event()
                    break
                latest = self._latest.get(kind)
                stale = _MISSING if latest is None else latest.get(key, _MISSING)
            if stale is not _MISSING:
                return stale, False
            running.wait()  # then read it (or compute it, if that computation failed)
        try:
            value = compute()
            with self._lock:
                self._cache(kind)[(version, key)] = value
                latest = self._latest.get(kind)
                if latest is None:
                    latest = self._latest[kind] = LRUCache(maxsize=SIZES.get(kind, DEFAULT_SIZE))
                latest[key] = value
            return value, True
        finally:
            with self._lock:
                self._flights.pop(flight, None)
            done.set()

    def size(self, kind: str) -> int:
        """Entries held of one kind (for tests and monitoring)."""
        with self._lock:
            cache = self._caches.get(kind)
            return 0 if cache is None else len(cache)


_MISSING = object()
