"""Read only the region's part of a big OSM file, in memory proportional to the region.

A user's ``--osm`` file is usually a province or country extract (e.g. Geofabrik's
``china-latest.osm.pbf``, over 100 M nodes) while the study area is one county or
city. :func:`read_clipped` reads the roads of such a file *clipped* to a polygon —
the region's outline grown by a routing halo (:func:`clip_area`) — while reading,
with the rule of ``osmium extract --strategy complete_ways``:

* a road (``highway=*`` way) is kept if at least one of its nodes lies inside the
  polygon (or on its boundary), and kept *whole*: its nodes outside the polygon
  are read too, so a road crossing the edge is not cut;
* traffic signals on kept roads and turn restrictions between kept roads via a
  kept node are kept, exactly as the whole-file reader
  (:func:`geo.network.network_from_pbf`) keeps them.

Two routes give the same network:

``osmium-tool``
    ``osmium extract --strategy complete_ways --polygon region.geojson`` (Debian
    package ``osmium-tool``) writes a small extract to a temporary file, which
    :func:`geo.network.network_from_pbf` then reads. Used when the ``osmium``
    program is on the ``PATH``.
``pyosmium``
    Streaming with pyosmium in three passes, all object filtering in C++:

    1. nodes: libosmium stores every node location in a file-backed index, one
       block of the file at a time (at most 32 MB of PBF, about 4 M nodes); numpy
       and shapely test the block's locations against the polygon. The index is
       dropped after each block, so memory stays bounded whatever the file size
       (an ``.osm`` XML file is one block: clip big files as PBF).
    2. ways and relations: a C++ filter passes only roads that reference a node
       found in pass 1 (pyosmium ``IdTracker.contains_filter``) and turn
       restrictions; only those reach Python.
    3. nodes again, only if a kept road has nodes outside the polygon's bounding
       box: a C++ id filter passes just those.

Memory is proportional to the region: the polygon's box of node locations, its
roads, and per block of the file a fixed amount. Time is dominated by decoding
the file three times in C++ (osmium-tool decodes it twice).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from geo._errors import NetworkError, OutsideRegionError, SettingsError
from geo._validate import Bounds, describe_bounds, overlaps
from geo.network import (
    NetworkSource,
    RoadNetwork,
    WayEdges,
    _from_segments,
    in_sorted,
    network_from_pbf,
    pbf_restriction,
    unique_ids,
    way_tags,
)
from geo.settings import DEFAULT_CLIP_HALO_M

logger = logging.getLogger(__name__)

#: Ways to read a clipped file: ``auto`` is ``osmium-tool`` when installed, else ``pyosmium``.
CLIP_READERS = ("auto", "osmium-tool", "pyosmium")
#: PBF bytes per block of pass 1 (bounds the node-location index: ~4 M nodes, 64 MB).
CHUNK_BYTES = 32 << 20
#: Pass 1 also keeps the locations of nodes this far around the polygon's box, so
#: that roads crossing its edge rarely need pass 3 (OSM road ways are split at
#: junctions and bridges: few are longer than a few km).
KEEP_MARGIN_M = 25_000.0
#: One entry of libosmium's ``sparse_file_array`` location index: node id, x, y
#: (fixed-point 1e-7 degrees); checked by :func:`_check_index_layout` before use.
_INDEX_DTYPE = np.dtype([("id", "<u8"), ("x", "<i4"), ("y", "<i4")])
_UNDEFINED = 2**31 - 1  # osmium::Location's undefined coordinate
_PRECISION = 10_000_000  # libosmium coordinates are integers of 1e-7 degrees
_GEOFABRIK = "download.geofabrik.de/asia/china.html"


# --------------------------------------------------------------------------- the polygon


def clip_area(outline: Any, halo_m: float = DEFAULT_CLIP_HALO_M) -> Any:
    """The region's outline grown by ``halo_m`` metres: the polygon to clip OSM files to.

    The buffer is metric: the outline is projected to the WGS 84 / UTM zone at its
    median vertex (:func:`geo.projection.utm_crs`), buffered, densified to 5 km
    segments and projected back.

    Why a halo, and why 10 km by default (:attr:`geo.settings.Settings.clip_halo_m`):

    * *Routes leave the region and come back.* The fastest way from a village near
      the border to a training site of its own county may run over a neighbouring
      county's roads (a ring road, a bridge, a highway exit). Within the
      30-minute circle a drive covers about 25 km at the network's urban speeds;
      a detour outside the region can reach at most half of that, and real ones
      stay within a few km. 10 km keeps e-bike routes (7.5 km in 30 min) entirely
      and drive detours up to 20 km long.
    * *Access legs.* A village or facility reaches the street network over at most
      ``access_max_m_osm`` (500 m) and is flagged beyond ``access_flag_m`` (2 km):
      points on the border need the roads just outside it.
    * *Cost.* For a county (about 40 km across) 10 km doubles the clipped area; for
      a province it adds a few percent. Both stay far below a country file.

    Times far above the threshold (reported up to ``max_minutes``, 2 h) may come
    out longer than on the whole file when their fastest path runs farther
    outside; raise the halo (``Settings.clip_halo_m``) if those matter.

    This is for street networks (``--osm``). The bundled *coarse* network has no
    local streets and lets access legs run up to ``access_max_m_coarse`` (15 km);
    cut a coarse network with at least that halo.

    Parameters
    ----------
    outline
        The region (WGS84): a shapely Polygon or MultiPolygon, or a GeoSeries /
        GeoDataFrame (e.g. its counties), whose union is used.
    halo_m
        The buffer in metres (>= 0).

    Returns
    -------
    shapely.Polygon or shapely.MultiPolygon
        The grown outline in WGS84 degrees.

    Raises
    ------
    SettingsError
        If ``halo_m`` is negative or not finite, or the outline is not a non-empty
        polygon in lon/lat.
    """
    import shapely
    from pyproj import Transformer

    from geo.projection import utm_crs

    if not (np.isfinite(halo_m) and halo_m >= 0):
        raise SettingsError(f"clip halo must be a number of metres >= 0, got {halo_m!r}")
    geom = _polygonal(outline, "region outline")
    coords = shapely.get_coordinates(geom)
    crs = utm_crs(coords[:, 0], coords[:, 1])
    forward = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    back = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    metric = shapely.transform(geom, lambda xy: np.column_stack(forward.transform(*xy.T)))
    grown = shapely.segmentize(metric.buffer(halo_m, quad_segs=8), 5000.0)
    return shapely.transform(grown, lambda xy: np.column_stack(back.transform(*xy.T)))


def check_clip(clip: Any) -> Any:
    """A clip polygon ready to use: validated, coordinates rounded to 1e-7 degrees.

    Rounded to the OSM coordinate precision, the polygon is the same to
    ``osmium extract`` (which reads it as fixed-point integers) and to shapely, so
    both routes keep the same nodes.

    Raises
    ------
    SettingsError
        If ``clip`` is not a non-empty, valid (Multi)Polygon in lon/lat.
    """
    import shapely

    geom = _polygonal(clip, "clip polygon")
    if not geom.is_valid:
        reason = shapely.is_valid_reason(geom)
        raise SettingsError(
            f"clip polygon is not valid ({reason}); pass a clean outline, e.g. "
            "geo.osmclip.clip_area(outline), whose buffer repairs small defects"
        )
    rounded = shapely.transform(geom, lambda xy: np.round(xy, 7))
    return rounded if rounded.is_valid else rounded.buffer(0)


def clip_key(clip: Any) -> str:
    """A short stable digest of a clip polygon, for cache keys."""
    import hashlib

    import shapely

    wkb = shapely.to_wkb(shapely.normalize(clip), output_dimension=2, byte_order=1)
    return hashlib.sha256(wkb).hexdigest()[:16]


def _polygonal(geom: Any, what: str) -> Any:
    """A shapely (Multi)Polygon from a geometry, GeoSeries or GeoDataFrame."""
    from shapely.geometry import MultiPolygon, Polygon

    if hasattr(geom, "union_all"):  # GeoSeries / GeoDataFrame
        crs = getattr(geom, "crs", None)
        if crs is not None and not crs.equals("EPSG:4326"):
            geom = geom.to_crs("EPSG:4326")
        geom = geom.union_all()
    if not isinstance(geom, Polygon | MultiPolygon) or geom.is_empty:
        raise SettingsError(
            f"{what} must be a non-empty shapely Polygon or MultiPolygon in WGS84 "
            f"lon/lat, got {type(geom).__name__}"
        )
    min_lon, min_lat, max_lon, max_lat = geom.bounds
    if not (min_lon >= -180 and max_lon <= 180 and min_lat >= -90 and max_lat <= 90):
        raise SettingsError(
            f"{what} is not in WGS84 lon/lat ({describe_bounds(geom.bounds)}); "
            "convert it to EPSG:4326 first"
        )
    return geom


# --------------------------------------------------------------------------- entry point


def osmium_tool() -> str | None:
    """Path of the ``osmium`` program (Debian ``osmium-tool``), or None."""
    return shutil.which("osmium")


def read_clipped(
    path: Path, clip: Any, *, reader: str = "auto", progress: bool = False
) -> RoadNetwork:
    """The road network of an OSM file clipped to ``clip`` (see the module docstring).

    Parameters
    ----------
    path
        An ``.osm.pbf`` (or ``.osm``/``.xml``) file of any size.
    clip
        WGS84 (Multi)Polygon, usually :func:`clip_area` of the region outline.
    reader
        ``auto`` (osmium-tool if installed, else pyosmium), ``osmium-tool`` or
        ``pyosmium``.
    progress
        Show tqdm progress bars (stderr) over the file's bytes.

    Raises
    ------
    NetworkError
        Unreadable file, a file that does not overlap ``clip`` (naming both
        extents), no roads inside ``clip``, or ``osmium-tool`` asked for but missing.
    """
    if reader not in CLIP_READERS:
        raise SettingsError(f"unknown clip reader {reader!r}; use one of {', '.join(CLIP_READERS)}")
    clip = check_clip(clip)
    exe = osmium_tool()
    if reader == "osmium-tool" and exe is None:
        raise NetworkError(
            f"{path}: osmium-tool is not installed; install it (apt-get install osmium-tool) "
            "or use the pyosmium reader"
        )
    use_tool = exe is not None and reader != "pyosmium"
    header_box = _header_box(path)
    if header_box is not None and not overlaps(header_box, clip.bounds):
        raise _no_overlap(path, header_box, clip)
    started = time.perf_counter()
    if use_tool:
        assert exe is not None
        net = _read_with_osmium_tool(path, clip, exe, header_box, progress)
    else:
        net = _read_with_pyosmium(path, clip, progress)
    logger.info(
        "%s clipped with %s: %s (%.1f s)",
        path.name,
        "osmium-tool" if use_tool else "pyosmium",
        net.summary(),
        time.perf_counter() - started,
    )
    return net


def _source(path: Path) -> NetworkSource:
    kind = "PBF" if path.name.lower().endswith(".pbf") else "XML"
    return NetworkSource("osm_file", f"{path.name} (OSM {kind}, clipped to the region + halo)")


def _no_overlap(path: Path, file_bounds: Bounds | None, clip: Any) -> OutsideRegionError:
    where = (
        f"the file covers {describe_bounds(file_bounds)}"
        if file_bounds is not None
        else "the file has no nodes"
    )
    return OutsideRegionError(
        f"{path}: OSM 文件与区域不重叠 / the OSM file does not overlap the region: {where}, "
        f"the region with its routing halo {describe_bounds(clip.bounds)}; pass an OSM "
        f"extract that covers the region (e.g. its province from {_GEOFABRIK})"
    )


def _nothing_inside(path: Path, file_bounds: Bounds | None, clip: Any) -> NetworkError:
    """No node of the file inside ``clip``: apart (no overlap) or a gap without roads."""
    if file_bounds is None or not overlaps(file_bounds, clip.bounds):
        return _no_overlap(path, file_bounds, clip)
    return _no_roads(path, clip)


def _no_roads(path: Path, clip: Any) -> NetworkError:
    return NetworkError(
        f"{path}: the OSM data has no roads (no highway ways) inside the region "
        f"({describe_bounds(clip.bounds)} with its halo); pass an extract with roads there"
    )


def _unreadable(path: Path, why: str) -> NetworkError:
    """An OSM file osmium cannot read, named by its format."""
    what = "cannot read OSM PBF" if path.name.lower().endswith(".pbf") else "broken OSM XML"
    return NetworkError(f"{path}: {what} ({why}); check the file or download it again")


def _header_box(path: Path) -> Bounds | None:
    """The bounding box in the file's header (Geofabrik and osmium write one), or None."""
    import osmium

    try:
        with osmium.io.Reader(str(path), osmium.osm.NOTHING) as reader:
            box = reader.header().box()
    except RuntimeError as exc:
        raise _unreadable(path, str(exc)) from exc
    if not box.valid():
        return None
    return (box.bottom_left.lon, box.bottom_left.lat, box.top_right.lon, box.top_right.lat)


