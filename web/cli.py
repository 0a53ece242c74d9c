"""``skillcircle serve`` (map, API and 技能码 pages on waitress) and ``skillcircle admin``."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from geo._options import region_option
from geo.settings import Settings
from web.store import Store

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

#: With several workers, each waits a random 0 to this many seconds before switching to
#: newly published results (:class:`web.sync.Follower`).
SWITCH_STAGGER_S = 1.0


_database = click.option(
    "--database",
    type=str,
    default=None,
    help=(
        "数据库 / store: a SQLite file or a postgresql:// URL (env SKILLCIRCLE_DATABASE_URL "
        "or SKILLCIRCLE_DATABASE; default: a SQLite file in the instance folder)."
    ),
)


def _count_option(name: str, default: int, help: str) -> Callable[[F], F]:
    """A ``--workers``-like option: a whole number from 1 to 64."""
    return click.option(
        name, default=default, show_default=True, type=click.IntRange(1, 64), help=help
    )


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="监听地址 / interface.")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="端口 / port."
)
@click.option(
    "--osm",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="OSM 路网文件 .osm/.osm.pbf (default: cache, else the bundled coarse network).",
)
@click.option(
    "--public-url",
    default=None,
    help="二维码中的外部地址 / base URL in QR codes (env SKILLCIRCLE_PUBLIC_URL).",
)
@_count_option(
    "--workers",
    1,
    "服务进程数 / server processes (more than 1: gunicorn, each forked from the loaded app).",
)
@_count_option("--threads", 4, "每进程线程数 / threads per process.")
@_database
@region_option
@click.pass_context
def serve(
    ctx: click.Context,
    host: str,
    port: int,
    osm: Path | None,
    public_url: str | None,
    workers: int,
    threads: int,
    database: str | None,
) -> None:
    """启动地图与技能码服务 / start the map, JSON API and QR pages.

    Facility changes are recomputed in a process of their own and published to
    every server process (web/sync.py); --workers N serves with N gunicorn processes.
    """
    from geo._errors import SkillcircleError
    from geo.study import Study
    from web import create_app, warm
    from web.serving import RecomputeProcess, serve_gunicorn, serve_waitress, settle_heap

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    started = time.perf_counter()
    click.echo(
        "skillcircle: loading data, road network and coverage (first start builds the cache)…"
    )
    config: dict[str, object] = {
        "OSM_FILE": str(osm) if osm else None,
        "RECOMPUTE": "external",
        "FOLLOW": True,
        # workers switch to new results one after the other, not all at once
        "SWITCH_STAGGER_S": SWITCH_STAGGER_S if workers > 1 else 0.0,
    }
    if (ctx.obj or {}).get("region"):
        config["REGION"] = ctx.obj["region"]
    if public_url or os.environ.get("SKILLCIRCLE_PUBLIC_URL"):
        config["PUBLIC_URL"] = public_url or os.environ["SKILLCIRCLE_PUBLIC_URL"]
    if database:
        config["DATABASE"] = str(database)
    try:
        app = create_app(config)
    except SkillcircleError as exc:
        raise click.ClickException(str(exc)) from exc
    study: Study = app.extensions["skillcircle"]
    click.echo(f"skillcircle: region {study.settings.region.label} ({study.settings.data_dir})")
    click.echo(f"skillcircle: store {app.extensions['skillcircle.store'].location}")
    click.echo(f"skillcircle: network {study.network.source.label}")
    warm(app, study)  # rendered once here, shared by the forked workers
    settle_heap()
    recompute = RecomputeProcess(app)
    recompute.start()
    click.echo(f"skillcircle: ready in {time.perf_counter() - started:.1f} s")
    processes = f"{workers} worker processes" if workers > 1 else "1 process"
    click.echo(
        f"skillcircle: serving on http://{host}:{port}/  ({processes} x {threads} threads; "
        "Ctrl+C to stop)"
    )
    try:
        if workers > 1:
            serve_gunicorn(app, host, port, workers, threads)
        else:
            serve_waitress(app, host, port, threads)
    finally:
        recompute.stop()


def _settings() -> Settings:
    """Settings of the ``--region`` given to ``admin`` (or the environment's / bundled)."""
    from geo._errors import SkillcircleError

    try:
        return Settings.for_region((click.get_current_context().obj or {}).get("region"))
    except SkillcircleError as exc:
        raise click.ClickException(str(exc)) from exc


def _store(database: str | None) -> Store:
    """The store of ``--database`` (or the environment's, or the region's default)."""
    from web import store_location

    return Store(store_location(database, _settings().region.code))


@click.group()
@region_option
def admin() -> None:
    """管理令牌 / manage admin API tokens for county unions (of the --region)."""


@admin.command("create-token")
@region_option
@click.option("--county", default=None, help="区县 / the county the token may edit (e.g. 南湖区).")
@click.option("--city", is_flag=True, help="全域令牌 / a region-wide token (all counties).")
@click.option(
    "--facility",
    default=None,
    help="机构工作人员令牌 / a facility-staff token: its own courses, sessions and registrants "
    "(e.g. TS-330402-001).",
)
@click.option(
    "--name", default=None, help="名称 / who holds it (default: '<county>总工会' or the facility)."
)
@_database
def create_token(
    county: str | None, city: bool, facility: str | None, name: str | None, database: str | None
) -> None:
    """Print a new token once; only its hash is stored."""
    from web.store import StoreError

    if sum((city, county is not None, facility is not None)) != 1:
        raise click.UsageError("give exactly one of --county <区县>, --city or --facility <id>")
    region = _settings().region
    if county is not None and county not in region.county_names:
        known = "、".join(region.county_names)
        raise click.BadParameter(f"unknown county {county!r} in {region.name}; one of {known}")
    store = _store(database)
    if facility is not None:
        record = store.facility(facility)
        if record is None:
            raise click.BadParameter(
                f"no facility {facility!r} in {store.location}; see the ids on the map or "
                "GET /api/facilities",
                param_hint="--facility",
            )
        name = name or f"{record['name']}工作人员"
    name = name or f"{county or region.name}总工会"
    try:
        token_id, token = store.create_token(name, county, facility_id=facility)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    scope = f"staff of {facility}" if facility else county or "city-wide"
    click.echo(f"token {token_id} for {name} ({scope}); it is shown only once:")
    click.echo(token)


@admin.command("revoke-token")
@region_option
@click.argument("token_id", type=int)
@_database
def revoke_token(token_id: int, database: str | None) -> None:
    """Revoke a token by its id (see list-tokens)."""
    from web.store import StoreError

    try:
        row = _store(database).revoke_token(token_id)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"revoked token {token_id} ({row['name']})")


