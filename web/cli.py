"""``skillcircle serve`` (map, API and 技能码 pages on waitress) and ``skillcircle admin``."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import click

from web.store import Store

logger = logging.getLogger(__name__)


_database = click.option(
    "--database",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="SQLite 数据库 / store file (env SKILLCIRCLE_DATABASE; default: instance folder).",
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
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 64))
@_database
def serve(
    host: str,
    port: int,
    osm: Path | None,
    public_url: str | None,
    threads: int,
    database: Path | None,
) -> None:
    """启动地图与技能码服务 / start the map, JSON API and QR pages."""
    import waitress

    from geo._errors import SkillcircleError
    from geo.study import Study
    from web import create_app

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    started = time.perf_counter()
    click.echo(
        "skillcircle: loading data, road network and coverage (first start builds the cache)…"
    )
    config: dict[str, object] = {"OSM_FILE": str(osm) if osm else None}
    if public_url or os.environ.get("SKILLCIRCLE_PUBLIC_URL"):
        config["PUBLIC_URL"] = public_url or os.environ["SKILLCIRCLE_PUBLIC_URL"]
    if database:
        config["DATABASE"] = str(database)
    try:
        app = create_app(config)
    except SkillcircleError as exc:
        raise click.ClickException(str(exc)) from exc
    study: Study = app.extensions["skillcircle"]
    click.echo(f"skillcircle: store {app.extensions['skillcircle.store'].path}")
    click.echo(f"skillcircle: network {study.network.source.label}")
    click.echo(f"skillcircle: ready in {time.perf_counter() - started:.1f} s")
    click.echo(f"skillcircle: serving on http://{host}:{port}/  (Ctrl+C to stop)")
    waitress.serve(app, host=host, port=port, threads=threads)


def _store(database: Path | None) -> Store:
    from web import default_database

    return Store(database or os.environ.get("SKILLCIRCLE_DATABASE") or default_database())


@click.group()
def admin() -> None:
    """管理令牌 / manage admin API tokens for county unions."""


@admin.command("create-token")
@click.option("--county", default=None, help="区县 / the county the token may edit (e.g. 南湖区).")
@click.option("--city", is_flag=True, help="全市令牌 / a city-wide token (all counties).")
@click.option("--name", default=None, help="名称 / who holds it (default: '<county> 总工会').")
@_database
def create_token(county: str | None, city: bool, name: str | None, database: Path | None) -> None:
    """Print a new token once; only its hash is stored."""
    from geo.settings import COUNTIES

    if city == (county is not None):
        raise click.UsageError("give exactly one of --county <区县> or --city")
    if county is not None and county not in COUNTIES:
        raise click.BadParameter(f"unknown county {county!r}; one of {'、'.join(COUNTIES)}")
    name = name or f"{county or '嘉兴市'}总工会"
    token_id, token = _store(database).create_token(name, county)
    click.echo(f"token {token_id} for {name} ({county or 'city-wide'}); it is shown only once:")
    click.echo(token)


@admin.command("revoke-token")
@click.argument("token_id", type=int)
@_database
def revoke_token(token_id: int, database: Path | None) -> None:
    """Revoke a token by its id (see list-tokens)."""
    from web.store import StoreError

    try:
        row = _store(database).revoke_token(token_id)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"revoked token {token_id} ({row['name']})")


@admin.command("list-tokens")
@_database
def list_tokens(database: Path | None) -> None:
    """List tokens (never the tokens themselves)."""
    for row in _store(database).tokens():
        state = f"revoked {row['revoked_at']}" if row["revoked_at"] else "active"
        county = row["county"] or "city-wide"
        click.echo(f"{row['id']}\t{row['name']}\t{county}\t{row['created_at']}\t{state}")


@admin.command("repair-ids")
@click.option("--yes", is_flag=True, help="删除列出的设施 / remove the listed facilities.")
@_database
def repair_ids(yes: bool, database: Path | None) -> None:
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
        click.echo(f"no facilities with unsafe ids in {store.path}")
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
