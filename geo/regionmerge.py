"""Merge a user's own village points into a region pack (``region merge-villages``).

A CSV (``village_code,lon,lat``) or GeoJSON of Points with a 12-digit
``village_code`` improves the location of those villages: their
``location_quality`` becomes ``user_supplied``; towns without a 2016 point of
their own are placed again by the rules of :mod:`geo.places_build` (the mean of
their real village points), villages still at their town follow it, and sample
facilities standing at a moved town point follow it too. Every row is checked
first: a bad or unknown code, a repeated code or a point outside China stops the
merge with one line naming the rows, and nothing is written.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geo import places_build as pb
from geo._io import features_text
from geo.regionbuild import BuildReport, _fmt, atomic_folder, default_out, write_geojson
from geo.regionsources import RegionBuildError

_LON = ("lon", "longitude", "lng", "x", "经度")
_LAT = ("lat", "latitude", "y", "纬度")
_CODE_COLS = ("village_code", "code", "村代码", "统计用区划代码")


def read_user_villages(path: Path, crs: str, known: set[str]) -> pd.DataFrame:
    """The user's village points (``village_code, lon, lat`` in WGS84), checked row by row.

    Parameters
    ----------
    path
        CSV (``village_code,lon,lat``; also ``code``/``longitude``/``latitude``/经度/纬度)
        or GeoJSON (Point features with a ``village_code`` property).
    crs
        ``wgs84``, ``gcj02`` or ``bd09``.
    known
        The pack's village codes: any other code is an error.

    Raises
    ------
    RegionBuildError
        Naming the file, the rows and the remedy, when any row is bad.
    """
    from geo.coords import to_wgs84

    path = Path(path)
    if not path.is_file():
        raise RegionBuildError(f"{path}: villages file not found; pass an existing CSV or GeoJSON")
    if path.suffix.lower() in (".geojson", ".json"):
        table, where, first = _user_geojson(path), "feature", 1
    else:
        table, where, first = _user_csv(path), "row", 2  # row 1 is the header, as shown
    codes = table["village_code"].astype(str).str.strip()
    lon = pd.to_numeric(table["lon"], errors="coerce")
    lat = pd.to_numeric(table["lat"], errors="coerce")
    problems = _user_row_problems(codes, lon, lat, known, where, first)
    if problems:
        more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        raise RegionBuildError(
            f"{path}: {len(problems)} bad row(s): {'; '.join(problems[:5])}{more}; fix them "
            "and run again (nothing was written)"
        )
    wlon, wlat = to_wgs84(lon.to_numpy(), lat.to_numpy(), crs)
    return pd.DataFrame(
        {"village_code": codes.to_numpy(), "lon": np.round(wlon, 6), "lat": np.round(wlat, 6)}
    )


def _user_geojson(path: Path) -> pd.DataFrame:
    """``village_code, lon, lat`` of each feature (empty where it is not a Point)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        feats = doc["features"]
    except (ValueError, KeyError, TypeError) as exc:
        raise RegionBuildError(f"{path}: not a GeoJSON FeatureCollection ({exc})") from exc
    rows = []
    for feat in feats:
        geom = (feat or {}).get("geometry") or {}
        props = (feat or {}).get("properties") or {}
        xy = geom.get("coordinates") if geom.get("type") == "Point" else None
        rows.append(
            {
                "village_code": props.get("village_code", props.get("code")),
                "lon": xy[0] if xy else None,
                "lat": xy[1] if xy else None,
            }
        )
    return pd.DataFrame(rows, columns=["village_code", "lon", "lat"])


def _user_csv(path: Path) -> pd.DataFrame:
    """The code and coordinate columns of a CSV (by any of their names), as text."""
    try:
        table = pd.read_csv(path, dtype=str, encoding="utf-8-sig")
    except (ValueError, UnicodeDecodeError) as exc:
        raise RegionBuildError(f"{path}: cannot read as UTF-8 CSV ({exc})") from exc
    cols = {str(c).strip().lower(): c for c in table.columns}
    pick = {}
    for target, options in (("village_code", _CODE_COLS), ("lon", _LON), ("lat", _LAT)):
        found = next((cols[o] for o in options if o in cols), None)
        if found is None:
            raise RegionBuildError(
                f"{path}: no {target} column; the file needs village_code,lon,lat "
                "(12-digit code, coordinates in --crs)"
            )
        pick[target] = found
    return table.rename(columns={v: k for k, v in pick.items()})[list(pick)]


def _user_row_problems(
    codes: pd.Series, lon: pd.Series, lat: pd.Series, known: set[str], where: str, first: int
) -> list[str]:
    """One line per bad row: a code that is not 12 digits, not the pack's or repeated,
    or a point not in China; rows are numbered from ``first``."""
    problems = []
    seen: set[str] = set()
    for i, (code, x, y) in enumerate(zip(codes, lon, lat, strict=True)):
        label = f"{where} {i + first}"
        if not re.fullmatch(r"\d{12}", code):
            problems.append(f"{label}: village_code {code!r} is not 12 digits")
        elif code not in known:
            problems.append(f"{label}: village_code {code} is not a village of this pack")
        elif code in seen:
            problems.append(f"{label}: village_code {code} appears twice")
        elif not (np.isfinite(x) and np.isfinite(y) and 73 < x < 136 and 3 < y < 54):
            problems.append(f"{label}: lon/lat {x}, {y} are not a point in China")
        seen.add(code)
    return problems


