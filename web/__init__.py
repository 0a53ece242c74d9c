"""skillcircle web app: the map, the JSON API and the 技能码 (QR) pages.

``create_app`` follows the flaskr pattern. The heavy :class:`geo.study.Study`
(graph, per-village times, isochrones) is loaded once at start-up — or injected
through ``test_config["STUDY"]`` — and shared read-only by all requests.

Facilities live in the :class:`~web.store.Store` (seeded from
``data/facilities.geojson`` on first start). When an admin changes one, the
admin API builds a new study with the affected layers recomputed and swaps it
in with :func:`set_study`; a request keeps the study it started with.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, TypeVar

from flask import Flask, Response, current_app, g, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError

from geo._errors import SettingsError
from geo.region import BUNDLED_CODE, Region, RegionError
from geo.settings import Settings
from geo.study import Study

from .memo import Memo
from .store import Store
from .sync import STALE_S, Follower, Recomputer, Served

T = TypeVar("T")

logger = logging.getLogger(__name__)

DEFAULT_TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
DEFAULT_TILE_ATTR = (
    '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors'
)


class _Flask(Flask):
    def log_exception(self, exc_info: Any) -> None:
        """Log an unexpected error with the request id its 500 answer carries."""
        self.logger.error(
            "request %s: unexpected error on %s %s",
            request_id(),
            request.method,
            request.path,
            exc_info=exc_info,
        )


def request_id() -> str:
    """An id for this request, quoted in a 500 answer and in the log line of its error.

    Returns
    -------
    str
        16 hex digits, the same for the whole request.
    """
    if "request_id" not in g:
        g.request_id = uuid.uuid4().hex[:16]
    return str(g.request_id)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Create the Flask app (flaskr's factory).

    Parameters
    ----------
    test_config
        Configuration that overrides the defaults and the environment (tests,
        ``skillcircle serve``); the keys are listed below.

    Returns
    -------
    flask.Flask
        The app, its store opened and checked, its study loaded (or the given one
        brought up to the store's facilities) and published, blueprints registered.

    Raises
    ------
    geo._errors.SettingsError
        A configuration value that cannot be used (``RECOMPUTE``, retention days).
    geo.region.RegionError
        A store holding facilities of counties outside the region.

    Notes
    -----
    Configuration (``test_config`` or environment):

    ``STUDY``
        A preloaded :class:`~geo.study.Study` (else loaded here).
    ``REGION``
        Region pack folder or code (env ``SKILLCIRCLE_REGION``; default: the
        bundled Jiaxing pack). Ignored when ``STUDY`` is given (its settings
        hold the region).
    ``OSM_FILE``
        OSM file for the road network (env ``SKILLCIRCLE_OSM``).
    ``PUBLIC_URL``
        Base URL encoded in QR codes (env ``SKILLCIRCLE_PUBLIC_URL``; default: the request host).
    ``TILE_URL`` / ``TILE_ATTR``
        Base-map tiles (env ``SKILLCIRCLE_TILE_URL``; ``none`` for no tiles).
    ``DATABASE``
        The store: a ``postgresql://`` URL (env ``SKILLCIRCLE_DATABASE_URL``) or
        a SQLite file (env ``SKILLCIRCLE_DATABASE``; default
        ``<instance folder>/skillcircle.sqlite3`` for the bundled region,
        ``skillcircle-<code>.sqlite3`` for others).
    ``MAX_CONTENT_LENGTH``
        Largest request body, bytes (default 10 MB; uploads above get 413).
    ``UPLOAD_MAX_ROWS``
        Most rows one registry upload may hold (default 50,000; more: 413).
    ``MAX_JSON_LENGTH``
        Largest JSON body of the admin API, bytes (default 256 KB).
    ``RATELIMIT_PUBLIC`` / ``RATELIMIT_ADMIN`` / ``RATELIMIT_AUTH_FAILURES``
        flask-limiter limits per client address (env ``SKILLCIRCLE_RATELIMIT_*``).
    ``RATELIMIT_STORAGE``
        Where the counters live, shared by all worker processes (env
        ``SKILLCIRCLE_RATELIMIT_STORAGE``; default ``sqlite:///<store>.ratelimit``;
        ``memory://`` for one process, or a Redis/memcached URI).
    ``RATELIMIT_REGISTER`` / ``RATELIMIT_CHALLENGE`` / ``RATELIMIT_DEMAND``
        Per client address: registrations and withdrawals, challenges, demand
        signals (env ``SKILLCIRCLE_RATELIMIT_*``).
    ``RATELIMIT_PHONE``
        Registration attempts per phone (keyed by an HMAC of the number; default
        ``5 per day``).
    ``SECRET_KEY``
        Signs the registration challenge and keys the phone limit (env
        ``SKILLCIRCLE_SECRET_KEY``; default: generated once into
        ``<instance folder>/secret_key``). Machines sharing a store share it.
    ``REGISTRATION_RETENTION_DAYS``
        Days after an item ends that registrants' name and phone are kept (env
        ``SKILLCIRCLE_REGISTRATION_RETENTION_DAYS``; default 180); the recompute
        loop deletes older ones every ``PURGE_EVERY_S`` seconds (default 3600).
    ``DEMAND_FLUSH_S``
        Seconds demand signals are buffered in a process before they are stored
        (default 5; 0 in tests).
    """
    app = _Flask(__name__, instance_relative_config=True)
    _configure(app, test_config)
    study = app.config.get("STUDY")
    settings = study.settings if study is not None else Settings.for_region(app.config["REGION"])
    store = _open_store(app, settings)
    study, facilities_version = _served_study(app, store, study, settings)
    _start_sync(app, store, study, facilities_version)
    logger.info("network: %s", study.network.source.label)
    _register_blueprints(app, store)
    _error_handlers(app)
    return app


