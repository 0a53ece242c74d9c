"""Placing registry rows by address: the offline gazetteer on the bundled Jiaxing pack and on a
tiny synthetic region, import/CLI/admin upload of address-only registries, and the online
geocoders (Amap, Tianditu) against a local stand-in server — never the real services."""

from __future__ import annotations

import io
import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import geopandas as gpd
import pytest
import shapely
from click.testing import CliRunner
from test_region import nanhu_pack  # noqa: F401 (the 南湖区 county pack fixture)

from geo._errors import FacilityDataError, GeocoderError, SettingsError
from geo.cli import main
from geo.coords import gcj02_to_wgs84, wgs84_to_gcj02
from geo.facilities import import_registry
from geo.geocode import Gazetteer, Placement, make_geocoder
from geo.geocoders import OnlineGeocoder
from geo.settings import Settings
from web import create_app

DATA = Path(__file__).resolve().parents[1] / "data" / "boundaries"


def _features(name: str) -> list[dict[str, Any]]:
    return json.loads((DATA / f"{name}.geojson").read_text(encoding="utf-8"))["features"]


# Points straight from the bundled files (not through the loaders the gazetteer uses).
VILLAGES = {
    f["properties"]["village_name"] + "@" + f["properties"]["town"]: f
    for f in _features("villages")
}
TOWNS = {f["properties"]["town"]: f for f in _features("towns")}


def village(name: str, town: str) -> dict[str, Any]:
    return VILLAGES[f"{name}@{town}"]


@pytest.fixture(scope="module")
def gazetteer() -> Gazetteer:
    return Gazetteer.from_settings(Settings())


# --------------------------------------------------------- offline: Jiaxing


@dataclass(frozen=True)
class Case:
    address: str
    town: str
    village: str | None  # official name of the village whose point is used, else the town's
    quality: str


CASES = [
    # county + town + village with a 2016 point of its own
    Case("桐乡市乌镇镇民合村", "乌镇镇", "民合村村委会", "village_from_address"),
    # full-width digits and spaces, ideographic space
    Case("桐乡市　乌镇镇 民合村１５号", "乌镇镇", "民合村村委会", "village_from_address"),
    # the committee's full name
    Case("乌镇镇民合村村民委员会", "乌镇镇", "民合村村委会", "village_from_address"),
    # province and city in front; the village (沈士村) is not in the 2023 codes: the town seat
    Case("浙江省嘉兴市海宁市许村镇沈士村15号", "许村镇", None, "town_from_address"),
    # a village whose point is its town seat: honest about where the point comes from
    Case("海宁市许村镇荡湾村", "许村镇", "荡湾村委会", "town_from_address"),
    # 社区 of a 社区居委会, with a house number
    Case(
        "嘉兴市南湖区建设街道百福弄社区3号", "建设街道", "百福弄社区居委会", "village_from_address"
    ),
    # a 街道 name without 街道, after its county
    Case("南湖区长水 清河小区12幢", "长水街道", None, "town_from_address"),
    # bare county and town (桐乡 乌镇), village of the town
    Case("浙江嘉兴桐乡乌镇横港村", "乌镇镇", "横港村村委会", "town_from_address"),
    # a village name found in no other town: the town follows from it
    Case("海宁市文桥村", "许村镇", "文桥村委会", "village_from_address"),
    # a 村委会 village written as X村 where the town also has X社区-like names
    Case("桐乡市乌镇镇虹桥村", "乌镇镇", "虹桥村村委会", "village_from_address"),
    # a development zone in front is not another city
    Case("嘉兴经济技术开发区城南街道", "城南街道", None, "town_from_address"),
    # 镇 written as 乡, 县/市 variants of the county
    Case("海宁县许村乡", "许村镇", None, "town_from_address"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.address for c in CASES])
