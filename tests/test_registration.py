"""报名: registration, refusals that write nothing, withdrawal, staff scoping and masking,
the staff export, attendance, retention purge, rate limits, the challenge."""

from __future__ import annotations

import datetime as dt
import io
import re
import sqlite3
import threading
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner
from signup import COURSE, body, snapshot, solve, values
from webapp import make_app

import web
from web.records import today
from web.registration import CONSENT_TEXT, check_challenge, make_challenge
from web.schemas import ChallengeAnswer
from web.store import CODE_ALPHABET, hash_code, mask_phone

NANHU_SCHOOL = "TS-330402-001"  # 嘉兴市建筑工业学校, 南湖区
NANHU_BASE = "TB-330402-001"  # another 南湖区 facility
XIUZHOU_ORG = "EO-330411-001"  # 秀洲区
PHONE = "13812345678"


@pytest.fixture
def tokens(store) -> dict[str, dict[str, str]]:
    """Authorization headers: staff of the school, staff of another 南湖 facility, the
    南湖区 and 秀洲区 unions, the whole region."""
    out = {}
    for key, county, facility in (
        ("school", None, NANHU_SCHOOL),
        ("base", None, NANHU_BASE),
        ("nanhu", "南湖区", None),
        ("xiuzhou", "秀洲区", None),
        ("city", None, None),
    ):
        _, token = store.create_token(key, county, facility_id=facility)
        out[key] = {"Authorization": f"Bearer {token}"}
    return out


def add_course(client, headers, facility=NANHU_SCHOOL, **changes) -> int:
    resp = client.post(
        f"/api/admin/facilities/{facility}/courses", json={**COURSE, **changes}, headers=headers
    )
    assert resp.status_code == 201, resp.get_json()
    return int(resp.get_json()["id"])


def seats_left(client, item_id: int, kind: str = "course") -> int | None:
    items = client.get(f"/api/search?kind={kind}&limit=200").get_json()["items"]
    return next(i["seats_left"] for i in items if i["id"] == item_id and i["kind"] == kind)


