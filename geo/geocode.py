"""Place registry rows by their address: an offline gazetteer of the region's own places.

Real union spreadsheets carry addresses (``桐乡市乌镇镇民合村``, ``浙江省嘉兴市海宁市
许村镇沈士村15号``), not coordinates. :class:`Gazetteer` matches an address against
the region's counties, towns and villages (the region pack's ``counties``,
``towns`` and ``villages`` files), county -> town -> village, and places the row
at the village's point, else at its town's point:

* ``village_from_address`` — a village matched and it has a point of its own;
* ``town_from_address`` — only the town matched, or the matched village's point
  is merely its town seat (``location_quality`` ``town_seat`` in the villages
  file): the point then really is the town's, and the label says so.

Names are matched with their usual variants: towns with or without
镇/乡/街道/办事处 (``乌镇`` is ``乌镇镇``), villages as ``X村``, ``X社区``,
``X村委会``/``X村民委员会``/``X居委会``/``X居民委员会``, counties with 县/市/区 or
bare (``海宁``); the province and city in front (``浙江省嘉兴市``) are skipped,
full-width characters and spaces are normalised (NFKC). A bare name (no suffix)
counts only when what follows it does not make it a road or another place
(``建设路`` is not ``建设街道``). An address naming a place outside the region
(``杭州市西湖区…``) is not matched, even if a town of the same name exists here.

:func:`make_geocoder` gives the offline gazetteer or an online service
(:mod:`geo.geocoders`: Amap, Tianditu) behind one interface: ``locate(addresses)``
returns, per address, a :class:`Placement` or the problem as text ("what; what
to do"), which :func:`geo.facilities.import_registry` reports row by row.
"""

from __future__ import annotations

import logging
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import ahocorasick  # type: ignore[import-not-found]
import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geo import _validate as v
from geo._errors import SettingsError

if TYPE_CHECKING:
    from geo.region import Region
    from geo.settings import Settings

logger = logging.getLogger(__name__)

#: Geocoders :func:`make_geocoder` knows.
GEOCODERS = ("offline", "amap", "tianditu")

#: Quality labels of gazetteer placements.
VILLAGE_QUALITY = "village_from_address"
TOWN_QUALITY = "town_from_address"

#: Province names by the first two digits of a statistical code (GB/T 2260).
PROVINCES: Mapping[str, str] = {
    "11": "北京市",
    "12": "天津市",
    "13": "河北省",
    "14": "山西省",
    "15": "内蒙古自治区",
    "21": "辽宁省",
    "22": "吉林省",
    "23": "黑龙江省",
    "31": "上海市",
    "32": "江苏省",
    "33": "浙江省",
    "34": "安徽省",
    "35": "福建省",
    "36": "江西省",
    "37": "山东省",
    "41": "河南省",
    "42": "湖北省",
    "43": "湖南省",
    "44": "广东省",
    "45": "广西壮族自治区",
    "46": "海南省",
    "50": "重庆市",
    "51": "四川省",
    "52": "贵州省",
    "53": "云南省",
    "54": "西藏自治区",
    "61": "陕西省",
    "62": "甘肃省",
    "63": "青海省",
    "64": "宁夏回族自治区",
    "65": "新疆维吾尔自治区",
    "71": "台湾省",
    "81": "香港特别行政区",
    "82": "澳门特别行政区",
}

# Kind suffixes stripped to find a name's stem (longest first), and the suffixes
# an address may use instead (variants).
_PROVINCE_KINDS = ("壮族自治区", "回族自治区", "维吾尔自治区", "特别行政区", "自治区", "省", "市")
_CITY_KINDS = ("自治州", "地区", "市", "盟")
_COUNTY_KINDS = ("自治县", "自治旗", "林区", "特区", "县", "市", "区", "旗")
_COUNTY_VARIANTS = ("县", "市", "区")
_TOWN_KINDS = ("街道办事处", "街道", "民族乡", "镇", "乡", "苏木")
_TOWN_VARIANTS = ("镇", "乡", "街道", "街道办事处", "办事处")
_VILLAGE_COMMITTEES = ("村民委员会", "居民委员会", "村委会", "居委会")
_VILLAGE_KINDS = ("社区", "村")
# Ways to write a village (村) and a neighbourhood (社区) committee after the stem.
_VILLAGE_VARIANTS = {
    "村": ("村", "村委会", "村民委员会", "村村委会", "村村民委员会"),
    "社区": ("社区", "居委会", "居民委员会", "社区居委会", "社区居民委员会"),
}
_COUNTRY_PREFIXES = ("中华人民共和国", "中国")