def test_addresses_are_placed_at_the_village_or_town_point_of_the_files(gazetteer, case):
    found = gazetteer.match(case.address)
    assert isinstance(found, Placement), found
    town = TOWNS[case.town]
    source = village(case.village, case.town) if case.village else town
    assert (found.lon, found.lat) == tuple(source["geometry"]["coordinates"])
    assert found.location_quality == case.quality
    assert (found.county, found.town, found.town_code) == (
        town["properties"]["county"],
        case.town,
        town["properties"]["town_code"],
    )
    if case.village and source["properties"]["location_quality"] == "town_seat":
        # the village's own point is its town seat: the label says town
        assert (found.lon, found.lat) == tuple(town["geometry"]["coordinates"])
        assert found.location_quality == "town_from_address"


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        # a village name in three towns of three counties
        (
            "联丰村",
            ["南湖区凤桥镇联丰村委会", "海宁市盐官镇联丰村委会", "ambiguous", "add the town"],
        ),
        ("城南社区", ["南湖区新兴街道", "嘉善县罗星街道", "ambiguous"]),
        ("杭州市西湖区文三路90号", ["names 杭州市", "outside 嘉兴市"]),
        ("上海市浦东新区张江镇", ["names 上海市", "outside 嘉兴市"]),
        ("北京路18号", ["names no county, town or village of 嘉兴市"]),
        ("南湖区乌镇镇民合村", ["乌镇镇 lies in 桐乡市, not in 南湖区"]),
        ("嘉兴市南湖区建设路18号", ["names only the county 南湖区", "add the town"]),
        ("", ["address is empty"]),
    ],
)
def test_unplaceable_addresses_say_why_and_what_to_do(gazetteer, address, expected):
    found = gazetteer.match(address)
    assert isinstance(found, str), found
    for part in expected:
        assert part in found
    assert "\n" not in found


def test_the_ambiguous_village_is_placed_once_the_town_or_county_is_given(gazetteer):
    fengqiao = gazetteer.match("凤桥镇联丰村")
    yanguan = gazetteer.match("海宁市联丰村")
    assert isinstance(fengqiao, Placement) and isinstance(yanguan, Placement)
    assert (fengqiao.town, yanguan.town) == ("凤桥镇", "盐官镇")
    assert (fengqiao.lon, fengqiao.lat) == tuple(TOWNS["凤桥镇"]["geometry"]["coordinates"])


def test_match_rate_on_every_bundled_village_written_as_an_address(gazetteer):
    """Every village as 区县+乡镇+村/社区 (the common written form) is placed at its own record."""
    wrong = []
    for feature in _features("villages"):
        p = feature["properties"]
        short = p["short_name"]
        own = short if short.endswith(("村", "社区")) else short + "村"
        found = gazetteer.match(f"{p['county']}{p['town']}{own}8号")
        want = tuple(feature["geometry"]["coordinates"])
        placed = isinstance(found, Placement) and (found.lon, found.lat) == want
        if not placed or found.town_code != p["town_code"]:  # type: ignore[union-attr]
            wrong.append((p["village_name"], found))
    assert wrong == []


# --------------------------------------------------- offline: any region


def _square(x: float, y: float) -> shapely.Polygon:
    return shapely.box(x, y, x + 0.1, y + 0.1)


@pytest.fixture(scope="module")
def tiny() -> Gazetteer:
    """Two counties of 宁波市 that (synthetically) both have a 新城街道 and a 红旗村."""
    counties = gpd.GeoDataFrame(
        {
            "county": ["镇海区", "北仑区"],
            "adcode": ["330211", "330206"],
            "city": ["宁波市", "宁波市"],
        },
        geometry=[_square(121.6, 29.9), _square(121.8, 29.9)],
        crs="EPSG:4326",
    )
    towns = gpd.GeoDataFrame(
        {
            "town": ["新城街道", "新城街道", "骆驼街道"],
            "town_code": ["330211001", "330206001", "330211002"],
            "county": ["镇海区", "北仑区", "镇海区"],
        },
        geometry=gpd.points_from_xy([121.65, 121.85, 121.62], [29.95, 29.95, 29.98]),
        crs="EPSG:4326",
    )
    villages = gpd.GeoDataFrame(
        {
            "village_name": ["红旗村委会", "红旗村委会", "光明社区居委会"],
            "town_code": ["330211001", "330206001", "330211002"],
            "town": ["新城街道", "新城街道", "骆驼街道"],
            "county": ["镇海区", "北仑区", "镇海区"],
            "location_quality": ["point_2016_gcj02", "point_2016_gcj02", "town_seat"],
        },
        geometry=gpd.points_from_xy([121.66, 121.86, 121.62], [29.96, 29.96, 29.98]),
        crs="EPSG:4326",
    )
    return Gazetteer.from_frames(counties, towns, villages)


