"""The service's own data: facilities as edited, courses, evaluation sessions, tokens, audit.

Two databases hold it with the same migrations and the same code:

* an embedded SQLite file (the default; WAL mode, so readers never wait for the
  writer) under the Flask instance folder, and
* a PostgreSQL server when ``SKILLCIRCLE_DATABASE_URL`` (``postgresql://...``)
  is given (psycopg 3), for several machines' worth of writers or an existing
  database service.

:data:`MIGRATIONS` is a small versioned scheme: migration *k* takes the schema
from version *k* to *k + 1* inside one transaction, so a crash mid-upgrade
leaves the previous version intact. The few differences between the two SQL
dialects are one table of tokens (:class:`_Dialect`).

Data versions: every write bumps ``content`` (what pages show); a facility
write also bumps ``facilities`` and queues a recompute job in the same
transaction, so an acknowledged write always has a job that will publish it
(:mod:`web.sync`). The published results name the facilities version they
reflect; every server process polls them and swaps.

Facilities are seeded once from ``data/facilities.geojson``; afterwards the
store is the truth and the web app computes coverage from it. Every write goes
through :meth:`Store.write`, one ``BEGIN IMMEDIATE`` transaction that also
appends to the audit log: a change and its audit entry land together or not
at all, and once the transaction commits the change survives ``kill -9``.

Tokens: only a SHA-256 hash is stored; the token itself is printed once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import geopandas as gpd
from pydantic import BaseModel

from geo import _validate as v
from geo.facilities import facilities_from_records, facility_records
from geo.models import (
    Course,
    DemandSignal,
    EvaluationSession,
    Facility,
    Registration,
    column_problems,
    facility_id_problem,
    validate_rows,
)

#: Schema migrations; index k upgrades schema version k -> k + 1. ``{autoid}``,
#: ``{real}`` and ``{position}`` are the dialect's words (:class:`_Dialect`).
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE facilities (
            {position}id TEXT PRIMARY KEY,
            county TEXT NOT NULL,
            layer TEXT NOT NULL,
            data TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        "CREATE INDEX facilities_county ON facilities(county)",
        """CREATE TABLE courses (
            id {autoid},
            facility_id TEXT NOT NULL REFERENCES facilities(id) ON DELETE CASCADE,
            title TEXT NOT NULL,
            trade TEXT NOT NULL,
            start_date TEXT NOT NULL,
            end_date TEXT,
            seats INTEGER NOT NULL,
            fee {real},
            subsidy_note TEXT,
            register_url TEXT,
            register_phone TEXT,
            updated_at TEXT NOT NULL
        )""",
        "CREATE INDEX courses_facility ON courses(facility_id, start_date)",
        """CREATE TABLE evaluations (
            id {autoid},
            facility_id TEXT NOT NULL REFERENCES facilities(id) ON DELETE CASCADE,
            trade TEXT NOT NULL,
            level TEXT NOT NULL CHECK (level IN ('初级', '中级', '高级', '技师')),
            date TEXT NOT NULL,
            place TEXT,
            seats INTEGER,
            updated_at TEXT NOT NULL
        )""",
        "CREATE INDEX evaluations_facility ON evaluations(facility_id, date)",
        """CREATE TABLE tokens (
            id {autoid},
            name TEXT NOT NULL,
            county TEXT,
            hash TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL,
            revoked_at TEXT
        )""",
        """CREATE TABLE audit (
            id {autoid},
            at TEXT NOT NULL,
            token_id INTEGER,
            who TEXT NOT NULL,
            action TEXT NOT NULL,
            entity TEXT NOT NULL,
            entity_id TEXT NOT NULL,
            county TEXT,
            before TEXT,
            after TEXT
        )""",
        "CREATE INDEX audit_county ON audit(county, id)",
    ),
    (
        # the last number given per generated-id prefix (TB-330402-A): ids made in the
        # write transaction, never reused after a delete, never another county's
        """CREATE TABLE id_sequences (
            prefix TEXT PRIMARY KEY,
            last INTEGER NOT NULL
        )""",
    ),
    (
        # data versions: 'facilities' (what results depend on), 'content' (any write)
        """CREATE TABLE data_versions (
            name TEXT PRIMARY KEY,
            version BIGINT NOT NULL
        )""",
        "INSERT INTO data_versions (name, version) VALUES ('facilities', 0), ('content', 0)",
        # a recompute per facility write; the newest queued job covers the older ones
        """CREATE TABLE jobs (
            id {autoid},
            facilities_version BIGINT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
            created_at TEXT NOT NULL,
            started_at TEXT,
            finished_at TEXT,
            heartbeat {real},
            worker TEXT,
            results_key TEXT,
            published_version BIGINT,
            seconds {real},
            detail TEXT
        )""",
        "CREATE INDEX jobs_state ON jobs(state, id)",
        # the results every server process serves: one row
        """CREATE TABLE published (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            facilities_version BIGINT NOT NULL,
            results_key TEXT NOT NULL,
            published_at TEXT NOT NULL
        )""",
    ),
    (
        # facility-staff tokens: their own facility's courses, sessions and registrants
        "ALTER TABLE tokens ADD COLUMN facility_id TEXT",
        # the facility an audit entry is about (staff see their facility's entries)
        "ALTER TABLE audit ADD COLUMN facility_id TEXT",
        "CREATE INDEX audit_facility ON audit(facility_id, id)",
        # 报名: name and phone only while active; the anonymous row stays (counts)
        """CREATE TABLE registrations (
            id {autoid},
            kind TEXT NOT NULL CHECK (kind IN ('course', 'evaluation')),
            item_id BIGINT NOT NULL,
            facility_id TEXT NOT NULL,
            county TEXT,
            name TEXT,
            phone TEXT,
            consent_at TEXT NOT NULL,
            consent_version TEXT NOT NULL,
            attended INTEGER NOT NULL DEFAULT 0 CHECK (attended IN (0, 1)),
            state TEXT NOT NULL
                CHECK (state IN ('active', 'withdrawn', 'deleted', 'cancelled', 'purged')),
            code_hash TEXT UNIQUE,
            challenge TEXT UNIQUE,
            item_end TEXT NOT NULL,
            closed_at TEXT,
            CHECK ((state = 'active') = (name IS NOT NULL AND phone IS NOT NULL
                                         AND code_hash IS NOT NULL)),
            CHECK (state = 'active' OR (name IS NULL AND phone IS NULL AND code_hash IS NULL))
        )""",
        "CREATE INDEX registrations_item ON registrations(kind, item_id, state)",
        "CREATE INDEX registrations_facility ON registrations(facility_id, state)",
        # one active registration per phone and item (the write checks it first)
        "CREATE UNIQUE INDEX registrations_once ON registrations(kind, item_id, phone) "
        "WHERE state = 'active'",
        # a data version of courses and sessions only (registrations change content, not it)
        "INSERT INTO data_versions (name, version) VALUES ('items', 0)",
        # 培训需求: anonymous counters per village, trade, kind and ISO week
        """CREATE TABLE demand (
            village_code TEXT NOT NULL,
            trade TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('scan', 'search', 'notify')),
            week TEXT NOT NULL,
            signals BIGINT NOT NULL CHECK (signals >= 0),
            PRIMARY KEY (village_code, trade, kind, week)
        )""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

