"""Offline address matching at registry scale: 50,000 generated addresses of the bundled region.

Each row is one village of the bundled pack (drawn with replacement) written the way registries
write addresses: with or without province/city (浙江省嘉兴市, 嘉兴, none), the county in full, bare
(桐乡) or left out, the town in full, bare (乌镇) or left out, the village as X村/X社区, as its
committee's name (X村村民委员会) or left out in favour of a road, then a house number — a third in
full-width digits, some with spaces. Every address is distinct (the house number), so the
gazetteer's memo does not help. The truth is the drawn village: a row is

* ``right`` — placed at its village, or at its town when the address names no village;
* ``refused`` — reported (ambiguous without the county/town, or only the county named);
* ``wrong`` — placed somewhere else (a wrong town or village).

It times ``Gazetteer.locate`` on the 50,000 addresses (best of 3, after building the
gazetteer) and ``geo.facilities.import_registry`` on the same rows as a CSV (read, validate,
place, build the frame). Prints a table and, last, one JSON line.

    PYTHONPATH=. python bench/geocode.py [--rows 50000] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from geo.facilities import import_registry
from geo.geocode import Gazetteer, Placement
from geo.places import load_towns, load_villages
from geo.settings import Settings

FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def _bare(name: str, kinds: tuple[str, ...]) -> str:
    for kind in kinds:
        if name.endswith(kind) and len(name) - len(kind) >= 2:
            return name[: -len(kind)]
    return name


def addresses(rows: int, seed: int) -> list[tuple[str, str, str | None]]:
    """``(address, town_code, village_code or None)`` per row."""
    rng = random.Random(seed)
    villages = load_villages().to_dict("records")
    out = []
    for n in range(rows):
        v = rng.choice(villages)
        prefix = rng.choice(["", "", "浙江省嘉兴市", "嘉兴市", "浙江嘉兴"])
        county = rng.choice([v["county"], v["county"], _bare(v["county"], ("县", "市", "区")), ""])
        town = rng.choices(
            [v["town"], _bare(v["town"], ("街道", "镇", "乡")), ""], weights=[6, 3, 1]
        )[0]
        short = str(v["short_name"])
        own = short if short.endswith(("村", "社区")) else short + "村"
        committee = own + ("民委员会" if own.endswith("村") else "居民委员会")
        named = rng.choices([own, committee, ""], weights=[7, 1, 2])[0]
        if not named:
            town = town or v["town"]  # an address without a village names at least the town
        number = str(n + 1)
        if rng.random() < 1 / 3:
            number = number.translate(FULL_WIDTH)
        tail = (
            f"{named}{number}号" if named else f"{rng.choice(['文化', '工业', '人民'])}路{number}号"
        )
        parts = [prefix, county, town, tail]
        sep = " " if rng.random() < 0.1 else ""
        out.append(
            (sep.join(p for p in parts if p), v["town_code"], v["village_code"] if named else None)
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    settings = Settings()
    start = time.perf_counter()
    gazetteer = Gazetteer.from_settings(settings)  # used (memo empty) for the import below
    build_s = time.perf_counter() - start
    rows = addresses(args.rows, args.seed)
    texts = [a for a, _, _ in rows]

    locate_s = float("inf")
    for _ in range(3):
        fresh = Gazetteer.from_settings(settings)  # an empty memo each time
        start = time.perf_counter()
        found = fresh.locate(texts)
        locate_s = min(locate_s, time.perf_counter() - start)

    villages = load_villages()
    point_of = {
        c: (x, y)
        for c, x, y in zip(
            villages["village_code"], villages.geometry.x, villages.geometry.y, strict=True
        )
    }
    towns = load_towns()
    town_point = {
        c: (x, y)
        for c, x, y in zip(towns["town_code"], towns.geometry.x, towns.geometry.y, strict=True)
    }
    right = refused = wrong = 0
    at_village = 0
    for (_, town_code, village_code), place in zip(rows, found, strict=True):
        if isinstance(place, str):
            refused += 1
            continue
        want = point_of[village_code] if village_code else town_point[town_code]
        if place.town_code == town_code and (place.lon, place.lat) == want:
            right += 1
            at_village += place.location_quality == "village_from_address"
        else:
            wrong += 1

    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "registry.csv"
        lines = ["名称,地址"] + [
            f"机构{i},{a}" for i, (a, _, _) in enumerate(rows) if isinstance(found[i], Placement)
        ]
        csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
        start = time.perf_counter()
        imported = import_registry(csv, "village_station", "wgs84", geocoder=gazetteer)
        import_s = time.perf_counter() - start

    figures = {
        "rows": args.rows,
        "gazetteer_build_s": round(build_s, 3),
        "locate_s": round(locate_s, 3),
        "locate_us_per_row": round(locate_s / args.rows * 1e6, 1),
        "import_rows": len(imported),
        "import_s": round(import_s, 3),
        "right": right,
        "refused": refused,
        "wrong": wrong,
        "right_at_village_point": at_village,
    }
    width = max(map(len, figures))
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}", file=sys.stdout)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