def test_any_region_names_come_from_its_own_frames(tiny):
    assert tiny.region_name == "浙江省"  # no outline given: the province of the codes
    assert tiny.city_code == "330200"
    found = tiny.match("浙江省宁波市北仑区新城街道红旗村12号")
    assert isinstance(found, Placement)
    assert (found.lon, found.lat, found.county) == (121.86, 29.96, "北仑区")
    assert found.location_quality == "village_from_address"
    found = tiny.match("宁波镇海骆驼光明社区")
    assert isinstance(found, Placement)
    assert (found.town, found.location_quality) == ("骆驼街道", "town_from_address")


def test_a_town_in_two_counties_is_ambiguous_until_the_county_is_given(tiny):
    town = tiny.match("新城街道")
    assert isinstance(town, str)
    assert "北仑区新城街道 or 镇海区新城街道" in town and "add the county (区县)" in town
    both = tiny.match("新城街道红旗村")
    assert isinstance(both, str)
    assert "北仑区新城街道红旗村委会 or 镇海区新城街道红旗村委会" in both
    assert "add the town (乡镇/街道) or county (区县)" in both
    placed = tiny.match("镇海区新城街道")
    assert isinstance(placed, Placement) and placed.town_code == "330211001"
    # Jiaxing's names mean nothing here
    assert "outside" in tiny.match("嘉兴市南湖区建设街道")  # type: ignore[operator]


# ------------------------------------------------------- import, CLI, admin


REGISTRY = (
    "名称,地址,经度,纬度,工种\n"
    "乌镇培训点,桐乡市乌镇镇民合村15号,,,电工\n"
    "有坐标的点,,120.76,30.75,焊工\n"
    "许村站,海宁市许村镇沈士村,,,\n"
)


def test_import_places_rows_without_lon_lat_by_address(tmp_path):
    path = tmp_path / "名录.csv"
    path.write_text(REGISTRY, encoding="gbk")
    gdf = import_registry(path, "village_station", "wgs84")
    minhe = village("民合村村委会", "乌镇镇")
    assert list(gdf["location_quality"]) == [
        "village_from_address",
        "registry_wgs84",
        "town_from_address",
    ]
    assert (gdf.geometry.x[0], gdf.geometry.y[0]) == tuple(minhe["geometry"]["coordinates"])
    assert (gdf.geometry.x[1], gdf.geometry.y[1]) == (120.76, 30.75)
    assert (gdf.geometry.x[2], gdf.geometry.y[2]) == tuple(
        TOWNS["许村镇"]["geometry"]["coordinates"]
    )
    assert list(gdf["county"]) == ["桐乡市", "", "海宁市"]
    assert list(gdf["town_code"]) == ["330483100", "", "330481101"]


