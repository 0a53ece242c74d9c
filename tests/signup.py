"""Helpers of the 报名 tests: solve a challenge as a person would, sign up, read the store."""

from __future__ import annotations

import re
from typing import Any

_DIGITS = {c: i for i, c in enumerate("零一二三四五六七八九")}

COURSE = {
    "title": "焊工（中级）培训班",
    "trade": "焊工",
    "start_date": "2099-03-01",
    "end_date": "2099-03-20",
    "seats": 3,
    "fee": 0,
    "subsidy_note": "取证后可申领补贴",
    "register_phone": "0573-12345678",
}


def chinese_to_int(text: str) -> int:
    """``四十七`` -> 47, ``十二`` -> 12, ``八`` -> 8 (independent of the server's writer)."""
    if "十" in text:
        tens, _, ones = text.partition("十")
        return (_DIGITS[tens] if tens else 1) * 10 + (_DIGITS[ones] if ones else 0)
    return _DIGITS[text]


def solve(question: str) -> int:
    """The answer to ``八十八加五等于多少？（请填写阿拉伯数字）``."""
    match = re.match(
        r"^([零一二三四五六七八九十]+)([加减])([零一二三四五六七八九十]+)等于多少", question
    )
    assert match, question
    a, b = chinese_to_int(match.group(1)), chinese_to_int(match.group(3))
    return a + b if match.group(2) == "加" else a - b


def challenge(client: Any) -> dict[str, Any]:
    """A solved challenge: ``{"token", "answer"}``."""
    got = client.get("/api/register/challenge").get_json()
    return {"token": got["token"], "answer": solve(got["question"])}


def body(
    item_id: int, phone: str, client: Any, name: str = "张三", kind: str = "course", **extra: Any
) -> dict[str, Any]:
    """A registration body with a freshly solved challenge."""
    return {
        "kind": kind,
        "item_id": item_id,
        "name": name,
        "phone": phone,
        "consent": True,
        "challenge": challenge(client),
        **extra,
    }


def snapshot(store: Any) -> tuple[Any, ...]:
    """Everything a refused registration must leave unchanged: the registrations, the
    content version and the audit log."""
    rows = store.conn.execute("SELECT * FROM registrations ORDER BY id").fetchall()
    audit = store.conn.execute("SELECT count(*) FROM audit").fetchone()[0]
    return tuple(values(r) for r in rows), store.data_versions()["content"], audit


def values(row: Any) -> tuple[Any, ...]:
    """A store row's values in column order (a SQLite row and a PostgreSQL one alike)."""
    return tuple(row[k] for k in row.keys())  # noqa: SIM118 - a sqlite3.Row iterates values
