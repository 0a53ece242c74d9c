"""One bounded memo for everything the web app derives from a data version.

Rendered maps, 技能码 sections, JSON answers and solved plans depend only on the
study (its :attr:`~geo.study.Study.version`) and the request's arguments. They
are kept in one least-recently-used cache (cachetools) per kind, keyed by the
version, so an admin change that publishes a new study makes the old answers
unreachable and they age out; nothing grows without bound.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from cachetools import LRUCache

T = TypeVar("T")

#: Entries kept per kind (maps are large: fewer of them).
SIZES = {"maps": 64, "plans": 256, "responses": 4096, "qr": 20_000, "pages": 5000}
DEFAULT_SIZE = 1024


class Memo:
    """Thread-safe, bounded memo of values computed from (version, key)."""

    def __init__(self) -> None:
        self._caches: dict[str, LRUCache[Hashable, Any]] = {}
        self._lock = threading.Lock()

    def get(self, kind: str, version: str, key: Hashable, compute: Callable[[], T]) -> T:
        """The value of ``(version, key)`` in ``kind``, computed once by ``compute()``.

        Two threads asking at once may both compute it (each gets a correct value);
        the lock is not held while computing, so one slow answer never blocks others.
        """
        with self._lock:
            cache = self._caches.get(kind)
            if cache is None:
                cache = self._caches[kind] = LRUCache(maxsize=SIZES.get(kind, DEFAULT_SIZE))
            hit = cache.get((version, key), _MISSING)
        if hit is not _MISSING:
            return hit  # type: ignore[no-any-return]
        value = compute()
        with self._lock:
            cache[(version, key)] = value
        return value

    def size(self, kind: str) -> int:
        """Entries held of one kind (for tests and monitoring)."""
        with self._lock:
            cache = self._caches.get(kind)
            return 0 if cache is None else len(cache)


_MISSING = object()
