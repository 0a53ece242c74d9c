"""The map page ``/``: a Folium map with every layer, a side panel and notices.

Folium's default assets come from CDNs; here every script and stylesheet is
served from ``/static/vendor`` so the page works offline. Only Leaflet and
Leaflet.markercluster are needed (no jQuery/Bootstrap/awesome-markers: we use
circle markers). Rendered maps are cached per (mode, trade): the work is done
once, not per request. The generated script calls nothing of ours: ``static/app.js``
binds popups through Leaflet init hooks (villages by ``village_code``, facilities by
``layer_name`` and ``id``) and draws the 需求 (demand) layer from ``/api/demand``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import folium
import numpy as np
from flask import Blueprint, Flask, Response, current_app, g, render_template, request, url_for
from folium.plugins import MarkerCluster

from geo._io import atomic_write
from geo.settings import LAYERS, MODES
from geo.study import Study
from web.sync import Served

from . import _params as p
from . import get_study, not_modified_response, page_etag, remember, served
from .pages import page_config
from .records import facilities_geojson, simplified

bp = Blueprint("map", __name__)
logger = logging.getLogger(__name__)

CLUSTERED = ("training_institution", "master_studio", "village_station")
LAYER_COLOURS = {
    "technical_school": "#1f4e9c",
    "training_institution": "#2a9d8f",
    "evaluation_org": "#8e44ad",
    "training_base": "#d35400",
    "master_studio": "#b8860b",
    "village_station": "#c0392b",
    "experience_site": "#16a085",
}
BANDS = [(15, "#1a9850", "≤15 分钟"), (30, "#fee08b", "15–30 分钟"), (None, "#d73027", ">30 分钟")]
UNREACHABLE = ("#9e9e9e", "不可达")


def band_colour(minutes: float | None) -> str:
    """The map colour of a village's minutes (:data:`BANDS`; grey when unreachable).

    Parameters
    ----------
    minutes
        Minutes to the nearest facility, or None/NaN when none is within reach.

    Returns
    -------
    str
        A ``#rrggbb`` colour.
    """
    if minutes is None or np.isnan(minutes):
        return UNREACHABLE[0]
    for limit, colour, _ in BANDS:
        if limit is None or minutes <= limit:
            return colour
    return BANDS[-1][1]


def _local_assets(m: Any) -> None:
    """Point folium's asset lists at our own static files (no CDN)."""
    m.default_js = [("leaflet", url_for("static", filename="vendor/leaflet/leaflet.js"))]
    m.default_css = [("leaflet_css", url_for("static", filename="vendor/leaflet/leaflet.css"))]


def _cluster(name: str, show: bool) -> MarkerCluster:
    cluster = MarkerCluster(name=name, show=show, options={"disableClusteringAtZoom": 13})
    cluster.default_js = [
        (
            "markerclusterjs",
            url_for("static", filename="vendor/markercluster/leaflet.markercluster.js"),
        )
    ]
    cluster.default_css = [
        ("markerclustercss", url_for("static", filename="vendor/markercluster/MarkerCluster.css")),
        (
            "markerclusterdefcss",
            url_for("static", filename="vendor/markercluster/MarkerCluster.Default.css"),
        ),
    ]
    return cluster


ACCESS_COLOURS = ["#f2f0f7", "#cbc9e2", "#9e9ac8", "#756bb1", "#54278f"]