def _configure(app: Flask, test_config: dict[str, Any] | None) -> None:
    """The defaults of :func:`create_app` (from the environment), then ``test_config``;
    the secret key made if missing; refuse a retention that is not a number of days."""
    app.config.from_mapping(
        OSM_FILE=os.environ.get("SKILLCIRCLE_OSM") or None,
        REGION=os.environ.get("SKILLCIRCLE_REGION") or None,
        PUBLIC_URL=os.environ.get("SKILLCIRCLE_PUBLIC_URL") or None,
        TILE_URL=os.environ.get("SKILLCIRCLE_TILE_URL", DEFAULT_TILES),
        TILE_ATTR=os.environ.get("SKILLCIRCLE_TILE_ATTR", DEFAULT_TILE_ATTR),
        JSON_AS_ASCII=False,
        DATABASE=database_from_env(),
        MAX_CONTENT_LENGTH=10 * 1024 * 1024,
        UPLOAD_MAX_ROWS=int(os.environ.get("SKILLCIRCLE_UPLOAD_MAX_ROWS", "50000")),
        RATELIMIT_PUBLIC=os.environ.get("SKILLCIRCLE_RATELIMIT_PUBLIC", "50 per second"),
        RATELIMIT_ADMIN=os.environ.get("SKILLCIRCLE_RATELIMIT_ADMIN", "120 per minute"),
        RATELIMIT_STORAGE=os.environ.get("SKILLCIRCLE_RATELIMIT_STORAGE") or None,
        RATELIMIT_AUTH_FAILURES=os.environ.get(
            "SKILLCIRCLE_RATELIMIT_AUTH_FAILURES", "10 per minute"
        ),
        RATELIMIT_REGISTER=os.environ.get(
            "SKILLCIRCLE_RATELIMIT_REGISTER", "10 per minute;100 per day"
        ),
        RATELIMIT_CHALLENGE=os.environ.get("SKILLCIRCLE_RATELIMIT_CHALLENGE", "30 per minute"),
        RATELIMIT_DEMAND=os.environ.get("SKILLCIRCLE_RATELIMIT_DEMAND", "60 per minute"),
        RATELIMIT_PHONE=os.environ.get("SKILLCIRCLE_RATELIMIT_PHONE", "5 per day"),
        SECRET_KEY=os.environ.get("SKILLCIRCLE_SECRET_KEY") or None,
        REGISTRATION_RETENTION_DAYS=int(
            os.environ.get("SKILLCIRCLE_REGISTRATION_RETENTION_DAYS", "180")
        ),
        CHALLENGE_TTL_S=900,
        PURGE_EVERY_S=3600.0,
    )
    if test_config is not None:
        app.config.update(test_config)
    app.config.setdefault("DEMAND_FLUSH_S", 0.0 if app.testing else 5.0)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    from web.registration import ensure_secret_key

    ensure_secret_key(app)
    retention = app.config["REGISTRATION_RETENTION_DAYS"]
    if not isinstance(retention, int) or isinstance(retention, bool) or retention < 1:
        raise SettingsError(
            f"REGISTRATION_RETENTION_DAYS must be a whole number of days >= 1; got {retention!r}"
        )