# A bare name followed by one of these is part of a road or building (海宁路, 建设路) ...
_ROAD_AFTER = re.compile(
    r"[东西南北中]?(?:大道|大街|路|街|道|巷|弄)|小区|花园|公寓|大厦|广场|公园|新村|家园"
)
# ... and a bare town or village name followed by one of these is part of another place's
# name (a bare county name is not: 秀洲 + 镇中村).
_UNIT_AFTER = re.compile(r"[省市县区镇乡村]|社区|委")
# Leading words that name an administrative unit (province, city, county).
_ADMIN_TOKEN = re.compile(r".+?(?:特别行政区|自治区|自治州|自治县|地区|省|市|盟|县|区|旗)")
# ... unless they are a zone inside the region (嘉兴经济技术开发区, 嘉兴港区) or a
# compound, campus or market (文昌小区, 农贸市场 is cut at 市).
_NOT_ADMIN = re.compile(
    r"(?:开发区|高新区|园区|新区|工业区|经济区|度假区|示范区|合作区|港区|景区"
    r"|小区|社区|街区|校区|厂区|城区|片区|商业区|农贸市|菜市|超市)$"
)

_COUNTY, _TOWN, _VILLAGE = 0, 1, 2
#: Ranks of a keyword for a place, best first: its own name, a variant of the same kind
#: (虎啸村民委员会 for 虎啸村), a variant of the other kind (虎啸社区 for 虎啸村), the bare stem.
_OWN, _VARIANT, _OTHER_KIND, _BARE = 0, 1, 2, 3


@dataclass(frozen=True)
class Placement:
    """Where an address was placed (WGS84) and the region units it lies in.

    Attributes
    ----------
    lon, lat
        WGS84 degrees.
    county, town, town_code
        The county and town of the place (``town``/``town_code`` may be empty
        for an online result whose town could not be told).
    location_quality
        ``village_from_address``, ``town_from_address`` or ``geocoded_<service>:<level>``.
    matched
        What the address was matched to, for messages and logs
        (``桐乡市乌镇镇民合村``).
    """

    lon: float
    lat: float
    county: str
    town: str
    town_code: str
    location_quality: str
    matched: str


class Geocoder(Protocol):
    """Anything that places addresses: the offline gazetteer or an online service."""

    name: str

    def locate(self, addresses: Sequence[str]) -> list[Placement | str]:
        """One :class:`Placement` or problem text ("what; what to do") per address."""
        ...


_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """NFKC (full-width digits, letters, spaces and brackets to ASCII), no whitespace."""
    return _SPACE.sub("", unicodedata.normalize("NFKC", text))


def _strip_kind(name: str, kinds: Iterable[str], min_stem: int = 2) -> tuple[str, str]:
    """``(stem, kind)`` of ``name``; ``(name, "")`` if no kind leaves a stem of ``min_stem``."""
    for kind in kinds:
        if name.endswith(kind) and len(name) - len(kind) >= min_stem:
            return name[: -len(kind)], kind
    return name, ""


def short_name(name: str, kinds: Iterable[str]) -> str:
    """``嘉兴市`` -> ``嘉兴``, ``广西壮族自治区`` -> ``广西`` (unchanged if nothing is left)."""
    return _strip_kind(name, kinds)[0]


@dataclass(frozen=True)
class _Place:
    level: int
    name: str  # official name
    county: str
    town: str
    town_code: str
    lon: float
    lat: float
    own_point: bool  # a village with a point of its own (not its town seat)

    @property
    def label(self) -> str:
        if self.level == _COUNTY:
            return self.county
        if self.level == _TOWN:
            return f"{self.county}{self.town}"
        return f"{self.county}{self.town}{self.name}"


class _Span(NamedTuple):
    start: int
    end: int
    text: str
    levels: tuple[tuple[tuple[int, int], ...], ...]  # per level: (place index, rank)