# --------------------------------------------------------------------------- osmium-tool


def _read_with_osmium_tool(
    path: Path, clip: Any, exe: str, header_box: Bounds | None, progress: bool
) -> RoadNetwork:
    """``osmium extract --strategy complete_ways`` to a temporary file, then read it."""
    import osmium
    from shapely.geometry import mapping

    with tempfile.TemporaryDirectory(prefix="skillcircle-clip-") as tmp:
        polygon = Path(tmp) / "region.geojson"
        feature = {"type": "Feature", "properties": {}, "geometry": mapping(clip)}
        polygon.write_text(json.dumps(feature), encoding="utf-8")
        out = Path(tmp) / "extract.osm.pbf"
        cmd = [exe, "extract", "--strategy", "complete_ways", "--polygon", str(polygon)]
        cmd += ["--output", str(out), "--overwrite", "--no-progress", str(path)]
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        desc = "osmium extract 裁剪 clip"
        with _FileProgress(path, desc, progress, pid=proc.pid, passes=2):
            _, err = proc.communicate()
        if proc.returncode != 0:
            last = (err.strip().splitlines() or ["no message"])[-1]
            raise _unreadable(path, f"osmium extract: {last}")
        logger.info(
            "osmium extract: %s -> %.1f MB (%.1f s)",
            path.name,
            out.stat().st_size / 1e6,
            time.perf_counter() - started,
        )
        nodes = iter(osmium.FileProcessor(str(out), osmium.osm.NODE))
        empty = next(nodes, None) is None
        nodes.close()  # type: ignore[attr-defined]
        if empty:
            raise _nothing_inside(path, header_box or _tool_bounds(exe, path), clip)
        try:
            return network_from_pbf(out, source=_source(path))
        except NetworkError as exc:
            raise _no_roads(path, clip) from exc