def _open_store(app: Flask, settings: Settings) -> Store:
    """The app's store (``DATABASE`` or the region's default), checked against the region;
    facilities with ids no URL can reach are logged."""
    store = Store(app.config["DATABASE"] or default_database(settings.region.code))
    check_store_region(store, settings.region)
    app.extensions["skillcircle.store"] = store
    unsafe = store.unsafe_id_facilities()
    if unsafe:
        logger.warning(
            "the store has %d facilities with unsafe ids (e.g. %r) that the admin API "
            "cannot reach; list and remove them with `skillcircle admin repair-ids`",
            len(unsafe),
            unsafe[0]["id"],
        )
    return store


def _served_study(
    app: Flask, store: Store, study: Study | None, settings: Settings
) -> tuple[Study, int]:
    """The study of the store's facilities and their version.

    An empty store is seeded from the region's facilities (or the given study's);
    the study is loaded, or the given one brought up to the store's facilities.
    """
    if study is None and not store.facility_count():
        from geo.facilities import load_facilities

        store.seed(load_facilities(settings=settings))
    elif study is not None:
        store.seed(study.facilities)
    records, facilities_version = store.facilities_snapshot()
    frame = store.facilities_frame(records)
    if study is None:
        osm = app.config.get("OSM_FILE")
        study = Study.load(
            settings, osm_file=Path(osm) if osm else None, facilities=frame, progress=True
        )
    else:
        study, change = study.with_facilities(frame)
        if change.layers or change.trades:
            logger.info("store differs from the given study: recomputed %s", change)
    return study, facilities_version


def _start_sync(app: Flask, store: Store, study: Study, facilities_version: int) -> None:
    """Serve ``study``; set up the memo, the recomputer (mode ``RECOMPUTE``), the
    follower of other processes' results and the version/ETag headers."""
    # what this process computed at start is the newest state: publish it (a no-op if
    # another process published a newer one, which the follower then brings in)
    store.publish(facilities_version, study.version)
    _put(app, Served(study, facilities_version))
    app.extensions["skillcircle.memo"] = Memo()
    mode = app.config.get("RECOMPUTE") or ("inline" if app.testing else "thread")
    if mode not in RECOMPUTE_MODES:
        raise SettingsError(f"RECOMPUTE must be one of {', '.join(RECOMPUTE_MODES)}; got {mode!r}")
    app.config["RECOMPUTE"] = mode
    retention = app.config["REGISTRATION_RETENTION_DAYS"]
    app.extensions["skillcircle.recomputer"] = Recomputer(
        store,
        study,
        on_publish=lambda served: _put(app, served),
        prepare=None if app.testing else lambda served: _prerender(app, served),
        stale_s=float(app.config.get("JOB_STALE_S", STALE_S)),
        housekeeping=lambda: purge_registrations(store, retention),
        housekeeping_s=float(app.config["PURGE_EVERY_S"]),
    )
    app.extensions["skillcircle.follower"] = Follower(
        store,
        lambda: app.extensions["skillcircle.served"],
        lambda served: _put(app, served),
        warm=None if app.testing else lambda study: warm(app, study, rest_later=True),
        stagger_s=float(app.config.get("SWITCH_STAGGER_S", 0.0)),
    )
    app.after_request(_version_header)
    _conditional_get(app)
    _compression(app)
    follow = app.config.get("FOLLOW", not app.testing)
    if follow or mode == "thread":
        app.before_request(lambda: _start_background(app, follow))