class _NameIndex:
    """The places of a gazetteer and every name an address may use for them.

    ``keywords`` maps each name variant to ``{place index: rank}`` (the best rank
    per place, ``_OWN`` … ``_BARE``); :meth:`automaton` turns it into the
    Aho-Corasick matcher :meth:`Gazetteer.match` runs.
    """

    def __init__(self) -> None:
        self.places: list[_Place] = []
        self.keywords: dict[str, dict[int, int]] = {}
        self._town_by_code: dict[str, int] = {}
        self._town_by_name: dict[tuple[str, str], int] = {}

    def add_counties(self, counties: gpd.GeoDataFrame) -> list[str]:
        """Index the counties (``X县``/``X市``/``X区`` and bare ``X``); returns their names."""
        names = _texts(counties, "county")
        for county in names:
            index = self._place(_COUNTY, county, county, "", "", np.nan, np.nan, False)
            self._add_unit(county, index, _COUNTY_KINDS, _COUNTY_VARIANTS)
        return names

    def add_towns(self, towns: gpd.GeoDataFrame) -> int:
        """Index the towns (``乌镇``, ``乌镇镇``, ``X街道办事处`` …); returns how many have
        a code."""
        for town, county, code, x, y in zip(
            _texts(towns, "town"),
            _texts(towns, "county"),
            _texts(towns, "town_code"),
            towns.geometry.x,
            towns.geometry.y,
            strict=True,
        ):
            index = self._place(_TOWN, town, county, town, code, x, y, False)
            if code:
                self._town_by_code[code] = index
            self._town_by_name[(county, town)] = index
            self._add_unit(town, index, _TOWN_KINDS, _TOWN_VARIANTS)
        return len(self._town_by_code)

    def add_villages(self, villages: gpd.GeoDataFrame) -> int:
        """Index the villages of the indexed towns (by ``town_code``, else county and town
        name); returns how many were indexed (the others are logged and left out)."""
        skipped = 0
        for name, county, town, code, quality, x, y in zip(
            _texts(villages, "village_name"),
            _texts(villages, "county"),
            _texts(villages, "town"),
            _texts(villages, "town_code"),
            _texts(villages, "location_quality"),
            villages.geometry.x,
            villages.geometry.y,
            strict=True,
        ):
            town_at = self._town_by_code.get(code) if code else None
            if town_at is None:
                town_at = self._town_by_name.get((county, town))
            if town_at is None:
                skipped += 1
                continue
            at = self.places[town_at]
            own_point = not quality.endswith("_seat")  # town_seat: placed on its town's point
            index = self._place(_VILLAGE, name, at.county, at.town, at.town_code, x, y, own_point)
            self._add_village(name, index)
        if skipped:
            logger.warning("gazetteer: %d villages name no known town and were left out", skipped)
        return len(villages) - skipped

    def automaton(self) -> Any:
        """The matcher: per keyword its length, the places per level and, for keywords
        that are some place's bare stem, what is left when the next word makes the
        bare name a road (``no_bare``) or another place (``no_bare_below``)."""
        automaton = ahocorasick.Automaton()
        for key, ranks in self.keywords.items():
            levels = tuple(
                tuple((i, r) for i, r in ranks.items() if self.places[i].level == level)
                for level in (_COUNTY, _TOWN, _VILLAGE)
            )
            no_bare = no_bare_below = None
            if any(r == _BARE for r in ranks.values()):
                no_bare = tuple(tuple((i, r) for i, r in lv if r != _BARE) for lv in levels)
                no_bare_below = (levels[_COUNTY], *no_bare[_TOWN:])
            automaton.add_word(key, (len(key), levels, no_bare, no_bare_below))
        automaton.make_automaton()
        return automaton

    def _place(self, *fields: Any) -> int:
        self.places.append(_Place(*fields))
        return len(self.places) - 1

    def _add(self, key: str, index: int, rank: int) -> None:  # names are normalised already
        if len(key) < 2:
            return
        ranks = self.keywords.setdefault(key, {})
        ranks[index] = min(rank, ranks.get(index, rank))

    def _add_unit(
        self, name: str, index: int, kinds: Sequence[str], variants: Sequence[str]
    ) -> None:
        """A county or town: its name, its stem with each kind of its level, the bare stem."""
        stem, kind = _strip_kind(name, kinds)
        self._add(name, index, _OWN)
        if kind:
            for suffix in variants:
                self._add(stem + suffix, index, _VARIANT)
            self._add(stem, index, _BARE)

    def _add_village(self, name: str, index: int) -> None:
        """A village: its name with and without the committee, every committee variant of
        its kind (村/社区) and of the other kind, the bare stem."""
        base, committee = _strip_kind(name, _VILLAGE_COMMITTEES, min_stem=1)
        stem, kind = _strip_kind(base, _VILLAGE_KINDS)
        self._add(name, index, _OWN)
        self._add(base, index, _OWN if kind else _BARE)
        kind = kind or ("社区" if committee.startswith("居") else "村")
        self._add(stem + kind if stem != base else base + kind, index, _OWN)
        for family, suffixes in _VILLAGE_VARIANTS.items():
            for suffix in suffixes:
                self._add(stem + suffix, index, _VARIANT if family == kind else _OTHER_KIND)
        self._add(stem, index, _BARE)