@admin.command("list-tokens")
@region_option
@_database
def list_tokens(database: str | None) -> None:
    """List tokens (never the tokens themselves)."""
    for row in _store(database).tokens():
        state = f"revoked {row['revoked_at']}" if row["revoked_at"] else "active"
        county = row["county"] or "city-wide"
        if row["facility_id"]:
            county += f" (staff of {row['facility_id']})"
        click.echo(f"{row['id']}\t{row['name']}\t{county}\t{row['created_at']}\t{state}")


@admin.command("purge-registrations")
@region_option
@click.option(
    "--days",
    type=click.IntRange(1, 36500),
    default=None,
    help="保留天数 / days after an item ends (default: env "
    "SKILLCIRCLE_REGISTRATION_RETENTION_DAYS or 180).",
)
@_database
def purge_registrations(days: int | None, database: str | None) -> None:
    """Delete registrants' name and phone N days after their course or session ended.

    The server's recompute process does this every hour; this command does it
    now (e.g. from cron). The anonymous rows stay (counts, attendance).
    """
    from web.records import today

    if days is None:
        days = int(os.environ.get("SKILLCIRCLE_REGISTRATION_RETENTION_DAYS", "180"))
    store = _store(database)
    purged = store.purge_registrations(today(), days)
    click.echo(
        f"deleted the name and phone of {purged} registrations whose item ended more than "
        f"{days} days ago ({store.location})"
    )


@admin.command("repair-ids")
@region_option
@click.option("--yes", is_flag=True, help="删除列出的设施 / remove the listed facilities.")
@_database
def repair_ids(yes: bool, database: str | None) -> None:
    """List facilities whose ids break the id pattern; with --yes remove them.

    Such records (stored before ids were checked, e.g. ``a/b`` or
    ``=HYPERLINK(...)``) cannot be reached by any URL, so nobody can see, fix or
    delete them. Removal takes their courses and evaluation sessions with them,
    in one transaction with an audit entry (action ``repair``) that keeps every
    removed record. Restart the server afterwards to recompute coverage.
    """
    store = _store(database)
    unsafe = store.unsafe_id_facilities()
    if not unsafe:
        click.echo(f"no facilities with unsafe ids in {store.location}")
        return
    for row in unsafe:
        click.echo(
            f"{row['id']!r}\t{row['county'] or '-'}\t{row['layer']}\t{row['name']!r}\t"
            f"courses {row['courses']}, evaluations {row['evaluations']}"
        )
    if not yes:
        click.echo(
            f"{len(unsafe)} facilities with unsafe ids; run again with --yes to remove them "
            "(with their courses and evaluations)"
        )
        return
    removed = store.remove_facilities([row["id"] for row in unsafe], who="cli repair-ids")
    click.echo(
        f"removed {removed['facilities']} facilities, {removed['courses']} courses and "
        f"{removed['evaluations']} evaluations (audit action 'repair'); "
        "restart the server to recompute coverage"
    )