def store_bytes(path: str) -> bytes:
    """The SQLite store's files after a checkpoint (what is on disk)."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    files = [Path(path + suffix) for suffix in ("", "-wal", "-shm")]
    return b"".join(f.read_bytes() for f in files if f.exists())


# ---------------------------------------------------------------------- challenge


def test_challenge_is_a_chinese_sum_with_the_consent_text(client):
    resp = client.get("/api/register/challenge")
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store" and resp.headers.get("ETag") is None
    got = resp.get_json()
    assert re.fullmatch(
        r"[零一二三四五六七八九十]+[加减][零一二三四五六七八九十]+等于多少？.*", got["question"]
    )
    assert 0 <= solve(got["question"]) <= 99
    consent = got["consent"]
    assert consent["retention_days"] == 180 and "180天" in consent["text"]
    for words in ("目的", "姓名、手机号码", "不记录您的IP地址", "撤回", "个人信息保护法"):
        assert words in consent["text"]
    assert consent["version"].startswith("1-")
    # the answer is not in the token (a script cannot read it back)
    assert str(solve(got["question"])) not in got["token"].split(".")[2:3]


def test_consent_version_follows_the_text(study, new_database):
    short = make_app(study, new_database(), REGISTRATION_RETENTION_DAYS=30).test_client()
    usual = make_app(study, new_database()).test_client()
    a = short.get("/api/register/challenge").get_json()["consent"]
    b = usual.get("/api/register/challenge").get_json()["consent"]
    assert "30天" in a["text"] and a["version"] != b["version"]
    assert CONSENT_TEXT.format(days=30) == a["text"]


def test_challenge_token_checks():
    key = b"k" * 32
    token, question, answer = make_challenge(key, "1-abc", 60, now=1000.0)
    assert solve(question) == answer
    ok = check_challenge(key, ChallengeAnswer(token=token, answer=answer), now=1010.0)
    assert isinstance(ok, tuple) and ok[1] == "1-abc"
    assert check_challenge(key, ChallengeAnswer(token=token, answer=str(answer)), now=1010.0) == ok
    wrong = check_challenge(key, ChallengeAnswer(token=token, answer=answer + 1), now=1010.0)
    assert "wrong answer" in wrong
    assert "expired" in check_challenge(key, ChallengeAnswer(token=token, answer=answer), now=2000)
    other_key = check_challenge(b"x" * 32, ChallengeAnswer(token=token, answer=answer), now=1010)
    assert "wrong answer" in other_key
    tampered = token.replace("1-abc", "1-abd")
    assert isinstance(check_challenge(key, ChallengeAnswer(token=tampered, answer=answer)), str)
    later = str(int(token.split(".")[0]) + 3600) + token[token.index(".") :]
    assert isinstance(check_challenge(key, ChallengeAnswer(token=later, answer=answer)), str)
    for bad in ("", "a.b", "x.y.z.w", "٣.a.b.c"):
        assert isinstance(check_challenge(key, ChallengeAnswer(token=bad, answer=answer)), str)
    for odd in ("١٢", "1e3", "-3", "12345"):
        assert "number" in check_challenge(key, ChallengeAnswer(token=token, answer=odd))


def test_secret_key_is_generated_once_and_kept(study, new_database, tmp_path, monkeypatch):
    from flask import Flask

    from web.registration import ensure_secret_key

    one, two = Flask("a", instance_path=str(tmp_path)), Flask("b", instance_path=str(tmp_path))
    threads = [threading.Thread(target=ensure_secret_key, args=(a,)) for a in (one, two)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert one.config["SECRET_KEY"] == two.config["SECRET_KEY"]
    assert len(one.config["SECRET_KEY"]) == 64
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    given = Flask("c", instance_path=str(tmp_path / "other"))
    given.config["SECRET_KEY"] = "configured"
    ensure_secret_key(given)
    assert given.config["SECRET_KEY"] == "configured" and not (tmp_path / "other").exists()


# ---------------------------------------------------------------------- register


def test_register_then_withdraw(client, store, tokens):
    item = add_course(client, tokens["school"])
    assert seats_left(client, item) == 3
    resp = client.post("/api/registrations", json=body(item, "+86 138-1234-5678", client))
    assert resp.status_code == 201, resp.get_json()
    got = resp.get_json()
    assert re.fullmatch(f"[{CODE_ALPHABET}]{{8}}", got["code"])
    assert got["seats_left"] == 2 and got["title"] == COURSE["title"]
    assert got["facility_name"] == "嘉兴市建筑工业学校" and got["start_date"] == "2099-03-01"
    assert got["retention_days"] == 180 and got["phone_masked"] == "138****5678"
    assert got["withdraw_url"].endswith(got["code"])
    assert seats_left(client, item) == 2
    row = store.conn.execute("SELECT * FROM registrations").fetchone()
    assert (row["name"], row["phone"], row["state"]) == ("张三", PHONE, "active")
    assert (
        row["consent_version"]
        == client.get("/api/register/challenge").get_json()["consent"]["version"]
    )
    consent_at = dt.datetime.fromisoformat(row["consent_at"])
    assert abs((dt.datetime.now(dt.UTC) - consent_at).total_seconds()) < 60
    assert row["code_hash"] == hash_code(got["code"]) and got["code"] not in str(values(row))
    # no IP address and no personal data outside the registrations table
    if store.path is not None:
        assert b"127.0.0.1" not in store_bytes(str(store.path))
    audit = str(store.audit(limit=1000))
    assert PHONE not in audit and "张三" not in audit

    # withdrawal: unknown code and wrong phone answer alike; the right pair deletes
    wrong_phone = client.post(
        "/api/registrations/withdraw", json={"code": got["code"], "phone": "13900000000"}
    )
    unknown = client.post("/api/registrations/withdraw", json={"code": "ZZZZZZZZ", "phone": PHONE})
    assert wrong_phone.status_code == unknown.status_code == 404
    assert wrong_phone.get_data() == unknown.get_data()
    assert seats_left(client, item) == 2
    typed = got["code"].lower().replace("0", "o")  # as a person may type it
    ok = client.post("/api/registrations/withdraw", json={"code": typed, "phone": PHONE})
    assert ok.status_code == 200 and ok.get_json() == {"withdrawn": True}
    assert seats_left(client, item) == 3
    row = store.conn.execute("SELECT * FROM registrations").fetchone()
    assert (row["name"], row["phone"], row["code_hash"], row["state"]) == (
        None,
        None,
        None,
        "withdrawn",
    )
    if store.path is not None:  # overwritten on disk (secure_delete), not only unlinked
        raw = store_bytes(str(store.path))
        assert PHONE.encode() not in raw and "张三".encode() not in raw
    again = client.post("/api/registrations/withdraw", json={"code": got["code"], "phone": PHONE})
    assert again.status_code == 404
    # the same phone may register again (a new code)
    assert client.post("/api/registrations", json=body(item, PHONE, client)).status_code == 201


def test_evaluation_session_registration(client, tokens, store):
    resp = client.post(
        f"/api/admin/facilities/{NANHU_SCHOOL}/evaluations",
        json={"trade": "电工", "level": "中级", "date": "2099-05-01", "seats": 1},
        headers=tokens["school"],
    )
    session = resp.get_json()["id"]
    got = client.post("/api/registrations", json=body(session, PHONE, client, kind="evaluation"))
    assert got.status_code == 201 and got.get_json()["title"] == "电工（中级）技能等级认定"
    assert got.get_json()["seats_left"] == 0
    full = client.post(
        "/api/registrations", json=body(session, "13900000001", client, kind="evaluation")
    )
    assert full.status_code == 409 and full.get_json()["error"] == "full"
    # a session without a seat count takes no online registration
    open_ = client.post(
        f"/api/admin/facilities/{NANHU_SCHOOL}/evaluations",
        json={"trade": "电工", "level": "高级", "date": "2099-05-02"},
        headers=tokens["school"],
    ).get_json()["id"]
    closed = client.post("/api/registrations", json=body(open_, PHONE, client, kind="evaluation"))
    assert closed.status_code == 409 and closed.get_json()["error"] == "closed"


def _bad_cases():
    """(case id, how to make the body from (item ids, client), status, error word)."""

    def base(ids, client, **change):
        return {**body(ids["open"], "13700000000", client), **change}

    def without(key):
        return lambda ids, client: {
            k: v for k, v in body(ids["open"], "13700000000", client).items() if k != key
        }

    def challenge_with(**change):
        def make(ids, client):
            made = body(ids["open"], "13700000000", client)
            made["challenge"] = {**made["challenge"], **change}
            return made

        return make

    def used_challenge(ids, client):
        made = body(ids["open"], "13700000000", client)
        made["challenge"] = ids["used_challenge"]
        return made

    return [
        ("full", lambda ids, c: base(ids, c, item_id=ids["full"]), 409, "full"),
        ("past", lambda ids, c: base(ids, c, item_id=ids["past"]), 410, "past"),
        ("unknown", lambda ids, c: base(ids, c, item_id=999_999), 404, "not found"),
        ("unknown-kind", lambda ids, c: base(ids, c, kind="class"), 400, "invalid body"),
        ("evaluation-id", lambda ids, c: base(ids, c, kind="evaluation"), 404, "not found"),
        ("duplicate", lambda ids, c: base(ids, c, phone=PHONE), 409, "duplicate"),
        ("phone-short", lambda ids, c: base(ids, c, phone="1381234567"), 400, "invalid body"),
        ("phone-landline", lambda ids, c: base(ids, c, phone="0573-1234567"), 400, "invalid body"),
        ("phone-12", lambda ids, c: base(ids, c, phone="23812345678"), 400, "invalid body"),
        ("phone-letters", lambda ids, c: base(ids, c, phone="1381234567a"), 400, "invalid body"),
        ("phone-number", lambda ids, c: base(ids, c, phone=13812345678), 400, "invalid body"),
        (
            "phone-fullwidth",
            lambda ids, c: base(ids, c, phone="１３８１２３４５６７８"),
            400,
            "invalid body",
        ),
        ("no-phone", without("phone"), 400, "invalid body"),
        ("no-name", lambda ids, c: base(ids, c, name="  "), 400, "invalid body"),
        ("long-name", lambda ids, c: base(ids, c, name="张" * 31), 400, "invalid body"),
        ("control-name", lambda ids, c: base(ids, c, name="张\x00三"), 400, "invalid body"),
        ("no-consent", without("consent"), 400, "invalid body"),
        ("consent-false", lambda ids, c: base(ids, c, consent=False), 400, "invalid body"),
        ("consent-text", lambda ids, c: base(ids, c, consent="true"), 400, "invalid body"),
        ("extra-field", lambda ids, c: base(ids, c, id_card="330402..."), 400, "invalid body"),
        ("no-challenge", without("challenge"), 400, "invalid body"),
        ("wrong-answer", challenge_with(answer=1000), 400, "challenge"),
        ("forged-token", challenge_with(token="9999999999.abc.1-x.AAAA"), 400, "challenge"),
        ("used-challenge", used_challenge, 400, "challenge"),
    ]


BAD = _bad_cases()


@pytest.mark.parametrize(("make", "status", "error"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_refused_registrations_write_nothing(client, store, tokens, make, status, error):
    ids = {
        "open": add_course(client, tokens["school"]),
        "full": add_course(client, tokens["school"], seats=0),
        "past": add_course(
            client, tokens["school"], start_date="2020-01-01", end_date="2020-01-05"
        ),
    }
    first = body(ids["open"], PHONE, client)
    assert client.post("/api/registrations", json=first).status_code == 201
    ids["used_challenge"] = first["challenge"]
    before = snapshot(store)
    left = [seats_left(client, ids["open"]), seats_left(client, ids["full"])]
    resp = client.post("/api/registrations", json=make(ids, client))
    assert resp.status_code == status, resp.get_json()
    answer = resp.get_json()
    assert answer["error"] == error and answer["message"]
    assert snapshot(store) == before  # nothing written: rows, versions, audit
    assert [seats_left(client, ids["open"]), seats_left(client, ids["full"])] == left


def test_malformed_bodies_are_400(client):
    for data, content_type in (
        (b"not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b'{"kind": "course"}', "text/plain"),
        (b"[" * 5000, "application/json"),
    ):
        resp = client.post("/api/registrations", data=data, content_type=content_type)
        assert resp.status_code == 400, data[:20]
        assert resp.get_json()["error"] == "invalid body"


def test_concurrent_sign_ups_in_one_process_never_overbook(client, tokens, store, app):
    item = add_course(client, tokens["school"], seats=5)
    bodies = [body(item, f"1390000{i:04d}", client) for i in range(20)]
    results: list[int] = []

    def sign(b):
        results.append(app.test_client().post("/api/registrations", json=b).status_code)

    threads = [threading.Thread(target=sign, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [201] * 5 + [409] * 15
    assert store.registration_states() == {"active": 5}
    assert seats_left(client, item) == 0


# --------------------------------------------------------------------- rate limits


def test_flood_from_one_client_is_429_and_writes_nothing(study, database):
    app = make_app(study, database, RATELIMIT_REGISTER="3 per minute")
    client = app.test_client()
    store = app.extensions["skillcircle.store"]
    _, token = store.create_token("t", None)
    item = add_course(client, {"Authorization": f"Bearer {token}"}, seats=100)
    codes = [
        client.post("/api/registrations", json=body(item, f"1370000{i:04d}", client)).status_code
        for i in range(6)
    ]
    assert codes == [201, 201, 201, 429, 429, 429]
    assert store.registration_states() == {"active": 3}
    flood = client.post("/api/registrations", json=body(item, "13800000009", client))
    assert flood.status_code == 429 and flood.get_json()["error"] == "too many requests"


def test_phone_limit_counts_an_hmac_of_the_phone(study, database):
    app = make_app(study, database, RATELIMIT_PHONE="2 per day")
    client = app.test_client()
    store = app.extensions["skillcircle.store"]
    _, token = store.create_token("t", None)
    headers = {"Authorization": f"Bearer {token}"}
    items = [add_course(client, headers, title=f"班{i}") for i in range(4)]
    codes = [
        client.post("/api/registrations", json=body(i, PHONE, client)).status_code for i in items
    ]
    assert codes == [201, 201, 429, 429]
    assert store.registration_states() == {"active": 2}
    other = client.post("/api/registrations", json=body(items[3], "13900000000", client))
    assert other.status_code == 201  # another phone is not limited
    limits = web.ratelimit_file(store)
    raw = b"".join(p.read_bytes() for p in limits.parent.glob(limits.name + "*"))
    assert raw and PHONE.encode() not in raw and b"registration-phone" in raw


# ------------------------------------------------------------------ staff, masking


def test_staff_see_mark_and_export_only_their_own(client, tokens, store):
    school = add_course(client, tokens["school"])
    base = add_course(client, tokens["base"], facility=NANHU_BASE)
    for phone in (PHONE, "13900001111"):
        assert (
            client.post("/api/registrations", json=body(school, phone, client)).status_code == 201
        )
    assert (
        client.post("/api/registrations", json=body(base, "13700002222", client)).status_code == 201
    )

    who = client.get("/api/admin/whoami", headers=tokens["school"]).get_json()
    assert who["facility_id"] == NANHU_SCHOOL and who["county"] == "南湖区"
    assert (
        client.get("/api/admin/whoami", headers=tokens["nanhu"]).get_json()["facility_id"] is None
    )
    mine = client.get("/api/admin/facilities", headers=tokens["school"]).get_json()
    assert [f["id"] for f in mine["facilities"]] == [NANHU_SCHOOL]

    url = f"/api/admin/facilities/{NANHU_SCHOOL}/registrations"
    listing = client.get(url, headers=tokens["school"])
    assert listing.status_code == 200
    rows = listing.get_json()["items"]
    assert [r["phone_masked"] for r in rows] == ["138****5678", "139****1111"]
    assert {r["title"] for r in rows} == {COURSE["title"]}
    # masked in every list: no whole phone in any list answer
    for headers in (tokens["school"], tokens["nanhu"], tokens["city"]):
        text = client.get(url, headers=headers).get_data(as_text=True)
        assert PHONE not in text and "13900001111" not in text and "138****5678" in text
    one_item = client.get(f"{url}?item=course:{school}", headers=tokens["school"]).get_json()
    assert len(one_item["items"]) == 2
    assert (
        client.get(f"{url}?item=course:{base}", headers=tokens["school"]).get_json()["items"] == []
    )
    assert client.get(f"{url}?item=seminar:1", headers=tokens["school"]).status_code == 400

    # another facility's staff and another county: refused, learning nothing
    assert client.get(url, headers=tokens["base"]).status_code == 403
    assert client.get(url, headers=tokens["xiuzhou"]).status_code == 403
    other_id = rows[0]["id"]
    missing = client.patch(
        "/api/admin/registrations/999999", json={"attended": True}, headers=tokens["base"]
    )
    foreign = client.patch(
        f"/api/admin/registrations/{other_id}", json={"attended": True}, headers=tokens["base"]
    )
    assert missing.status_code == foreign.status_code == 404
    assert missing.get_json()["error"] == foreign.get_json()["error"] == "not found"
    assert missing.get_json()["message"].replace("999999", "X") == foreign.get_json()[
        "message"
    ].replace(str(other_id), "X")
    gone = client.delete(f"/api/admin/registrations/{other_id}", headers=tokens["xiuzhou"])
    assert gone.status_code == 404
    assert store.registration(other_id)["attended"] is False

    # attendance by the facility's staff (and its county)
    marked = client.patch(
        f"/api/admin/registrations/{other_id}", json={"attended": True}, headers=tokens["school"]
    )
    assert marked.status_code == 200 and marked.get_json()["attended"] is True
    assert marked.get_json()["phone_masked"] == "138****5678" and PHONE not in marked.get_data(
        as_text=True
    )
    bad = client.patch(
        f"/api/admin/registrations/{other_id}", json={"attended": "yes"}, headers=tokens["school"]
    )
    assert bad.status_code == 400
    assert store.registration(other_id)["attended"] is True

    # the export: the facility's own staff token only, whole phones
    xlsx = f"/api/admin/facilities/{NANHU_SCHOOL}/registrations.xlsx"
    for headers in (tokens["nanhu"], tokens["city"], tokens["base"]):
        assert client.get(xlsx, headers=headers).status_code == 403
    resp = client.get(xlsx, headers=tokens["school"])
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    sheet = openpyxl.load_workbook(io.BytesIO(resp.data))["报名"]
    header = [c.value for c in sheet[1]]
    assert header[:7] == ["编号", "类型", "项目编号", "项目", "开始日期", "姓名", "手机"]
    phones = [row[6] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert phones == [PHONE, "13900001111"]
    assert [row[9] for row in sheet.iter_rows(min_row=2, values_only=True)] == ["是", "否"]
    assert "13700002222" not in str(list(sheet.values))  # another facility's registrant
    exports = [e for e in store.audit(limit=100) if e["action"] == "export"]
    assert exports and exports[0]["facility_id"] == NANHU_SCHOOL
    assert PHONE not in str(store.audit(limit=1000))

    # staff delete: personal data gone, seat returned, the audit keeps no phone
    assert (
        client.delete(f"/api/admin/registrations/{other_id}", headers=tokens["school"]).status_code
        == 204
    )
    assert store.registration(other_id) is None
    assert seats_left(client, school) == 2
    staff_audit = client.get("/api/admin/audit", headers=tokens["school"]).get_json()["entries"]
    assert staff_audit and {e["facility_id"] for e in staff_audit} == {NANHU_SCHOOL}
    assert PHONE not in str(staff_audit)


def test_staff_tokens_change_only_their_facility(client, tokens):
    own = add_course(client, tokens["school"])
    assert (
        client.post(
            f"/api/admin/facilities/{NANHU_BASE}/courses", json=COURSE, headers=tokens["school"]
        ).status_code
        == 403
    )
    assert (
        client.patch(
            f"/api/admin/facilities/{NANHU_BASE}/courses/{own}",
            json={"seats": 5},
            headers=tokens["base"],
        ).status_code
        == 404
    )  # not the base's course
    assert (
        client.patch(
            f"/api/admin/facilities/{NANHU_SCHOOL}/courses/{own}",
            json={"seats": 5},
            headers=tokens["school"],
        ).status_code
        == 200
    )
    # no facility changes, no uploads
    assert (
        client.patch(
            f"/api/admin/facilities/{NANHU_SCHOOL}", json={"name": "x"}, headers=tokens["school"]
        ).status_code
        == 403
    )
    assert (
        client.delete(f"/api/admin/facilities/{NANHU_SCHOOL}", headers=tokens["school"]).status_code
        == 403
    )
    upload = client.post(
        "/api/admin/facilities/upload",
        data={"file": (io.BytesIO(b"name,lon,lat\nx,120.75,30.76\n"), "a.csv"), "crs": "wgs84"},
        headers=tokens["school"],
    )
    assert upload.status_code == 403


def test_create_token_for_a_facility_cli(app, store):
    from web.cli import admin

    runner = CliRunner()
    database = store.url or str(store.path)
    done = runner.invoke(
        admin, ["create-token", "--facility", NANHU_SCHOOL, "--database", database]
    )
    assert done.exit_code == 0, done.output
    token = done.output.strip().splitlines()[-1]
    principal = store.authenticate(token)
    assert principal.facility_id == NANHU_SCHOOL and principal.county == "南湖区"
    assert principal.name == "嘉兴市建筑工业学校工作人员"
    listed = runner.invoke(admin, ["list-tokens", "--database", database]).output
    assert f"staff of {NANHU_SCHOOL}" in listed
    missing = runner.invoke(
        admin, ["create-token", "--facility", "NO-SUCH", "--database", database]
    )
    assert missing.exit_code != 0 and "no facility 'NO-SUCH'" in missing.output
    both = runner.invoke(
        admin, ["create-token", "--facility", NANHU_SCHOOL, "--city", "--database", database]
    )
    assert both.exit_code != 0 and "exactly one" in both.output


def test_seats_cannot_drop_below_registrations_and_deleting_an_item_deletes_its_people(
    client, tokens, store
):
    item = add_course(client, tokens["school"])
    for phone in (PHONE, "13900000000"):
        client.post("/api/registrations", json=body(item, phone, client))
    url = f"/api/admin/facilities/{NANHU_SCHOOL}/courses/{item}"
    refused = client.patch(url, json={"seats": 1}, headers=tokens["school"])
    assert refused.status_code == 409 and "seats" in refused.get_json()["fields"]
    assert client.patch(url, json={"seats": 2}, headers=tokens["school"]).status_code == 200
    assert seats_left(client, item) == 0
    assert client.delete(url, headers=tokens["school"]).status_code == 204
    assert store.registration_states() == {"cancelled": 2}
    assert (
        store.conn.execute(
            "SELECT count(*) FROM registrations WHERE name IS NOT NULL OR phone IS NOT NULL"
        ).fetchone()[0]
        == 0
    )


# ------------------------------------------------------------------------ retention


def test_retention_purge_deletes_personal_data_after_the_item_ends(client, tokens, store, app):
    ended_long_ago = add_course(client, tokens["school"], title="旧班")
    ended_lately = add_course(client, tokens["school"], title="近班")
    running = add_course(client, tokens["school"], title="新班")
    for item in (ended_long_ago, ended_lately, running):
        assert client.post("/api/registrations", json=body(item, PHONE, client)).status_code == 201
    day = dt.date.fromisoformat(today())
    # the courses' dates move into the past after the sign-ups (as time passes)
    for item, ended in (
        (ended_long_ago, day - dt.timedelta(days=181)),
        (ended_lately, day - dt.timedelta(days=179)),
    ):
        with store.write(None, "update", "course", str(item)) as tx:
            tx.update_item(
                "courses",
                item,
                {
                    **COURSE,
                    "title": "x",
                    "start_date": str(ended - dt.timedelta(days=3)),
                    "end_date": str(ended),
                },
            )
    assert app.extensions["skillcircle.recomputer"].housekeeping() == 1  # what the loop runs
    states = {
        r["item_id"]: r["state"]
        for r in store.conn.execute("SELECT item_id, state FROM registrations").fetchall()
    }
    assert states == {ended_long_ago: "purged", ended_lately: "active", running: "active"}
    purged = store.conn.execute(
        "SELECT name, phone, code_hash, attended FROM registrations WHERE item_id = ?",
        (ended_long_ago,),
    ).fetchone()
    assert values(purged) == (None, None, None, 0)
    assert store.purge_registrations(today(), 180) == 0  # nothing more, nothing written
    # the CLI, with a shorter retention
    from web.cli import admin

    done = CliRunner().invoke(
        admin, ["purge-registrations", "--days", "30", "--database", store.url or str(store.path)]
    )
    assert done.exit_code == 0 and "of 1 registrations" in done.output
    assert store.registration_states() == {"purged": 2, "active": 1}
    assert PHONE not in str(store.audit(limit=1000))


def test_the_recompute_loop_runs_the_housekeeping(store, study):
    from web.sync import Recomputer

    calls: list[float] = []
    recomputer = Recomputer(store, study, housekeeping=lambda: calls.append(1), housekeeping_s=3600)
    stop = threading.Event()
    loop = threading.Thread(target=recomputer.run_forever, args=(stop, 0.01))
    loop.start()
    stop.wait(0.3)
    stop.set()
    loop.join(5)
    assert calls == [1]  # at start, then not again within the hour
    recomputer._housekept -= 3601
    recomputer.housekeep()
    assert calls == [1, 1]


def test_mask_phone():
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone(None) == "" and mask_phone("123") == "****"