def test_import_uses_the_county_and_town_cells(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("名称,县市区,乡镇,详细地址\n甲,海宁市,,联丰村8号\n乙,,凤桥镇,联丰村\n", "utf-8")
    gdf = import_registry(path, "village_station", "wgs84")
    assert list(gdf["town"]) == ["盐官镇", "凤桥镇"]


def test_import_reports_every_bad_address_row_and_needs_an_address_or_lon_lat(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(
        "名称,地址\n好,桐乡市乌镇镇民合村\n歧义,联丰村\n外地,杭州市西湖区文三路90号\n空,\n",
        encoding="utf-8",
    )
    with pytest.raises(FacilityDataError) as err:
        import_registry(path, "village_station", "wgs84")
    assert [where for where, _ in err.value.problems] == ["row 3", "row 4", "row 5"]
    assert "ambiguous" in err.value.problems[0][1]
    assert "outside 嘉兴市" in err.value.problems[1][1]
    assert "no lon/lat and no address" in err.value.problems[2][1]
    assert str(err.value).startswith("bad.csv: 3 problems | row 3: address '联丰村' is ambiguous")
    none = tmp_path / "none.csv"
    none.write_text("名称,电话\n甲,1\n", encoding="utf-8")
    with pytest.raises(FacilityDataError, match=r"missing column\(s\) lon, lat.*or an address"):
        import_registry(none, "village_station", "wgs84")


@pytest.fixture
def runner(tmp_path, monkeypatch) -> CliRunner:
    monkeypatch.setenv("SKILLCIRCLE_CACHE", str(tmp_path / "cache"))
    return CliRunner()


def test_cli_import_of_an_address_only_csv(runner, tmp_path):
    src = tmp_path / "名录.csv"
    src.write_text(
        "名称,地址\n乌镇培训点,桐乡市乌镇镇民合村15号\n许村站,海宁市许村镇沈士村\n", "utf-8"
    )
    out = tmp_path / "out.geojson"
    args = ["import", str(src), "--layer", "village_station", "--out", str(out)]
    result = runner.invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "(village_station; placed by address: village_from_address 1, town_from_address 1)" in (
        result.output
    )
    features = json.loads(out.read_text(encoding="utf-8"))["features"]
    assert [f["properties"]["location_quality"] for f in features] == [
        "village_from_address",
        "town_from_address",
    ]
    assert (
        features[0]["geometry"]["coordinates"]
        == village("民合村村委会", "乌镇镇")["geometry"]["coordinates"]
    )
    # one bad row: one line naming file, row and remedy; nothing written
    bad = tmp_path / "bad.csv"
    bad.write_text("名称,地址\n甲,桐乡市乌镇镇民合村\n乙,联丰村\n", "utf-8")
    out2 = tmp_path / "out2.geojson"
    result = runner.invoke(
        main, ["import", str(bad), "--layer", "village_station", "--out", str(out2)]
    )
    assert result.exit_code == 1
    assert "bad.csv row 3: address '联丰村' is ambiguous" in result.output
    assert "add the town" in result.output and not out2.exists()


def test_cli_online_geocoder_needs_a_key(runner, tmp_path, monkeypatch):
    monkeypatch.delenv("SKILLCIRCLE_AMAP_KEY", raising=False)
    src = tmp_path / "r.csv"
    src.write_text("名称,地址\n甲,桐乡市乌镇镇民合村\n", "utf-8")
    out = tmp_path / "o.geojson"
    args = [
        "import",
        str(src),
        "--layer",
        "village_station",
        "--geocoder",
        "amap",
        "--out",
        str(out),
    ]
    result = runner.invoke(main, args)
    assert result.exit_code == 1 and "SKILLCIRCLE_AMAP_KEY" in result.output
    assert not out.exists()


def _admin(study, database, **config):
    app = create_app(
        {
            "TESTING": True,
            "STUDY": study,
            "TILE_URL": "none",
            "DATABASE": database,
            "RATELIMIT_ADMIN": "10000 per minute",
            **config,
        }
    )
    _, token = app.extensions["skillcircle.store"].create_token("南湖区总工会", "南湖区")
    return app.test_client(), {"Authorization": f"Bearer {token}"}


def _upload(client, headers, text: str):
    return client.post(
        "/api/admin/facilities/upload",
        data={
            "file": (io.BytesIO(text.encode("utf-8")), "名录.csv"),
            "crs": "wgs84",
            "layer": "village_station",
        },
        headers=headers,
        content_type="multipart/form-data",
    )


def test_admin_upload_of_an_address_only_csv(study, new_database):
    client, headers = _admin(study, new_database())
    before = len(client.get("/api/facilities").get_json()["features"])
    bad = _upload(client, headers, "名称,地址\n甲,南湖区凤桥镇联丰村\n乙,联丰村\n")
    assert bad.status_code == 400
    body = bad.get_json()
    assert body["committed"] is False
    assert [p["row"] for p in body["problems"]] == ["row 3"]
    assert "ambiguous" in body["problems"][0]["message"]
    assert len(client.get("/api/facilities").get_json()["features"]) == before

    resp = _upload(
        client, headers, "名称,地址\n建设站,南湖区建设街道百福弄社区\n凤桥站,凤桥镇联丰村\n"
    )
    assert resp.status_code == 200, resp.get_json()
    ids = resp.get_json()["ids"]
    first = client.get(f"/api/facilities/{ids[0]}").get_json()
    assert (first["county"], first["town"], first["location_quality"]) == (
        "南湖区",
        "建设街道",
        "village_from_address",
    )
    baifu = village("百福弄社区居委会", "建设街道")["geometry"]["coordinates"]
    assert [first["lon"], first["lat"]] == baifu
    second = client.get(f"/api/facilities/{ids[1]}").get_json()
    assert (second["town"], second["location_quality"]) == ("凤桥镇", "town_from_address")
    assert len(client.get("/api/facilities").get_json()["features"]) == before + 2


# ------------------------------------------------------ online, stand-in server


@dataclass
class FakeService:
    """A local stand-in for the Amap and Tianditu geocoding endpoints."""

    url: str
    answers: dict[str, list[tuple[int, Any]]] = field(default_factory=dict)
    requests: list[dict[str, str]] = field(default_factory=list)

    def answer(self, keyword: str, *replies: tuple[int, Any]) -> None:
        """Reply to ``keyword`` with these (status, JSON) in turn (the last one repeats)."""
        self.answers[keyword] = list(replies)


@pytest.fixture
def service() -> Iterator[FakeService]:
    fake = FakeService("")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
            fake.requests.append({"path": urlparse(self.path).path, **query})
            keyword = query.get("address") or json.loads(query.get("ds", "{}")).get("keyWord", "")
            replies = fake.answers.get(keyword) or [
                (200, {"status": "1", "count": "0", "geocodes": []})
            ]
            status, body = replies.pop(0) if len(replies) > 1 else replies[0]
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
    thread.join()


def amap_hit(lon: float, lat: float, level: str = "门牌号", district: str = "桐乡市") -> dict:
    return {
        "status": "1",
        "info": "OK",
        "infocode": "10000",
        "count": "1",
        "geocodes": [
            {
                "formatted_address": f"浙江省嘉兴市{district}某处",
                "country": "中国",
                "province": "浙江省",
                "city": "嘉兴市",
                "district": district,
                "township": [],
                "adcode": "330483",
                "location": f"{lon:.6f},{lat:.6f}",
                "level": level,
            }
        ],
    }


def online(service: FakeService, gazetteer: Gazetteer, tmp_path: Path, kind: str = "amap", **kw):
    return OnlineGeocoder(
        kind,
        "SECRET-KEY-123",
        gazetteer,
        url=f"{service.url}/{'v3/geocode/geo' if kind == 'amap' else 'geocoder'}",
        cache_dir=tmp_path / "geocode",
        min_interval=0,
        backoff=0,
        **kw,
    )


ADDRESS = "桐乡市乌镇镇民合村15号"


def test_amap_gcj02_answer_is_converted_cached_and_named(service, gazetteer, tmp_path):
    glon, glat = (float(c) for c in wgs84_to_gcj02(120.5436, 30.7601))
    service.answer(ADDRESS, (200, amap_hit(glon, glat)))
    first = online(service, gazetteer, tmp_path).locate([ADDRESS, ADDRESS])
    assert len(service.requests) == 1  # one request per distinct address
    request = service.requests[0]
    assert (request["path"], request["key"], request["city"]) == (
        "/v3/geocode/geo",
        "SECRET-KEY-123",
        "330400",
    )
    place = first[0]
    assert isinstance(place, Placement) and first[1] == place
    want = gcj02_to_wgs84(float(f"{glon:.6f}"), float(f"{glat:.6f}"))
    assert place.lon == pytest.approx(float(want[0]), abs=1e-7)
    assert place.lat == pytest.approx(float(want[1]), abs=1e-7)
    assert abs(place.lon - glon) > 1e-3  # the GCJ-02 offset was removed
    assert place.location_quality == "geocoded_amap:门牌号"
    assert (place.county, place.town, place.town_code) == ("桐乡市", "乌镇镇", "330483100")
    # a new geocoder with the same cache folder asks nothing
    again = online(service, gazetteer, tmp_path).locate([ADDRESS])
    assert again == [place] and len(service.requests) == 1
    # the key is never stored
    with sqlite3.connect(tmp_path / "geocode" / "amap.sqlite3") as db:
        stored = " ".join(str(row) for row in db.execute("SELECT * FROM answers"))
    assert ADDRESS in stored and "SECRET-KEY-123" not in stored


def test_amap_results_outside_the_region_or_too_coarse_are_row_problems(
    service, gazetteer, tmp_path
):
    hangzhou = wgs84_to_gcj02(120.15, 30.28)
    service.answer("乌镇镇文三路", (200, amap_hit(*map(float, hangzhou), district="西湖区")))
    service.answer("桐乡市", (200, amap_hit(120.56, 30.63, level="区县")))
    found = online(service, gazetteer, tmp_path).locate(["乌镇镇文三路", "桐乡市", "无此地"])
    assert "outside 嘉兴市" in found[0] and "西湖区" in found[0]
    assert "only at level 区县" in found[1]
    assert "found no place" in found[2]


def test_amap_retries_when_busy_and_stops_on_a_bad_key(service, gazetteer, tmp_path):
    busy = {"status": "0", "info": "CUQPS_HAS_EXCEEDED_THE_LIMIT", "infocode": "10021"}
    glon, glat = (float(c) for c in wgs84_to_gcj02(120.5436, 30.7601))
    service.answer(ADDRESS, (200, busy), (500, {}), (200, amap_hit(glon, glat)))
    assert isinstance(online(service, gazetteer, tmp_path).locate([ADDRESS])[0], Placement)
    assert len(service.requests) == 3

    service.answer(
        "乌镇镇", (200, {"status": "0", "info": "INVALID_USER_KEY", "infocode": "10001"})
    )
    with pytest.raises(GeocoderError, match=r"INVALID_USER_KEY \(10001\); check the key") as err:
        online(service, gazetteer, tmp_path).locate(["乌镇镇"])
    assert "SECRET-KEY-123" not in str(err.value)
    service.answer("濮院镇", (200, busy))
    with pytest.raises(GeocoderError, match="no usable answer after 3 tries"):
        online(service, gazetteer, tmp_path, retries=2).locate(["濮院镇"])


def test_tianditu_answer_is_taken_as_wgs84_with_its_level(service, gazetteer, tmp_path):
    keyword = "嘉兴市乌镇镇民合村"  # the region's name goes in front: the API has no city filter
    service.answer(
        keyword,
        (
            200,
            {
                "msg": "ok",
                "status": "0",
                "searchVersion": "6.4.9V",
                "location": {
                    "lon": 120.5437,
                    "lat": 30.7602,
                    "level": "村庄",
                    "score": 90,
                    "keyWord": keyword,
                },
            },
        ),
    )
    service.answer("嘉兴市无此地", (200, {"msg": "无结果", "status": "101"}))
    found = online(service, gazetteer, tmp_path, kind="tianditu").locate(["乌镇镇民合村", "无此地"])
    assert service.requests[0]["tk"] == "SECRET-KEY-123"
    place = found[0]
    assert isinstance(place, Placement)
    assert (place.lon, place.lat) == (120.5437, 30.7602)
    assert place.location_quality == "geocoded_tianditu:村庄"
    assert place.town == "乌镇镇"
    assert "found no place" in found[1]


def test_import_and_cli_with_an_online_geocoder(service, tmp_path, monkeypatch, runner):
    glon, glat = (float(c) for c in wgs84_to_gcj02(120.5436, 30.7601))
    service.answer(ADDRESS, (200, amap_hit(glon, glat)))
    src = tmp_path / "r.csv"
    src.write_text(f"名称,地址\n乌镇培训点,{ADDRESS}\n", "utf-8")
    monkeypatch.setenv("SKILLCIRCLE_GEOCODER_URL", f"{service.url}/v3/geocode/geo")
    monkeypatch.setenv("SKILLCIRCLE_AMAP_KEY", "SECRET-KEY-123")
    out = tmp_path / "o.geojson"
    args = [
        "import",
        str(src),
        "--layer",
        "village_station",
        "--geocoder",
        "amap",
        "--out",
        str(out),
    ]
    result = runner.invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    feature = json.loads(out.read_text(encoding="utf-8"))["features"][0]
    assert feature["properties"]["location_quality"] == "geocoded_amap:门牌号"
    assert feature["properties"]["town"] == "乌镇镇"
    assert len(service.requests) == 1
    # the cache lives under $SKILLCIRCLE_CACHE/geocode/
    assert (tmp_path / "cache" / "geocode" / "amap.sqlite3").exists()
    result = runner.invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0 and len(service.requests) == 1


def test_make_geocoder_checks_kind_and_key(monkeypatch, gazetteer):
    monkeypatch.delenv("SKILLCIRCLE_TIANDITU_KEY", raising=False)
    with pytest.raises(SettingsError, match="unknown geocoder 'baidu'"):
        make_geocoder("baidu", Settings(), gazetteer=gazetteer)
    with pytest.raises(SettingsError, match="SKILLCIRCLE_TIANDITU_KEY"):
        make_geocoder("tianditu", Settings(), gazetteer=gazetteer)
    assert make_geocoder("offline", Settings(), gazetteer=gazetteer) is gazetteer
    monkeypatch.setenv("SKILLCIRCLE_TIANDITU_KEY", "k")
    coder = make_geocoder("tianditu", Settings(), gazetteer=gazetteer)
    assert isinstance(coder, OnlineGeocoder) and coder.url == "http://api.tianditu.gov.cn/geocoder"


def test_admin_upload_with_a_configured_online_geocoder(study, new_database, service):
    lon, lat = village("百福弄社区居委会", "建设街道")["geometry"]["coordinates"]
    glon, glat = (float(c) for c in wgs84_to_gcj02(lon, lat))
    address = "南湖区建设街道百福弄社区"
    service.answer(address, (200, amap_hit(glon, glat, level="兴趣点", district="南湖区")))
    client, headers = _admin(
        study,
        new_database(),
        GEOCODER="amap",
        GEOCODER_KEY="SECRET-KEY-123",
        GEOCODER_URL=f"{service.url}/v3/geocode/geo",
    )
    resp = _upload(client, headers, f"名称,地址\n建设站,{address}\n")
    assert resp.status_code == 200, resp.get_json()
    fac = client.get(f"/api/facilities/{resp.get_json()['ids'][0]}").get_json()
    assert fac["location_quality"] == "geocoded_amap:兴趣点"
    assert (fac["county"], fac["town"]) == ("南湖区", "建设街道")
    assert fac["lon"] == pytest.approx(lon, abs=1e-5) and fac["lat"] == pytest.approx(lat, abs=1e-5)
    assert [r["key"] for r in service.requests] == ["SECRET-KEY-123"]


# ------------------------------------------------------- another region pack


def test_a_county_pack_matches_its_own_places_only(nanhu_pack, runner, tmp_path):  # noqa: F811
    settings = Settings(data_dir=nanhu_pack)
    nanhu = Gazetteer.from_settings(settings)
    assert nanhu.region_name == "南湖区" and nanhu.city_code == "330400"
    found = nanhu.match("浙江省嘉兴市南湖区建设街道百福弄社区3号")
    assert isinstance(found, Placement)
    assert [found.lon, found.lat] == village("百福弄社区居委会", "建设街道")["geometry"][
        "coordinates"
    ]
    assert "names 桐乡市, outside 南湖区" in nanhu.match("桐乡市乌镇镇民合村")  # type: ignore[operator]
    assert "of 南湖区" in nanhu.match("乌镇镇民合村")  # type: ignore[operator]
    # 联丰村 is one village here (凤桥镇): no longer ambiguous
    assert nanhu.match("联丰村").town == "凤桥镇"  # type: ignore[union-attr]

    src = tmp_path / "r.csv"
    src.write_text("名称,地址\n甲,凤桥镇联丰村\n乙,桐乡市乌镇镇民合村\n", "utf-8")
    out = tmp_path / "o.geojson"
    args = ["import", "--region", str(nanhu_pack), str(src), "--layer", "village_station"]
    result = runner.invoke(main, [*args, "--out", str(out)])
    assert result.exit_code == 1 and not out.exists()
    assert "r.csv row 3: address '桐乡市乌镇镇民合村' names 桐乡市, outside 南湖区" in result.output
