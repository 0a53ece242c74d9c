"""Rate limits, body-size limit and security headers for every response.

* flask-limiter (per client address, counters shared by every server process in
  ``RATELIMIT_STORAGE``, by default a SQLite file beside the store, see
  :mod:`web.ratelimit`): ``RATELIMIT_PUBLIC`` on every
  public route, ``RATELIMIT_ADMIN`` on the admin API, and
  ``RATELIMIT_AUTH_FAILURES`` counting only 401 answers — a client guessing
  tokens is shut out of the whole app for the window.
* ``MAX_CONTENT_LENGTH``: larger bodies get 413 before they are read.
* Headers: a Content-Security-Policy allowing scripts, styles and fonts from
  this server only (inline code is needed by folium's generated page) and
  images also from the tile server; ``nosniff``; no framing; no referrer
  across origins. No CORS headers are sent, so other sites' scripts cannot
  read the API from a browser.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, jsonify, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from werkzeug.exceptions import RequestEntityTooLarge


def init_app(app: Flask, storage_uri: str) -> Limiter:
    """Rate limits, the 413 and 429 answers and the security headers.

    Parameters
    ----------
    app
        The app (limits from its ``RATELIMIT_*`` config).
    storage_uri
        Where the counters live (``sqlite:///…``, ``memory://``, Redis, memcached).

    Returns
    -------
    flask_limiter.Limiter
        The limiter, also in ``app.extensions["skillcircle.limiter"]``.
    """
    from web import ratelimit  # noqa: F401 - registers the sqlite:// storage with limits

    limiter = Limiter(
        get_remote_address,
        app=app,
        storage_uri=storage_uri,
        default_limits=[lambda: str(current_app.config["RATELIMIT_PUBLIC"])],
        application_limits=[lambda: str(current_app.config["RATELIMIT_AUTH_FAILURES"])],
        application_limits_deduct_when=lambda response: response.status_code == 401,
        headers_enabled=True,
    )
    from web import admin

    limiter.limit(lambda: str(current_app.config["RATELIMIT_ADMIN"]))(admin.bp)
    app.extensions["skillcircle.limiter"] = limiter

    @app.errorhandler(429)
    def too_many(error: Any) -> Any:
        return jsonify(error="too many requests", message=str(error.description)), 429

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error: Any) -> Any:
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        message = f"request body larger than {limit // (1024 * 1024)} MB"
        return jsonify(error="too large", message=message), 413

    app.after_request(_headers)
    return limiter


def limit_views(app: Flask, limiter: Limiter, limits: dict[str, str]) -> None:
    """Give registered views their own limits (they replace ``RATELIMIT_PUBLIC`` there).

    Parameters
    ----------
    app
        The app whose views are wrapped.
    limiter
        The app's limiter (:func:`init_app`).
    limits
        Endpoint -> config key of its limit.
    """
    for endpoint, key in limits.items():
        view: Any = app.view_functions[endpoint]
        limited: Any = limiter.limit(lambda key=key: str(current_app.config[key]))(view)  # type: ignore[misc]
        app.view_functions[endpoint] = limited


def _headers(response: Response) -> Response:
    tiles = urlsplit(str(current_app.config.get("TILE_URL") or ""))
    tile_host = ""
    if tiles.scheme in ("http", "https"):  # {s}.tile.example.org -> *.tile.example.org
        tile_host = f" {tiles.scheme}://{tiles.netloc.replace('{s}', '*')}"
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; "
        "script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
        f"img-src 'self' data:{tile_host}; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.path.startswith("/api/admin"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response
