"""技能码: phone pages per village and facility, their QR codes, and /q/here."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zlib
from typing import Any

import numpy as np
import segno
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    render_template,
    request,
    url_for,
)

from geo.settings import LAYERS, MODES

from . import get_store, get_study, not_modified_response, page_etag, public_base, remember
from .records import facility_dict, today, village_index

bp = Blueprint("qr", __name__, url_prefix="/q")

PER_LAYER = 3


def _qr_image(url: str, fmt: str) -> bytes:
    buf = io.BytesIO()
    qr = segno.make(url, error="m")
    if fmt == "png":
        return png_bytes(qr, scale=8, border=4)
    qr.save(buf, kind="svg", scale=8, border=4, xmldecl=False)
    return buf.getvalue()


def png_bytes(qr: segno.QRCode, scale: int, border: int) -> bytes:
    """The QR code as a black-and-white PNG (1 bit per pixel), as segno draws it but
    with numpy and zlib instead of a Python loop per row (a tenth of the time)."""
    dark = np.pad(np.asarray(qr.matrix, dtype=bool), border)
    pixels = np.repeat(np.repeat(~dark, scale, axis=0), scale, axis=1)  # light = 1
    height, width = pixels.shape
    rows = np.packbits(pixels, axis=1)
    raw = np.hstack([np.zeros((height, 1), dtype=np.uint8), rows]).tobytes()  # filter 0

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def _qr_response(url: str, fmt: str) -> Response:
    """The QR image of ``url`` (drawn once per process, then remembered: it depends on
    the URL only, not on the data version)."""
    memo = current_app.extensions["skillcircle.memo"]
    image = memo.get("qr", "", (url, fmt), lambda: _qr_image(url, fmt))
    mimetype = "image/png" if fmt == "png" else "image/svg+xml"
    resp = Response(image, mimetype=mimetype)
    resp.headers["X-QR-URL"] = url
    return resp


def village_url(code: str) -> str:
    """The absolute URL the QR code of village ``code`` opens (``<public base>/q/<code>``)."""
    return public_base() + url_for("qr.village", code=code)


def facility_url(fid: str) -> str:
    """The absolute URL the QR code of facility ``fid`` opens (its 技能码 page)."""
    return public_base() + url_for("qr.facility", fid=fid)


def _village_or_404(code: str) -> int:
    index = village_index(get_study(), code)
    if index is None:
        abort(404)
    return index


@bp.get("/here")
def here() -> str:
    study = get_study()
    return render_template(
        "here.html", study=study, modes=MODES, layers=LAYERS, trades=study.trades
    )


@bp.get("/withdraw")
def withdraw() -> str:
    """撤回报名: a form for the confirmation code and phone (nothing of either in the URL)."""
    return render_template("withdraw.html")


@bp.get("/<code>")
def village(code: str) -> Any:
    """A village's 技能码 page. Its ETag (and memo key) says what it shows: the served
    results, and a digest of the upcoming courses and sessions of the facilities on its
    card (seats left included), so a write elsewhere in the region neither re-renders
    the page nor makes phones download it again."""
    study = get_study()
    index = _village_or_404(code)
    card = remember("cards", index, lambda: study.village_card(index))
    shown = [f["id"] for section in card.sections for f in section.facilities]
    schedule = get_store().upcoming(shown, today())
    digest = hashlib.blake2b(
        json.dumps(schedule, sort_keys=True, default=str).encode(), digest_size=8
    ).hexdigest()
    g.etag = page_etag("q" + digest)
    unchanged = not_modified_response()
    if unchanged is not None:
        return unchanged

    def render() -> str:
        return render_template(
            "village.html",
            study=study,
            v=card,
            sections=card.sections,
            schedule=schedule,
            modes=MODES,
            trades=study.trades,
            qr_url=village_url(code),
        )

    return remember("pages", (request.full_path, g.etag), render)


@bp.get("/<code>.<any(png, svg):fmt>")
def village_qr(code: str, fmt: str) -> Response:
    _village_or_404(code)
    return _qr_response(village_url(code), fmt)


def _facility_or_404(fid: str) -> Any:
    row = get_study().facility_row(fid)
    if row is None:
        abort(404)
    return row


@bp.get("/f/<fid>")
def facility(fid: str) -> str:
    study = get_study()
    rec = facility_dict(_facility_or_404(fid))
    schedule = get_store().upcoming([fid], today(), per_facility=20)[fid]
    return render_template(
        "facility.html",
        study=study,
        f=rec,
        schedule=schedule,
        modes=MODES,
        trades=study.trades,
        qr_url=facility_url(fid),
    )


@bp.get("/f/<fid>.<any(png, svg):fmt>")
def facility_qr(fid: str, fmt: str) -> Response:
    _facility_or_404(fid)
    return _qr_response(facility_url(fid), fmt)
