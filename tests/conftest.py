"""Shared fixtures: paths to real OSM fixtures and a small synthetic network."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import numpy as np
import pytest

from geo.network import NetworkSource, RoadNetwork, undirected_network
from geo.settings import Settings

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


def coarse_line(n_nodes: int = 5, spacing_deg: float = 0.01) -> RoadNetwork:
    """A straight east-west unclassed road near Jiaxing (coarse-network semantics)."""
    lon = 120.70 + spacing_deg * np.arange(n_nodes)
    lat = np.full(n_nodes, 30.70)
    a = np.arange(n_nodes - 1)
    return undirected_network(lon, lat, a, a + 1, NetworkSource("test", "line", coarse=True))


def coarse_ring(side_deg: float = 0.04) -> RoadNetwork:
    """A square ring road (4 corners) near Jiaxing, coarse-network semantics."""
    lon0, lat0 = 120.70, 30.70
    lon = np.array([lon0, lon0 + side_deg, lon0 + side_deg, lon0])
    lat = np.array([lat0, lat0, lat0 + side_deg, lat0 + side_deg])
    return undirected_network(
        lon,
        lat,
        np.array([0, 1, 2, 3]),
        np.array([1, 2, 3, 0]),
        NetworkSource("test", "ring", coarse=True),
    )
