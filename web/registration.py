"""报名: workers register for a course or an evaluation session, and withdraw.

``GET /api/register/challenge`` gives a small arithmetic question in Chinese and
a token; ``POST /api/registrations`` sends name, mobile number, explicit consent
and the answer; ``POST /api/registrations/withdraw`` takes the confirmation code
and the phone back.

Personal information (China's PIPL): only name and mobile number are collected,
for the stated purpose (the facility admits and contacts the worker), with the
consent text's version and time; no IP address is stored anywhere (the rate
limiter keys phones by an HMAC, never the number). Name and phone are deleted on
withdrawal, with the item, and ``REGISTRATION_RETENTION_DAYS`` after the item
ends (:meth:`web.store.Store.purge_registrations`, run by the recompute loop).

Abuse: per-client rate limits (``RATELIMIT_REGISTER``, ``RATELIMIT_CHALLENGE``),
at most ``RATELIMIT_PHONE`` registrations per phone, a challenge token used
once, and no enumeration: a withdrawal answers the same for an unknown code as
for a wrong phone. Seats are counted inside the store's write transaction, so
concurrent sign-ups never take more than there are.

The challenge is stateless: ``<expiry>.<nonce>.<consent version>.<HMAC>``, the
HMAC (key derived from the app's ``SECRET_KEY``) over those and the answer, so
the answer is not in the token and a token is checked without storage; a
registration records its nonce, so one token registers once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify
from limits import parse_many
from pydantic import BaseModel, ValidationError

from geo.models import Registration

from . import _params as p
from . import get_store
from . import responses as r
from .openapi import Answers, spec
from .records import today
from .schemas import ChallengeAnswer, RegistrationBody, WithdrawBody, field_errors
from .store import RefusedError, mask_phone

bp = Blueprint("registration", __name__, url_prefix="/api")

#: Days after an item ends that registrants' name and phone are kept (config
#: ``REGISTRATION_RETENTION_DAYS``, env ``SKILLCIRCLE_REGISTRATION_RETENTION_DAYS``).
RETENTION_DAYS = 180
#: Seconds a challenge token stays valid (config ``CHALLENGE_TTL_S``).
CHALLENGE_TTL_S = 900
#: The revision of :data:`CONSENT_TEXT`'s wording (the version adds a hash of the text).
CONSENT_REVISION = "1"

CONSENT_TEXT = """报名个人信息告知与同意书
一、目的：您填写的信息仅用于举办机构安排您参加所报名的培训班或技能等级认定，并在开班、变更或取消时用电话或短信联系您，不作他用。
二、收集内容（最少必要）：姓名、手机号码，以及您同意本告知书的时间和版本。我们不收集身份证号、住址等其他信息，也不记录您的IP地址。
三、谁能看到：只有该项目举办机构的工作人员能看到您的完整手机号；其他任何列表中的手机号均部分隐藏（如138****5678）。不向第三方提供。
四、保存期限：项目结束后{days}天，系统自动删除您的姓名和手机号，只保留不含个人信息的报名人数统计。
五、撤回与删除：您可随时凭报名确认码和手机号撤回报名；撤回后立即删除您的姓名和手机号，名额退回。
六、依据：《中华人民共和国个人信息保护法》。勾选“我同意”并提交，即表示您已阅读并同意以上内容。"""

_DIGITS = "零一二三四五六七八九"


def consent(days: int) -> tuple[str, str]:
    """The consent text for a retention period, and its version.

    Parameters
    ----------
    days
        Days registrants' data are kept after their item ends.

    Returns
    -------
    tuple of str
        The text, and ``<revision>-<hash of the text>`` (a changed text is a new version).
    """
    text = CONSENT_TEXT.format(days=days)
    return text, f"{CONSENT_REVISION}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def retention_days() -> int:
    """Days registrants' name and phone are kept after their item ends.

    Returns
    -------
    int
        Config ``REGISTRATION_RETENTION_DAYS``.
    """
    return int(current_app.config["REGISTRATION_RETENTION_DAYS"])


# --------------------------------------------------------------------- secret key


def ensure_secret_key(app: Flask) -> None:
    """Give the app a ``SECRET_KEY``.

    The configured one (env ``SKILLCIRCLE_SECRET_KEY``), else one generated once
    and kept in ``<instance folder>/secret_key`` (mode 0600). Several machines
    serving one PostgreSQL store must share it: set ``SKILLCIRCLE_SECRET_KEY`` on
    each (a challenge from one is checked by another).

    Parameters
    ----------
    app
        The app; its ``SECRET_KEY`` is set.
    """
    if app.config.get("SECRET_KEY"):
        return
    path = Path(app.instance_path) / "secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        key = secrets.token_hex(32)
        tmp = path.with_name(f".secret_key.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(key + "\n")
        try:
            os.link(tmp, path)  # atomic, and never replaces a key another process made
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    app.config["SECRET_KEY"] = path.read_text().strip()


def _subkey(purpose: str) -> bytes:
    secret = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(secret, f"skillcircle:{purpose}".encode(), hashlib.sha256).digest()


# ---------------------------------------------------------------------- challenge


def chinese_number(n: int) -> str:
    """A number from 0 to 99 in Chinese numerals (``47`` -> ``四十七``).

    Parameters
    ----------
    n
        0 to 99.

    Returns
    -------
    str
        The numeral.
    """
    if n < 10:
        return _DIGITS[n]
    tens, ones = divmod(n, 10)
    return ("" if tens == 1 else _DIGITS[tens]) + "十" + ("" if ones == 0 else _DIGITS[ones])


def _signature(key: bytes, expires: int, nonce: str, version: str, answer: int) -> str:
    message = f"{expires}.{nonce}.{version}.{answer}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def make_challenge(
    key: bytes, version: str, ttl_s: float, *, now: float | None = None
) -> tuple[str, str, int]:
    """A new arithmetic challenge whose answer is not in its token.

    Parameters
    ----------
    key
        The signing key (a subkey of ``SECRET_KEY``).
    version
        The consent version the registrant is shown.
    ttl_s
        Seconds the challenge is valid.
    now
        The time (default: now), for tests.

    Returns
    -------
    tuple
        ``(token, question, answer)``.
    """
    a, b = 11 + secrets.randbelow(79), 2 + secrets.randbelow(8)
    if secrets.randbelow(2) and a - b >= 0:
        question, answer = f"{chinese_number(a)}减{chinese_number(b)}等于多少？", a - b
    else:
        question, answer = f"{chinese_number(a)}加{chinese_number(b)}等于多少？", a + b
    expires = int((time.time() if now is None else now) + ttl_s)
    nonce = secrets.token_urlsafe(12)
    token = f"{expires}.{nonce}.{version}.{_signature(key, expires, nonce, version, answer)}"
    return token, question + "（请填写阿拉伯数字）", answer


def check_challenge(
    key: bytes, answer: ChallengeAnswer, *, now: float | None = None
) -> tuple[str, str] | str:
    """Check a challenge's answer.

    Parameters
    ----------
    key
        The signing key the token was made with.
    answer
        The token and the registrant's answer.
    now
        The time (default: now), for tests.

    Returns
    -------
    tuple or str
        ``(nonce, consent version)`` of a correctly answered, unexpired token, else
        what is wrong (text for the registrant).
    """
    parts = answer.token.split(".")
    if len(parts) != 4 or not parts[0].isdigit():
        return "the challenge token is not one of ours; 请刷新验证题"
    expires, nonce, version, signature = int(parts[0]), parts[1], parts[2], parts[3]
    number = str(answer.answer).strip()
    if not number.isascii() or not number.isdigit() or len(number) > 4:
        return "the answer must be a number; 验证题答案请填写阿拉伯数字"
    expected = _signature(key, expires, nonce, version, int(number))
    if not hmac.compare_digest(expected, signature):
        return "wrong answer to the challenge; 验证题答案不正确，请重试"
    if expires < (time.time() if now is None else now):
        return "the challenge expired; 验证题已过期，请刷新"
    return nonce, version


@bp.get("/register/challenge")
@spec.validate(resp=Answers(HTTP_200=r.Challenge, HTTP_429=(r.Error, "rate limit")))
def challenge() -> Any:
    """报名验证题 a question to answer, and the consent text (告知书) to show."""
    text, version = consent(retention_days())
    token, question, _ = make_challenge(
        _subkey("challenge"), version, float(current_app.config["CHALLENGE_TTL_S"])
    )
    response = jsonify(
        token=token,
        question=question,
        expires_in=int(current_app.config["CHALLENGE_TTL_S"]),
        consent={"version": version, "text": text, "retention_days": retention_days()},
    )
    response.headers["Cache-Control"] = "no-store"
    return response


# ------------------------------------------------------------------- registration


def _refuse(status: int, error: str, message: str, **extra: Any) -> Any:
    return jsonify(error=error, message=message, **extra), status


def _body(model: type[BaseModel]) -> Any:
    """The validated body, or the 400 answer (a tuple) saying what is wrong."""
    data = p.json_body()
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = field_errors(exc, model)
        if "consent" in fields:
            fields["consent"] = "consent must be true: 请阅读告知书并勾选“我同意”"
        message = "; ".join(f"{k}: {v}" for k, v in fields.items())
        return _refuse(400, "invalid body", message, fields=fields)


def phone_key(phone: str) -> str:
    """How the rate limiter names ``phone``: an HMAC with the app's key, never the number."""
    return hmac.new(_subkey("phone"), phone.encode(), hashlib.sha256).hexdigest()[:32]


