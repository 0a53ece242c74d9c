"""The OpenAPI 3 document of the JSON API (served at /api/openapi.json)."""

from __future__ import annotations

from typing import Any

from geo.settings import COUNTIES, LAYERS, MODES


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
COUNTY = _param("county", {"type": "string", "enum": list(COUNTIES)}, "区县 county")
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


def _ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema or {"type": "object"}}},
    }


def openapi_document() -> dict[str, Any]:
    """Build the document (paths mirror the routes of web/api.py)."""
    geojson = {"$ref": "#/components/schemas/FeatureCollection"}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "skillcircle API — 30分钟职业技能培训圈",
            "version": "0.1.0",
            "description": (
                "Travel times from villages to skills-training facilities in Jiaxing. "
                "Facilities with is_sample=true are sample data. Road data © OpenStreetMap "
                "contributors, ODbL."
            ),
        },
        "paths": {
            "/api/layers": {
                "get": {
                    "summary": "设施图层与数量 layers and counts",
                    "responses": {"200": _ok("layers")},
                }
            },
            "/api/facilities": {
                "get": {
                    "summary": "设施 facilities (GeoJSON)",
                    "parameters": [LAYER, COUNTY, TRADE],
                    "responses": {"200": _ok("facilities", geojson), "400": ERROR},
                }
            },
            "/api/villages": {
                "get": {
                    "summary": "村与覆盖 villages with minutes to the nearest facility (GeoJSON)",
                    "parameters": [
                        MODE,
                        COUNTY,
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
                        _param("lon", {"type": "number"}, "经度 WGS84", required=True),
                        _param("lat", {"type": "number"}, "纬度 WGS84", required=True),
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
                        _param(
                            "county",
                            {"type": "string", "enum": list(COUNTIES)},
                            "区县",
                            required=True,
                        ),
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
                    ],
                    "responses": {"200": _ok("proposed sites, ranked"), "400": ERROR},
                }
            },
            "/api/openapi.json": {
                "get": {"summary": "this document", "responses": {"200": _ok("OpenAPI 3 document")}}
            },
        },
        "components": {
            "schemas": {
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
            }
        },
    }