def _prerender(app: Flask, served: Served) -> None:
    from web import map

    map.prerender(app, served)


def _register_blueprints(app: Flask, store: Store) -> None:
    """The blueprints, the row-id URL converter, rate limits and the demand buffer."""
    from web import admin, api, demand, exports, map, pages, qr, registration, search, security
    from web._params import RowId

    app.url_map.converters["id"] = RowId
    storage = app.config.get("RATELIMIT_STORAGE") or f"sqlite:///{ratelimit_file(store)}"
    limiter = security.init_app(app, storage)
    pages.init_app(app)
    for blueprint in (
        map.bp,
        api.bp,
        search.bp,
        registration.bp,
        demand.bp,
        qr.bp,
        exports.bp,
        admin.bp,
        admin.page,
    ):
        app.register_blueprint(blueprint)
    security.limit_views(
        app,
        limiter,
        {
            "registration.register": "RATELIMIT_REGISTER",
            "registration.withdraw": "RATELIMIT_REGISTER",
            "registration.challenge": "RATELIMIT_CHALLENGE",
            "demand.signal": "RATELIMIT_DEMAND",
        },
    )
    demand.init_app(app, store)


def _error_handlers(app: Flask) -> None:
    """JSON errors under ``/api/``, the error page elsewhere; a 500 quotes a request id."""

    @app.errorhandler(404)
    def not_found(error: Any) -> Any:
        if request.path.startswith("/api/"):
            return {"error": "not found", "message": getattr(error, "description", "")}, 404
        return render_template("error.html", status=404, message="页面不存在 / not found"), 404

    @app.errorhandler(405)
    def not_allowed(error: Any) -> Any:
        return {"error": "method not allowed"}, 405

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Any:
        if not request.path.startswith("/api/"):
            return error
        return {"error": error.name.lower(), "message": error.description}, error.code

    @app.errorhandler(InternalServerError)
    def internal_error(error: InternalServerError) -> Any:
        """Any unexpected exception (logged by ``log_exception``): JSON on /api, never HTML."""
        rid = request_id()
        message = f"unexpected error; quote request id {rid} to the operator"
        if request.path.startswith("/api/"):
            response = jsonify(error="internal error", message=message, request_id=rid)
        else:
            response = current_app.make_response(
                render_template("error.html", status=500, message=f"服务器内部错误 / {message}")
            )
        response.status_code = 500
        response.headers["X-Request-Id"] = rid
        return response


def purge_registrations(store: Store, retention_days: int) -> int:
    """Delete registrants' name and phone ``retention_days`` after their item ended.

    The recompute loop's housekeeping and ``skillcircle admin purge-registrations``.

    Parameters
    ----------
    store
        The store.
    retention_days
        Days after an item's last day that its registrants' data are kept.

    Returns
    -------
    int
        How many registrations were emptied.
    """
    from .records import today

    return store.purge_registrations(today(), retention_days)


