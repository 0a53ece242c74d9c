"""What page scripts need from the server: one config object rendered into every page.

``base.html`` writes :func:`page_config` into ``<script id="sc-config"
type="application/json">`` (data, not code: the Content-Security-Policy is
unchanged) and ``static/util.js`` reads it as ``sc.config()``. Thresholds,
limits and API URLs therefore come from the served settings and the URL map;
no script repeats a server value such as 30 or 120 minutes.
"""

from __future__ import annotations

from typing import Any, get_args
from urllib.parse import unquote

from flask import Flask, current_app, url_for
from pydantic import BaseModel

from geo.models import Level
from geo.settings import LAYERS, MODES

from . import _params as p
from . import get_study

#: Results one search asks for first, and at most ("more" asks again with a larger limit).
SEARCH_LIMIT = 20
SEARCH_LIMIT_MAX = 100
#: Facilities /q/here lists around the phone's position.
HERE_LIMIT = 30
#: Audit entries the console shows.
AUDIT_SHOWN = 100


#: The item tables the console edits (``/api/admin/facilities/<fid>/<table>``).
TABLES = ("courses", "evaluations")
#: Stands for a whole-number path argument (``<id:...>`` accepts digits only).
NUMBER = 987654321


def _template(endpoint: str, **names: str | tuple[Any, str]) -> str:
    """The URL of ``endpoint`` with ``{name}`` placeholders for its path arguments, which
    scripts fill in. An argument is its placeholder name, or (a value its converter
    accepts, the name) for converters such as ``<id:...>`` or ``<any(...)>``."""
    values: dict[str, Any] = {}
    swap: dict[str, str] = {}
    for key, spec in names.items():
        sample, name = spec if isinstance(spec, tuple) else ("{" + spec + "}", spec)
        values[key] = sample
        swap[str(sample)] = "{" + name + "}"
    parts = unquote(url_for(endpoint, **values)).split("/")
    return "/".join(swap.get(part, part) for part in parts)


def page_config() -> dict[str, Any]:
    """Settings, limits and URLs of the pages' scripts (JSON-safe)."""
    settings = get_study().settings
    config = current_app.config
    return {
        "minutes": settings.minutes,
        "max_minutes": settings.max_minutes,
        "mode": p.DEFAULT_MODE,
        "modes": dict(MODES),
        "layers": dict(LAYERS),
        "levels": list(get_args(Level)),
        "limits": {
            "nearby": p.NEARBY_LIMIT_MAX,
            "here": HERE_LIMIT,
            "plan_add": p.PLAN_ADD_MAX,
            "search": SEARCH_LIMIT,
            "search_max": SEARCH_LIMIT_MAX,
            "audit": AUDIT_SHOWN,
            "upload_rows": int(config["UPLOAD_MAX_ROWS"]),
            "upload_bytes": int(config["MAX_CONTENT_LENGTH"]),
        },
        "urls": {
            "nearby": url_for("api.nearby"),
            "plan": url_for("api.plan"),
            "search": url_for("search.search"),
            "trades": url_for("search.trades"),
            "challenge": url_for("registration.challenge"),
            "register": url_for("registration.register"),
            "withdraw": url_for("registration.withdraw"),
            "withdraw_page": url_for("qr.withdraw"),
            "demand": url_for("demand.demand"),
            "village_page": _template("qr.village", code="code"),
            "facility_page": _template("qr.facility", fid="fid"),
            "admin": {
                "whoami": url_for("admin.whoami"),
                "facilities": url_for("admin.list_facilities"),
                # one route per table (each documents its own body and answer)
                "items": {table: _template(f"admin.list_{table}", fid="fid") for table in TABLES},
                "item": {
                    table: _template(
                        f"admin.update_{table[:-1]}", fid="fid", item_id=(NUMBER, "id")
                    )
                    for table in TABLES
                },
                "registrations": _template("admin.list_registrations", fid="fid"),
                "export": _template("admin.export_registrations", fid="fid"),
                "registration": _template("admin.update_registration", reg_id=(NUMBER, "id")),
                "audit": url_for("admin.audit"),
                "upload": url_for("admin.upload"),
            },
        },
    }


def init_app(app: Flask) -> None:
    """Give every template ``page_config()``."""
    app.context_processor(lambda: {"page_config": page_config})


#: A hint after a form field's label, where the model's title alone leaves a doubt.
FIELD_HINTS = {
    "fee": "元，0 为免费",
    "seats": "人",
    "register_url": "https://…",
    "subsidy_note": "如：持证后按规定申领补贴",
}


def form_fields(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The admin console's form fields of a request body model, from its JSON schema:
    label (the model's Chinese title), input type, required, limits, choices."""
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    fields = []
    for name, spec in schema["properties"].items():
        # an optional field is anyOf [its type, null]: read the type part
        part = next((s for s in spec.get("anyOf", [spec]) if s.get("type") != "null"), spec)
        kind = part.get("type")
        field: dict[str, Any] = {
            "name": name,
            "label": spec.get("title", name),
            "hint": FIELD_HINTS.get(name, ""),
            "required": name in required,
            "input": "text",
        }
        if "enum" in part:
            field.update(input="select", options=list(part["enum"]))
        elif part.get("format") == "date":
            field["input"] = "date"
        elif kind in ("integer", "number"):
            step = "1" if kind == "integer" else "0.01"
            limits = {"min": part.get("minimum"), "max": part.get("maximum")}
            field.update(input="number", step=step, **limits)
        elif name.endswith("_url"):
            field["input"] = "url"
        elif name.endswith("phone"):
            field["input"] = "tel"
        if kind == "string" and "maxLength" in part:
            field["maxlength"] = part["maxLength"]
        fields.append(field)
    return fields


def admin_context() -> dict[str, Any]:
    """What ``admin.html`` renders: layers, known trades, the course and session forms."""
    from .schemas import BODIES

    forms = {table: form_fields(BODIES[table]) for table in ("courses", "evaluations")}
    return {"layers": dict(LAYERS), "trades": get_study().trades, "forms": forms}