#: The entity model of each item table: its fields are the table's columns besides
#: :data:`ITEM_KEYS`, checked when the store opens (:meth:`Store.check_tables`).
TABLE_MODELS: dict[str, type[BaseModel]] = {"courses": Course, "evaluations": EvaluationSession}
#: Columns of an item table that the store keeps, not the model.
ITEM_KEYS = ("id", "facility_id", "updated_at")
#: The columns the store writes per item table, in the model's order.
TABLE_FIELDS: dict[str, tuple[str, ...]] = {
    table: tuple(model.model_fields) for table, model in TABLE_MODELS.items()
}
#: Tables of other entities: their model, and the columns the store keeps besides it.
RECORD_TABLES: dict[str, tuple[type[BaseModel], tuple[str, ...]]] = {
    "registrations": (
        Registration,
        ("id", "facility_id", "county", "state", "code_hash", "challenge", "item_end", "closed_at"),
    ),
    "demand": (DemandSignal, ()),
}
#: Item table of each registration kind, and back.
KIND_TABLES = {"course": "courses", "evaluation": "evaluations"}
TABLE_KINDS = {table: kind for kind, table in KIND_TABLES.items()}
#: The last day of an item, after which it is past (SQL over the item table).
ITEM_END = {"courses": "coalesce(end_date, start_date)", "evaluations": "date"}
#: Registration states without personal data, and what made them so.
CLOSED_STATES = ("withdrawn", "deleted", "cancelled", "purged")
TOKEN_PREFIX = "sc_"

logger = logging.getLogger(__name__)


class StoreError(Exception):
    """The database is newer than this program, or a token/row cannot be found."""