def default_database(code: str = BUNDLED_CODE) -> Path:
    """The store of a region in the Flask instance folder, as the app and the CLI use it.

    Parameters
    ----------
    code
        The region code (default: the bundled region).

    Returns
    -------
    pathlib.Path
        ``skillcircle.sqlite3`` for the bundled region, else
        ``skillcircle-<code>.sqlite3`` (one store per region, never mixed).
    """
    name = "skillcircle.sqlite3" if code == BUNDLED_CODE else f"skillcircle-{code}.sqlite3"
    return Path(Flask(__name__).instance_path) / name


def database_from_env() -> str | None:
    """The store named by the environment.

    Returns
    -------
    str or None
        ``SKILLCIRCLE_DATABASE_URL`` (PostgreSQL), else ``SKILLCIRCLE_DATABASE`` (a
        SQLite file), else None.
    """
    return (
        os.environ.get("SKILLCIRCLE_DATABASE_URL") or os.environ.get("SKILLCIRCLE_DATABASE") or None
    )


def store_location(database: str | None, code: str = BUNDLED_CODE) -> str:
    """The store a command means.

    Parameters
    ----------
    database
        ``--database`` as given (a SQLite file or a ``postgresql://`` URL), or None.
    code
        The region whose default store is used when nothing else names one.

    Returns
    -------
    str
        ``database``, else the environment's (:func:`database_from_env`), else
        :func:`default_database` of ``code``.
    """
    return database or database_from_env() or str(default_database(code))


def ratelimit_file(store: Store) -> Path:
    """Where an app's rate-limit counters live.

    Parameters
    ----------
    store
        The app's store.

    Returns
    -------
    pathlib.Path
        A SQLite file beside a SQLite store (shared by every worker process on this
        machine); for a PostgreSQL store, one per database in the instance folder
        (counters stay on this machine).
    """
    if store.path is None:
        folder = Path(Flask(__name__).instance_path)
        folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(store.location.encode()).hexdigest()[:12]
        return folder / f"ratelimit-{digest}.sqlite3"
    return store.path.with_name(store.path.name + ".ratelimit")


def check_store_region(store: Store, region: Region) -> None:
    """Refuse a store that holds facilities of counties outside ``region``.

    Parameters
    ----------
    store
        The store to open.
    region
        The served region.

    Raises
    ------
    geo.region.RegionError
        Naming the foreign counties, and telling to pass ``--database``.
    """
    foreign = sorted(set(store.facility_counties()) - set(region.county_names) - {""})
    if foreign:
        raise RegionError(
            f"{store.location}: the store holds facilities of {'、'.join(foreign[:5])}, which "
            f"are not in the region {region.label}; pass --database for a store of this region"
        )


def get_study() -> Study:
    """The study of the running app, fixed for the whole request.

    Returns
    -------
    geo.study.Study
        The study served when the request first asked for it.
    """
    if "study" not in g:
        g.study = current_app.extensions["skillcircle"]
    return g.study  # type: ignore[no-any-return]


def get_store() -> Store:
    """The running app's store.

    Returns
    -------
    web.store.Store
        The one store of the app (a connection per thread).
    """
    return current_app.extensions["skillcircle.store"]  # type: ignore[no-any-return]


#: Where facility changes are recomputed: in the admin request (tests), in a thread of
#: this process, or elsewhere (``serve`` runs a recompute process of its own).
RECOMPUTE_MODES = ("inline", "thread", "external")


_PUT_LOCK = threading.Lock()


def _put(app: Flask, served: Served) -> bool:
    """Serve another study (answers of the old one age out of the memo), unless it is
    older than the one served (:meth:`web.sync.Served.newer_than`: the served version
    never goes backwards, whichever of the follower and the recompute thread comes
    last)."""
    with _PUT_LOCK:
        now: Served | None = app.extensions.get("skillcircle.served")
        same = now is not None and (now.facilities_version, now.key) == (
            served.facilities_version,
            served.key,
        )
        if now is not None and not same and not served.newer_than(now):
            return False
        app.extensions["skillcircle.served"] = served
        app.extensions["skillcircle"] = served.study
    return True


