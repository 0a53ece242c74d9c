"""Shared fixtures: paths to real OSM fixtures, a small synthetic network, and stores on
both backends (a SQLite file; a database of a throw-away PostgreSQL server, :mod:`tests.pg`)."""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from webapp import make_app

import web
from geo.settings import Settings
from geo.study import Study
from web.store import Store

from pg import BACKENDS, PostgresServer, PostgresUnavailableError, find_bindir, store_location

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def shanghai_osm() -> Path:
    """Real OSM XML of central Shanghai from ../shared (skips when absent)."""
    path = SHARED_DATA / "osm" / "shanghai_huangpu_small.osm"
    if not path.exists():
        pytest.skip(f"{path} not found: ../shared/data is not beside the repository")
    return path


@pytest.fixture(scope="session")
def sample_pbf() -> Path:
    """The real .osm.pbf test file that the PyPI package pyogrio ships (GDAL test data)."""
    path = Path(str(importlib.resources.files("pyogrio") / "tests" / "fixtures" / "sample.osm.pbf"))
    if not path.exists():
        pytest.skip("pyogrio's tests/fixtures/sample.osm.pbf is not installed")
    return path


@pytest.fixture(scope="session")
def grid_osm() -> Path:
    """Hand-made synthetic OSM XML: 3x3 grid with oneway, motorway, footway, maxspeed."""
    return FIXTURES / "grid.osm"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Default settings with a private cache directory."""
    return Settings(cache_dir=tmp_path / "cache")


@pytest.fixture(scope="session")
def study(tmp_path_factory: pytest.TempPathFactory) -> Study:
    """The bundled Jiaxing data on the bundled network, 30-minute isochrones only."""
    cache = tmp_path_factory.mktemp("cache")
    return Study.load(Settings(cache_dir=cache), iso_minutes=(30,))


@pytest.fixture(scope="session")
def new_database(tmp_path_factory: pytest.TempPathFactory) -> Callable[[], str]:
    """A function giving a fresh store path per web app (apps never share the instance folder)."""

    def make() -> str:
        return str(tmp_path_factory.mktemp("store") / "skillcircle.sqlite3")

    return make


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this session in a temporary directory (skips without
    Debian's ``postgresql``); removed at the end."""
    try:
        server = PostgresServer(find_bindir())
    except PostgresUnavailableError as exc:
        pytest.skip(str(exc))
    try:
        server.start()
        yield server
    finally:
        # the background threads of production-mode apps (test_hostile) poll until the
        # interpreter exits: their failures to reach the stopped server are not news
        logging.getLogger("web.sync").disabled = True
        server.stop()


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty store per test, on each backend (a PostgreSQL one is dropped after)."""
    location = store_location(request, request.param)
    yield location
    if request.param == "postgresql":
        request.getfixturevalue("postgres").drop_database(location)


@pytest.fixture
def app(study: Study, database: str) -> Flask:
    """A testing app on a fresh store of each backend (:func:`webapp.make_app`); modules
    that need another app define their own ``app``."""
    return make_app(study, database)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def store(app: Flask) -> Store:
    """The app's store."""
    return app.extensions["skillcircle.store"]  # type: ignore[no-any-return]


@pytest.fixture(scope="session", autouse=True)
def _ratelimit_files_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Apps on a PostgreSQL store keep their rate-limit counters in the instance folder;
    in tests, in a temporary folder instead (one file per database, as there)."""
    folder = tmp_path_factory.mktemp("ratelimit")
    original = web.ratelimit_file

    def ratelimit_file(store):
        if store.path is not None:
            return original(store)
        return folder / f"{hashlib.sha256(store.location.encode()).hexdigest()[:16]}.sqlite3"

    ratelimit_file.__wrapped__ = original  # type: ignore[attr-defined]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(web, "ratelimit_file", ratelimit_file)
        yield
