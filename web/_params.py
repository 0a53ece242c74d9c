"""Query-parameter parsing for the web app: one place, 400 with a clear message."""

from __future__ import annotations

import math
import re
from typing import NoReturn

from flask import abort, jsonify, make_response, request

from geo.settings import LAYERS, MODES

from . import get_study

VILLAGE_CODE = re.compile(r"^\d{12}$")


def bad_request(message: str) -> NoReturn:
    """Abort with 400 and a JSON body ``{"error": "bad request", "message": ...}``."""
    abort(make_response(jsonify(error="bad request", message=message), 400))


def choice(name: str, allowed: tuple[str, ...], default: str) -> str:
    """A parameter that must be one of ``allowed`` (``default`` when absent)."""
    value = request.args.get(name) or default
    if value not in allowed:
        bad_request(f"{name} must be {' or '.join(allowed)}; got {value!r}")
    return value


def mode(default: str = "ebike") -> str:
    value = request.args.get("mode", default)
    if value not in MODES:
        bad_request(f"mode must be one of {', '.join(MODES)}; got {value!r}")
    return value


def layer(required: bool = False) -> str | None:
    value = request.args.get("layer") or None
    if value is None and required:
        bad_request(f"layer is required: one of {', '.join(LAYERS)}")
    if value is not None and value not in LAYERS:
        bad_request(f"layer must be one of {', '.join(LAYERS)}; got {value!r}")
    return value


def county() -> str | None:
    value = request.args.get("county") or None
    names = get_study().settings.region.county_names
    if value is not None and value not in names:
        bad_request(f"county must be one of {'、'.join(names)}; got {value!r}")
    return value


def trade() -> str | None:
    value = request.args.get("trade") or None
    if value is not None and value not in get_study().trades:
        bad_request(f"unknown trade {value!r}; known: {'、'.join(get_study().trades)}")
    return value


def number(name: str, low: float, high: float, default: float | None = None) -> float:
    raw = request.args.get(name)
    if raw is None or raw == "":
        if default is None:
            bad_request(f"{name} is required")
        return float(default)  # type: ignore[arg-type]
    try:
        value = float(raw)
    except ValueError:
        bad_request(f"{name} must be a number; got {raw!r}")
    if not math.isfinite(value) or not (low <= value <= high):
        bad_request(f"{name} must be between {low:g} and {high:g}; got {raw}")
    return value


def integer(name: str, low: int, high: int, default: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not re.fullmatch(r"\d+", raw) or not (low <= int(raw) <= high):
        bad_request(f"{name} must be a whole number from {low} to {high}; got {raw!r}")
    return int(raw)


def boolean(name: str) -> bool | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    bad_request(f"{name} must be true or false; got {raw!r}")
    return None


def lon_lat() -> tuple[float, float]:
    """``lon``/``lat`` inside the bounds of the study's region (:attr:`Region.bounds`)."""
    min_lon, min_lat, max_lon, max_lat = get_study().settings.region.bounds
    lon = number("lon", min_lon, max_lon)
    lat = number("lat", min_lat, max_lat)
    return lon, lat