def _start_background(app: Flask, follow: bool) -> None:
    """The follower and (mode ``thread``) the recompute thread, once per process."""
    if follow:
        app.extensions["skillcircle.follower"].ensure_running()
    if app.config["RECOMPUTE"] == "thread" and app.extensions.get("skillcircle.runner") != (
        os.getpid()
    ):
        app.extensions["skillcircle.runner"] = os.getpid()
        recomputer: Recomputer = app.extensions["skillcircle.recomputer"]
        stop = threading.Event()
        threading.Thread(
            target=recomputer.run_forever, args=(stop,), name="skillcircle-recompute", daemon=True
        ).start()


#: Paths without an ETag (admin answers are ``no-store``; static files have their own;
#: challenges are new each time; demand counters change without a data version).
_PRIVATE = ("/api/admin", "/admin", "/static/", "/api/register", "/api/demand")


def _conditional_get(app: Flask) -> None:
    """ETag and Cache-Control on public GETs, so phones and proxies revalidate cheaply.

    The tag is the data an answer depends on — the served results, their
    facilities version, the content version (courses, sessions), today's date in
    China (past courses drop off) and the app's settings (public URL, tiles) —
    so it is known before any work: a matching ``If-None-Match`` gets 304 at once.
    QR images depend only on their URL and are cached for a day.
    """
    from .records import today

    config_tag = hashlib.sha256(
        repr((app.config.get("PUBLIC_URL"), app.config.get("TILE_URL"))).encode()
    ).hexdigest()[:8]

    def tag(content: str | None = None, now: Served | None = None) -> str | None:
        path = request.path
        if request.method not in ("GET", "HEAD") or path.startswith(_PRIVATE):
            return None
        now = now or served()
        if content is None:
            content = str(get_store().data_versions()["content"])
        version = now.study.version[:16]
        return f"{version}-{now.facilities_version}-{content}-{today()}-{config_tag}"

    app.extensions["skillcircle.etag"] = tag

    @app.before_request
    def not_modified() -> Any:
        g.etag = tag()
        return not_modified_response()

    @app.after_request
    def cache_headers(response: Any) -> Any:
        etag = g.get("etag")
        if etag is not None and response.status_code == 200:
            response.set_etag(etag, weak=True)
            if request.path.endswith((".png", ".svg")) and request.path.startswith("/q/"):
                response.headers["Cache-Control"] = "public, max-age=86400"
            else:
                response.headers.setdefault("Cache-Control", "public, no-cache")
        return response


#: Bytes of compressed answers a process keeps (LRU), keyed by ETag and URL.
COMPRESSED_CACHE_BYTES = 64 * 1024 * 1024


class _CompressedCache:
    """flask-compress's cache backend: compressed bodies of answers that carry an ETag
    (the same bytes for the same tag and URL), bounded by their total size; answers
    without a tag (key ``-``) are compressed per request and not kept."""

    def __init__(self, max_bytes: int) -> None:
        from cachetools import LRUCache

        self._lock = threading.Lock()
        self._cache: LRUCache[str, bytes] = LRUCache(max_bytes, getsizeof=len)

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self._cache.get(key)

    def set(self, key: str, value: bytes) -> None:
        if key.endswith(";-") or len(value) > self._cache.maxsize:
            return
        with self._lock:
            self._cache[key] = value