def access_classes(scores: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """Quintile class (0-4) of each 2SFCA score; 0 also for villages with no access.

    Parameters
    ----------
    scores
        One 2SFCA score per village (0: no facility within reach).

    Returns
    -------
    tuple
        The class of each village, and the four quintile edges of the positive
        scores (empty when no village has access).
    """
    positive = scores[scores > 0]
    if positive.size == 0:
        return np.zeros(len(scores), dtype=int), []
    edges = list(np.quantile(positive, [0.2, 0.4, 0.6, 0.8]))
    classes = np.where(scores > 0, np.searchsorted(edges, scores, side="right"), 0)
    return classes.astype(int), [float(e) for e in edges]


def build_map(
    study: Study, mode: str, trade: str | None, access_layer: str | None = None
) -> dict[str, str]:
    """Render the folium map into header/body/script parts for our template.

    Parameters
    ----------
    study
        The served study.
    mode
        Travel mode of the village colours and isochrones.
    trade
        Only facilities (and minutes) of this trade; no isochrones then.
    access_layer
        Colour villages by this layer's 2SFCA access class instead of minutes.

    Returns
    -------
    dict
        ``header``, ``body`` and ``script`` HTML, and the map's JS name ``map_name``.
    """
    m = _base_map(study)
    _add_boundaries(m, study)
    if trade is None:  # isochrones are not trade-specific
        _add_isochrones(m, study, mode)
    _add_villages(m, study, mode, trade, access_layer)
    _add_facilities(m, study, trade)
    folium.LayerControl(collapsed=False).add_to(m)
    root: Any = m.get_root()
    root.render()
    return {
        "header": root.header.render(),
        "body": root.html.render(),
        "script": root.script.render(),
        "map_name": m.get_name(),
    }


def _base_map(study: Study) -> folium.Map:
    """A map centred on the region's villages, with local assets and the base tiles."""
    centre = study.villages.geometry.union_all().centroid
    tiles = current_app.config["TILE_URL"]
    m = folium.Map(
        location=[centre.y, centre.x],
        zoom_start=10,
        tiles=None,
        control_scale=True,
        maxZoom=18,
        minZoom=7,
        prefer_canvas=True,
    )
    _local_assets(m)
    if tiles and tiles.lower() != "none":
        folium.TileLayer(
            tiles=tiles, attr=current_app.config["TILE_ATTR"], name="底图 base map", control=False
        ).add_to(m)
    return m


def _add_boundaries(m: folium.Map, study: Study) -> None:
    """County outlines and town seats (hidden at first)."""
    folium.GeoJson(
        study.counties[["county", "population_2020", "geometry"]].to_json(),
        name="区县边界 counties",
        style_function=lambda f: {"color": "#444", "weight": 2, "fill": False},
        tooltip=folium.GeoJsonTooltip(fields=["county"], labels=False),
    ).add_to(m)
    towns = study.towns[["town", "county", "geometry"]]
    folium.GeoJson(
        towns.to_json(),
        name="乡镇驻地 towns",
        show=False,
        marker=folium.CircleMarker(radius=3, color="#333", fill=True, fill_opacity=1),
        tooltip=folium.GeoJsonTooltip(fields=["town"], labels=False),
    ).add_to(m)


def _add_isochrones(m: folium.Map, study: Study, mode: str) -> None:
    """The ``settings.minutes`` isochrone union of each layer (village stations shown)."""
    for layer, name in LAYERS.items():
        geom = simplified(study.isochrone(layer, mode, study.settings.minutes))
        if geom.is_empty:
            continue
        colour = LAYER_COLOURS[layer]
        folium.GeoJson(
            {"type": "Feature", "properties": {}, "geometry": geom.__geo_interface__},
            name=f"{study.settings.minutes:g}分钟圈 · {name}",
            show=layer == "village_station",
            style_function=lambda f, c=colour: {
                "color": c,
                "weight": 1,
                "fillColor": c,
                "fillOpacity": 0.12,
            },
        ).add_to(m)


def _add_villages(
    m: folium.Map, study: Study, mode: str, trade: str | None, access_layer: str | None
) -> None:
    """Villages coloured by minutes to the nearest facility (of ``trade``, if given), or
    by ``access_layer``'s access class."""
    cov = study.coverage[mode]
    minutes = (
        study.village_trade_minutes(mode, trade)
        if trade
        else cov["any_minutes"].to_numpy(dtype=float)
    )
    vil = cov[
        ["village_code", "village_name", "town", "county", "location_quality", "geometry"]
    ].copy()
    vil["minutes"] = [None if np.isnan(x) else round(float(x), 1) for x in minutes]
    vil["colour"] = [band_colour(x) for x in minutes]
    title = "村（按最近设施分钟着色）villages"
    if access_layer:
        scores = study.access[mode][f"{access_layer}_access"].to_numpy(float)
        classes, _ = access_classes(scores)
        vil["access"] = np.round(scores, 4)
        vil["colour"] = [ACCESS_COLOURS[c] for c in classes]
        title = f"村（按{LAYERS[access_layer]}可达性着色）villages"
    # the fill colour is read from each feature in the browser (static/app.js, a Leaflet
    # init hook; no folium JavaScript string calls our code): a folium style_function
    # becomes one switch over every feature id, run per feature (a province's 25,000
    # villages: ~15 s in Chromium)
    folium.GeoJson(
        vil.to_json(),
        name=title,
        marker=folium.CircleMarker(radius=5, weight=1, color="#333", fill=True, fill_opacity=0.9),
    ).add_to(m)


def _add_facilities(m: folium.Map, study: Study, trade: str | None) -> None:
    """One layer per facility layer (clustered where there are many), of ``trade``."""
    fac = study.filter_facilities(trade=trade)
    for layer, name in LAYERS.items():
        group = fac[fac["layer"] == layer]
        if group.empty:
            continue
        label = f"{name} ({len(group)})"
        parent: Any = (
            _cluster(label, True) if layer in CLUSTERED else folium.FeatureGroup(name=label)
        )
        parent.add_to(m)
        colour = LAYER_COLOURS[layer]
        folium.GeoJson(
            facilities_geojson(group),
            marker=folium.CircleMarker(
                radius=7, weight=2, color="#fff", fill=True, fill_color=colour, fill_opacity=1
            ),
        ).add_to(parent)


def cached_map(
    study: Study, mode: str, trade: str | None, access_layer: str | None
) -> dict[str, str]:
    """:func:`build_map`, once per data version and arguments (the app's memo).

    Parameters
    ----------
    study
        The served study.
    mode, trade, access_layer
        As :func:`build_map` takes them.

    Returns
    -------
    dict
        The map's HTML parts (:func:`build_map`).
    """
    key = (mode, trade, access_layer)
    return remember("maps", key, lambda: build_map(study, mode, trade, access_layer))


def warm(app: Flask, study: Study, modes: Sequence[str] | None = None) -> None:
    """Render the map of ``modes`` for ``study`` into the app's memo, then make the
    page ``/`` ready if ``study`` is served (:func:`_page`: from the page cache, or
    rendered); build the study's lookup tables and the 技能码 pages' templates.

    So the first visit after a data change costs what the second does.

    Parameters
    ----------
    app
        The app whose memo is filled.
    study
        The study about to be served (or just served).
    modes
        Which modes' maps (default: all; never a trade filter; none after a switch:
        the page ``/`` is then read from the page cache, and only rendered, with its
        map, if it is not there).
    """
    memo = app.extensions["skillcircle.memo"]
    study.build_tables()  # (the follower built them before the switch: then a no-op)
    for name in ("village.html", "facility.html"):
        app.jinja_env.get_template(name)
    with app.test_request_context("/"):
        for mode in study.modes if modes is None else modes:
            key = (mode, None, None)
            memo.get("maps", study.version, key, lambda m=mode: build_map(study, m, None, None))
        now = app.extensions["skillcircle.served"]
        if now.study is study:
            g.study = study
            g.etag = page_etag(MAP_CONTENT, now)
            memo.get_or_stale("index", study.version, request.full_path, lambda: _page(now))


def prerender(app: Flask, now: Served) -> None:
    """Render the page ``/`` of results about to be published into the page cache, once
    for every process that will serve them (the recompute process calls this before it
    publishes: the request workers then read the page instead of rendering it).

    Parameters
    ----------
    app
        The app (its memo keeps the map the page is made of).
    now
        The results, their facilities version and key.
    """
    if not now.study.use_cache:
        return
    with app.test_request_context("/"):
        g.study = now.study
        g.etag = page_etag(MAP_CONTENT, now)
        _page(now)


#: The courses-and-sessions part of the map page's ETag: it shows none (their changes
#: leave the page, its tag and its compressed bytes as they were).
MAP_CONTENT = "map"
#: Rendered map pages kept in the page cache (the newest; each some 0.3-3 MB).
PAGES_KEPT = 32


@dataclass(frozen=True)
class Page:
    """A rendered map page: its gzip bytes (what nearly every client takes; made once
    per page, not per visit), its ETag and the facilities version it shows."""

    gzip: bytes
    etag: str | None
    facilities_version: int

    @cached_property
    def body(self) -> bytes:
        """The page uncompressed (for the rare client that takes no gzip)."""
        return gzip.decompress(self.gzip)


@bp.get("/")
def index() -> Response:
    """The map page. It depends on the served results and the arguments only (not on
    courses: its ETag leaves them out): rendered once per version. While the page of a
    new version renders, other visitors get the previous version's page, labelled as
    such (``ETag``, ``X-Data-Version``): a map may lag a data change by one rendering,
    the API and the 技能码 pages never do."""
    now = served()
    g.study = now.study  # the page and its version label are of one study
    g.etag = page_etag(MAP_CONTENT, now)
    unchanged = not_modified_response()
    if unchanged is not None:
        return unchanged
    memo = current_app.extensions["skillcircle.memo"]
    page, fresh = memo.get_or_stale(
        "index", now.study.version, request.full_path, lambda: _page(now)
    )
    if request.accept_encodings["gzip"]:
        response = current_app.response_class(page.gzip, mimetype="text/html")
        response.headers["Content-Encoding"] = "gzip"  # (flask-compress leaves it as it is)
    else:
        response = current_app.response_class(page.body, mimetype="text/html")
    response.vary.add("Accept-Encoding")
    if not fresh:
        g.etag = page.etag
        response.headers["X-Data-Version"] = str(page.facilities_version)
    return response


def _page(now: Served) -> Page:
    """The page of the request: read from the page cache (``<cache>/pages``, one file
    per ETag and URL, written by the recompute process or another worker), else
    rendered here and written there for the others."""
    etag = g.get("etag")
    path = None
    if etag is not None and now.study.use_cache:
        # the tag, the URL and the app's settings the page shows (limits, URLs, tiles):
        # what one server's processes share, and another server on the cache may not
        shown = json.dumps([page_config(), current_app.config.get("TILE_ATTR")], default=str)
        name = hashlib.blake2b(f"{etag}|{request.full_path}|{shown}".encode(), digest_size=16)
        path = page_cache(now.study) / f"{name.hexdigest()}.html.gz"
        try:
            return Page(path.read_bytes(), etag, now.facilities_version)
        except OSError:
            pass
    page = Page(gzip.compress(_index().encode(), 6, mtime=0), etag, now.facilities_version)
    if path is not None:
        try:
            _keep_page(path, page.gzip)
        except OSError as exc:  # a read-only cache: every process renders its own
            logger.warning("page cache %s not written: %s", path.parent, exc)
    return page


def page_cache(study: Study) -> Path:
    """The folder of rendered map pages (beside the results cache, shared by processes)."""
    return study.settings.cache_dir / "pages"


def _keep_page(path: Path, body: bytes) -> None:
    """Write ``body`` to ``path`` atomically and keep the :data:`PAGES_KEPT` newest pages."""

    def write(tmp: Path) -> None:
        tmp.write_bytes(body)

    atomic_write(path, write)
    pages = sorted(path.parent.glob("*.html.gz"), key=lambda f: f.stat().st_mtime)
    for old in pages[:-PAGES_KEPT]:
        old.unlink(missing_ok=True)


def _index() -> str:
    study = get_study()
    mode = p.mode()
    trade = p.trade()
    colour = p.choice("colour", ("minutes", "access"), "minutes")
    access_layer = (p.layer() or "village_station") if colour == "access" else None
    if access_layer and trade:
        p.bad_request("access colouring uses all facilities; drop trade= or colour=access")
    parts = cached_map(study, mode, trade, access_layer)
    access_edges: list[float] = []
    if access_layer:
        _, access_edges = access_classes(
            study.access[mode][f"{access_layer}_access"].to_numpy(float)
        )
    stats = study.stats(mode, "county")
    cov = study.coverage[mode]
    if trade:
        minutes = study.village_trade_minutes(mode, trade)
        uncovered_mask = ~(minutes <= study.settings.minutes)
    else:
        uncovered_mask = ~cov["covered"].to_numpy(dtype=bool)
    uncovered = cov.loc[
        uncovered_mask,
        ["village_code", "village_name", "town", "county", "lat", "lon", "location_quality"],
    ]
    return render_template(
        "map.html",
        study=study,
        parts=parts,
        mode=mode,
        trade=trade,
        modes=MODES,
        layers=LAYERS,
        colours=LAYER_COLOURS,
        bands=BANDS,
        unreachable=UNREACHABLE,
        stats=stats.to_dict(orient="records"),
        uncovered=uncovered.to_dict(orient="records"),
        trades=study.trades,
        counties=["all", *study.settings.region.county_names],
        region=study.settings.region,
        access_layer=access_layer,
        access_edges=access_edges,
        access_colours=ACCESS_COLOURS,
    )
