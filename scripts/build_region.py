"""Build data/region.json: the metadata of the bundled region pack (Jiaxing, 330400).

Run last (after build_boundaries.py, build_network.py and build_facilities.py):
the counties, outline and counts are read from the pack's files, the bounds (the
outline's box grown by 20 km) and the metric CRS (UTM zone) computed from the
outline, as ``skillcircle region build`` does for every pack
(geo.regionbuild.write_pack_region_json; format in geo/region.py).

Usage: ``python scripts/build_region.py [--pack DIR] [--out FILE]``
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from _sources import REGION, REPO

from geo.regionbuild import write_pack_region_json

logger = logging.getLogger("build_region")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pack", type=Path, default=REPO / "data")
    parser.add_argument("--out", type=Path, default=None, help="default: PACK/region.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    doc = write_pack_region_json(
        args.pack, path=args.out, built_by="scripts/build_region.py", **REGION
    )
    logger.info("counts %s -> %s", doc["counts"], args.out or args.pack / "region.json")


if __name__ == "__main__":
    main()