def _phone_allowed(phone: str) -> bool:
    """Count one registration attempt of ``phone`` (``RATELIMIT_PHONE``)."""
    limiter = current_app.extensions["skillcircle.limiter"]
    limits = parse_many(str(current_app.config["RATELIMIT_PHONE"]))
    key = phone_key(phone)
    return all([limiter.limiter.hit(item, "registration-phone", key) for item in limits])


@bp.post("/registrations")
@spec.validate(
    json=RegistrationBody,
    resp=Answers(
        HTTP_201=r.Registered,
        HTTP_400=(r.FieldErrors, "invalid body or wrong challenge answer"),
        HTTP_404=(r.Error, "unknown course or session"),
        HTTP_409=(r.FieldErrors, "full, duplicate, or no online registration"),
        HTTP_410=(r.Error, "the item is past"),
        HTTP_413=(r.Error, "body too large"),
        HTTP_429=(r.Error, "rate limit (per client, or per phone)"),
    ),
)
def register() -> Any:
    """报名 register for a course or evaluation session.

    201 with the confirmation code (shown once), or a refusal with nothing written."""
    body = _body(RegistrationBody)
    if isinstance(body, tuple):  # the refusal
        return body
    checked = check_challenge(_subkey("challenge"), body.challenge)
    if isinstance(checked, str):
        return _refuse(400, "challenge", checked)
    nonce, version = checked
    if not _phone_allowed(body.phone):
        return _refuse(
            429,
            "too many requests",
            "too many registrations with this phone today; 该手机号今日报名次数过多，请明天再试",
        )
    registration = Registration(
        kind=body.kind,
        item_id=body.item_id,
        name=body.name,
        phone=body.phone,
        consent_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),  # type: ignore[arg-type]
        consent_version=version,
        attended=False,
    )
    try:
        done = get_store().register(registration, challenge=nonce, today=today())
    except RefusedError as exc:
        return _refuse(exc.status, exc.error, exc.message)
    facility = get_store().facility(done["facility_id"]) or {}
    return jsonify(
        code=done["code"],
        id=done["id"],
        kind=done["kind"],
        item_id=done["item_id"],
        title=done["title"],
        facility_id=done["facility_id"],
        facility_name=facility.get("name", ""),
        facility_phone=facility.get("phone") or None,
        start_date=done["start_date"],
        seats_left=done["seats_left"],
        name=registration.name,
        phone_masked=mask_phone(registration.phone),
        consent_version=version,
        retention_days=retention_days(),
        withdraw_url=f"/q/withdraw?code={done['code']}",
    ), 201


@bp.post("/registrations/withdraw")
@spec.validate(
    json=WithdrawBody,
    resp=Answers(
        HTTP_200=r.Withdrawn,
        HTTP_400=(r.FieldErrors, "invalid body"),
        HTTP_404=(r.Error, "no registration with this code and phone (one answer for both)"),
        HTTP_413=(r.Error, "body too large"),
        HTTP_429=(r.Error, "rate limit"),
    ),
)
def withdraw() -> Any:
    """撤回报名 withdraw: personal data deleted, seat returned.

    The same 404 for an unknown code and a wrong phone (no enumeration)."""
    body = _body(WithdrawBody)
    if isinstance(body, tuple):
        return body
    if not get_store().withdraw(body.code, body.phone):
        return _refuse(
            404,
            "not found",
            "no registration with this code and phone; 未找到该确认码和手机号对应的报名",
        )
    return jsonify(withdrawn=True)
