"""A region is data: the counties, bounds and files of a region pack folder.

A *region pack* is a folder built by ``skillcircle region build CODE`` (or, for
the bundled default, by the scripts in ``scripts/``)::

    <pack>/region.json                 name, code, level, counties, bounds, metric CRS
    <pack>/boundaries/city.geojson     the region outline (one feature)
    <pack>/boundaries/counties.geojson one feature per county, with 2020 census population
    <pack>/boundaries/towns.geojson    towns (Points)
    <pack>/boundaries/villages.geojson villages (Points)
    <pack>/network/{nodes,edges}.csv   the coarse major-roads network
    <pack>/facilities.geojson          facilities (samples outside the bundled region)

The bundled pack is Jiaxing (嘉兴市, 330400), shipped inside the wheel as the
package ``skillcircle_data`` (the repository's ``data/`` folder) and found with
:mod:`importlib.resources`. Nothing else in the code knows a region: the
counties a token may edit, the lon/lat ranges of the API, the study area of the
bundled network and the names on the map all come from the :class:`Region` that
:class:`geo.settings.Settings` holds.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from geo._errors import SettingsError
from geo._validate import Area, Bounds

#: Version of ``region.json`` this code reads and writes.
FORMAT = 1
#: The bundled default region (Jiaxing).
BUNDLED_CODE = "330400"
#: How far the input box reaches beyond the region outline (metres): a point this
#: close to the region is still checked by the network, not refused as a typo.
BOUNDS_MARGIN_M = 20_000.0
LEVELS = ("province", "city", "county")
PackTable = Literal["meta", "city", "counties", "towns", "villages", "nodes", "edges", "facilities"]
#: Where each file of a pack lies, relative to the pack folder (the one place the
#: layout is written: :func:`pack_path` and ``Settings.<table>_path`` read it).
PACK_PATHS: Mapping[PackTable, str] = MappingProxyType(
    {
        "meta": "region.json",
        "city": "boundaries/city.geojson",
        "counties": "boundaries/counties.geojson",
        "towns": "boundaries/towns.geojson",
        "villages": "boundaries/villages.geojson",
        "nodes": "network/nodes.csv",
        "edges": "network/edges.csv",
        "facilities": "facilities.geojson",
    }
)
#: Files every pack has (relative to the pack folder).
PACK_FILES = tuple(PACK_PATHS.values())
_CODE = re.compile(r"^\d{6}$")


def pack_path(folder: str | os.PathLike[str], table: PackTable) -> Path:
    """The file of ``table`` (:data:`PACK_PATHS`) in the pack ``folder``."""
    return Path(folder, PACK_PATHS[table])


class RegionError(SettingsError):
    """A region pack is missing, incomplete or malformed, or a region code is unknown."""


@dataclass(frozen=True)
class County:
    """A county-level unit (区/县/县级市) of a region."""

    name: str
    adcode: str
    city: str = ""
    city_code: str = ""


@dataclass(frozen=True)
class Region:
    """The metadata of a region pack (``region.json``); the tables stay in their files.

    Attributes
    ----------
    code
        Statistical code padded to 6 digits (province ``330000``, city ``330400``,
        county ``330211``).
    name
        Chinese name, e.g. ``嘉兴市``.
    level
        ``province``, ``city`` or ``county``.
    counties
        The county-level units, sorted by adcode, names unique in the pack.
    bounds
        ``(min_lon, min_lat, max_lon, max_lat)``: the outline's box grown by
        :data:`BOUNDS_MARGIN_M`. Input points on the region's own (coarse)
        network must lie in it.
    metric_crs
        The UTM zone of the outline (``EPSG:326zz``), for areas and distances.
    path
        The pack folder.
    """

    code: str
    name: str
    level: str
    province: str
    counties: tuple[County, ...]
    bounds: Bounds
    metric_crs: str
    path: Path
    network_description: str = ""
    network_attribution: str = "© OpenStreetMap contributors, ODbL 1.0"
    built_by: str = ""

    @property
    def area(self) -> Area:
        """The :class:`~geo._validate.Area` input points must lie in on the coarse network."""
        return Area(
            self.bounds,
            f"the region {self.name} ({self.code})",
            "or choose the region it belongs to (--region / SKILLCIRCLE_REGION)",
        )

    @property
    def county_names(self) -> tuple[str, ...]:
        """The names of the region's counties, in the pack's order."""
        return tuple(c.name for c in self.counties)

    @property
    def adcodes(self) -> Mapping[str, str]:
        """County name -> adcode."""
        return {c.name: c.adcode for c in self.counties}

    def county(self, name: str) -> County:
        """The county of this name, else a :class:`RegionError` listing the known ones."""
        for county in self.counties:
            if county.name == name:
                return county
        raise RegionError(
            f"unknown county {name!r} in {self.name}; use one of {'、'.join(self.county_names)}"
        )

    def file(self, relative: str) -> Path:
        """A file of the pack (its existence was checked when the pack was loaded)."""
        return self.path / relative

    @property
    def label(self) -> str:
        """``嘉兴市 (330400)``."""
        return f"{self.name} ({self.code})"


# --------------------------------------------------------------------------- locating


def bundled_region_dir() -> Path:
    """The folder of the bundled Jiaxing pack (package ``skillcircle_data``)."""
    return Path(str(resources.files("skillcircle_data")))


def regions_home() -> Path:
    """Where ``region build`` writes packs by default: ``$SKILLCIRCLE_HOME/regions``
    (default ``~/.local/share/skillcircle/regions``)."""
    home = os.environ.get("SKILLCIRCLE_HOME")
    base = Path(home) if home else Path.home() / ".local" / "share" / "skillcircle"
    return base / "regions"


def resolve_region(spec: str | Path | None) -> Path:
    """The pack folder for a ``--region`` value.

    Parameters
    ----------
    spec
        A pack folder; or a 6-digit code: ``330400`` is the bundled pack, any
        other code the pack ``region build`` wrote under :func:`regions_home`;
        ``None`` or ``""`` is the bundled pack.

    Raises
    ------
    RegionError
        If a code has no pack or a path is not a folder.
    """
    if spec is None or str(spec) == "":
        return bundled_region_dir()
    text = str(spec).strip()
    if _CODE.match(text):
        built = regions_home() / text
        if pack_path(built, "meta").is_file():
            return built
        if text == BUNDLED_CODE:
            return bundled_region_dir()
        raise RegionError(
            f"no region pack for code {text} (looked in {built}); build it with "
            f"`skillcircle region build {text}` or pass the pack folder"
        )
    path = Path(text).expanduser()
    if not path.is_dir():
        raise RegionError(
            f"{path}: region pack folder not found; pass a folder written by "
            "`skillcircle region build CODE --out DIR`, or a region code"
        )
    return path


# --------------------------------------------------------------------------- reading


def load_region(path: str | Path) -> Region:
    """Read and check a region pack folder.

    Parameters
    ----------
    path
        The pack folder (see the module docstring for its files).

    Returns
    -------
    Region

    Raises
    ------
    RegionError
        If the folder, ``region.json`` or any pack file is missing, or
        ``region.json`` is not valid; the message names the file and what to do.
    """
    folder = Path(path)
    return _load_region(folder.resolve() if folder.exists() else folder)


def _load_region(folder: Path) -> Region:
    meta_path = pack_path(folder, "meta")
    remedy = "rebuild the pack with `skillcircle region build CODE --out DIR`"
    for relative in PACK_FILES:
        if not (folder / relative).is_file():
            raise RegionError(f"{folder / relative}: region pack file missing; {remedy}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RegionError(f"{meta_path}: cannot read region.json ({exc}); {remedy}") from exc
    return region_from_dict(meta, folder, str(meta_path))


def region_from_dict(meta: Any, folder: Path, where: str = "region.json") -> Region:
    """A :class:`Region` from the parsed ``region.json`` (checked field by field)."""

    def bad(what: str) -> RegionError:
        return RegionError(f"{where}: {what}; rebuild the pack with `skillcircle region build`")

    if not isinstance(meta, dict):
        raise bad("is not a JSON object")
    if meta.get("format") != FORMAT:
        raise bad(f"format {meta.get('format')!r} is not {FORMAT}")
    for key in ("code", "name", "level", "counties", "bounds", "metric_crs"):
        if key not in meta:
            raise bad(f"key {key!r} is missing")
    code = str(meta["code"])
    if not _CODE.match(code):
        raise bad(f"code {code!r} is not 6 digits")
    if meta["level"] not in LEVELS:
        raise bad(f"level {meta['level']!r} is not one of {', '.join(LEVELS)}")
    counties = []
    for i, item in enumerate(meta["counties"] if isinstance(meta["counties"], list) else ()):
        if not isinstance(item, dict) or not item.get("name") or not item.get("adcode"):
            raise bad(f"county {i + 1} needs a name and an adcode")
        counties.append(
            County(
                str(item["name"]),
                str(item["adcode"]),
                str(item.get("city", "")),
                str(item.get("city_code", "")),
            )
        )
    if not counties:
        raise bad("has no counties")
    names = [c.name for c in counties]
    if len(set(names)) != len(names):
        raise bad("county names repeat (each must be unique in a pack)")
    bounds = meta["bounds"]
    if (
        not isinstance(bounds, list)
        or len(bounds) != 4
        or not all(isinstance(b, int | float) for b in bounds)
        or not (bounds[0] < bounds[2] and bounds[1] < bounds[3])
    ):
        raise bad(f"bounds {bounds!r} are not [min_lon, min_lat, max_lon, max_lat]")
    from geo.settings import _check_metric_crs

    _check_metric_crs(str(meta["metric_crs"]))
    found = meta.get("network")
    network: dict[str, Any] = found if isinstance(found, dict) else {}
    return Region(
        code=code,
        name=str(meta["name"]),
        level=str(meta["level"]),
        province=str(meta.get("province", "")),
        counties=tuple(sorted(counties, key=lambda c: c.adcode)),
        bounds=(float(bounds[0]), float(bounds[1]), float(bounds[2]), float(bounds[3])),
        metric_crs=str(meta["metric_crs"]),
        path=folder,
        network_description=str(network.get("description", "")),
        network_attribution=str(network.get("attribution", Region.network_attribution)),
        built_by=str(meta.get("built_by", "")),
    )


# --------------------------------------------------------------------------- writing


def grow_bounds(bounds: Bounds, margin_m: float) -> Bounds:
    """A lon/lat box grown by ``margin_m`` metres on every side (WGS84 ellipsoid).

    North of the northern edge, south of the southern edge, and east/west at
    the latitude farthest from the equator (where a degree of longitude is
    shortest), so the box holds every point within ``margin_m`` of the input
    box. Latitudes are clipped to ±90°, longitudes to ±180°.
    """
    from pyproj import Geod

    min_lon, min_lat, max_lon, max_lat = (float(b) for b in bounds)
    geod = Geod(ellps="WGS84")
    _, north, _ = geod.fwd(0.0, max_lat, 0.0, margin_m)
    _, south, _ = geod.fwd(0.0, min_lat, 180.0, margin_m)
    far = max(min_lat, max_lat, key=abs)
    far = min(max(far, -89.0), 89.0)  # the pole has no east
    east, _, _ = geod.fwd(0.0, far, 90.0, margin_m)
    return (
        max(min_lon - east, -180.0),
        max(south if south <= min_lat else -90.0, -90.0),
        min(max_lon + east, 180.0),
        min(north if north >= max_lat else 90.0, 90.0),
    )


def region_dict(
    *,
    code: str,
    name: str,
    level: str,
    province: str,
    counties: list[dict[str, str]],
    outline: Any,
    network_description: str,
    counts: Mapping[str, int],
    built_by: str,
) -> dict[str, Any]:
    """The ``region.json`` document of a pack (keys in the documented order).

    ``outline`` is the region's shapely (Multi)Polygon in WGS84: the bounds are
    its box grown by :data:`BOUNDS_MARGIN_M`, the metric CRS the UTM zone at a
    point inside it.
    """
    from geo.projection import utm_crs

    inside = outline.representative_point()
    return {
        "format": FORMAT,
        "code": code,
        "name": name,
        "level": level,
        "province": province,
        "counties": sorted(counties, key=lambda c: c["adcode"]),
        "bounds": [round(b, 4) for b in grow_bounds(outline.bounds, BOUNDS_MARGIN_M)],
        "metric_crs": utm_crs([inside.x], [inside.y]),
        "network": {
            "description": network_description,
            "attribution": "© OpenStreetMap contributors, ODbL 1.0",
        },
        "counts": dict(counts),
        "built_by": built_by,
    }


def write_region_json(path: Path, document: Mapping[str, Any]) -> None:
    """Write ``region.json`` deterministically (1-space indent, UTF-8, trailing newline)."""
    text = json.dumps(document, ensure_ascii=False, indent=1)
    Path(path).write_text(text + "\n", encoding="utf-8")
