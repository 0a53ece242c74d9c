"""``skillcircle serve``: the map, API and 技能码 pages on a production WSGI server (waitress)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import click

logger = logging.getLogger(__name__)


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
def serve(host: str, port: int, osm: Path | None, public_url: str | None, threads: int) -> None:
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
    try:
        study = Study.load(osm_file=osm, progress=True)
    except SkillcircleError as exc:
        raise click.ClickException(str(exc)) from exc
    config = {"STUDY": study}
    if public_url or os.environ.get("SKILLCIRCLE_PUBLIC_URL"):
        config["PUBLIC_URL"] = public_url or os.environ["SKILLCIRCLE_PUBLIC_URL"]
    app = create_app(config)
    click.echo(f"skillcircle: network {study.network.source.label}")
    click.echo(f"skillcircle: ready in {time.perf_counter() - started:.1f} s")
    click.echo(f"skillcircle: serving on http://{host}:{port}/  (Ctrl+C to stop)")
    waitress.serve(app, host=host, port=port, threads=threads)
