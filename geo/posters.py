"""Printable 技能码 posters: one A4 page per village with its QR code and nearest training.

Drawn with reportlab; Chinese text uses reportlab's built-in CID font
``STSong-Light`` (no font file needed). The QR code is drawn as vector squares
from segno's matrix, so it stays sharp at any print size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import segno
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import cm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas

from geo._errors import SettingsError
from geo._io import atomic_write
from geo.products import VillageCard
from geo.settings import MODES

FONT = "STSong-Light"
QR_SIZE = 8 * cm


@dataclass(frozen=True)
class PosterLine:
    """One row of the poster's table: the nearest facility of a layer."""

    layer_name: str
    facility: str
    minutes: dict[str, float | None]  # mode label -> minutes, None = not reachable
    phone: str = ""
    is_sample: bool = False


@dataclass(frozen=True)
class Poster:
    """One village's page."""

    title: str
    subtitle: str
    url: str
    lines: list[PosterLine]
    notices: list[str] = field(default_factory=list)


def poster_from_card(card: VillageCard, url: str, notices: Sequence[str]) -> Poster:
    """The poster of a village: the first facility of each layer of its 技能码 card
    (:func:`geo.products.village_card`), with the card's minutes per mode."""
    lines = [
        PosterLine(
            section.layer_name,
            str(facility["name"]),
            {MODES[m]: facility["times"][m] for m in card.modes},
            str(facility["phone"] or ""),
            bool(facility["is_sample"]),
        )
        for section, facility in card.nearest()
    ]
    return Poster(
        title=card.village_name,
        subtitle=f"{card.county} {card.town} · {card.village_code}",
        url=url,
        lines=lines,
        notices=list(notices),
    )


def _register_font() -> None:
    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))


def _draw_qr(canvas: Canvas, url: str, x: float, y: float, size: float) -> None:
    """Vector QR with a 4-module quiet zone, bottom-left corner at (x, y)."""
    matrix = [list(row) for row in segno.make(url, error="m").matrix]
    n = len(matrix) + 8
    module = size / n
    canvas.setFillColor(colors.white)
    canvas.rect(x, y, size, size, stroke=0, fill=1)
    canvas.setFillColor(colors.black)
    for r, row in enumerate(matrix):
        for c, dark in enumerate(row):
            if dark:
                canvas.rect(
                    x + (c + 4) * module,
                    y + size - (r + 5) * module,
                    module,
                    module,
                    stroke=0,
                    fill=1,
                )


def _fit(canvas: Canvas, text: str, size: float, width: float) -> str:
    """Shorten ``text`` with … so that it fits ``width`` at font ``size``.

    Characters the GB CID font lacks (the Latin middle dot) are replaced.
    """
    text = text.replace("·", "｜")
    if canvas.stringWidth(text, FONT, size) <= width:
        return text
    while text and canvas.stringWidth(text + "…", FONT, size) > width:
        text = text[:-1]
    return text + "…"


def _minutes(value: float | None) -> str:
    return "不可达" if value is None else f"{value:.0f}分"


def _page(canvas: Canvas, poster: Poster) -> None:
    width, height = A4
    left, right = 2 * cm, width - 2 * cm
    y = height - 2.2 * cm
    canvas.setFillColor(colors.HexColor("#1f4e9c"))
    canvas.setFont(FONT, 14)
    canvas.drawString(left, y, "技能码｜30分钟职业技能培训圈")
    canvas.setFillColor(colors.black)
    y -= 1.4 * cm
    canvas.setFont(FONT, 26)
    canvas.drawString(left, y, _fit(canvas, poster.title, 26, right - left))
    y -= 0.8 * cm
    canvas.setFont(FONT, 12)
    canvas.drawString(left, y, _fit(canvas, poster.subtitle, 12, right - left))
    y -= QR_SIZE + 0.6 * cm
    _draw_qr(canvas, poster.url, (width - QR_SIZE) / 2, y, QR_SIZE)
    y -= 0.8 * cm
    canvas.setFont(FONT, 13)
    canvas.drawCentredString(width / 2, y, "扫码查看附近的技能培训、评价日期和报名方式")
    y -= 1.1 * cm

    modes = list(poster.lines[0].minutes) if poster.lines else []
    canvas.setFont(FONT, 10)
    col_mode = right - 2.0 * cm * len(modes)
    canvas.drawString(left, y, "类别")
    canvas.drawString(left + 3.2 * cm, y, "最近的设施")
    for k, label in enumerate(modes):
        canvas.drawRightString(col_mode + 2.0 * cm * (k + 1), y, label)
    y -= 0.2 * cm
    canvas.line(left, y, right, y)
    for line in poster.lines:
        y -= 0.62 * cm
        name = line.facility + ("（样例）" if line.is_sample else "")
        canvas.drawString(left, y, _fit(canvas, line.layer_name, 10, 3.0 * cm))
        room = col_mode - (left + 3.2 * cm) - 0.3 * cm
        canvas.drawString(left + 3.2 * cm, y, _fit(canvas, name, 10, room))
        for k, label in enumerate(modes):
            canvas.drawRightString(col_mode + 2.0 * cm * (k + 1), y, _minutes(line.minutes[label]))
        if line.phone:
            y -= 0.42 * cm
            canvas.setFillColor(colors.HexColor("#555555"))
            canvas.setFont(FONT, 8.5)
            canvas.drawString(left + 3.2 * cm, y, f"电话 {line.phone}")
            canvas.setFont(FONT, 10)
            canvas.setFillColor(colors.black)
    if not poster.lines:
        y -= 0.62 * cm
        canvas.drawString(left, y, "附近暂无可到达的培训设施。")

    y -= 0.9 * cm
    canvas.setFont(FONT, 8.5)
    canvas.setFillColor(colors.HexColor("#8a4b00"))
    for notice in poster.notices:
        canvas.drawString(left, y, _fit(canvas, "注：" + notice, 8.5, right - left))
        y -= 0.45 * cm
    canvas.setFillColor(colors.HexColor("#666666"))
    canvas.setFont(FONT, 8)
    canvas.drawString(left, 1.5 * cm, _fit(canvas, poster.url, 8, right - left))
    canvas.drawRightString(
        right, 1.0 * cm, "路网 (c) OpenStreetMap contributors (ODbL) | skillcircle"
    )


def render_posters(posters: Sequence[Poster], out: Path) -> Path:
    """Write one A4 page per poster to ``out`` (PDF), atomically.

    Raises
    ------
    SettingsError
        If there is nothing to print.
    """
    if not posters:
        raise SettingsError("no villages to print: check --county / --town")
    _register_font()

    def draw(tmp: Path) -> None:
        canvas = Canvas(str(tmp), pagesize=A4)
        canvas.setTitle("技能码海报")
        canvas.setAuthor("skillcircle")
        for poster in posters:
            _page(canvas, poster)
            canvas.showPage()
        canvas.save()

    return atomic_write(Path(out), draw)
