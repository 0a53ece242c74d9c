"""The OpenAPI 3 document of the JSON API (served at /api/openapi.json)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from geo.models import FACILITY_ID_PATTERN
from geo.settings import LAYERS, MODES, Settings

from .schemas import (
    AttendanceBody,
    ChallengeAnswer,
    CourseBody,
    CoursePatch,
    DemandBody,
    EvaluationBody,
    EvaluationPatch,
    FacilityBody,
    FacilityPatch,
    RegistrationBody,
    WithdrawBody,
)

if TYPE_CHECKING:
    from geo.region import Region


def _param(
    name: str,
    schema: dict[str, Any],
    description: str,
    required: bool = False,
    where: str = "query",
) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": required,
        "description": description,
        "schema": schema,
    }


MODE = _param(
    "mode", {"type": "string", "enum": list(MODES), "default": "ebike"}, "出行方式 travel mode"
)
LAYER = _param("layer", {"type": "string", "enum": list(LAYERS)}, "设施图层 facility layer")
TRADE = _param("trade", {"type": "string"}, "工种 trade, e.g. 焊工")
MINUTES = _param(
    "minutes", {"type": "number", "minimum": 1, "maximum": 120, "default": 30}, "时间阈值（分钟）"
)

ERROR = {
    "description": "bad parameter",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
NOT_FOUND = {
    "description": "unknown code",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


FACILITY_ID = _param(
    "fid",
    {"type": "string", "pattern": FACILITY_ID_PATTERN, "maxLength": 64},
    "设施编号 facility id (no '..')",
    required=True,
    where="path",
)
SCHEMAS = {
    "Facility": FacilityBody,
    "FacilityPatch": FacilityPatch,
    "Course": CourseBody,
    "CoursePatch": CoursePatch,
    "Evaluation": EvaluationBody,
    "EvaluationPatch": EvaluationPatch,
    "RegistrationBody": RegistrationBody,
    "ChallengeAnswer": ChallengeAnswer,
    "WithdrawBody": WithdrawBody,
    "DemandBody": DemandBody,
    "AttendanceBody": AttendanceBody,
}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _json(ref: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


#: Responses every admin call can give.
ADMIN_ERRORS = {
    "400": {"description": "invalid body: field errors", **_json("FieldErrors")},
    "401": {"description": "no, unknown or revoked token", **_json("Error")},
    "403": {"description": "the token's county may not change this", **_json("Error")},
    "404": {"description": "unknown facility or item", **_json("Error")},
    "413": {"description": "request body too large", **_json("Error")},
    "429": {"description": "rate limit", **_json("Error")},
}


def _admin(summary: str, ok: str, body: str | None = None, **extra: Any) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "security": [{"bearer": []}],
        "responses": {ok: {"description": summary, **_json("Any")}, **ADMIN_ERRORS},
        **extra,
    }
    if ok == "204":
        op["responses"][ok] = {"description": summary}
    if body:
        op["requestBody"] = {"required": True, **_json(body)}
    return op


def _admin_paths() -> dict[str, Any]:
    """Admin endpoints (web/admin.py); bodies are the pydantic models of web/schemas.py."""
    item_id = _param(
        "item_id",
        {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
        "课程/评价编号 (other numbers: 404)",
        required=True,
        where="path",
    )
    paths: dict[str, Any] = {
        "/api/admin/whoami": {"get": _admin("令牌信息 the token's name and county", "200")},
        "/api/admin/jobs/{job_id}": {
            "parameters": [
                _param(
                    "job_id",
                    {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
                    "重算任务编号 recompute job (from a write's answer)",
                    required=True,
                    where="path",
                )
            ],
            "get": _admin("重算任务 a recompute job: queued, running, done or failed", "200"),
        },
        "/api/admin/audit": {
            "get": _admin(
                "审计日志 audit log (own county), newest first",
                "200",
                parameters=[
                    _param("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "条数")
                ],
            )
        },
        "/api/admin/facilities": {
            "get": _admin("可编辑的设施 facilities this token may edit", "200"),
            "post": _admin("新增设施 add a facility (recomputes its layer)", "201", "Facility"),
        },
        "/api/admin/facilities/{fid}": {
            "parameters": [FACILITY_ID],
            "patch": _admin(
                "修改设施 change fields; a move recomputes the layer", "200", "FacilityPatch"
            ),
            "delete": _admin("删除设施 delete a facility and its courses", "204"),
        },
        "/api/admin/facilities/upload": {
            "post": {
                **_admin("批量导入 upsert a registry file: all rows or none", "200"),
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["file", "crs"],
                                "properties": {
                                    "file": {"type": "string", "format": "binary"},
                                    "crs": {"type": "string", "enum": ["wgs84", "gcj02", "bd09"]},
                                    "layer": {"type": "string", "enum": list(LAYERS)},
                                },
                            }
                        }
                    },
                },
            }
        },
    }
    for table, model in (("courses", "Course"), ("evaluations", "Evaluation")):
        paths[f"/api/admin/facilities/{{fid}}/{table}"] = {
            "parameters": [FACILITY_ID],
            "get": _admin(f"{table} of a facility (past included; registered, seats_left)", "200"),
            "post": _admin(f"add a {model.lower()}", "201", model),
        }
        patch = _admin(f"change a {model.lower()} (fields merged)", "200", f"{model}Patch")
        patch["responses"]["409"] = {
            "description": "seats fewer than the people registered",
            **_json("FieldErrors"),
        }
        paths[f"/api/admin/facilities/{{fid}}/{table}/{{item_id}}"] = {
            "parameters": [FACILITY_ID, item_id],
            "patch": patch,
            "delete": _admin(
                f"delete a {model.lower()} (its registrants' personal data with it)", "204"
            ),
        }
    paths["/api/admin/facilities/upload"]["post"]["parameters"] = [
        _param(
            "dry_run",
            {"type": "boolean"},
            "预览 true: check every row and answer the preview, write nothing (status 200 "
            "with problems)",
        )
    ]
    item = _param(
        "item",
        {"type": "string", "pattern": "^(course|evaluation):[0-9]{1,18}$"},
        "只看一个项目 one item: course:<id> or evaluation:<id>",
    )
    reg_id = _param(
        "reg_id",
        {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
        "报名编号 registration id (another facility's: 404)",
        required=True,
        where="path",
    )
    export = _admin(
        "报名导出 the facility's registrants with whole phones (its staff token only)",
        "200",
        parameters=[item],
    )
    export["responses"]["200"] = {
        "description": "XLSX workbook (sheets 报名, 说明)",
        "content": {XLSX: {"schema": {"type": "string", "format": "binary"}}},
    }
    paths |= {
        "/api/admin/facilities/{fid}/registrations": {
            "parameters": [FACILITY_ID],
            "get": _admin(
                "报名名单 registrants of a facility (staff: own; county: own county), phones "
                "masked",
                "200",
                parameters=[item],
            ),
        },
        "/api/admin/facilities/{fid}/registrations.xlsx": {
            "parameters": [FACILITY_ID],
            "get": export,
        },
        "/api/admin/registrations/{reg_id}": {
            "parameters": [reg_id],
            "patch": _admin("出勤 mark attendance", "200", "AttendanceBody"),
            "delete": _admin(
                "删除报名 delete a registration's personal data (seat returned)", "204"
            ),
        },
    }
    return paths


def _errors(*codes: str) -> dict[str, Any]:
    """Documented error answers (JSON ``{error, message}``)."""
    words = {
        "400": "invalid parameter or body",
        "404": "unknown item, village or registration",
        "409": "full, duplicate, or no online registration (error: full, duplicate, closed)",
        "410": "the item is past",
        "413": "body too large",
        "429": "rate limit (per client, or per phone)",
    }
    out = {}
    for code in codes:
        schema = "FieldErrors" if code in ("400", "409") else "Error"
        out[code] = {"description": words[code], **_json(schema)}
    return out


def _worker_paths(region: Region, counties: dict[str, Any], point: list[Any]) -> dict[str, Any]:
    """Public routes for workers: search (web/search.py), 报名 (web/registration.py),
    demand (web/demand.py)."""
    county = _param("county", counties, "区县 county")
    weeks = _param(
        "weeks",
        {"type": "integer", "minimum": 1, "maximum": 1040, "default": 52},
        "最近几周 the last N ISO weeks (this one included)",
    )
    search_params = [
        _param("q", {"type": "string", "maxLength": 50}, "关键词 words in title, trade, facility"),
        _param(
            "trade",
            {"type": "string", "maxLength": 30, "pattern": r"^[^、,，;；/\s]*$"},
            "工种 trade (exact)",
        ),
        _param(
            "level",
            {"type": "string", "enum": ["初级", "中级", "高级", "技师"]},
            "等级 (evaluations; courses naming it in their title)",
        ),
        _param(
            "kind",
            {"type": "string", "enum": ["all", "course", "evaluation"], "default": "all"},
            "培训班/技能评价",
        ),
        _param(
            "village",
            {"type": "string", "pattern": "^[0-9]{12}$"},
            "出发村 12位村代码 (or lon/lat)",
        ),
        *[{**q, "required": False} for q in point],
        MODE,
        _param(
            "minutes",
            {"type": "number", "minimum": 1, "maximum": 120},
            "附近 only items within these minutes of the origin (default: all, minutes shown)",
        ),
        _param("from", {"type": "string", "format": "date"}, "从该日起 items ending on or after"),
        _param(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
            "最多条数",
        ),
    ]
    return {
        "/api/search": {
            "get": {
                "summary": "课程与评价搜索 upcoming courses and evaluation sessions, by start "
                "date then travel time",
                "parameters": search_params,
                "responses": {
                    "200": _ok(
                        "items, total, origin, mode", {"$ref": "#/components/schemas/Search"}
                    ),
                    **_errors("400", "404"),
                },
            }
        },
        "/api/trades": {
            "get": {
                "summary": "工种与等级 trades taught or scheduled, and evaluation levels",
                "responses": {"200": _ok("trades, levels")},
            }
        },
        "/api/register/challenge": {
            "get": {
                "summary": "报名验证题 a question to answer, and the consent text (告知书) to show",
                "responses": {
                    "200": _ok(
                        "token, question, consent {version, text, retention_days}",
                        {"$ref": "#/components/schemas/Challenge"},
                    ),
                    **_errors("429"),
                },
            }
        },
        "/api/registrations": {
            "post": {
                "summary": "报名 register for a course or evaluation session",
                "requestBody": {"required": True, **_json("RegistrationBody")},
                "responses": {
                    "201": {
                        "description": "registered: the confirmation code (shown once)",
                        **_json("Registered"),
                    },
                    **_errors("400", "404", "409", "410", "413", "429"),
                },
            }
        },
        "/api/registrations/withdraw": {
            "post": {
                "summary": "撤回报名 withdraw: personal data deleted, seat returned",
                "requestBody": {"required": True, **_json("WithdrawBody")},
                "responses": {
                    "200": _ok("withdrawn"),
                    **_errors("400", "413", "429"),
                    "404": {
                        "description": "no registration with this code and phone (the same "
                        "answer for a wrong code and a wrong phone)",
                        **_json("Error"),
                    },
                },
            }
        },
        "/api/demand": {
            "get": {
                "summary": "培训需求 anonymous demand per village and trade",
                "parameters": [county, TRADE, weeks],
                "responses": {"200": _ok("rows, totals"), **_errors("400")},
            },
            "post": {
                "summary": "需求信号 an anonymous signal: a search or notify-me for a trade",
                "requestBody": {"required": True, **_json("DemandBody")},
                "responses": {
                    "204": {"description": "counted"},
                    **_errors("400", "413", "429"),
                },
            },
        },
        "/api/demand.geojson": {
            "get": {
                "summary": "需求图层 villages with signals, for the map (GeoJSON)",
                "parameters": [county, TRADE, weeks],
                "responses": {
                    "200": _ok("villages", {"$ref": "#/components/schemas/FeatureCollection"}),
                    **_errors("400"),
                },
            }
        },
    }


def _ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema or {"type": "object"}}},
    }


def openapi_document(region: Region | None = None) -> dict[str, Any]:
    """Build the document (paths mirror the routes of web/api.py).

    Parameters
    ----------
    region
        The served region: its county names and lon/lat bounds are the
        parameters' enums and ranges (default: the region of ``Settings()``).
    """
    region = region or Settings().region
    geojson = {"$ref": "#/components/schemas/FeatureCollection"}
    counties = {"type": "string", "enum": list(region.county_names)}
    county = _param("county", counties, "区县 county")
    min_lon, min_lat, max_lon, max_lat = region.bounds
    point = [
        _param(
            "lon",
            {"type": "number", "minimum": min_lon, "maximum": max_lon},
            f"经度 WGS84 ({region.name})",
            required=True,
        ),
        _param(
            "lat",
            {"type": "number", "minimum": min_lat, "maximum": max_lat},
            f"纬度 WGS84 ({region.name})",
            required=True,
        ),
    ]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "skillcircle API — 30分钟职业技能培训圈",
            "version": "0.1.0",
            "description": (
                f"Travel times from villages to skills-training facilities in {region.name} "
                f"({region.code}). "
                "Facilities with is_sample=true are sample data. Road data © OpenStreetMap "
                "contributors, ODbL."
            ),
        },
        "paths": {
            "/api/version": {
                "get": {
                    "summary": "数据版本 which facilities version the answers reflect",
                    "responses": {"200": _ok("versions")},
                }
            },
            "/api/layers": {
                "get": {
                    "summary": "设施图层与数量 layers and counts",
                    "responses": {"200": _ok("layers")},
                }
            },
            "/api/facilities": {
                "get": {
                    "summary": "设施 facilities (GeoJSON)",
                    "parameters": [LAYER, county, TRADE],
                    "responses": {"200": _ok("facilities", geojson), "400": ERROR},
                }
            },
            "/api/villages": {
                "get": {
                    "summary": "村与覆盖 villages with minutes to the nearest facility (GeoJSON)",
                    "parameters": [
                        MODE,
                        county,
                        _param(
                            "covered", {"type": "boolean"}, "只看已覆盖/未覆盖 filter by coverage"
                        ),
                    ],
                    "responses": {"200": _ok("villages", geojson), "400": ERROR},
                }
            },
            "/api/villages/{code}": {
                "get": {
                    "summary": "一个村各方式各图层最近设施 one village, nearest per layer and mode",
                    "parameters": [
                        _param(
                            "code",
                            {"type": "string", "pattern": "^[0-9]{12}$"},
                            "12位统计用区划代码",
                            required=True,
                            where="path",
                        )
                    ],
                    "responses": {"200": _ok("village"), "404": NOT_FOUND},
                }
            },
            "/api/nearby": {
                "get": {
                    "summary": "附近培训 facilities reachable from a point, nearest first",
                    "parameters": [
                        *point,
                        MODE,
                        MINUTES,
                        LAYER,
                        TRADE,
                        _param(
                            "limit",
                            {"type": "integer", "minimum": 1, "maximum": 200, "default": 20},
                            "最多条数",
                        ),
                    ],
                    "responses": {
                        "200": _ok("facilities with minutes and distance_m"),
                        "400": ERROR,
                    },
                }
            },
            "/api/isochrones": {
                "get": {
                    "summary": "图层等时圈 union isochrones per layer (GeoJSON)",
                    "parameters": [
                        LAYER,
                        MODE,
                        _param(
                            "minutes",
                            {"type": "number", "enum": [15, 30, 45, 60], "default": 30},
                            "precomputed thresholds",
                        ),
                    ],
                    "responses": {"200": _ok("isochrones", geojson), "400": ERROR},
                }
            },
            "/api/stats": {
                "get": {
                    "summary": "覆盖统计 coverage statistics",
                    "parameters": [
                        _param(
                            "by",
                            {"type": "string", "enum": ["county", "town"], "default": "county"},
                            "按区县/乡镇",
                        ),
                        MODE,
                    ],
                    "responses": {"200": _ok("rows"), "400": ERROR},
                }
            },
            "/api/plan": {
                "get": {
                    "summary": "规划新增站点 new sites covering the most uncovered villages",
                    "parameters": [
                        _param("county", counties, "区县", required=True),
                        LAYER,
                        MODE,
                        MINUTES,
                        _param(
                            "add",
                            {"type": "integer", "minimum": 1, "maximum": 50, "default": 5},
                            "新增站点数",
                        ),
                        _param(
                            "candidates",
                            {
                                "type": "string",
                                "enum": ["villages", "towns"],
                                "default": "villages",
                            },
                            "候选点",
                        ),
                        _param(
                            "weights",
                            {
                                "type": "string",
                                "enum": ["villages", "demand"],
                                "default": "villages",
                            },
                            "权重 villages: 1 each; demand: w = 1 + demand signals of the village "
                            "(scans + searches + notify), reported in weights",
                        ),
                        _param(
                            "weeks",
                            {"type": "integer", "minimum": 1, "maximum": 1040, "default": 52},
                            "需求统计周数 demand of the last N ISO weeks",
                        ),
                    ],
                    "responses": {"200": _ok("proposed sites, ranked"), "400": ERROR},
                }
            },
            "/api/facilities/{fid}": {
                "get": {
                    "summary": "一个设施及近期课程、评价 one facility with upcoming courses",
                    "parameters": [FACILITY_ID],
                    "responses": {"200": _ok("facility"), "404": NOT_FOUND},
                }
            },
            "/api/openapi.json": {
                "get": {"summary": "this document", "responses": {"200": _ok("OpenAPI 3 document")}}
            },
            **_worker_paths(region, counties, point),
            **_admin_paths(),
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "skillcircle admin create-token",
                }
            },
            "schemas": {
                **{
                    name: model.model_json_schema(ref_template="#/components/schemas/{model}")
                    for name, model in SCHEMAS.items()
                },
                "FieldErrors": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {"type": "string"},
                        "message": {"type": "string"},
                        "fields": {"type": "object", "additionalProperties": {"type": "string"}},
                        "problems": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "row": {"type": "string"},
                                    "message": {"type": "string"},
                                },
                            },
                        },
                    },
                },
                "Any": {"type": "object"},
                **RESPONSE_SCHEMAS,
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
                },
                "FeatureCollection": {
                    "type": "object",
                    "required": ["type", "features"],
                    "properties": {
                        "type": {"type": "string"},
                        "features": {"type": "array", "items": {"type": "object"}},
                    },
                },
            },
        },
    }


_TEXT_OR_NULL = {"type": ["string", "null"]}
#: Answers of the worker routes, for clients and for the fuzz tests' conformance checks.
RESPONSE_SCHEMAS: dict[str, Any] = {
    "SearchItem": {
        "type": "object",
        "required": [
            "kind",
            "id",
            "facility_id",
            "facility_name",
            "trade",
            "title",
            "start_date",
            "seats",
            "seats_left",
            "register",
            "minutes",
            "distance_m",
            "is_sample",
        ],
        "properties": {
            "kind": {"type": "string", "enum": ["course", "evaluation"]},
            "id": {"type": "integer"},
            "facility_id": {"type": "string"},
            "facility_name": {"type": "string"},
            "layer": {"type": "string"},
            "trade": {"type": "string"},
            "level": _TEXT_OR_NULL,
            "title": {"type": "string"},
            "start_date": {"type": "string", "format": "date"},
            "end_date": _TEXT_OR_NULL,
            "date": {"type": "string", "format": "date"},
            "seats": {"type": ["integer", "null"]},
            "seats_left": {"type": ["integer", "null"]},
            "fee": {"type": ["number", "null"]},
            "subsidy_note": _TEXT_OR_NULL,
            "register": {
                "type": "object",
                "required": ["online", "url", "phone"],
                "properties": {
                    "online": {"type": "boolean"},
                    "url": _TEXT_OR_NULL,
                    "phone": _TEXT_OR_NULL,
                },
            },
            "minutes": {"type": ["number", "null"]},
            "distance_m": {"type": ["integer", "null"]},
            "is_sample": {"type": "boolean"},
        },
    },
    "Search": {
        "type": "object",
        "required": ["items", "total", "origin", "mode"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/SearchItem"}},
            "total": {"type": "integer"},
            "origin": {"type": ["object", "null"]},
            "mode": {"type": "string"},
            "minutes": {"type": ["number", "null"]},
        },
    },
    "Challenge": {
        "type": "object",
        "required": ["token", "question", "consent"],
        "properties": {
            "token": {"type": "string"},
            "question": {"type": "string"},
            "expires_in": {"type": "integer"},
            "consent": {
                "type": "object",
                "required": ["version", "text", "retention_days"],
                "properties": {
                    "version": {"type": "string"},
                    "text": {"type": "string"},
                    "retention_days": {"type": "integer"},
                },
            },
        },
    },
    "Registered": {
        "type": "object",
        "required": [
            "code",
            "kind",
            "item_id",
            "title",
            "facility_name",
            "start_date",
            "seats_left",
            "retention_days",
            "withdraw_url",
        ],
        "properties": {
            "code": {"type": "string", "pattern": "^[0-9A-HJKMNP-TV-Z]{8}$"},
            "kind": {"type": "string", "enum": ["course", "evaluation"]},
            "item_id": {"type": "integer"},
            "title": {"type": "string"},
            "facility_name": {"type": "string"},
            "start_date": {"type": "string"},
            "seats_left": {"type": "integer"},
            "retention_days": {"type": "integer"},
            "withdraw_url": {"type": "string"},
        },
    },
}
