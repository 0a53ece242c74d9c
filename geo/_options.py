"""Click options shared by the command groups of geo/ and web/ (no side effects on import)."""

from __future__ import annotations

import click


def _remember_region(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value:
        ctx.ensure_object(dict)["region"] = value


#: ``--region DIR|CODE`` (env ``SKILLCIRCLE_REGION``): stored in ``ctx.obj["region"]`` and
#: read by the command through :meth:`geo.settings.Settings.for_region`, so that a bad
#: pack is reported inside the command (one line), not by click's option parser.
region_option = click.option(
    "--region",
    envvar="SKILLCIRCLE_REGION",
    default=None,
    expose_value=False,
    is_eager=True,
    callback=_remember_region,
    metavar="DIR|CODE",
    help=(
        "区域数据包 / region pack: a folder from `skillcircle region build`, or a code "
        "(330400 = the bundled 嘉兴市; env SKILLCIRCLE_REGION)."
    ),
)
