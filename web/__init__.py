"""skillcircle web app: the map, the JSON API and the 技能码 (QR) pages.

``create_app`` follows the flaskr pattern. The heavy :class:`geo.study.Study`
(graph, per-village times, isochrones) is loaded once at start-up — or injected
through ``test_config["STUDY"]`` — and shared read-only by all requests.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from flask import Flask, current_app, render_template, request

from geo.study import Study

logger = logging.getLogger(__name__)

DEFAULT_TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
DEFAULT_TILE_ATTR = (
    '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors'
)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Create the Flask app.

    Configuration (``test_config`` or environment):

    ``STUDY``
        A preloaded :class:`~geo.study.Study` (else loaded here).
    ``OSM_FILE``
        OSM file for the road network (env ``SKILLCIRCLE_OSM``).
    ``PUBLIC_URL``
        Base URL encoded in QR codes (env ``SKILLCIRCLE_PUBLIC_URL``; default: the request host).
    ``TILE_URL`` / ``TILE_ATTR``
        Base-map tiles (env ``SKILLCIRCLE_TILE_URL``; ``none`` for no tiles).
    """
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(
        OSM_FILE=os.environ.get("SKILLCIRCLE_OSM") or None,
        PUBLIC_URL=os.environ.get("SKILLCIRCLE_PUBLIC_URL") or None,
        TILE_URL=os.environ.get("SKILLCIRCLE_TILE_URL", DEFAULT_TILES),
        TILE_ATTR=os.environ.get("SKILLCIRCLE_TILE_ATTR", DEFAULT_TILE_ATTR),
        JSON_AS_ASCII=False,
    )
    if test_config is not None:
        app.config.update(test_config)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]

    study = app.config.get("STUDY")
    if study is None:
        osm = app.config.get("OSM_FILE")
        study = Study.load(osm_file=Path(osm) if osm else None, progress=True)
    app.extensions["skillcircle"] = study
    logger.info("network: %s", study.network.source.label)

    from web import api, exports, map, qr

    app.register_blueprint(map.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(qr.bp)
    app.register_blueprint(exports.bp)

    @app.errorhandler(404)
    def not_found(error: Any) -> Any:
        if request.path.startswith("/api/"):
            return {"error": "not found", "message": getattr(error, "description", "")}, 404
        return render_template("error.html", status=404, message="页面不存在 / not found"), 404

    @app.errorhandler(405)
    def not_allowed(error: Any) -> Any:
        return {"error": "method not allowed"}, 405

    return app


def get_study() -> Study:
    """The study of the running app."""
    return current_app.extensions["skillcircle"]  # type: ignore[no-any-return]


def app_cache(name: str) -> dict[Any, Any]:
    """A per-app memo (rendered maps, solved plans): lives as long as the app's study."""
    caches: dict[str, dict[Any, Any]] = current_app.extensions.setdefault("skillcircle.cache", {})
    return caches.setdefault(name, {})


def public_base() -> str:
    """Absolute base URL for links in QR codes (no trailing slash)."""
    base = current_app.config.get("PUBLIC_URL") or request.host_url
    return str(base).rstrip("/")
