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

from flask import Flask, current_app, g, jsonify, render_template, request
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
    """An id for this request, quoted in a 500 answer and in the log line of its error."""
    if "request_id" not in g:
        g.request_id = uuid.uuid4().hex[:16]
    return str(g.request_id)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Create the Flask app.

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
    app.config.from_mapping(
        OSM_FILE=os.environ.get("SKILLCIRCLE_OSM") or None,
        REGION=os.environ.get("SKILLCIRCLE_REGION") or None,
        PUBLIC_URL=os.environ.get("SKILLCIRCLE_PUBLIC_URL") or None,
        TILE_URL=os.environ.get("SKILLCIRCLE_TILE_URL", DEFAULT_TILES),
        TILE_ATTR=os.environ.get("SKILLCIRCLE_TILE_ATTR", DEFAULT_TILE_ATTR),
        JSON_AS_ASCII=False,
        DATABASE=(
            os.environ.get("SKILLCIRCLE_DATABASE_URL")
            or os.environ.get("SKILLCIRCLE_DATABASE")
            or None
        ),
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

    study = app.config.get("STUDY")
    settings = study.settings if study is not None else Settings.for_region(app.config["REGION"])
    region = settings.region
    store = Store(app.config["DATABASE"] or default_database(region.code))
    check_store_region(store, region)
    app.extensions["skillcircle.store"] = store
    unsafe = store.unsafe_id_facilities()
    if unsafe:
        logger.warning(
            "the store has %d facilities with unsafe ids (e.g. %r) that the admin API "
            "cannot reach; list and remove them with `skillcircle admin repair-ids`",
            len(unsafe),
            unsafe[0]["id"],
        )
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
    # what this process computed at start is the newest state: publish it (a no-op if
    # another process published a newer one, which the follower then brings in)
    store.publish(facilities_version, study.version)
    _put(app, Served(study, facilities_version))
    app.extensions["skillcircle.memo"] = Memo()
    mode = app.config.get("RECOMPUTE") or ("inline" if app.testing else "thread")
    if mode not in RECOMPUTE_MODES:
        raise SettingsError(f"RECOMPUTE must be one of {', '.join(RECOMPUTE_MODES)}; got {mode!r}")
    app.config["RECOMPUTE"] = mode
    app.extensions["skillcircle.recomputer"] = Recomputer(
        store,
        study,
        on_publish=lambda served: _put(app, served),
        stale_s=float(app.config.get("JOB_STALE_S", STALE_S)),
        housekeeping=lambda: purge_registrations(store, retention),
        housekeeping_s=float(app.config["PURGE_EVERY_S"]),
    )
    app.extensions["skillcircle.follower"] = Follower(
        store,
        lambda: app.extensions["skillcircle.served"],
        lambda served: _put(app, served),
        warm=None if app.testing else lambda study: warm(app, study, rest_later=True),
    )
    app.after_request(_version_header)
    _conditional_get(app)
    follow = app.config.get("FOLLOW", not app.testing)
    if follow or mode == "thread":
        app.before_request(lambda: _start_background(app, follow))
    logger.info("network: %s", study.network.source.label)

    from web import admin, api, demand, exports, map, pages, qr, registration, search, security
    from web._params import RowId

    app.url_map.converters["id"] = RowId
    storage = app.config.get("RATELIMIT_STORAGE") or f"sqlite:///{ratelimit_file(store)}"
    limiter = security.init_app(app, storage)
    pages.init_app(app)
    app.register_blueprint(map.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(search.bp)
    app.register_blueprint(registration.bp)
    app.register_blueprint(demand.bp)
    app.register_blueprint(qr.bp)
    app.register_blueprint(exports.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(admin.page)
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

    return app


def purge_registrations(store: Store, retention_days: int) -> int:
    """Delete registrants' name and phone ``retention_days`` after their item ended
    (the recompute loop's housekeeping and ``skillcircle admin purge-registrations``)."""
    from .records import today

    return store.purge_registrations(today(), retention_days)


def default_database(code: str = BUNDLED_CODE) -> Path:
    """The store of region ``code`` in the Flask instance folder, as the app and the CLI
    both use it: ``skillcircle.sqlite3`` for the bundled region, else
    ``skillcircle-<code>.sqlite3`` (one store per region, never mixed)."""
    name = "skillcircle.sqlite3" if code == BUNDLED_CODE else f"skillcircle-{code}.sqlite3"
    return Path(Flask(__name__).instance_path) / name


def ratelimit_file(store: Store) -> Path:
    """The rate-limit counters of a store's app: a SQLite file beside it (shared by every
    worker process on this machine); for a PostgreSQL store, one per database in the
    instance folder (counters stay on this machine)."""
    if store.path is None:
        folder = Path(Flask(__name__).instance_path)
        folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(store.location.encode()).hexdigest()[:12]
        return folder / f"ratelimit-{digest}.sqlite3"
    return store.path.with_name(store.path.name + ".ratelimit")


def check_store_region(store: Store, region: Region) -> None:
    """Refuse a store that holds facilities of counties outside ``region``."""
    foreign = sorted(set(store.facility_counties()) - set(region.county_names) - {""})
    if foreign:
        raise RegionError(
            f"{store.location}: the store holds facilities of {'、'.join(foreign[:5])}, which "
            f"are not in the region {region.label}; pass --database for a store of this region"
        )


def get_study() -> Study:
    """The study of the running app, fixed for the whole request."""
    if "study" not in g:
        g.study = current_app.extensions["skillcircle"]
    return g.study  # type: ignore[no-any-return]


def get_store() -> Store:
    return current_app.extensions["skillcircle.store"]  # type: ignore[no-any-return]


#: Where facility changes are recomputed: in the admin request (tests), in a thread of
#: this process, or elsewhere (``serve`` runs a recompute process of its own).
RECOMPUTE_MODES = ("inline", "thread", "external")


def _put(app: Flask, served: Served) -> None:
    """Serve another study (answers of the old one age out of the memo)."""
    app.extensions["skillcircle.served"] = served
    app.extensions["skillcircle"] = served.study


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

    def tag() -> str | None:
        path = request.path
        if request.method not in ("GET", "HEAD") or path.startswith(_PRIVATE):
            return None
        now = served()
        content = get_store().data_versions()["content"]
        version = now.study.version[:16]
        return f"{version}-{now.facilities_version}-{content}-{today()}-{config_tag}"

    @app.before_request
    def not_modified() -> Any:
        g.etag = tag()
        if g.etag is not None and request.if_none_match.contains_weak(g.etag):
            response = app.response_class(status=304)
            response.set_etag(g.etag, weak=True)
            response.headers["Cache-Control"] = "public, no-cache"
            return response
        return None

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


def _version_header(response: Any) -> Any:
    """Every answer says which facilities version its figures reflect."""
    response.headers.setdefault("X-Data-Version", str(served().facilities_version))
    return response


def warm(app: Flask, study: Study, *, rest_later: bool = False) -> None:
    """Render the maps of a study before it is served (the slowest first visit).

    With ``rest_later`` only the default mode's map is rendered now and the other
    modes' in a background thread (a new version is then served sooner).
    """
    from web import map

    started = time.perf_counter()
    from web._params import DEFAULT_MODE

    first = [DEFAULT_MODE] if rest_later and DEFAULT_MODE in study.modes else None
    map.warm(app, study, first)
    logger.info("maps of %s rendered in %.1f s", study.version, time.perf_counter() - started)
    if first is not None:
        threading.Thread(target=map.warm, args=(app, study), daemon=True).start()


def served() -> Served:
    """The study of the running app and the facilities version it reflects."""
    return current_app.extensions["skillcircle.served"]  # type: ignore[no-any-return]


def remember(kind: str, key: Hashable, compute: Callable[[], T]) -> T:
    """``compute()`` once per data version of the request's study and ``key``
    (:class:`web.memo.Memo`: bounded per ``kind``, shared by all threads)."""
    memo: Memo = current_app.extensions["skillcircle.memo"]
    return memo.get(kind, get_study().version, key, compute)


def public_base() -> str:
    """Absolute base URL for links in QR codes (no trailing slash)."""
    base = current_app.config.get("PUBLIC_URL") or request.host_url
    return str(base).rstrip("/")