class RefusedError(StoreError):
    """A write the store refuses on its data (a full course, a duplicate...): nothing written.

    ``error`` is the API's error word, ``status`` its HTTP status.
    """

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token's id and name, its county (None: city-wide) and, for a
    facility-staff token, its facility."""

    token_id: int
    name: str
    county: str | None
    facility_id: str | None = None

    @property
    def staff(self) -> bool:
        """A facility-staff token (its own facility's items and registrants only)."""
        return self.facility_id is not None

    def may_edit(self, county: str) -> bool:
        """May change facilities of ``county`` (never a staff token)."""
        return not self.staff and (self.county is None or self.county == county)

    def may_manage(self, facility_id: str, county: str | None) -> bool:
        """May change the courses, sessions and registrants of a facility in ``county``."""
        if self.staff:
            return self.facility_id == facility_id
        return self.county is None or self.county == county


def now() -> str:
    """The time now in UTC, ISO to the second (audit entries, tokens, jobs).

    Returns
    -------
    str
        ``YYYY-MM-DDTHH:MM:SS+00:00``.
    """
    return datetime.now(UTC).isoformat(timespec="seconds")


def hash_token(token: str) -> str:
    """What the store keeps of an admin ``token`` (shown once): its SHA-256, 64 hex digits."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class _Dialect:
    """What differs between SQLite and PostgreSQL in our SQL."""

    name: str
    placeholder: str
    tokens: Mapping[str, str]
    order_column: str  # the insertion order of facilities

    def sql(self, statement: str) -> str:
        if self.placeholder != "?":
            statement = statement.replace("?", self.placeholder)
        return statement.replace("ORDER BY rowid", f"ORDER BY {self.order_column}")


SQLITE = _Dialect(
    "sqlite",
    "?",
    {"autoid": "INTEGER PRIMARY KEY AUTOINCREMENT", "real": "REAL", "position": ""},
    "rowid",
)
POSTGRES = _Dialect(
    "postgresql",
    "%s",
    {
        "autoid": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        "real": "DOUBLE PRECISION",
        "position": "position BIGINT GENERATED ALWAYS AS IDENTITY,\n            ",
    },
    "position",
)
#: Every write transaction of a PostgreSQL store takes this advisory lock: writers
#: run one at a time, as SQLite's ``BEGIN IMMEDIATE`` makes them.
_PG_WRITE_LOCK = 7_272_017


class _Row(dict[str, Any]):
    """A result row read by name or by position (as :class:`sqlite3.Row`)."""

    def __init__(self, names: Sequence[str], values: Sequence[Any]) -> None:
        super().__init__(zip(names, values, strict=True))
        self._values = tuple(values)

    def __getitem__(self, key: Any) -> Any:
        return self._values[key] if isinstance(key, int) else super().__getitem__(key)


class _Connection:
    """One database connection speaking our SQL (``?`` placeholders, SQLite's words)."""

    def __init__(self, raw: Any, dialect: _Dialect) -> None:
        self.raw = raw
        self.dialect = dialect
        # closed when dropped (a finished thread's, a store's no longer used), before the
        # driver's own finaliser runs even in a reference cycle; at exit; never after a
        # fork (closing the parent's connection would end the parent's PostgreSQL session)
        self._finalizer = weakref.finalize(self, _close_raw, raw, os.getpid())

    def execute(self, statement: str, params: Sequence[Any] = ()) -> Any:
        return self.raw.execute(self.dialect.sql(statement), tuple(params))

    @property
    def lost(self) -> bool:
        """Whether the server dropped the connection (PostgreSQL restarted, network)."""
        return bool(getattr(self.raw, "closed", False))

    def close(self) -> None:
        self._finalizer()


def _close_raw(raw: Any, pid: int) -> None:
    if os.getpid() == pid:
        with suppress(Exception):  # e.g. SQLite's from another thread: it closes itself
            raw.close()
    else:  # the parent's, inherited by a fork: left alone, never finalised here
        _INHERITED.append(raw)


_INHERITED: list[Any] = []


def _set_wal(raw: sqlite3.Connection, timeout_s: float = 30.0) -> None:
    """WAL mode (kept in the file). Switching takes an exclusive lock without waiting
    for it: processes opening a new file together try again."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            raw.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def is_database_url(target: str | Path) -> bool:
    """Whether a store location is a PostgreSQL URL (else a SQLite file path).

    Parameters
    ----------
    target
        ``--database`` / ``DATABASE`` as given.

    Returns
    -------
    bool
        True for ``postgresql://`` and ``postgres://``.
    """
    return str(target).startswith(("postgresql://", "postgres://"))


def _unused_code(tx: Write) -> str:
    """A confirmation code no registration has: 2**40 codes make a clash all but
    impossible, but one is never reused."""
    while True:
        code = new_code()
        clash = tx.conn.execute(
            "SELECT 1 FROM registrations WHERE code_hash = ?", (hash_code(code),)
        ).fetchone()
        if clash is None:
            return code


class Store:
    """The store in a SQLite file or a PostgreSQL database; a connection per thread and
    process (waitress serves from a thread pool, gunicorn forks workers).

    One class on purpose (~900 lines in sections: connections and migrations,
    tokens, facilities, courses and evaluations, registrations, demand, data
    versions and jobs, audit): it is the one transaction boundary. Every write
    goes through :meth:`write`, which in the same transaction records the audit
    entry, bumps the data versions and queues the recompute job; every section is
    SQL over the same per-thread connection and dialect. Split into mixins or
    modules, the rule "a write is audited, versioned and queued, or not made" would
    be spread over several places instead of one.

    Parameters
    ----------
    target
        A SQLite file path, or a ``postgresql://`` URL (psycopg 3).
    """

    def __init__(self, target: Path | str) -> None:
        self.url = str(target) if is_database_url(target) else None
        self.path = None if self.url else Path(target)
        self.dialect = POSTGRES if self.url else SQLITE
        self._local = threading.local()
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.migrate()
        self.check_tables()
        self._reported: set[str] = set()

    @property
    def location(self) -> str:
        """The file, or the URL without its password, for messages."""
        if self.url is None:
            return str(self.path)
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        user = f"{parts.username}@" if parts.username else ""
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{user}{host}{port}{parts.path}"

    # ------------------------------------------------------------ connections

    @property
    def conn(self) -> _Connection:
        """This thread's connection (a new one after a fork, or when the server dropped it)."""
        conn: _Connection | None = getattr(self._local, "conn", None)
        # a connection never crosses a fork; one the server dropped (restarted) is replaced
        if conn is None or getattr(self._local, "pid", None) != os.getpid() or conn.lost:
            conn = self._connect()
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _connect(self) -> _Connection:
        if self.url is not None:
            import psycopg

            def rows(cursor: Any) -> Callable[[Sequence[Any]], _Row]:
                names = [c.name for c in cursor.description or ()]
                return lambda values: _Row(names, values)

            try:
                raw = psycopg.connect(self.url, autocommit=True, row_factory=rows)
            except psycopg.OperationalError as exc:
                raise StoreError(f"{self.location}: cannot connect ({exc})".strip()) from exc
            return _Connection(raw, POSTGRES)
        assert self.path is not None
        db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        db.row_factory = sqlite3.Row
        _set_wal(db)
        db.execute("PRAGMA synchronous=FULL")  # a 2xx means the change is on disk
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA secure_delete=ON")  # deleted personal data are overwritten
        return _Connection(db, SQLITE)

    def close(self) -> None:
        """Close this thread's connection (others keep theirs)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None

    @contextmanager
    def _transaction(self) -> Iterator[_Connection]:
        """One write transaction; writers are serialised (SQLite: ``BEGIN IMMEDIATE``;
        PostgreSQL: an advisory lock held to the end of the transaction)."""
        conn = self.conn
        if self.url is None:
            conn.execute("BEGIN IMMEDIATE")
        else:
            conn.execute("BEGIN")
            conn.execute("SELECT pg_advisory_xact_lock(?)", (_PG_WRITE_LOCK,))
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _schema_version(self) -> int:
        if self.url is None:
            return int(self.conn.execute("PRAGMA user_version").fetchone()[0])
        exists = self.conn.execute(  # a query, not to_regclass: that may answer from a cache
            "SELECT count(*) FROM pg_catalog.pg_tables "
            "WHERE schemaname = current_schema() AND tablename = 'schema_version'"
        ).fetchone()[0]
        if not exists:
            return 0
        row = self.conn.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    def migrate(self) -> int:
        """Apply pending migrations; return the schema version.

        Each migration runs in a write transaction that first reads the version
        again: processes starting together on one database migrate it once.
        """
        version = self._schema_version()
        while True:
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.location} has schema version {version}, newer than this "
                    f"skillcircle ({SCHEMA_VERSION}); upgrade skillcircle"
                )
            if version == SCHEMA_VERSION:
                return SCHEMA_VERSION
            with self._transaction() as conn:
                version = self._schema_version()
                if version >= SCHEMA_VERSION:
                    continue  # another process migrated it meanwhile
                for statement in MIGRATIONS[version]:
                    conn.execute(statement.format(**self.dialect.tokens))
                version += 1
                if self.url is None:
                    conn.execute(f"PRAGMA user_version = {version}")
                else:
                    conn.execute(
                        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
                    )
                    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))

    def check_tables(self) -> None:
        """Refuse a database whose item tables differ from the entity models.

        Raises
        ------
        StoreError
            Naming each table, the columns it lacks or has beyond the model
            (:data:`TABLE_MODELS`) and the store's own :data:`ITEM_KEYS`.
        """
        problems = []
        tables = {table: (model, ITEM_KEYS) for table, model in TABLE_MODELS.items()}
        for table, (model, keys) in {**tables, **RECORD_TABLES}.items():
            cursor = self.conn.execute(f"SELECT * FROM {table} LIMIT 0")
            columns = [str(column[0]) for column in cursor.description or ()]
            lacking = [k for k in keys if k not in columns]
            if lacking:
                problems.append(f"table {table} lacks column(s) {', '.join(lacking)}")
            own = [c for c in columns if c not in keys]
            problems += column_problems(model, own, f"table {table}")
        if problems:
            raise StoreError(
                f"{self.location}: {'; '.join(problems)} (geo/models.py); the database was "
                "changed by hand or by another skillcircle version: restore a backup or "
                "open it with the version that wrote it"
            )

    @property
    def version(self) -> int:
        """The schema version of the database (:data:`SCHEMA_VERSION` once migrated)."""
        return self._schema_version()

    # ----------------------------------------------------------------- tokens

    def create_token(
        self, name: str, county: str | None, facility_id: str | None = None
    ) -> tuple[int, str]:
        """A new random token (returned once, never stored) and its id.

        With ``facility_id`` a facility-staff token: its county is the facility's
        (``county`` is ignored), and it may change only that facility's courses,
        sessions and registrants.
        """
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        if facility_id is not None:
            facility = self.facility(facility_id)
            if facility is None:
                raise StoreError(
                    f"no facility {facility_id!r} in {self.location}; "
                    "see the ids with GET /api/facilities or the map"
                )
            county = facility["county"]
        with self.write(None, "create", "token", name, county=county) as tx:
            row = tx.conn.execute(
                "INSERT INTO tokens (name, county, facility_id, hash, created_at) "
                "VALUES (?, ?, ?, ?, ?) RETURNING id",
                (name, county, facility_id, hash_token(token), now()),
            ).fetchone()
            token_id = int(row["id"])
            tx.entity_id = str(token_id)
            tx.facility_id = facility_id
            tx.after = {"id": token_id, "name": name, "county": county, "facility_id": facility_id}
        return token_id, token

    def revoke_token(self, token_id: int) -> dict[str, Any]:
        """Revoke a token (an audited write); its row as it was.

        Raises
        ------
        StoreError
            When no token has this id.
        """
        row = self.conn.execute("SELECT * FROM tokens WHERE id = ?", (token_id,)).fetchone()
        if row is None:
            raise StoreError(f"no token with id {token_id}; `skillcircle admin list-tokens`")
        with self.write(None, "revoke", "token", str(token_id), county=row["county"]) as tx:
            tx.conn.execute(
                "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (now(), token_id),
            )
        return dict(row)

    def tokens(self) -> list[dict[str, Any]]:
        """Every token's id, name, county, facility and dates (never the token or its hash)."""
        rows = self.conn.execute(
            "SELECT id, name, county, facility_id, created_at, revoked_at FROM tokens ORDER BY id"
        )
        return [dict(r) for r in rows]

    def authenticate(self, token: str) -> Principal | None:
        """The principal of a valid, unrevoked token, else None."""
        digest = hash_token(token)
        row = self.conn.execute(
            "SELECT id, name, county, facility_id, hash FROM tokens "
            "WHERE hash = ? AND revoked_at IS NULL",
            (digest,),
        ).fetchone()
        if row is None or not hmac.compare_digest(row["hash"], digest):
            return None
        return Principal(int(row["id"]), row["name"], row["county"], row["facility_id"])

    # ------------------------------------------------------------- facilities

    def facility_count(self) -> int:
        """How many facilities the store holds."""
        return int(self.conn.execute("SELECT count(*) FROM facilities").fetchone()[0])

    def facility_counties(self) -> list[str]:
        """The distinct counties of the stored facilities."""
        rows = self.conn.execute("SELECT DISTINCT county FROM facilities").fetchall()
        return [str(row[0]) for row in rows]

    def seed(self, facilities: gpd.GeoDataFrame, who: str = "seed") -> int:
        """Fill an empty store from a facilities frame; returns the number added."""
        if self.facility_count():
            return 0
        records = facility_records(facilities)
        with self.write(None, "seed", "facility", "*", who=who) as tx:
            for record in records:
                tx.put_facility(record)
            tx.after = {"count": len(records)}
        return len(records)

    def facility(self, fid: str) -> dict[str, Any] | None:
        """The facility record with this id, or None."""
        if "\x00" in fid:  # no id holds NUL (PostgreSQL text cannot: it would be an error)
            return None
        row = self.conn.execute("SELECT data FROM facilities WHERE id = ?", (fid,)).fetchone()
        return None if row is None else dict(json.loads(row["data"]))

    def facility_records(self) -> list[dict[str, Any]]:
        """Every facility record, in insertion order."""
        rows = self.conn.execute("SELECT data FROM facilities ORDER BY rowid")
        return [json.loads(r["data"]) for r in rows]

    def facilities_frame(
        self, records: Sequence[Mapping[str, Any]] | None = None
    ) -> gpd.GeoDataFrame:
        """All facilities (or ``records`` read from the store, e.g. a
        :meth:`facilities_snapshot`) as a frame checked by :class:`geo.models.Facility`
        (the format of ``load_facilities``).

        Records stored before a rule existed (an unsafe id, a 300-character name)
        are let through and logged once (see :meth:`unsafe_id_facilities`), so
        such a store still serves and a PATCH can fix them.

        Raises
        ------
        geo._errors.FacilityDataError
            If a record breaks a rule that was always enforced (no layer, no point...).
        """
        records = self.facility_records() if records is None else records
        where = [f"record {i + 1} (id {r.get('id')!r})" for i, r in enumerate(records)]
        waived: list[v.Problem] = []
        frame = facilities_from_records(
            records, where=where, bounds=None, label=f"store {self.location}", waived=waived
        )
        new = [p for p in waived if f"{p.where}: {p.what}" not in self._reported]
        if new:
            self._reported.update(f"{p.where}: {p.what}" for p in new)
            logger.warning(
                "the store holds %d facilities stored before a rule of geo/models.py existed "
                "(e.g. %s: %s); PATCH them or, for unsafe ids, `skillcircle admin repair-ids`",
                len({p.order for p in new}),
                new[0].where,
                new[0].what,
            )
        return frame

    def unsafe_id_facilities(self) -> list[dict[str, Any]]:
        """Facilities whose id breaks :data:`geo.facilities.FACILITY_ID_PATTERN`, each with
        ``id``, ``county``, ``name``, ``layer`` and its number of ``courses`` and
        ``evaluations`` (stored before ids were checked; no URL reaches them)."""
        rows = self.conn.execute(
            "SELECT id, county, layer, data, "
            "(SELECT count(*) FROM courses WHERE facility_id = f.id) AS courses, "
            "(SELECT count(*) FROM evaluations WHERE facility_id = f.id) AS evaluations "
            "FROM facilities AS f ORDER BY rowid"
        )
        out = []
        for row in rows:
            if facility_id_problem(row["id"]) is not None:
                record = dict(row)
                record["name"] = json.loads(record.pop("data")).get("name", "")
                out.append(record)
        return out

    def remove_facilities(self, ids: Sequence[str], who: str = "cli") -> dict[str, int]:
        """Delete facilities with their courses and evaluations in one audited transaction.

        Returns the numbers removed (``facilities``, ``courses``, ``evaluations``);
        the audit entry (action ``repair``) keeps every removed record.
        """
        removed = {"facilities": 0, "courses": 0, "evaluations": 0}
        with self.write(None, "repair", "facility", "*", who=who) as tx:
            before = []
            for fid in ids:
                row = tx.conn.execute("SELECT data FROM facilities WHERE id = ?", (fid,)).fetchone()
                if row is None:
                    continue
                items = {t: _rows(tx.conn, t, fid) for t in TABLE_FIELDS}
                before.append({"facility": json.loads(row["data"]), **items})
                tx.delete_facility(fid)  # courses and evaluations go with it (ON DELETE CASCADE)
                removed["facilities"] += 1
                removed["courses"] += len(items["courses"])
                removed["evaluations"] += len(items["evaluations"])
            tx.before = before
            tx.after = {"removed": [b["facility"]["id"] for b in before], **removed}
        return removed

    # ------------------------------------------------------- courses, evaluations

    def items(self, table: str, facility_id: str) -> list[dict[str, Any]]:
        """A facility's courses or evaluation sessions (``table``), by date, with seats taken."""
        _check_table(table)
        order = "start_date" if table == "courses" else "date"
        rows = self.conn.execute(
            f"SELECT * FROM {table} WHERE facility_id = ? ORDER BY {order}, id", (facility_id,)
        )
        return self._with_seats(table, self._checked(table, rows))

    def item(self, table: str, item_id: int) -> dict[str, Any] | None:
        """One course or evaluation session (``table``) with seats taken, or None."""
        _check_table(table)
        row = self.conn.execute(f"SELECT * FROM {table} WHERE id = ?", (item_id,)).fetchone()
        return None if row is None else self._with_seats(table, self._checked(table, [row]))[0]

    def _with_seats(self, table: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rows with ``registered`` (active registrations) and ``seats_left`` (None when
        the item has no seat count)."""
        counts = self._registered_counts(TABLE_KINDS[table], [int(r["id"]) for r in rows])
        for row in rows:
            row["registered"] = counts.get(int(row["id"]), 0)
            seats = row.get("seats")
            row["seats_left"] = None if seats is None else max(0, seats - row["registered"])
        return rows

    def _registered_counts(self, kind: str, ids: Sequence[int] | None) -> dict[int, int]:
        """Active registrations per item id of a kind (``ids`` None: every item)."""
        if ids is not None and not ids:
            return {}
        query = (
            "SELECT item_id, count(*) AS n FROM registrations WHERE kind = ? AND state = 'active'"
        )
        params: list[Any] = [kind]
        if ids is not None and len(ids) <= 500:
            query += f" AND item_id IN ({','.join('?' * len(ids))})"
            params += list(ids)
        rows = self.conn.execute(query + " GROUP BY item_id", params)
        return {int(r["item_id"]): int(r["n"]) for r in rows}

    def _checked(self, table: str, rows: Iterable[Any]) -> list[dict[str, Any]]:
        """Rows read from an item table, checked by its model (rules added since a row
        was stored are let through)."""
        out = [dict(row) for row in rows]
        where = [f"{table} id {row['id']}" for row in out]
        _, problems = validate_rows(TABLE_MODELS[table], out, where, waived=[])
        if problems:
            raise StoreError(
                f"{self.location}: "
                + " | ".join(f"{p.where}: {p.what}" for p in problems[: v.MAX_LISTED])
                + "; correct the row or restore a backup"
            )
        return out

    def upcoming(
        self, facility_ids: Sequence[str], today: str, per_facility: int = 3
    ) -> dict[str, dict[str, list[dict[str, Any]]]]:
        """Courses not yet ended and evaluation sessions not yet held, per facility id."""
        out: dict[str, dict[str, list[dict[str, Any]]]] = {
            fid: {"courses": [], "evaluations": []} for fid in facility_ids
        }
        if not facility_ids:
            return out
        marks = ",".join("?" * len(facility_ids))
        # (table, the date after which an item is past, the order shown)
        for table, until, order in (
            ("courses", "coalesce(end_date, start_date)", "start_date"),
            ("evaluations", "date", "date"),
        ):
            rows = self.conn.execute(
                f"SELECT * FROM {table} WHERE facility_id IN ({marks}) AND {until} >= ? "
                f"ORDER BY {order}, id",
                (*facility_ids, today),
            )
            for row in self._checked(table, rows):
                bucket = out[row["facility_id"]][table]
                if len(bucket) < per_facility:
                    bucket.append(row)
            self._with_seats(table, [row for fid in out for row in out[fid][table]])
        return out

    def upcoming_items(self, today: str) -> dict[str, list[dict[str, Any]]]:
        """Every course not yet ended and session not yet held, region-wide:
        ``{"courses": [...], "evaluations": [...]}`` (seats taken: :meth:`registered_counts`)."""
        out = {}
        for table in ("courses", "evaluations"):
            order = "start_date" if table == "courses" else "date"
            rows = self.conn.execute(
                f"SELECT * FROM {table} WHERE {ITEM_END[table]} >= ? ORDER BY {order}, id",
                (today,),
            )
            out[table] = self._checked(table, rows)
        return out

    def registered_counts(self) -> dict[tuple[str, int], int]:
        """Active registrations per ``(kind, item id)`` (items without any are absent)."""
        rows = self.conn.execute(
            "SELECT kind, item_id, count(*) AS n FROM registrations WHERE state = 'active' "
            "GROUP BY kind, item_id"
        )
        return {(str(r["kind"]), int(r["item_id"])): int(r["n"]) for r in rows}

    # ---------------------------------------------------------- registrations

    def register(self, registration: Registration, *, challenge: str, today: str) -> dict[str, Any]:
        """Register a worker for a course or session, in one write transaction.

        The item is read, and its seats counted, inside the transaction that adds
        the registration; writers are serialised (SQLite ``BEGIN IMMEDIATE``,
        PostgreSQL's advisory lock), so concurrent sign-ups never take more seats
        than there are. Refusals raise :class:`RefusedError` and write nothing.

        Parameters
        ----------
        registration
            The validated registration (:class:`geo.models.Registration`).
        challenge
            The nonce of the challenge it answered: each is used once.
        today
            Today's date in China, ISO: items that ended earlier are past.

        Returns
        -------
        dict
            ``id``, ``code`` (the confirmation code, shown once; only its hash is
            kept), ``kind``, ``item_id``, ``facility_id``, ``title``, ``start_date``,
            ``seats_left``.

        Raises
        ------
        RefusedError
            404 unknown item, 410 past, 409 ``closed`` (no seat count: register by
            phone), ``duplicate`` (this phone is registered for it) or ``full``,
            400 ``challenge`` (its challenge was used).
        """
        kind, item_id = registration.kind, registration.item_id
        with self.write(None, "register", "registration", "?", who="registrant") as tx:
            item, end, seats_left = self._registrable(tx, registration, challenge, today)
            facility = tx.conn.execute(
                "SELECT county FROM facilities WHERE id = ?", (item["facility_id"],)
            ).fetchone()
            county = facility["county"] if facility else None
            code = _unused_code(tx)
            values = registration.model_dump(mode="json")
            reg_id = int(
                tx.conn.execute(
                    "INSERT INTO registrations (kind, item_id, facility_id, county, name, phone, "
                    "consent_at, consent_version, attended, state, code_hash, challenge, "
                    "item_end) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 'active', ?, ?, ?) RETURNING id",
                    (
                        kind,
                        item_id,
                        item["facility_id"],
                        county,
                        values["name"],
                        values["phone"],
                        values["consent_at"],
                        values["consent_version"],
                        hash_code(code),
                        challenge,
                        end,
                    ),
                ).fetchone()["id"]
            )
            tx.entity_id, tx.facility_id = str(reg_id), item["facility_id"]
            tx.county = county
            tx.after = {"kind": kind, "item_id": item_id, "state": "active"}  # no personal data
        return {
            "id": reg_id,
            "code": code,
            "kind": kind,
            "item_id": item_id,
            "facility_id": item["facility_id"],
            "title": item_title(kind, item),
            "start_date": str(item["start_date"] if kind == "course" else item["date"]),
            "seats_left": seats_left,
        }

    def _registrable(
        self, tx: Write, registration: Registration, challenge: str, today: str
    ) -> tuple[dict[str, Any], str, int]:
        """The item a registration is for, its last day and the seats left after it,
        read in ``tx``; a refusal (:meth:`register`) raises :class:`RefusedError`."""
        kind, item_id = registration.kind, registration.item_id
        table = KIND_TABLES[kind]
        noun = "course 培训班" if kind == "course" else "evaluation session 评价场次"
        row = tx.conn.execute(f"SELECT * FROM {table} WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise RefusedError(404, "not found", f"no {noun} {item_id}; 项目不存在，请重新搜索")
        item = self._checked(table, [row])[0]
        end = str(item["date"] if kind == "evaluation" else item["end_date"] or item["start_date"])
        if end < today:
            raise RefusedError(410, "past", f"{noun} {item_id} ended on {end}; 该项目已结束")
        seats = item["seats"]
        if seats is None:
            raise RefusedError(
                409,
                "closed",
                f"{noun} {item_id} takes no online registration; 请电话联系举办机构报名",
            )
        duplicate = tx.conn.execute(
            "SELECT 1 FROM registrations WHERE kind = ? AND item_id = ? AND phone = ? "
            "AND state = 'active'",
            (kind, item_id, registration.phone),
        ).fetchone()
        if duplicate is not None:
            raise RefusedError(
                409,
                "duplicate",
                "this phone is already registered for it; 该手机号已报名此项目",
            )
        taken = tx.registered(table, item_id)
        if taken >= seats:
            raise RefusedError(409, "full", f"all {seats} seats are taken; 名额已满")
        used = tx.conn.execute(
            "SELECT 1 FROM registrations WHERE challenge = ?", (challenge,)
        ).fetchone()
        if used is not None:
            raise RefusedError(400, "challenge", "this challenge was used; 请刷新验证题后重试")
        return item, end, max(0, seats - taken - 1)

    def withdraw(self, code: str, phone: str) -> bool:
        """Withdraw the active registration with this confirmation code and phone: its
        name and phone are deleted and its seat returned. False (nothing written) when
        no registration has both, whichever is wrong."""
        digest = hash_code(code)
        try:
            with self.write(None, "withdraw", "registration", "?", who="registrant") as tx:
                row = tx.conn.execute(
                    "SELECT id, phone, facility_id, county FROM registrations "
                    "WHERE code_hash = ? AND state = 'active'",
                    (digest,),
                ).fetchone()
                if row is None or not hmac.compare_digest(str(row["phone"]), phone):
                    raise RefusedError(404, "not found", "no registration")
                self._close_registration(tx, int(row["id"]), "withdrawn")
                tx.entity_id, tx.county, tx.facility_id = (
                    str(row["id"]),
                    row["county"],
                    row["facility_id"],
                )
                tx.after = {"state": "withdrawn"}
        except RefusedError:
            return False
        return True

    @staticmethod
    def _close_registration(tx: Write, reg_id: int, state: str) -> None:
        tx.conn.execute(
            "UPDATE registrations SET name = NULL, phone = NULL, code_hash = NULL, state = ?, "
            "closed_at = ? WHERE id = ? AND state = 'active'",
            (state, now(), reg_id),
        )

    def registration(self, reg_id: int) -> dict[str, Any] | None:
        """An active registration (with its personal data), or None."""
        row = self.conn.execute(
            "SELECT * FROM registrations WHERE id = ? AND state = 'active'", (reg_id,)
        ).fetchone()
        return None if row is None else _registration(row)

    def registrations(
        self, facility_id: str, kind: str | None = None, item_id: int | None = None
    ) -> list[dict[str, Any]]:
        """The active registrations of a facility (of one item if given), oldest first,
        each with the item's ``title`` and ``start_date``."""
        query = "SELECT * FROM registrations WHERE facility_id = ? AND state = 'active'"
        params: list[Any] = [facility_id]
        if kind is not None:
            query += " AND kind = ?"
            params.append(kind)
        if item_id is not None:
            query += " AND item_id = ?"
            params.append(item_id)
        rows = [_registration(r) for r in self.conn.execute(query + " ORDER BY id", params)]
        items = {
            (TABLE_KINDS[t], int(i["id"])): i
            for t in ("courses", "evaluations")
            for i in self._checked(
                t, self.conn.execute(f"SELECT * FROM {t} WHERE facility_id = ?", (facility_id,))
            )
        }
        for row in rows:
            item = items.get((row["kind"], row["item_id"]))
            row["title"] = item_title(row["kind"], item) if item else ""
            row["start_date"] = (
                None if item is None else str(item.get("start_date") or item.get("date"))
            )
        return rows

    def update_registration(
        self,
        principal: Principal,
        reg_id: int,
        *,
        attended: bool | None = None,
        delete: bool = False,
    ) -> bool:
        """Mark attendance of, or delete (its personal data), an active registration.
        False (nothing written) when there is none with this id."""
        action = "delete" if delete else "update"
        try:
            with self.write(principal, action, "registration", str(reg_id)) as tx:
                row = tx.conn.execute(
                    "SELECT facility_id, county, attended FROM registrations "
                    "WHERE id = ? AND state = 'active'",
                    (reg_id,),
                ).fetchone()
                if row is None:
                    raise RefusedError(404, "not found", f"no registration {reg_id}")
                tx.county, tx.facility_id = row["county"], row["facility_id"]
                if delete:
                    self._close_registration(tx, reg_id, "deleted")
                    tx.after = {"state": "deleted"}
                else:
                    tx.conn.execute(
                        "UPDATE registrations SET attended = ? WHERE id = ?",
                        (int(bool(attended)), reg_id),
                    )
                    tx.before = {"attended": bool(row["attended"])}
                    tx.after = {"attended": bool(attended)}
        except RefusedError:
            return False
        return True

    def purge_registrations(self, today: str, retention_days: int, who: str = "retention") -> int:
        """Delete the name and phone of registrations whose item ended more than
        ``retention_days`` before ``today`` (the anonymous rows stay: counts, attendance).

        Returns the number purged; nothing is written when there is none.
        """
        cutoff = (
            datetime.fromisoformat(today).date() - timedelta(days=int(retention_days))
        ).isoformat()
        query = (
            "SELECT r.id FROM registrations AS r "
            "LEFT JOIN courses AS c ON r.kind = 'course' AND c.id = r.item_id "
            "LEFT JOIN evaluations AS e ON r.kind = 'evaluation' AND e.id = r.item_id "
            "WHERE r.state = 'active' "
            "AND coalesce(c.end_date, c.start_date, e.date, r.item_end) < ?"
        )
        if self.conn.execute(query, (cutoff,)).fetchone() is None:
            return 0
        with self.write(None, "purge", "registration", "*", who=who) as tx:
            ids = [int(r["id"]) for r in tx.conn.execute(query, (cutoff,)).fetchall()]
            for reg_id in ids:
                self._close_registration(tx, reg_id, "purged")
            tx.after = {
                "purged": len(ids),
                "ended_before": cutoff,
                "retention_days": retention_days,
            }
        logger.info(
            "deleted the personal data of %d registrations (ended before %s)", len(ids), cutoff
        )
        return len(ids)

    def registration_states(self) -> dict[str, int]:
        """How many registrations are in each state (anonymous counts)."""
        rows = self.conn.execute("SELECT state, count(*) AS n FROM registrations GROUP BY state")
        return {str(r["state"]): int(r["n"]) for r in rows}

    # ----------------------------------------------------------------- demand

    def add_demand(self, counts: Mapping[tuple[str, str, str, str], int]) -> None:
        """Add anonymous demand signals: ``(village_code, trade, kind, week) -> n``, each
        checked by :class:`geo.models.DemandSignal`, in one transaction (no audit entry,
        no data version: counters are not content)."""
        signals = [
            DemandSignal(village_code=k[0], trade=k[1], kind=k[2], week=k[3], signals=n)  # type: ignore[arg-type]
            for k, n in counts.items()
            if n > 0
        ]
        if not signals:
            return
        with self._transaction() as conn:
            for signal in signals:
                conn.execute(
                    "INSERT INTO demand (village_code, trade, kind, week, signals) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (village_code, trade, kind, week) "
                    "DO UPDATE SET signals = demand.signals + excluded.signals",
                    (signal.village_code, signal.trade, signal.kind, signal.week, signal.signals),
                )

    def demand(self, since_week: str | None = None) -> list[dict[str, Any]]:
        """Demand signals summed over the weeks from ``since_week`` (ISO ``2026-W07``; None:
        all): one row per (``village_code``, ``trade``, ``kind``) with ``signals``."""
        query = "SELECT village_code, trade, kind, sum(signals) AS signals FROM demand"
        params: tuple[Any, ...] = ()
        if since_week is not None:
            query += " WHERE week >= ?"
            params = (since_week,)
        rows = self.conn.execute(query + " GROUP BY village_code, trade, kind", params)
        return [
            {
                "village_code": str(r["village_code"]),
                "trade": str(r["trade"]),
                "kind": str(r["kind"]),
                "signals": int(r["signals"]),
            }
            for r in rows
        ]

    # --------------------------------------------------- data versions and jobs

    def data_versions(self) -> dict[str, int]:
        """``{"facilities": n, "content": m, "items": k}``: bumped by every facility write,
        any write, and every course or session write."""
        rows = self.conn.execute("SELECT name, version FROM data_versions")
        return {str(r["name"]): int(r["version"]) for r in rows}

    def facilities_snapshot(self) -> tuple[list[dict[str, Any]], int]:
        """All facility records and the facilities version they are, read together."""
        conn = self.conn
        conn.execute("BEGIN" if self.url is None else "BEGIN ISOLATION LEVEL REPEATABLE READ")
        try:
            version = int(
                conn.execute(
                    "SELECT version FROM data_versions WHERE name = 'facilities'"
                ).fetchone()[0]
            )
            records = self.facility_records()
        finally:
            conn.execute("COMMIT")
        return records, version

    def published(self) -> dict[str, Any] | None:
        """The results every server process should serve (``facilities_version``,
        ``results_key``, ``published_at``), or None before the first publication."""
        row = self.conn.execute("SELECT * FROM published WHERE id = 1").fetchone()
        return None if row is None else dict(row)

    def publish(self, facilities_version: int, results_key: str) -> bool:
        """Publish results of a facilities version, unless newer ones are published;
        jobs the publication covers are marked done. Returns whether it was published."""
        with self._transaction() as conn:
            row = conn.execute("SELECT facilities_version FROM published WHERE id = 1").fetchone()
            if row is not None and int(row[0]) > facilities_version:
                return False
            conn.execute(
                "INSERT INTO published (id, facilities_version, results_key, published_at) "
                "VALUES (1, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                "facilities_version = excluded.facilities_version, "
                "results_key = excluded.results_key, published_at = excluded.published_at",
                (facilities_version, results_key, now()),
            )
            conn.execute(
                "UPDATE jobs SET state = 'done', finished_at = ?, published_version = ?, "
                "results_key = coalesce(results_key, ?) "
                "WHERE state = 'queued' AND facilities_version <= ?",
                (now(), facilities_version, results_key, facilities_version),
            )
        return True

    def claim_job(self, worker: str, stale_s: float = 120.0) -> dict[str, Any] | None:
        """Take the newest queued job for ``worker`` (it covers every older one).

        A running job whose heartbeat is older than ``stale_s`` belongs to a worker
        that died (kill -9): it is queued again first.
        """
        with self._transaction() as conn:
            conn.execute(
                "UPDATE jobs SET state = 'queued', worker = NULL "
                "WHERE state = 'running' AND heartbeat < ?",
                (time.time() - stale_s,),
            )
            row = conn.execute(
                "SELECT * FROM jobs WHERE state = 'queued' ORDER BY id DESC LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE jobs SET state = 'running', worker = ?, started_at = ?, heartbeat = ? "
                "WHERE id = ?",
                (worker, now(), time.time(), row["id"]),
            )
        return self.job(int(row["id"]))

    def heartbeat(self, job_id: int) -> None:
        """Say that the worker of a claimed job is still at it (stale jobs are taken over)."""
        self.conn.execute("UPDATE jobs SET heartbeat = ? WHERE id = ?", (time.time(), job_id))

    def finish_job(
        self,
        job_id: int,
        *,
        state: str,
        published_version: int | None = None,
        results_key: str | None = None,
        seconds: float | None = None,
        detail: str = "",
    ) -> None:
        """Close a job: ``done`` (with what it published) or ``failed`` (with the error)."""
        self.conn.execute(
            "UPDATE jobs SET state = ?, finished_at = ?, published_version = ?, "
            "results_key = ?, seconds = ?, detail = ? WHERE id = ?",
            (state, now(), published_version, results_key, seconds, detail[:2000], job_id),
        )

    def job(self, job_id: int) -> dict[str, Any] | None:
        """A recompute job's row, or None."""
        row = self.conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else dict(row)

    def jobs_waiting(self) -> int:
        """Jobs queued or running."""
        row = self.conn.execute(
            "SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')"
        ).fetchone()
        return int(row[0])

    # ------------------------------------------------------------------ audit

    def audit(
        self, county: str | None = None, limit: int = 100, facility_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Newest entries first; a county sees its own entries only, a facility's staff
        those about their facility."""
        if facility_id is not None:
            rows = self.conn.execute(
                "SELECT * FROM audit WHERE facility_id = ? ORDER BY id DESC LIMIT ?",
                (facility_id, limit),
            )
        elif county is None:
            rows = self.conn.execute("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self.conn.execute(
                "SELECT * FROM audit WHERE county = ? ORDER BY id DESC LIMIT ?", (county, limit)
            )
        out = []
        for row in rows:
            entry = dict(row)
            for key in ("before", "after"):
                entry[key] = json.loads(entry[key]) if entry[key] else None
            out.append(entry)
        return out

    def count_audit(self, action: str) -> int:
        """How many audit entries have this action."""
        query = "SELECT count(*) FROM audit WHERE action = ?"
        return int(self.conn.execute(query, (action,)).fetchone()[0])

    @contextmanager
    def write(
        self,
        principal: Principal | None,
        action: str,
        entity: str,
        entity_id: str,
        *,
        county: str | None = None,
        who: str = "cli",
    ) -> Iterator[Write]:
        """One transaction that also records an audit entry (set ``before``/``after`` on it)."""
        with self._transaction() as conn:
            tx = Write(conn, entity_id=entity_id)
            yield tx
            tx.versions = dict([_bump(conn, "content")])
            if tx.items_changed:  # the search catalogue depends on these only
                tx.versions["items"] = _bump(conn, "items")[1]
            if tx.facilities_changed:  # results depend on facilities: queue their recompute
                version = _bump(conn, "facilities")[1]
                tx.versions["facilities"] = version
                tx.job_id = int(
                    conn.execute(
                        "INSERT INTO jobs (facilities_version, state, created_at) "
                        "VALUES (?, 'queued', ?) RETURNING id",
                        (version, now()),
                    ).fetchone()["id"]
                )
            conn.execute(
                "INSERT INTO audit (at, token_id, who, action, entity, entity_id, county, "
                "facility_id, before, after) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    now(),
                    principal.token_id if principal else None,
                    principal.name if principal else who,
                    action,
                    entity,
                    tx.entity_id,
                    tx.county or county,
                    tx.facility_id,
                    _dump(tx.before),
                    _dump(tx.after),
                ),
            )


@dataclass
class Write:
    """An open write transaction: helpers for the statements, and the audit entry's fields."""

    conn: _Connection
    entity_id: str
    county: str | None = None
    #: The facility the entry is about (its staff see it).
    facility_id: str | None = None
    before: Any = None
    after: Any = None
    #: Set by the facility statements: the commit bumps the facilities version and
    #: queues a recompute job (its id in :attr:`job_id`).
    facilities_changed: bool = False
    #: Set by the course and session statements: the commit bumps the items version.
    items_changed: bool = False
    job_id: int | None = None
    #: The data versions after this write (name -> version), set at commit.
    versions: dict[str, int] = field(default_factory=dict)

    def put_facility(self, record: Facility | Mapping[str, Any]) -> None:
        """Insert or replace a facility: a :class:`geo.models.Facility`, or a dict that
        must pass it (ids must not be empty)."""
        self.facilities_changed = True
        facility = record if isinstance(record, Facility) else Facility.model_validate(record)
        if not facility.id:
            raise StoreError("a facility needs an id before it is stored")
        data = json.dumps(facility.model_dump(), ensure_ascii=False)
        self.conn.execute(
            "INSERT INTO facilities (id, county, layer, data, updated_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET county = excluded.county, layer = excluded.layer, "
            "data = excluded.data, updated_at = excluded.updated_at",
            (facility.id, facility.county, facility.layer, data, now()),
        )

    def delete_facility(self, fid: str) -> None:
        """Delete a facility (its courses and sessions go with it) and the personal data
        of its registrations."""
        self.facilities_changed = self.items_changed = True
        self.conn.execute(
            "UPDATE registrations SET name = NULL, phone = NULL, code_hash = NULL, "
            "state = 'cancelled', closed_at = ? WHERE facility_id = ? AND state = 'active'",
            (now(), fid),
        )
        self.conn.execute("DELETE FROM facilities WHERE id = ?", (fid,))

    def new_facility_id(self, prefix: str) -> str:
        """The next unused id ``<prefix><n:03d>`` from the prefix's sequence.

        Taken inside this write transaction (``BEGIN IMMEDIATE``), so concurrent
        writers, even other processes, never get the same id; a number whose id a
        record already holds (given in a file, say) is skipped, not reused.
        """
        row = self.conn.execute(
            "SELECT last FROM id_sequences WHERE prefix = ?", (prefix,)
        ).fetchone()
        n = int(row["last"]) if row else 0
        while True:
            n += 1
            fid = f"{prefix}{n:03d}"
            taken = self.conn.execute("SELECT 1 FROM facilities WHERE id = ?", (fid,)).fetchone()
            if taken is None:
                break
        self.conn.execute(
            "INSERT INTO id_sequences (prefix, last) VALUES (?, ?) "
            "ON CONFLICT(prefix) DO UPDATE SET last = excluded.last",
            (prefix, n),
        )
        return fid

    def insert_item(self, table: str, facility_id: str, values: Mapping[str, Any]) -> int:
        """Add a course or session; ``values`` must pass the table's model."""
        fields = TABLE_FIELDS[table]
        values = _item_values(table, values)
        self.items_changed = True
        row = self.conn.execute(
            f"INSERT INTO {table} (facility_id, {', '.join(fields)}, updated_at) "
            f"VALUES (?, {', '.join('?' * len(fields))}, ?) RETURNING id",
            (facility_id, *(values[f] for f in fields), now()),
        ).fetchone()
        return int(row["id"])

    def update_item(self, table: str, item_id: int, values: Mapping[str, Any]) -> None:
        """Replace a course's or session's fields; ``values`` must pass the table's model."""
        values = _item_values(table, values)
        self.items_changed = True
        fields = list(TABLE_FIELDS[table])
        assignments = ", ".join(f"{f} = ?" for f in [*fields, "updated_at"])
        self.conn.execute(
            f"UPDATE {table} SET {assignments} WHERE id = ?",
            (*(values[f] for f in fields), now(), item_id),
        )

    def delete_item(self, table: str, item_id: int) -> None:
        """Delete a course or session and the personal data of its registrations."""
        _check_table(table)
        self.items_changed = True
        self.conn.execute(
            "UPDATE registrations SET name = NULL, phone = NULL, code_hash = NULL, "
            "state = 'cancelled', closed_at = ? "
            "WHERE kind = ? AND item_id = ? AND state = 'active'",
            (now(), TABLE_KINDS[table], item_id),
        )
        self.conn.execute(f"DELETE FROM {table} WHERE id = ?", (item_id,))

    def registered(self, table: str, item_id: int) -> int:
        """Active registrations of a course or session (read in this transaction)."""
        row = self.conn.execute(
            "SELECT count(*) FROM registrations WHERE kind = ? AND item_id = ? "
            "AND state = 'active'",
            (TABLE_KINDS[table], item_id),
        ).fetchone()
        return int(row[0])


def _item_values(table: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` checked by the table's model, as SQLite holds them (dates as ISO text)."""
    _check_table(table)
    return TABLE_MODELS[table].model_validate(values).model_dump(mode="json")


def _rows(conn: _Connection, table: str, facility_id: str) -> list[dict[str, Any]]:
    _check_table(table)
    query = f"SELECT * FROM {table} WHERE facility_id = ? ORDER BY id"
    return [dict(r) for r in conn.execute(query, (facility_id,))]


def _bump(conn: _Connection, name: str) -> tuple[str, int]:
    row = conn.execute(
        "UPDATE data_versions SET version = version + 1 WHERE name = ? RETURNING version",
        (name,),
    ).fetchone()
    return name, int(row["version"])


def _check_table(table: str) -> None:
    if table not in TABLE_FIELDS:
        raise StoreError(f"unknown table {table!r}")


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, default=str)


#: Letters of confirmation codes (Crockford's base 32: no I, L, O, U), 8 of them: 2**40.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 8


def new_code() -> str:
    """An unguessable confirmation code (``secrets``), e.g. ``7KQ2M9XD``.

    Returns
    -------
    str
        :data:`CODE_LENGTH` characters of :data:`CODE_ALPHABET`.
    """
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normal_code(text: str) -> str:
    """A code as typed (lower case, O for 0, I/L for 1, spaces) in its canonical form.

    Parameters
    ----------
    text
        The code as the registrant typed it.

    Returns
    -------
    str
        Upper case, without spaces and dashes, O -> 0, I/L -> 1.
    """
    cleaned = text.strip().upper().replace(" ", "").replace("-", "")
    return cleaned.translate(str.maketrans("OIL", "011"))


def hash_code(code: str) -> str:
    """What the store keeps of a confirmation code: the SHA-256 of its canonical form.

    Parameters
    ----------
    code
        The code, as made or as typed (:func:`normal_code`).

    Returns
    -------
    str
        64 hex digits.
    """
    return hashlib.sha256(normal_code(code).encode()).hexdigest()


def item_title(kind: str, item: Mapping[str, Any]) -> str:
    """What a registration is for.

    Parameters
    ----------
    kind
        ``course`` or ``evaluation``.
    item
        The course or evaluation session.

    Returns
    -------
    str
        A course's title, or e.g. ``焊工（中级）技能等级认定``.
    """
    if kind == "course":
        return str(item["title"])
    return f"{item['trade']}（{item['level']}）技能等级认定"


def mask_phone(phone: str | None) -> str:
    """A phone number as lists show it: ``13812345678`` -> ``138****5678``.

    Parameters
    ----------
    phone
        The number, or None.

    Returns
    -------
    str
        The masked number ("" for none, ``****`` for one of 7 digits or fewer).
    """
    if not phone:
        return ""
    return phone[:3] + "*" * max(0, len(phone) - 7) + phone[-4:] if len(phone) > 7 else "****"


def _registration(row: Any) -> dict[str, Any]:
    out = dict(row)
    out["attended"] = bool(out["attended"])
    out.pop("code_hash", None)
    out.pop("challenge", None)
    return out
