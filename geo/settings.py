"""One frozen, validated settings object: modes, speeds, thresholds, CRS and paths.

Every function that needs a parameter takes a :class:`Settings` explicitly; there
is no module-level mutable state. Defaults (documented in README):

=========  =====================  ============================  =====================
mode       on the road network    excluded ``highway`` classes  access leg (off road)
=========  =====================  ============================  =====================
walk       5 km/h                 motorway(_link), trunk with    5 km/h
                                  ``foot=no``
ebike      15 km/h                motorway(_link); trunk(_link)  12 km/h
                                  where tagged ``bicycle=no``
                                  or ``motorroad=yes``
drive      OSM ``maxspeed``, else  none (``oneway`` respected)     25 km/h
           per highway class
=========  =====================  ============================  =====================

On the bundled coarse network (major roads without classes) the road speeds are
``coarse_speed_kmh`` per mode. Every point reaches the network by an *access leg*:
straight-line distance x ``detour_factor`` at the mode's ``access_kmh``.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, overload

from geo._errors import SettingsError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from geo.region import PackTable, Region

#: Facility layers in display order: key -> Chinese label.
LAYERS: Mapping[str, str] = MappingProxyType(
    {
        "technical_school": "技工院校",
        "training_institution": "职业培训机构",
        "evaluation_org": "社会评价组织",
        "training_base": "公共实训基地",
        "master_studio": "技能大师工作室",
        "village_station": "镇村培训站点",
        "experience_site": "职业体验点",
    }
)

#: Travel modes: key -> Chinese label.
MODES: Mapping[str, str] = MappingProxyType(
    {"walk": "步行", "ebike": "电动自行车", "drive": "驾车"}
)

#: Drive speeds (km/h) per OSM ``highway`` class, from OSRM's car profile
#: (``profiles/car.lua``, ``speeds.highway``). Only these classes are drivable; a
#: tagged ``maxspeed`` replaces the class speed, times ``maxspeed_factor`` (OSRM's
#: ``speed_reduction``, 0.8: traffic rarely runs at the limit).
DEFAULT_DRIVE_SPEEDS: Mapping[str, float] = MappingProxyType(
    {
        "motorway": 90.0,
        "motorway_link": 45.0,
        "trunk": 85.0,
        "trunk_link": 40.0,
        "primary": 65.0,
        "primary_link": 30.0,
        "secondary": 55.0,
        "secondary_link": 25.0,
        "tertiary": 40.0,
        "tertiary_link": 20.0,
        "unclassified": 25.0,
        "residential": 25.0,
        "living_street": 10.0,
        "service": 15.0,
    }
)

#: ``highway`` classes that carry no motor traffic (excluded from ``drive``).
NON_MOTOR_HIGHWAYS: frozenset[str] = frozenset(
    {
        "footway",
        "pedestrian",
        "path",
        "steps",
        "cycleway",
        "bridleway",
        "corridor",
        "elevator",
        "platform",
        "track",
        "construction",
        "proposed",
        "abandoned",
        "bus_guideway",
        "raceway",
        "escape",
    }
)


#: Default routing halo (metres) around a region when an OSM file is clipped to it;
#: see :func:`geo.osmclip.clip_area` for why 10 km.
DEFAULT_CLIP_HALO_M = 10_000.0


def _default_data_dir() -> Path:
    """The region pack: ``SKILLCIRCLE_REGION`` (a folder or a code), else
    ``SKILLCIRCLE_DATA`` (a folder), else the bundled Jiaxing pack."""
    from geo.region import bundled_region_dir, resolve_region

    region = os.environ.get("SKILLCIRCLE_REGION")
    if region:
        return resolve_region(region)
    env = os.environ.get("SKILLCIRCLE_DATA")
    if env:
        return Path(env)
    return bundled_region_dir()


def _default_cache_dir() -> Path:
    env = os.environ.get("SKILLCIRCLE_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "skillcircle"


class _PackFile:
    """``settings.<table>_path``: the file of ``table`` in the region pack
    :attr:`Settings.data_dir` (laid out by :data:`geo.region.PACK_PATHS`)."""

    def __init__(self, table: PackTable) -> None:
        self.table: PackTable = table

    @overload
    def __get__(self, settings: None, owner: type | None = None) -> _PackFile: ...
    @overload
    def __get__(self, settings: Settings, owner: type | None = None) -> Path: ...
    def __get__(self, settings: Settings | None, owner: type | None = None) -> Path | _PackFile:
        if settings is None:
            return self
        from geo.region import pack_path

        return pack_path(settings.data_dir, self.table)


@dataclass(frozen=True)
class Settings:
    """Validated parameters of an analysis.

    Parameters
    ----------
    walk_kmh, ebike_kmh
        Road speeds for walking and e-bikes on any network.
    drive_speeds
        Drive speed per OSM ``highway`` class when ``maxspeed`` is absent; classes
        not listed are not drivable (OSRM's car profile, :data:`DEFAULT_DRIVE_SPEEDS`).
    maxspeed_factor
        A tagged ``maxspeed`` times this is the drive speed (OSRM: 0.8).
    coarse_speed_kmh
        Per-mode speeds on the bundled coarse network (it has no road classes).
    access_kmh
        Per-mode speeds of the off-network access leg.
    detour_factor
        Straight-line distance x this = assumed local path length of access legs.
    access_flag_m
        Points whose nearest road node is farther than this are flagged ``far_from_road``.
    access_max_m_osm, access_max_m_coarse
        Longest usable access leg on a street-level OSM network (short: the streets
        are there) and on the bundled coarse network (long: local roads are missing).
    minutes
        The coverage threshold (the "30-minute circle").
    max_minutes
        Travel times above this are reported as unreachable (empty), never as a number.
    isochrone_resolution_m
        Isochrone polygons are traced on a grid of this cell size (metres); their
        boundary lies within about one cell of the exact shape.
    isochrone_buffer_m
        On a street network, an isochrone covers the reached streets and the
        places at most this far from them (less near the frontier, where the
        time left for the access leg runs out). On the coarse network the access
        leg itself (``access_max_m_coarse``) is the limit: its local roads are missing.
    turn_penalty_s, turn_bias, oncoming_turn_penalty_s, u_turn_penalty_s, signal_delay_s
        Drive turn model of OSRM's car profile (see :func:`geo.routing.turn_arcs`):
        the largest turn cost, its asymmetry (> 1: right-hand traffic, left turns
        cost more), the extra wait of a turn across oncoming traffic, the extra
        cost of a U-turn (allowed at dead ends only) and the delay at traffic signals.
    metric_crs
        Projected CRS (metres) for distances, access legs and areas. ``None``
        (the default) means "choose from the data": the UTM zone at the median
        of the network's nodes (:meth:`metric_crs_for`), e.g. EPSG:32651 for
        Jiaxing and Shanghai, EPSG:32635 for Helsinki. Set it to pin one CRS.
    clip_halo_m
        When a big OSM file is read for a region, only the roads within the region's
        outline grown by this many metres are read (:func:`geo.osmclip.clip_area`):
        room for routes that leave the region and come back, and for access legs
        across the border. 10 km by default; 0 clips to the outline itself.
    data_dir
        The region pack folder (:mod:`geo.region`): its ``region.json`` is
        :attr:`region`, its files the default villages, towns, counties,
        facilities and coarse network (``villages_path``, ``towns_path``,
        ``counties_path``, ``city_path``, ``facilities_path``,
        ``coarse_nodes_path``, ``coarse_edges_path``). Default:
        ``SKILLCIRCLE_REGION`` (a folder or a code), else ``SKILLCIRCLE_DATA``,
        else the bundled Jiaxing pack.
    cache_dir
        Network and results caches (``SKILLCIRCLE_CACHE``, else ``~/.cache/skillcircle``).
    """

    walk_kmh: float = 5.0
    ebike_kmh: float = 15.0
    drive_speeds: Mapping[str, float] = field(default_factory=lambda: DEFAULT_DRIVE_SPEEDS)
    maxspeed_factor: float = 0.8
    coarse_speed_kmh: Mapping[str, float] = field(
        default_factory=lambda: MappingProxyType({"walk": 5.0, "ebike": 15.0, "drive": 50.0})
    )
    access_kmh: Mapping[str, float] = field(
        default_factory=lambda: MappingProxyType({"walk": 5.0, "ebike": 12.0, "drive": 25.0})
    )
    detour_factor: float = 1.3
    access_flag_m: float = 2000.0
    access_max_m_osm: float = 500.0
    access_max_m_coarse: float = 15000.0
    minutes: float = 30.0
    max_minutes: float = 120.0
    isochrone_resolution_m: float = 20.0
    isochrone_buffer_m: float = 50.0
    turn_penalty_s: float = 7.5
    turn_bias: float = 1.075
    oncoming_turn_penalty_s: float = 2.0
    u_turn_penalty_s: float = 20.0
    signal_delay_s: float = 2.0
    metric_crs: str | None = None
    clip_halo_m: float = DEFAULT_CLIP_HALO_M
    data_dir: Path = field(default_factory=_default_data_dir)
    cache_dir: Path = field(default_factory=_default_cache_dir)

    def __post_init__(self) -> None:
        positive = {
            "walk_kmh": self.walk_kmh,
            "ebike_kmh": self.ebike_kmh,
            "maxspeed_factor": self.maxspeed_factor,
            "detour_factor": self.detour_factor,
            "minutes": self.minutes,
            "max_minutes": self.max_minutes,
            "isochrone_resolution_m": self.isochrone_resolution_m,
            "isochrone_buffer_m": self.isochrone_buffer_m,
            "turn_bias": self.turn_bias,
            "access_flag_m": self.access_flag_m,
            "access_max_m_osm": self.access_max_m_osm,
            "access_max_m_coarse": self.access_max_m_coarse,
        }
        for name, value in positive.items():
            if not (value > 0):  # also rejects NaN
                raise SettingsError(f"setting {name} must be a positive number, got {value!r}")
        for name in (
            "turn_penalty_s",
            "oncoming_turn_penalty_s",
            "u_turn_penalty_s",
            "signal_delay_s",
        ):
            if not (getattr(self, name) >= 0):
                raise SettingsError(f"setting {name} must be >= 0, got {getattr(self, name)!r}")
        if not (math.isfinite(self.clip_halo_m) and self.clip_halo_m >= 0):
            raise SettingsError(
                f"setting clip_halo_m must be a number of metres >= 0, got {self.clip_halo_m!r}"
            )
        if self.detour_factor < 1:
            raise SettingsError(f"detour_factor must be >= 1, got {self.detour_factor}")
        if self.minutes > self.max_minutes:
            raise SettingsError(
                f"threshold minutes ({self.minutes}) must not exceed max_minutes "
                f"({self.max_minutes}); raise --max-minutes or lower --minutes"
            )
        for table_name in ("coarse_speed_kmh", "access_kmh"):
            table = getattr(self, table_name)
            missing = set(MODES) - set(table)
            if missing:
                raise SettingsError(f"{table_name} lacks modes {sorted(missing)}")
            for mode, kmh in table.items():
                if not (kmh > 0):
                    raise SettingsError(f"{table_name}[{mode}] must be positive, got {kmh!r}")
        if self.metric_crs is not None:
            _check_metric_crs(self.metric_crs)
        for hwy, kmh in self.drive_speeds.items():
            if not (kmh > 0):
                raise SettingsError(f"drive_speeds[{hwy}] must be positive, got {kmh!r}")
        # freeze the mappings so a Settings can be shared read-only
        object.__setattr__(self, "drive_speeds", MappingProxyType(dict(self.drive_speeds)))
        object.__setattr__(self, "coarse_speed_kmh", MappingProxyType(dict(self.coarse_speed_kmh)))
        object.__setattr__(self, "access_kmh", MappingProxyType(dict(self.access_kmh)))
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        object.__setattr__(self, "cache_dir", Path(self.cache_dir))

    @classmethod
    def for_region(cls, spec: str | Path | None, **changes: Any) -> Settings:
        """Settings of the region pack ``spec``, with the pack read and checked now.

        Parameters
        ----------
        spec
            A pack folder or a region code (:func:`geo.region.resolve_region`);
            ``None``: ``SKILLCIRCLE_REGION``/``SKILLCIRCLE_DATA`` or the bundled pack.
        **changes
            Other fields.

        Raises
        ------
        geo.region.RegionError
            Unknown code, missing folder or an incomplete pack.
        """
        from geo.region import resolve_region

        if spec:
            changes["data_dir"] = resolve_region(spec)
        settings = cls(**changes)
        settings.region  # noqa: B018 - read and check the pack now, not mid-command
        return settings

    def with_(self, **changes: Any) -> Settings:
        """Return a copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def metric_crs_for(self, lon: ArrayLike, lat: ArrayLike) -> str:
        """The metric CRS for data at these WGS84 coordinates.

        Parameters
        ----------
        lon, lat
            WGS84 degrees, typically a network's nodes (``net.lon, net.lat``).

        Returns
        -------
        str
            ``metric_crs`` if it is set, else :func:`geo.projection.utm_crs` of
            the coordinates (the UTM zone at their median).

        Raises
        ------
        SettingsError
            If ``metric_crs`` is unset and no UTM zone fits the coordinates.
        """
        if self.metric_crs is not None:
            return self.metric_crs
        from geo.projection import utm_crs

        return utm_crs(lon, lat)

    def access_max_m(self, coarse: bool) -> float:
        """Longest usable access leg for the kind of network."""
        return self.access_max_m_coarse if coarse else self.access_max_m_osm

    def road_kmh(self, mode: str) -> float:
        """Uniform road speed of ``walk``/``ebike`` on a classed (OSM) network."""
        check_mode(mode)
        if mode == "walk":
            return self.walk_kmh
        if mode == "ebike":
            return self.ebike_kmh
        raise SettingsError("drive speeds depend on the road class; use drive_speeds")

    @functools.cached_property
    def region(self) -> Region:
        """The region of :attr:`data_dir` (read once per Settings; a
        :class:`geo.region.RegionError` if the pack is missing or incomplete)."""
        from geo.region import load_region

        return load_region(self.data_dir)

    facilities_path = _PackFile("facilities")
    villages_path = _PackFile("villages")
    towns_path = _PackFile("towns")
    counties_path = _PackFile("counties")
    city_path = _PackFile("city")
    coarse_nodes_path = _PackFile("nodes")
    coarse_edges_path = _PackFile("edges")


@functools.cache
def _check_metric_crs(crs: str) -> None:
    """Raise a :class:`SettingsError` unless ``crs`` is a projected CRS in metres."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        parsed = CRS.from_user_input(crs)
    except CRSError as exc:
        raise SettingsError(
            f"metric_crs {crs!r} is not a CRS pyproj knows ({exc}); use an EPSG code "
            "such as 'EPSG:32651', or None to choose the UTM zone from the data"
        ) from exc
    units = {axis.unit_name for axis in parsed.axis_info}
    if not parsed.is_projected or units != {"metre"}:
        raise SettingsError(
            f"metric_crs {crs!r} is not a projected CRS in metres; use a UTM zone such as "
            "'EPSG:32651', or None to choose it from the data"
        )


def check_mode(mode: str) -> str:
    """Return ``mode`` if it is known, else raise a :class:`SettingsError`."""
    if mode not in MODES:
        raise SettingsError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    return mode


def check_layer(layer: str) -> str:
    """Return ``layer`` if it is known, else raise a :class:`SettingsError`."""
    if layer not in LAYERS:
        raise SettingsError(f"unknown layer {layer!r}; use one of {', '.join(LAYERS)}")
    return layer