def merge_user_villages(
    towns: pd.DataFrame,
    villages: pd.DataFrame,
    user: pd.DataFrame,
    seats: Mapping[str, tuple[float, float, str]],
    source: str,
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, dict[str, Any]]:
    """Put the user's points on their villages and place the towns again by the rules.

    Villages in ``user`` get its point and ``location_quality`` ``user_supplied``;
    towns without a 2016 point of their own move to the mean of their real village
    points, and villages still without a real point follow their town.
    Returns the towns, the villages and a report (what improved).
    """
    villages = pd.DataFrame(villages.drop(columns="geometry", errors="ignore")).copy()
    towns = pd.DataFrame(towns.drop(columns="geometry", errors="ignore")).copy()
    before_v = villages.set_index("village_code")["location_quality"]
    before_t = towns.set_index("town_code")[["lon", "lat", "location_quality"]]
    idx = pd.Index(villages["village_code"]).get_indexer(pd.Index(user["village_code"]))
    villages.loc[villages.index[idx], "lon"] = user["lon"].to_numpy()
    villages.loc[villages.index[idx], "lat"] = user["lat"].to_numpy()
    villages.loc[villages.index[idx], "location_quality"] = "user_supplied"
    villages.loc[villages.index[idx], "source"] = (
        villages.loc[villages.index[idx], "source"] + f"; point: user file {Path(source).name}"
    )
    towns_out, villages_out = pb.finish_towns_and_villages(towns, villages, seats)
    after_t = towns_out.set_index("town_code")
    moved = (after_t["lon"] != before_t["lon"]) | (after_t["lat"] != before_t["lat"])
    improved = before_v.loc[user["village_code"]].value_counts().to_dict()
    report = {
        "villages": len(user),
        **{f"from {k}": v for k, v in sorted(improved.items())},
        "towns moved": int(moved.sum()),
    }
    return towns_out, villages_out, report


def _properties(path: Path) -> pd.DataFrame:
    """The properties of a pack's point GeoJSON as a table (codes stay text)."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    return pd.DataFrame([f["properties"] for f in doc["features"]])


def seats_from_towns(towns: pd.DataFrame) -> dict[str, tuple[float, float, str]]:
    """County seats as a built pack records them: the towns placed at a seat."""
    seats: dict[str, tuple[float, float, str]] = {}
    kinds = ("county_seat", "county_label_point", "city_label_point")
    for rec in pb.rows(towns[towns["location_quality"].isin(kinds)]):
        seats.setdefault(rec.county_code, (rec.lon, rec.lat, rec.location_quality))
    return seats


def merge_villages(
    pack: Path, file: Path, crs: str = "wgs84", out: Path | None = None
) -> BuildReport:
    """Merge the user's village points into a region pack (``region merge-villages``).

    The pack is copied beside ``out`` (default: the pack itself; for the bundled
    pack, :func:`default_out`), villages and towns are placed again, sample
    facilities standing at a moved town point follow it, a note is added to the
    README, and the copy replaces ``out``. Nothing is written when a row is bad.
    """
    from geo.region import bundled_region_dir, load_region, pack_path

    pack = Path(pack)
    region = load_region(pack)
    if out is None:
        try:
            bundled = pack.resolve() == bundled_region_dir().resolve()
        except ModuleNotFoundError:  # no bundled pack installed
            bundled = False
        out = default_out(region.code) if bundled else pack
    out = Path(out)
    towns = _properties(pack_path(pack, "towns"))
    villages = _properties(pack_path(pack, "villages"))
    user = read_user_villages(Path(file), crs, set(villages["village_code"]))
    seats = seats_from_towns(towns)
    towns_out, villages_out, merged = merge_user_villages(towns, villages, user, seats, str(file))
    # sample facilities at a town point follow their town
    facilities = json.loads(pack_path(pack, "facilities").read_text(encoding="utf-8"))
    town_at = towns_out.set_index("town_code")
    followed = 0
    for feat in facilities["features"]:
        props = feat["properties"]
        quality = str(props.get("location_quality", ""))
        code = props.get("town_code")
        if (
            props.get("is_sample")
            and quality.startswith("sample_at_town_")
            and code in town_at.index
        ):
            row = town_at.loc[code]
            xy = [round(float(row["lon"]), 6), round(float(row["lat"]), 6)]
            if xy != feat["geometry"]["coordinates"]:
                feat["geometry"]["coordinates"] = xy
                props["location_quality"] = f"sample_at_town_{row['location_quality']}"
                followed += 1
    merged["sample facilities moved"] = followed
    with atomic_folder(out) as tmp:
        shutil.copytree(pack, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__*"))
        write_geojson(towns_out, pack_path(tmp, "towns"))
        write_geojson(villages_out, pack_path(tmp, "villages"))
        pack_path(tmp, "facilities").write_text(
            features_text(facilities["features"]), encoding="utf-8"
        )
        readme = tmp / "README.md"
        text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
        readme.write_text(
            text.rstrip("\n")
            + f"\n\n## Villages merged from {Path(file).name}\n\n* {_fmt(merged)}\n",
            encoding="utf-8",
        )
    return BuildReport(
        code=region.code,
        name=region.name,
        level=region.level,
        out=out,
        counts={
            "counties": len(region.counties),
            "towns": len(towns_out),
            "villages": len(villages_out),
            "facilities": len(facilities["features"]),
        },
        town_quality=pb.counts_of(towns_out["location_quality"]),
        village_quality=pb.counts_of(villages_out["location_quality"]),
        merged=merged,
    )
