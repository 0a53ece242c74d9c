"""Partitioned coverage (halo per county) equals the single-graph result, in-process and on Dask."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from geo.coverage import coverage_table
from geo.facilities import load_facilities
from geo.network import load_network
from geo.partition import halo_m, partitioned_coverage, partitions
from geo.places import load_villages
from geo.routing import Router
from geo.settings import Settings


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    settings = Settings(cache_dir=tmp_path_factory.mktemp("cache"), max_minutes=60)
    net = load_network(settings)
    return settings, net, load_villages(settings=settings), load_facilities(settings=settings)


def assert_same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(want.columns)
    pd.testing.assert_frame_equal(
        pd.DataFrame(got.drop(columns="geometry")), pd.DataFrame(want.drop(columns="geometry"))
    )
    assert got.geometry.equals(want.geometry)


@pytest.mark.parametrize("mode", ["walk", "ebike"])
def test_partitions_are_exact(inputs, mode):
    settings, net, villages, facilities = inputs
    want = coverage_table(Router(net, mode, settings), villages, facilities)
    parts = list(partitions(net, villages, facilities, mode, settings))
    assert [p.name for p in parts] == list(pd.unique(villages["county"]))
    # the halo really cuts: every county sees only part of the network
    assert all(p.network.n_edges < net.n_edges for p in parts)
    assert sum(len(p.villages) for p in parts) == len(villages)
    got = partitioned_coverage(net, villages, facilities, mode, settings)
    assert_same(got, want)


def test_halo_is_speed_times_max_minutes_plus_access(inputs):
    settings, net, _, _ = inputs
    walk = halo_m(net, "walk", settings)
    drive = halo_m(net, "drive", settings)
    access = settings.access_max_m(net.source.coarse)
    # coarse network: the straight-line speed is the mode's speed on a straight edge
    # (within the projection's scale error, well under 1%)
    expected = settings.coarse_speed_kmh["walk"] / 3.6 * 3600 + access
    assert walk == pytest.approx(expected, rel=0.01)
    assert drive > walk


def test_dask_local_cluster_gives_the_same_table(inputs):
    pytest.importorskip("dask.distributed")
    from geo.partition import dask_client

    settings, net, villages, facilities = inputs
    want = coverage_table(Router(net, "walk", settings), villages, facilities)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # distributed's start-up chatter (ports, versions)
        client = dask_client(workers=2)
        try:
            got = partitioned_coverage(net, villages, facilities, "walk", settings, client=client)
        finally:
            client.close()
            client.cluster.close()
    assert_same(got, want)


def test_cli_dask_matches_single_process(tmp_path):
    pytest.importorskip("dask.distributed")
    from click.testing import CliRunner

    from geo.cli import main

    runner = CliRunner()
    args = ["coverage", "--mode", "walk", "--max-minutes", "60"]
    one = runner.invoke(main, [*args, "--out", str(tmp_path / "one.csv")])
    assert one.exit_code == 0, one.output
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        many = runner.invoke(
            main, [*args, "--dask", "--workers", "2", "--out", str(tmp_path / "dask.csv")]
        )
    assert many.exit_code == 0, many.output
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "dask.csv").read_bytes()
    bad = runner.invoke(main, [*args, "--workers", "2", "--out", str(tmp_path / "x.csv")])
    assert bad.exit_code == 2 and "need --dask" in bad.output
    assert not (tmp_path / "x.csv").exists()


def test_every_partition_uses_the_crs_of_the_whole_network(inputs):
    settings, net, villages, facilities = inputs
    assert settings.metric_crs is None  # chosen from the data
    parts = list(partitions(net, villages, facilities, "walk", settings))
    assert {p.settings.metric_crs for p in parts} == {"EPSG:32651"}  # Jiaxing: UTM 51N