def _compression(app: Flask) -> None:
    """gzip (or Brotli) for clients that ask for it (every browser and phone does),
    with flask-compress. An answer with an ETag is compressed once per tag and URL:
    the planner's map page (1-20 MB of HTML) costs its compression once per data
    version, not per visit. Config ``COMPRESS_*`` overrides the defaults."""
    from flask_compress import Compress

    app.config.setdefault("COMPRESS_ALGORITHM", ["br", "gzip"])
    app.config.setdefault("COMPRESS_MIN_SIZE", 1024)
    app.config.setdefault("COMPRESS_STREAMS", False)
    app.config.setdefault(
        "COMPRESS_CACHE_BACKEND", lambda: _CompressedCache(COMPRESSED_CACHE_BYTES)
    )
    app.config.setdefault(
        "COMPRESS_CACHE_KEY",
        lambda req: f"{g.etag}|{req.full_path}" if g.get("etag") else "-",
    )
    Compress(app)


def not_modified_response() -> Response | None:
    """304 Not Modified when the request's ``If-None-Match`` holds ``g.etag``, else None.
    A view whose answer depends on less than the whole data (a 技能码 page: its own
    facilities' courses) sets a narrower ``g.etag`` and asks again."""
    etag = g.get("etag")
    if etag is None or not request.if_none_match.contains_weak(etag):
        return None
    response = current_app.response_class(status=304)
    response.set_etag(etag, weak=True)
    response.headers["Cache-Control"] = "public, no-cache"
    return response


def page_etag(content: str, now: Served | None = None) -> str | None:
    """The ETag of a public answer whose courses and sessions part is ``content`` (a
    digest of what the page shows, or a constant for a page that shows none) instead of
    the store's content version: a course added elsewhere in the region leaves the
    page, its ETag and its memo as they were. ``now``: of these results (default: the
    served ones)."""
    return current_app.extensions["skillcircle.etag"](content=content, now=now)  # type: ignore[no-any-return]


def _version_header(response: Any) -> Any:
    """Every answer says which facilities version its figures reflect."""
    response.headers.setdefault("X-Data-Version", str(served().facilities_version))
    return response


def warm(app: Flask, study: Study, *, rest_later: bool = False) -> None:
    """Render the maps of a study and the map page ``/`` of the served study.

    At start-up (before the workers fork) every mode's map is rendered. After a
    switch (the follower, ``rest_later``) the new version is already served and
    only the page ``/`` is made ready here: read from the page cache, where the
    recompute process put it before publishing (:func:`web.map.prerender`), or
    rendered if it is not there; other pages are rendered by their first visitor.
    Until the page of the new version is ready its other visitors get the previous
    version's page, with that version's ``ETag`` and ``X-Data-Version``
    (:func:`web.map.index`); the API and the 技能码 pages answer with the new
    version from the switch on.

    Parameters
    ----------
    app
        The app whose map cache is filled.
    study
        The study about to be served (or just served, after a switch).
    rest_later
        Only the page ``/`` (after a switch).
    """
    from web import map

    started = time.perf_counter()
    map.warm(app, study, () if rest_later else None)
    logger.info("maps of %s ready in %.2f s", study.version, time.perf_counter() - started)


def served() -> Served:
    """The study of the running app and the facilities version it reflects.

    Returns
    -------
    web.sync.Served
        What this process serves now (may change between two calls).
    """
    return current_app.extensions["skillcircle.served"]  # type: ignore[no-any-return]


def remember(kind: str, key: Hashable, compute: Callable[[], T]) -> T:
    """``compute()`` once per data version of the request's study and ``key``.

    Parameters
    ----------
    kind
        The memo's kind (each bounded on its own, :class:`web.memo.Memo`).
    key
        What the answer depends on besides the study's version.
    compute
        Makes the answer (called at most once per key, shared by all threads).

    Returns
    -------
    object
        The remembered or new answer.
    """
    memo: Memo = current_app.extensions["skillcircle.memo"]
    return memo.get(kind, get_study().version, key, compute)


def public_base() -> str:
    """The absolute base URL of links in QR codes.

    Returns
    -------
    str
        ``PUBLIC_URL`` (config), else the request's host URL; no trailing slash.
    """
    base = current_app.config.get("PUBLIC_URL") or request.host_url
    return str(base).rstrip("/")
