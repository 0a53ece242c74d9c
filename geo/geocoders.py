"""Online geocoding with the user's key: Amap (高德) and Tianditu (天地图), cached on disk.

* Amap Web服务 地理编码 ``GET https://restapi.amap.com/v3/geocode/geo?key=…&address=…``
  answers ``{"status": "1", "info": "OK", "infocode": "10000", "count": "1",
  "geocodes": [{"formatted_address": …, "district": …, "location": "lon,lat",
  "level": "门牌号"}]}`` in **GCJ-02**, converted here to WGS84 (:mod:`geo.coords`).
  ``status "0"`` carries an ``infocode``: 10001 bad key, 10003/10044 daily quota
  spent, 10004/10014/10019-10021 too many requests (retried), 2xxxx a bad request.
* Tianditu 地理编码 ``GET http://api.tianditu.gov.cn/geocoder?ds={"keyWord": …}&tk=…``
  answers ``{"status": "0", "msg": "ok", "location": {"lon": …, "lat": …,
  "level": "门址", "score": 100, "keyWord": …}}`` in CGCS2000 (within centimetres of
  WGS84: taken as is); ``status "101"`` means no result.

Every answer the service gave for an address is kept in a SQLite file under
``<cache_dir>/geocode/`` (the key never is), so a second import asks nothing and
a run stopped by the daily quota goes on where it stopped. Requests are spaced
(``min_interval``, default within the services' free quotas: Amap 3 per second)
and retried with a growing pause on network errors, HTTP 429/5xx and "too many
requests" answers. A point must lie in the region's counties, else the row is
reported. ``location_quality`` is ``geocoded_<service>:<level>`` with the
service's own level (门牌号, 兴趣点, 村庄, 门址…); answers only at 区县 level or
coarser are refused (they say nothing about the place).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode
from urllib.request import Request, urlopen

from geo._errors import GeocoderError
from geo.coords import gcj02_to_wgs84
from geo.geocode import KEY_VARIABLES, Gazetteer, Placement, normalise

logger = logging.getLogger(__name__)

#: Real endpoints (tests and private mirrors pass ``url``).
URLS = {
    "amap": "https://restapi.amap.com/v3/geocode/geo",
    "tianditu": "http://api.tianditu.gov.cn/geocoder",
}
#: Seconds between two requests by default (Amap's free personal quota is 3 per second).
MIN_INTERVAL = {"amap": 0.34, "tianditu": 0.2}
#: Levels that place nothing finer than a county: refused.
COARSE_LEVELS = frozenset({"国家", "省", "市", "区县", "未知", "行政区划"})

_AMAP_RETRY = frozenset({"10004", "10014", "10015", "10016", "10017", "10019", "10020", "10021"})
_AMAP_QUOTA = frozenset({"10003", "10010", "10044"})
_USER_AGENT = "skillcircle (+https://github.com/; geocoding a training registry)"


class _RetryError(Exception):
    """A transient failure: wait and ask again."""


class OnlineGeocoder:
    """Amap or Tianditu geocoding of addresses, checked against the region.

    Parameters
    ----------
    service
        ``amap`` or ``tianditu``.
    key
        The user's key (Amap ``key``, Tianditu ``tk``); never logged or cached.
    gazetteer
        The region's gazetteer: results outside its counties are refused, and
        it names the county and town of each result.
    url
        Endpoint; default :data:`URLS` (tests pass a local server).
    cache_dir
        Folder of the answer cache (``<service>.sqlite3``); ``None`` = no cache.
    min_interval
        Least seconds between two requests; default :data:`MIN_INTERVAL`.
    retries
        How many times a transient failure is retried (pauses ``backoff``,
        2 x ``backoff``, … seconds) before the import stops.
    timeout
        Seconds to wait for one answer.
    """

    def __init__(
        self,
        service: str,
        key: str,
        gazetteer: Gazetteer,
        *,
        url: str | None = None,
        cache_dir: Path | None = None,
        min_interval: float | None = None,
        retries: int = 3,
        backoff: float = 1.0,
        timeout: float = 10.0,
    ) -> None:
        if service not in URLS:
            raise ValueError(f"unknown online geocoder {service!r}; use {', '.join(URLS)}")
        self.name = service
        self.key = key
        self.gazetteer = gazetteer
        self.url = url or URLS[service]
        self.cache_path = Path(cache_dir) / f"{service}.sqlite3" if cache_dir else None
        self.min_interval = MIN_INTERVAL[service] if min_interval is None else min_interval
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.requests = 0  # answers fetched from the service (not the cache)
        self._last = 0.0

    def locate(self, addresses: Sequence[str]) -> list[Placement | str]:
        """Place each address (each distinct one asked once); see the module docstring.

        Raises
        ------
        GeocoderError
            If the key is refused, the quota is spent or the service does not
            answer after the retries. Answers received so far stay cached.
        """
        answers: dict[str, Placement | str] = {}
        with _open_cache(self.cache_path) as cache:
            for address in dict.fromkeys(addresses):
                if not normalise(address):
                    answers[address] = "address is empty; give lon/lat or an address (地址)"
                    continue
                answers[address] = self._place(address, self._answer(address, cache))
        if self.requests:
            logger.info("%s: %d addresses asked online", self.name, self.requests)
        return [answers[a] for a in addresses]

    # ------------------------------------------------------------- requests

    def _params(self, address: str) -> dict[str, str]:
        if self.name == "amap":
            params = {"address": address, "output": "JSON"}
            if self.gazetteer.city_code:
                params["city"] = self.gazetteer.city_code
            return params
        keyword = normalise(address)
        if not keyword.startswith(self.gazetteer.prefixes):
            keyword = self.gazetteer.region_name + keyword  # the API has no city filter
        return {"ds": json.dumps({"keyWord": keyword}, ensure_ascii=False)}

    def _answer(self, address: str, cache: sqlite3.Connection | None) -> dict[str, Any]:
        params = self._params(address)
        query = json.dumps([self.url, params], ensure_ascii=False, sort_keys=True)
        if cache is not None:
            row = cache.execute("SELECT answer FROM answers WHERE query = ?", (query,)).fetchone()
            if row is not None:
                return json.loads(row[0])  # type: ignore[no-any-return]
        pause, why = self.backoff, ""
        for attempt in range(self.retries + 1):
            if attempt:
                logger.info("%s: %s; asking again in %.1f s", self.name, why, pause)
                time.sleep(pause)
                pause *= 2
            try:
                answer = self._check(self._request(params))
            except _RetryError as exc:
                why = str(exc)
                continue
            if cache is not None:
                cache.execute(
                    "INSERT OR REPLACE INTO answers VALUES (?, ?, ?)",
                    (query, json.dumps(answer, ensure_ascii=False), datetime.now(UTC).isoformat()),
                )
                cache.commit()
            return answer
        raise GeocoderError(
            f"{self.name} geocoder: no usable answer after {self.retries + 1} tries ({why}); "
            "try again later (addresses placed so far are cached)"
        )

    def _request(self, params: dict[str, str]) -> Any:
        wait = self._last + self.min_interval - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        secret = {"key": self.key} if self.name == "amap" else {"tk": self.key}
        request = Request(
            f"{self.url}?{urlencode({**params, **secret})}", headers={"User-Agent": _USER_AGENT}
        )
        try:
            with urlopen(request, timeout=self.timeout) as response:
                body = response.read()
        except HTTPError as exc:
            if exc.code == 429 or exc.code >= 500:
                raise _RetryError(f"HTTP {exc.code}") from None
            raise GeocoderError(
                f"{self.name} geocoder answered HTTP {exc.code} ({exc.reason}); check the key "
                f"(--key or {_key_variable(self.name)}) and that it may use the geocoding service"
            ) from None
        except (URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise _RetryError(f"no connection: {reason}") from None
        finally:
            self._last = time.monotonic()
            self.requests += 1
        try:
            return json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise _RetryError("the answer is not JSON") from None

    def _check(self, data: Any) -> dict[str, Any]:
        """Return a final answer (a result or "nothing found"); raise to retry or stop."""
        if not isinstance(data, dict):
            raise _RetryError("the answer is not a JSON object")
        if self.name == "amap":
            if str(data.get("status")) == "1":
                return data
            code, info = str(data.get("infocode", "")), str(data.get("info", ""))
            if code in _AMAP_RETRY or code.startswith("3"):
                raise _RetryError(f"{info} ({code})")
            if code.startswith("2"):
                return data  # this address was refused: reported on its row
            todo = (
                "the daily quota is spent; go on tomorrow (placed rows are cached)"
                if code in _AMAP_QUOTA
                else f"check the key (--key or {_key_variable(self.name)}) and its services"
            )
            raise GeocoderError(f"amap geocoder refused the request: {info} ({code}); {todo}")
        status = str(data.get("status", ""))
        if status in ("0", "101", "404"):
            return data
        message = str(data.get("msg") or data.get("message") or data)[:200]
        raise GeocoderError(
            f"tianditu geocoder refused the request: {message}; check the key "
            f"(--key or {_key_variable(self.name)}) and that it may use 地理编码"
        )

    # ------------------------------------------------------------- results

    def _place(self, address: str, data: dict[str, Any]) -> Placement | str:
        shown = address.strip()
        if self.name == "amap":
            if str(data.get("status")) != "1":
                return (
                    f"amap refused address {shown!r}: {data.get('info')} ({data.get('infocode')}); "
                    "check the address, or give lon/lat"
                )
            hits = data.get("geocodes") or []
            if not hits or not isinstance(hits[0], dict):
                return self._not_found(shown)
            hit = hits[0]
            try:
                x, y = (float(v) for v in str(hit.get("location", "")).split(","))
            except ValueError:
                return self._not_found(shown)
            level = str(hit.get("level") or "未知")
            lon_a, lat_a = gcj02_to_wgs84(x, y)
            lon, lat = float(lon_a), float(lat_a)
            label = str(hit.get("formatted_address") or "")
        else:
            location = data.get("location") if str(data.get("status")) == "0" else None
            if not isinstance(location, dict):
                return self._not_found(shown)
            try:
                lon, lat = float(location["lon"]), float(location["lat"])
            except (KeyError, TypeError, ValueError):
                return self._not_found(shown)
            level = str(location.get("level") or "未知")
            label = str(location.get("keyWord") or "")
        if level in COARSE_LEVELS:
            return (
                f"{self.name} placed address {shown!r} only at level {level}; add the town "
                "(乡镇/街道) and village or street and number, or give lon/lat"
            )
        county = self.gazetteer.county_at(lon, lat)
        if county is None:
            return (
                f"{self.name} placed address {shown!r} at ({lon:.6f}, {lat:.6f}) {label}, "
                f"outside {self.gazetteer.region_name}; add the county and town to the address, "
                "or give lon/lat"
            )
        offline = self.gazetteer.match(address)
        if isinstance(offline, Placement) and offline.county == county:
            town, town_code = offline.town, offline.town_code
        else:
            town, town_code = self.gazetteer.nearest_town(county, lon, lat)
        return Placement(
            round(lon, 7),
            round(lat, 7),
            county,
            town,
            town_code,
            f"geocoded_{self.name}:{level}",
            label or shown,
        )

    def _not_found(self, shown: str) -> str:
        return (
            f"{self.name} found no place for address {shown!r}; check the address "
            "(区县 + 乡镇/街道 + 村/路 门牌), or give lon/lat"
        )


@contextmanager
def _open_cache(path: Path | None) -> Iterator[sqlite3.Connection | None]:
    """The SQLite answer cache (or None without a cache folder) for one ``locate`` call."""
    if path is None:
        yield None
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    try:
        db.execute(
            "CREATE TABLE IF NOT EXISTS answers "
            "(query TEXT PRIMARY KEY, answer TEXT NOT NULL, fetched_at TEXT NOT NULL)"
        )
        yield db
    finally:
        db.close()


def _key_variable(service: str) -> str:
    return KEY_VARIABLES[service]