def _tool_bounds(exe: str, path: Path) -> Bounds | None:
    """The extent of a file's nodes (``osmium fileinfo -e``: one more pass; errors only)."""
    done = subprocess.run(
        [exe, "fileinfo", "--extended", "--get", "data.bbox", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        values = [float(v) for v in done.stdout.strip().strip("()").split(",")]
    except ValueError:
        return None
    return (values[0], values[1], values[2], values[3]) if len(values) == 4 else None


class _FileProgress:
    """A tqdm bar over the reading position of process ``pid`` in ``path`` (Linux ``/proc``).

    Works for C++ readers that report nothing to Python: libosmium in this process,
    or an ``osmium`` child. The file is read ``passes`` times; a position that goes
    back starts the next pass. Without ``/proc`` the bar jumps to the end when done.
    """

    def __init__(
        self, path: Path, desc: str, enabled: bool, *, pid: int | None = None, passes: int = 1
    ) -> None:
        self.pid = os.getpid() if pid is None else pid
        self.path, self.desc, self.enabled = str(path.resolve()), desc, enabled
        self.size, self.passes = path.stat().st_size, passes
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> _FileProgress:
        if self.enabled:
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        if self.enabled:
            self.thread.join()

    def _position(self) -> int | None:
        try:
            for fd in Path(f"/proc/{self.pid}/fd").iterdir():
                if os.readlink(fd) == self.path:
                    info = Path(f"/proc/{self.pid}/fdinfo/{fd.name}").read_text()
                    return int(info.split("pos:")[1].split()[0])
        except (OSError, IndexError, ValueError):
            return None
        return None

    def _poll(self) -> None:
        with _bar(True, self.passes * self.size, self.desc) as bar:
            done_passes, last = 0, 0
            while not self.done.wait(0.5):
                if (pos := self._position()) is None:
                    continue
                if pos < last:
                    done_passes += 1
                last = pos
                bar.update(min(done_passes * self.size + pos, bar.total) - bar.n)
            bar.update(bar.total - bar.n)


# --------------------------------------------------------------------------- pyosmium


@dataclass(frozen=True)
class _Chunk:
    """A part of the input: a byte range of PBF blobs (after the header blob) or,
    for other formats, the whole file (``header`` None)."""

    path: Path
    offset: int
    size: int
    header: tuple[int, int] | None

    def write(self, folder: Path) -> Path:
        """A file pyosmium can read: the header blob + this range in ``folder``, or
        the input itself. (A temporary file, not an ``osmium.io.FileBuffer``: pyosmium
        decodes buffers several times slower than files.)"""
        if self.header is None:
            return self.path
        target = folder / "chunk.osm.pbf"
        with self.path.open("rb") as fh, target.open("wb") as out:
            fh.seek(self.header[0])
            out.write(fh.read(self.header[1]))
            fh.seek(self.offset)
            out.write(fh.read(self.size))
        return target


def _pbf_chunks(path: Path, limit: int | None = None) -> list[_Chunk]:
    """Split a PBF file into chunks of whole blobs of at most ``limit`` bytes
    (:data:`CHUNK_BYTES`; a blob larger than that is a chunk of its own).

    Only the file's framing is parsed here — per blob a 4-byte length, a small
    ``BlobHeader`` message and the blob's size — since pyosmium cannot start
    reading in the middle of a file. Every chunk is read with the file's header
    blob in front of it, as a file of its own (PBF blobs are self-contained).
    """
    if not path.name.lower().endswith(".pbf"):
        return [_Chunk(path, 0, path.stat().st_size, None)]
    limit = CHUNK_BYTES if limit is None else limit
    blobs = list(_pbf_blobs(path))
    if not blobs or blobs[0][0] != "OSMHeader":
        raise NetworkError(f"{path}: cannot read OSM PBF (no OSMHeader block at the start)")
    header = (blobs[0][1], blobs[0][2])
    chunks: list[_Chunk] = []
    start, size = -1, 0
    for _, offset, length in blobs[1:]:
        if size and size + length > limit:
            chunks.append(_Chunk(path, start, size, header))
            size = 0
        if not size:
            start = offset
        size += length
    if size:
        chunks.append(_Chunk(path, start, size, header))
    return chunks


def _pbf_blobs(path: Path) -> Iterator[tuple[str, int, int]]:
    """``(type, offset, length)`` of each blob of a PBF file (length with its header)."""
    total = path.stat().st_size
    with path.open("rb") as fh:
        offset = 0
        while offset < total:
            head = fh.read(4)
            n = int.from_bytes(head, "big")
            if len(head) < 4 or n > 64 * 1024:
                raise NetworkError(
                    f"{path}: cannot read OSM PBF (broken block header at byte {offset:,})"
                )
            kind, datasize = _blob_header(fh.read(n), path, offset)
            length = 4 + n + datasize
            if offset + length > total:
                raise NetworkError(f"{path}: cannot read OSM PBF (truncated at byte {offset:,})")
            fh.seek(datasize, os.SEEK_CUR)
            yield kind, offset, length
            offset += length


def _blob_header(data: bytes, path: Path, offset: int) -> tuple[str, int]:
    """``type`` (field 1) and ``datasize`` (field 3) of a protobuf ``BlobHeader``."""
    kind, datasize, i = "", -1, 0
    try:
        while i < len(data):
            key, i = _varint(data, i)
            field, wire = key >> 3, key & 7
            if wire == 0:
                value, i = _varint(data, i)
                if field == 3:
                    datasize = value
            elif wire == 2:
                length, i = _varint(data, i)
                if field == 1:
                    kind = data[i : i + length].decode("ascii")
                i += length
            else:
                raise ValueError(f"wire type {wire}")
    except (IndexError, ValueError, UnicodeDecodeError):
        datasize = -1
    if datasize < 0 or not kind:
        raise NetworkError(f"{path}: cannot read OSM PBF (broken block header at byte {offset:,})")
    return kind, datasize


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7


def _check_index_layout(folder: Path) -> None:
    """Fail loudly if libosmium's ``sparse_file_array`` entries are not ``_INDEX_DTYPE``."""
    import osmium

    path = folder / "layout.idx"
    store = osmium.index.create_map(f"sparse_file_array,{path}")
    store.set(7, osmium.osm.Location(120.1234567, -30.7654321))
    store.set(2**40 + 3, osmium.osm.Location(-1.5, 2.25))
    used = store.used_memory()
    del store
    table = np.fromfile(path, dtype=_INDEX_DTYPE, count=2)
    path.unlink()
    expected = [(7, 1201234567, -307654321), (2**40 + 3, -15000000, 22500000)]
    if used != 2 * _INDEX_DTYPE.itemsize or table.tolist() != expected:
        raise NetworkError(
            "pyosmium's node location index has an unexpected layout; install osmium-tool "
            "(apt-get install osmium-tool) to clip with it instead"
        )


def _bar(progress: bool, total: int, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc=desc, disable=not progress)


def _read_with_pyosmium(path: Path, clip: Any, progress: bool) -> RoadNetwork:
    """Three streaming passes with pyosmium (module docstring)."""
    import osmium
    import shapely

    shapely.prepare(clip)
    box = _fixed_box(clip.bounds, 0.0)
    keep = _fixed_box(clip.bounds, KEEP_MARGIN_M)
    pool = osmium.io.ThreadPool()
    try:
        chunks = _pbf_chunks(path)
        with tempfile.TemporaryDirectory(prefix="skillcircle-clip-") as name:
            tmp = Path(name)
            _check_index_layout(tmp)
            nodes = _pass_nodes(chunks, clip, box, keep, tmp, pool, progress)
            if not nodes.inside.size:
                raise _nothing_inside(path, nodes.file_bounds, clip)
            ways, restrictions = _pass_ways(path, nodes.inside, pool, progress)
            if not ways:
                raise _no_roads(path, clip)
            refs = unique_ids(np.concatenate([np.asarray(r, np.int64) for _, _, r in ways]))
            ids, x, y = _pass_outside_nodes(chunks, nodes, refs, tmp, pool, progress)
    except RuntimeError as exc:
        raise _unreadable(path, str(exc)) from exc
    # refs to nodes the file lacks are dropped, as the whole-file reader does
    absent = set(refs[~in_sorted(refs, np.sort(ids))].tolist())
    edges = WayEdges()
    for way_id, tags, way_refs in ways:
        edges.add(way_id, tags, [r for r in way_refs if r not in absent] if absent else way_refs)
    if not len(edges):
        raise _no_roads(path, clip)
    via = np.array([r[1] for r in restrictions], np.int64)
    kept = [r for r, ok in zip(restrictions, in_sorted(via, refs), strict=True) if ok]
    signals = nodes.signals[in_sorted(nodes.signals, refs)]
    return _from_segments(
        ids, x / _PRECISION, y / _PRECISION, edges.segments(), _source(path), signals, kept
    )


def _fixed_box(bounds: Bounds, margin_m: float) -> tuple[int, int, int, int]:
    """A lon/lat box grown by about ``margin_m`` metres, in 1e-7 degree integers."""
    min_lon, min_lat, max_lon, max_lat = bounds
    dlat = margin_m / 110_574.0
    dlon = margin_m / (111_320.0 * max(np.cos(np.radians(max(abs(min_lat), abs(max_lat)))), 0.01))
    return (
        int(np.floor(max(min_lon - dlon, -180.0) * _PRECISION)),
        int(np.floor(max(min_lat - dlat, -90.0) * _PRECISION)),
        int(np.ceil(min(max_lon + dlon, 180.0) * _PRECISION)),
        int(np.ceil(min(max_lat + dlat, 90.0) * _PRECISION)),
    )


def _in_box(x: NDArray[np.int32], y: NDArray[np.int32], box: tuple[int, ...]) -> NDArray[np.bool_]:
    return (x >= box[0]) & (x <= box[2]) & (y >= box[1]) & (y <= box[3])


@dataclass
class _Nodes:
    """What pass 1 found."""

    inside: NDArray[np.int64]  # ids of nodes inside the polygon
    kept: NDArray[Any]  # nodes near the polygon (``KEEP_MARGIN_M``): id, x, y
    signals: NDArray[np.int64]  # traffic-signal nodes of the whole file
    file_bounds: Bounds | None
    id_ranges: list[tuple[int, int] | None]  # per chunk: smallest and largest node id


def _chunk_nodes(chunk: _Chunk, tmp: Path, index: Path, pool: Any, signals: list[int]) -> Any:
    """Every node of a chunk as an ``_INDEX_DTYPE`` table (id, x, y), read through the
    file-backed index at ``index`` (removed after); traffic signals appended to ``signals``."""
    import osmium

    source = chunk.write(tmp)
    store = osmium.index.create_map(f"sparse_file_array,{index}")
    processor = (
        osmium.FileProcessor(str(source), osmium.osm.NODE, thread_pool=pool)
        .with_locations(store)  # type: ignore[arg-type]  # the stub says str only
        .with_filter(osmium.filter.TagFilter(("highway", "traffic_signals")))
    )
    signals.extend(node.id for node in processor)
    count = store.used_memory() // _INDEX_DTYPE.itemsize
    del processor, store  # unmaps and closes the index file
    table = np.fromfile(index, dtype=_INDEX_DTYPE, count=count)
    index.unlink()
    if source != chunk.path:
        source.unlink()
    return table


def _pass_nodes(
    chunks: list[_Chunk],
    clip: Any,
    box: tuple[int, int, int, int],
    keep: tuple[int, int, int, int],
    tmp: Path,
    pool: Any,
    progress: bool,
) -> _Nodes:
    """Pass 1: every node location through a file-backed index, tested with numpy."""
    import shapely

    started = time.perf_counter()
    inside: list[NDArray[np.int64]] = []
    kept: list[NDArray[Any]] = []
    signals: list[int] = []
    extent = [_UNDEFINED, _UNDEFINED, -_UNDEFINED, -_UNDEFINED]
    id_ranges: list[tuple[int, int] | None] = []
    total = 0
    index = tmp / "nodes.idx"
    desc = "OSM 裁剪 clip 1/3 节点 nodes"
    with _reading(chunks, desc, progress) as bar:
        for chunk in chunks:
            table = _chunk_nodes(chunk, tmp, index, pool, signals)
            count = len(table)
            bar.update(chunk.size)
            id_ranges.append((int(table["id"].min()), int(table["id"].max())) if count else None)
            total += count
            x, y = table["x"], table["y"]
            valid = x != _UNDEFINED
            if valid.any():
                xv, yv = x[valid], y[valid]
                extent = [
                    min(extent[0], int(xv.min())),
                    min(extent[1], int(yv.min())),
                    max(extent[2], int(xv.max())),
                    max(extent[3], int(yv.max())),
                ]
            near = table[_in_box(x, y, keep)]
            if near.size:
                kept.append(near)
                hit = near[_in_box(near["x"], near["y"], box)]
                ok = shapely.intersects_xy(clip, hit["x"] / _PRECISION, hit["y"] / _PRECISION)
                inside.append(hit["id"][ok].astype(np.int64))
    result = _Nodes(
        inside=np.concatenate(inside) if inside else np.empty(0, np.int64),
        kept=np.concatenate(kept) if kept else np.empty(0, _INDEX_DTYPE),
        signals=np.array(signals, np.int64),
        file_bounds=(
            (
                extent[0] / _PRECISION,
                extent[1] / _PRECISION,
                extent[2] / _PRECISION,
                extent[3] / _PRECISION,
            )
            if extent[0] != _UNDEFINED
            else None
        ),
        id_ranges=id_ranges,
    )
    logger.info(
        "clip pass 1: %s nodes in %d block(s), %s near the polygon, %s inside (%.1f s)",
        f"{total:,}",
        len(chunks),
        f"{len(result.kept):,}",
        f"{len(result.inside):,}",
        time.perf_counter() - started,
    )
    return result


def _pass_ways(
    path: Path, inside: NDArray[np.int64], pool: Any, progress: bool
) -> tuple[list[tuple[int, dict[str, Any], list[int]]], list[tuple[int, int, int, int]]]:
    """Pass 2: roads touching a node inside (C++ filters), and turn restrictions."""
    import osmium

    started = time.perf_counter()
    tracker = osmium.IdTracker()
    for node_id in inside.tolist():
        tracker.add_node(node_id)
    roads = osmium.filter.KeyFilter("highway")
    roads.enable_for(osmium.osm.WAY)
    touching = tracker.contains_filter()
    touching.enable_for(osmium.osm.WAY)
    rules = osmium.filter.TagFilter(("type", "restriction"))
    rules.enable_for(osmium.osm.RELATION)
    ways: list[tuple[int, dict[str, Any], list[int]]] = []
    restrictions: list[tuple[int, int, int, int]] = []
    processor: Any = (
        osmium.FileProcessor(str(path), osmium.osm.WAY | osmium.osm.RELATION, thread_pool=pool)
        .with_filter(roads)
        .with_filter(touching)
        .with_filter(rules)
    )
    with _FileProgress(path, "OSM 裁剪 clip 2/3 道路 ways", progress):
        for obj in processor:
            if obj.is_way():
                ways.append((obj.id, way_tags(obj), [n.ref for n in obj.nodes]))
            elif (rule := pbf_restriction(obj)) is not None:
                restrictions.append(rule)
    logger.info(
        "clip pass 2: %s road way(s) touch the polygon, %s turn restriction(s) in the file "
        "(%.1f s)",
        f"{len(ways):,}",
        f"{len(restrictions):,}",
        time.perf_counter() - started,
    )
    return ways, restrictions


def _pass_outside_nodes(
    chunks: list[_Chunk],
    nodes: _Nodes,
    refs: NDArray[np.int64],
    tmp: Path,
    pool: Any,
    progress: bool,
) -> tuple[NDArray[np.int64], NDArray[np.int32], NDArray[np.int32]]:
    """Pass 3, when needed: the kept roads' nodes farther than ``KEEP_MARGIN_M`` from
    the polygon's box, read from the blocks whose id range holds them.

    Returns the ids and fixed-point locations of every node known.
    """
    import osmium

    missing = refs[~in_sorted(refs, np.sort(nodes.kept["id"].astype(np.int64)))]  # sorted
    found = [nodes.kept]
    if missing.size:
        started = time.perf_counter()
        tracker = osmium.IdTracker()
        for node_id in missing.tolist():
            tracker.add_node(node_id)
        todo = [
            chunk
            for chunk, span in zip(chunks, nodes.id_ranges, strict=True)
            if span is not None
            and np.searchsorted(missing, span[0]) < np.searchsorted(missing, span[1], "right")
        ]
        rows: list[tuple[int, int, int]] = []
        with _reading(todo, "OSM 裁剪 clip 3/3 边缘节点 edge nodes", progress) as bar:
            for chunk in todo:
                source = chunk.write(tmp)
                processor: Any = osmium.FileProcessor(
                    str(source), osmium.osm.NODE, thread_pool=pool
                ).with_filter(tracker.id_filter())
                for node in processor:
                    if (location := node.location).valid():
                        rows.append((node.id, location.x, location.y))
                if source != chunk.path:
                    source.unlink()
                bar.update(chunk.size)
        found.append(np.array(rows, dtype=_INDEX_DTYPE))
        logger.info(
            "clip pass 3: %s of %s road node(s) far outside the polygon found in %d of %d "
            "block(s) (%.1f s)",
            f"{len(rows):,}",
            f"{missing.size:,}",
            len(todo),
            len(chunks),
            time.perf_counter() - started,
        )
    table = np.concatenate(found)
    return table["id"].astype(np.int64), table["x"], table["y"]


class _reading:  # noqa: N801 - used like a function
    """Progress over chunks (tqdm, updated per chunk); for a single whole file, polled."""

    def __init__(self, chunks: list[_Chunk], desc: str, progress: bool) -> None:
        self.bar = _bar(progress, sum(c.size for c in chunks), desc)
        whole = len(chunks) == 1 and chunks[0].header is None
        self.poll = _FileProgress(chunks[0].path, desc, progress and whole) if whole else None
        if self.poll is not None:
            self.bar.disable = True

    def __enter__(self) -> Any:
        if self.poll is not None:
            self.poll.__enter__()
        return self.bar

    def __exit__(self, *exc: object) -> None:
        if self.poll is not None:
            self.poll.__exit__(*exc)
        self.bar.close()