class Gazetteer:
    """Offline address matcher over a region's counties, towns and villages.

    Build it with :meth:`from_settings` (the region pack's files) or
    :meth:`from_frames` (frames already loaded, e.g. a web app's study).
    Matching is a single Aho-Corasick pass (``pyahocorasick``) over every name
    variant, then a few set operations: tens of microseconds per address. The
    names are indexed by :class:`_NameIndex`; what stays here is one matcher whose
    steps (prefixes, spans, towns, villages, answer) share its places and automaton,
    so it stays one class (~340 lines, a third of them docstrings).

    Parameters
    ----------
    counties
        One row per county with ``county`` (name), optional ``adcode`` and
        polygon geometry (used to check online results and name the county of a point).
    towns
        Town points with ``town``, ``town_code``, ``county``.
    villages
        Village points with ``village_name``, ``county``, ``town`` and
        ``town_code`` (or ``town``/``county`` names to find the town) and
        ``location_quality`` (``town_seat`` = placed at its town's point).
    region_name
        How messages name the region (``嘉兴市``).
    prefixes
        Names skipped at the start of an address (province and cities of the
        region, full and short: ``浙江省``, ``浙江``, ``嘉兴市``, ``嘉兴``).
    city_code
        The statistical code of the region's one city (``330400``), if it has
        one; online services use it to search that city first.
    """

    name = "offline"

    def __init__(
        self,
        counties: gpd.GeoDataFrame,
        towns: gpd.GeoDataFrame,
        villages: gpd.GeoDataFrame,
        *,
        region_name: str = "the region",
        prefixes: Iterable[str] = (),
        city_code: str = "",
    ) -> None:
        self.region_name = region_name
        self.city_code = city_code
        self.prefixes = tuple(
            sorted({normalise(p) for p in (*prefixes, *_COUNTRY_PREFIXES) if p}, key=len)[::-1]
        )
        index = _NameIndex()
        self.counties = index.add_counties(counties)
        self._county_shapes: list[BaseGeometry | None] = list(counties.geometry)
        n_towns = index.add_towns(towns)
        n_villages = index.add_villages(villages)
        self.places = index.places
        self._known = {*self.prefixes, *(normalise(c) for c in self.counties)}
        self._automaton = index.automaton()
        self._memo: dict[str, Placement | str] = {}
        first_town = next((p for p in self.places if p.level == _TOWN), None)
        self._example = first_town.label if first_town else "区县乡镇"
        logger.info(
            "gazetteer of %s: %d counties, %d towns, %d villages, %d name variants",
            region_name,
            len(counties),
            n_towns,
            n_villages,
            len(index.keywords),
        )

    # ------------------------------------------------------------------ build

    @classmethod
    def from_frames(
        cls,
        counties: gpd.GeoDataFrame,
        towns: gpd.GeoDataFrame,
        villages: gpd.GeoDataFrame,
        *,
        region: Region | None = None,
        city: gpd.GeoDataFrame | None = None,
    ) -> Gazetteer:
        """Build from loaded frames and the region's names.

        Parameters
        ----------
        counties, towns, villages
            As :func:`geo.places.load_counties` etc. return them.
        region
            The region (``settings.region``): its name, province and cities are
            the names skipped in front of an address.
        city
            Without a region: the region outline (``name``, ``adcode``), as
            :func:`geo.places.load_city`; the province then follows from the
            counties' codes (:data:`PROVINCES`) and the cities from their
            ``city`` column.
        """
        region_name, prefixes, city_code = _region_names(counties, region, city)
        return cls(
            counties,
            towns,
            villages,
            region_name=region_name,
            prefixes=prefixes,
            city_code=city_code,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Gazetteer:
        """Build from the region pack of ``settings`` (its boundaries files and region.json)."""
        from geo.places import load_counties, load_towns, load_villages

        return cls.from_frames(
            load_counties(settings=settings),
            load_towns(settings=settings),
            load_villages(settings=settings, bounds=None),
            region=settings.region,
        )

    # ------------------------------------------------------------------ match

    def locate(self, addresses: Sequence[str]) -> list[Placement | str]:
        """Place each address; see :meth:`match`. Repeated addresses are matched once."""
        out: list[Placement | str] = []
        for address in addresses:
            found = self._memo.get(address)
            if found is None:
                found = self.match(address)
                if len(self._memo) < 200_000:
                    self._memo[address] = found
            out.append(found)
        return out

    def match(self, address: str) -> Placement | str:
        """Place one address at its village or town, or say why it cannot be placed.

        Returns
        -------
        Placement or str
            The placement, or one line "what is wrong; what to do" (unmatched,
            ambiguous, outside the region, contradictory county and town).
        """
        text = self._strip_prefixes(normalise(address))
        shown = address.strip()
        if not text:
            return "address is empty; give lon/lat or an address (地址)"
        spans = self._spans(text)
        foreign = self._foreign(text[: spans[0].start] if spans else text)
        if foreign:
            return (
                f"address {shown!r} names {foreign}, outside {self.region_name}; "
                "check the address, or give lon/lat"
            )
        if not spans:
            return self._unmatched(shown)
        county_span = next((s for s in spans if s.levels[_COUNTY]), None)
        counties = (
            {self.places[i].county for i, _ in county_span.levels[_COUNTY]}
            if county_span
            else set()
        )
        rest = [s for s in spans if s is not county_span]
        towns, town_span, conflict = self._match_towns(rest, counties)
        villages = self._match_villages(rest, counties, towns, town_span)
        return self._answer(shown, counties, towns, villages, conflict)

    def _match_towns(
        self, spans: Sequence[_Span], counties: set[str]
    ) -> tuple[list[int], _Span | None, tuple[_Span, Sequence[tuple[int, int]]] | None]:
        """The best towns of the first span naming a town in ``counties`` (any county if
        none was named), that span, and the first span whose towns all lie elsewhere."""
        conflict = None
        for span in spans:
            entries = span.levels[_TOWN]
            if not entries:
                continue
            fitting = [
                (i, r) for i, r in entries if not counties or self.places[i].county in counties
            ]
            if fitting:
                return _best(fitting), span, conflict
            conflict = conflict or (span, entries)
        return [], None, conflict

    def _match_villages(
        self,
        spans: Sequence[_Span],
        counties: set[str],
        towns: Sequence[int],
        town_span: _Span | None,
    ) -> list[int]:
        """The best villages of the first span after the town naming a village of the
        matched towns and counties; a bare village name counts only after its town."""
        after = town_span.end if town_span is not None else 0
        town_codes = {self.places[t].town_code for t in towns}
        for span in spans:
            if span is town_span or span.start < after or not span.levels[_VILLAGE]:
                continue
            fitting = [
                (i, r)
                for i, r in span.levels[_VILLAGE]
                if (
                    (not towns or self.places[i].town_code in town_codes)
                    and (not counties or self.places[i].county in counties)
                    and (r != _BARE or towns)
                )
            ]
            if fitting:
                return _best(fitting)
        return []

    def _answer(
        self,
        shown: str,
        counties: set[str],
        towns: list[int],
        villages: list[int],
        conflict: tuple[_Span, Sequence[tuple[int, int]]] | None,
    ) -> Placement | str:
        """The placement the matched places give, or why they give none."""
        if villages:
            in_towns = {self.places[i].town_code for i in villages}
            if len(in_towns) > 1:
                return self._ambiguous(shown, villages, "the town (乡镇/街道) or county (区县)")
            if len(villages) == 1:
                return self._placement(self.places[villages[0]])
            towns = [self._town_of(self.places[villages[0]])]
        if towns:
            if len(towns) > 1:
                return self._ambiguous(shown, towns, "the county (区县)")
            return self._placement(self.places[towns[0]])
        if conflict is not None:
            span, entries = conflict
            where = "/".join(sorted({self.places[i].county for i, _ in entries}))
            return (
                f"address {shown!r}: {span.text} lies in {where}, not in "
                f"{'/'.join(sorted(counties))}; correct the county or the town"
            )
        if counties:
            return (
                f"address {shown!r} names only the county {'/'.join(sorted(counties))}; "
                "add the town (乡镇/街道) and village (村/社区), or give lon/lat"
            )
        return self._unmatched(shown)

    def county_at(self, lon: float, lat: float) -> str | None:
        """The county whose polygon holds the WGS84 point, or None."""
        point = shapely.Point(lon, lat)
        for county, shape in zip(self.counties, self._county_shapes, strict=True):
            if shape is not None and shape.covers(point):  # on the border counts
                return county
        return None

    def nearest_town(self, county: str, lon: float, lat: float) -> tuple[str, str]:
        """``(town, town_code)`` of the town point of ``county`` nearest to the point."""
        best, best_d2 = ("", ""), np.inf
        for place in self.places:
            if place.level == _TOWN and place.county == county:
                d2 = (place.lon - lon) ** 2 + (place.lat - lat) ** 2
                if d2 < best_d2:
                    best, best_d2 = (place.town, place.town_code), d2
        return best

    # --------------------------------------------------------------- helpers

    def _strip_prefixes(self, text: str) -> str:
        stripped = True
        while stripped:
            stripped = False
            for prefix in self.prefixes:
                if text.startswith(prefix) and len(text) > len(prefix):
                    text = text[len(prefix) :]
                    stripped = True
                    break
        return text

    def _spans(self, text: str) -> list[_Span]:
        """Leftmost-longest non-overlapping name matches; bare names need a fitting next word."""
        found = []
        for end, (length, levels, no_bare, no_bare_below) in self._automaton.iter(text):
            if no_bare is not None:
                if _ROAD_AFTER.match(text, end + 1):
                    levels = no_bare
                elif _UNIT_AFTER.match(text, end + 1):
                    levels = no_bare_below
                if not any(levels):
                    continue
            found.append((end + 1 - length, -length, levels))
        found.sort()
        spans: list[_Span] = []
        reached = 0
        for start, minus_length, levels in found:
            if start >= reached:
                reached = start - minus_length
                spans.append(_Span(start, reached, text[start:reached], levels))
        return spans

    def _foreign(self, lead: str) -> str:
        """The first administrative unit named before the match that is not the region's."""
        position = 0
        while True:
            token = _ADMIN_TOKEN.match(lead, position)
            if token is None:
                return ""
            word = token.group()
            if word not in self._known and not _NOT_ADMIN.search(word):
                return word
            position = token.end()

    def _town_of(self, village: _Place) -> int:
        return next(
            i
            for i, p in enumerate(self.places)
            if p.level == _TOWN and p.town_code == village.town_code
        )

    def _placement(self, place: _Place) -> Placement:
        if place.level == _VILLAGE and not place.own_point:
            quality, matched = TOWN_QUALITY, f"{place.label} (its point is the town seat)"
        else:
            quality = VILLAGE_QUALITY if place.level == _VILLAGE else TOWN_QUALITY
            matched = place.label
        return Placement(
            float(place.lon),
            float(place.lat),
            place.county,
            place.town,
            place.town_code,
            quality,
            matched,
        )

    def _ambiguous(self, shown: str, indices: Sequence[int], add: str) -> str:
        labels = sorted({self.places[i].label for i in indices})
        listed = " or ".join(labels[:4]) + (
            f" (and {len(labels) - 4} more)" if len(labels) > 4 else ""
        )
        return f"address {shown!r} is ambiguous: {listed}; add {add} to the address"

    def _unmatched(self, shown: str) -> str:
        return (
            f"address {shown!r} names no county, town or village of {self.region_name}; "
            f"write 区县 + 乡镇/街道 + 村/社区 (e.g. {self._example}…), or give lon/lat"
        )


def _region_names(
    counties: gpd.GeoDataFrame, region: Region | None, city: gpd.GeoDataFrame | None
) -> tuple[str, list[str], str]:
    """How messages name the region, the names skipped in front of an address (province
    and cities, full and short) and the code of the region's one city ("" if several),
    from ``region``, else from the counties' codes and cities and the ``city`` outline
    (as :meth:`Gazetteer.from_frames` takes them)."""
    names: list[str] = []
    codes: set[str] = set()
    if region is not None:
        region_name, province = region.name, region.province
        names += [c.city for c in region.counties if c.city]
        codes = {c.city_code for c in region.counties if c.city_code}
        if region.level == "city":
            names.append(region.name)
    else:
        region_name, province = "", ""
        adcodes = [a for a in _texts(counties, "adcode") if a]
        codes = {f"{a[:4]}00" for a in adcodes}
        province = PROVINCES.get(adcodes[0][:2], "") if adcodes else ""
        names += [c for c in _texts(counties, "city") if c]
        if city is not None and len(city):
            region_name = _texts(city, "name")[0]
            code = _texts(city, "adcode")[0]
            if code.endswith("00") and not code.endswith("0000"):  # a city, not a county
                names.append(region_name)
    prefixes = {*names, *(short_name(n, _CITY_KINDS) for n in names)}
    if province:
        prefixes |= {province, short_name(province, _PROVINCE_KINDS)}
    return (
        region_name or province or "the region",
        sorted(prefixes),
        codes.pop() if len(codes) == 1 else "",
    )


def _texts(frame: gpd.GeoDataFrame, column: str) -> list[str]:
    """A column as normalised text ("" where missing or absent)."""
    if column not in frame.columns:
        return [""] * len(frame)
    return [normalise(v.as_text(x)) for x in frame[column].tolist()]


def _best(entries: Sequence[tuple[int, int]]) -> list[int]:
    """The places of the best (lowest) rank: a place's own name beats a variant of another's."""
    top = min(r for _, r in entries)
    return list(dict.fromkeys(i for i, r in entries if r == top))


# ---------------------------------------------------------------- factory

#: Environment variables holding each online service's key.
KEY_VARIABLES: Mapping[str, str] = {
    "amap": "SKILLCIRCLE_AMAP_KEY",
    "tianditu": "SKILLCIRCLE_TIANDITU_KEY",
}


def make_geocoder(
    kind: str,
    settings: Settings,
    *,
    key: str | None = None,
    url: str | None = None,
    gazetteer: Gazetteer | None = None,
) -> Geocoder:
    """The geocoder ``kind`` for the region of ``settings``.

    Parameters
    ----------
    kind
        ``offline`` (the gazetteer), ``amap`` (高德 Web服务) or ``tianditu`` (天地图).
    settings
        Region pack (gazetteer) and cache folder (``<cache_dir>/geocode/``).
    key
        The online service's key; default from ``SKILLCIRCLE_AMAP_KEY`` /
        ``SKILLCIRCLE_TIANDITU_KEY``.
    url
        The online service's endpoint (default the real one; tests pass a local
        server); default from ``SKILLCIRCLE_GEOCODER_URL``.
    gazetteer
        A gazetteer already built (else built from ``settings``); online
        services use it to check that results lie in the region and to name
        their county and town.

    Raises
    ------
    SettingsError
        If ``kind`` is unknown or an online service has no key.
    """
    kind = kind.lower().strip()
    if kind not in GEOCODERS:
        raise SettingsError(f"unknown geocoder {kind!r}; use one of {', '.join(GEOCODERS)}")
    gazetteer = gazetteer or Gazetteer.from_settings(settings)
    if kind == "offline":
        return gazetteer
    key = key or os.environ.get(KEY_VARIABLES[kind], "")
    if not key.strip():
        raise SettingsError(
            f"geocoder {kind} needs a key: pass --key KEY or set {KEY_VARIABLES[kind]} "
            "(or use --geocoder offline)"
        )
    from geo.geocoders import OnlineGeocoder

    return OnlineGeocoder(
        kind,
        key.strip(),
        gazetteer,
        url=url or os.environ.get("SKILLCIRCLE_GEOCODER_URL") or None,
        cache_dir=settings.cache_dir / "geocode",
    )
