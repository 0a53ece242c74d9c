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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
from pydantic import BaseModel

from geo import _validate as v
from geo.facilities import facilities_from_records, facility_records
from geo.models import (
    Course,
    EvaluationSession,
    Facility,
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
TOKEN_PREFIX = "sc_"

logger = logging.getLogger(__name__)


class StoreError(Exception):
    """The database is newer than this program, or a token/row cannot be found."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token's id and name, and its county (None: city-wide)."""

    token_id: int
    name: str
    county: str | None

    def may_edit(self, county: str) -> bool:
        return self.county is None or self.county == county


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def hash_token(token: str) -> str:
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

    def execute(self, statement: str, params: Sequence[Any] = ()) -> Any:
        return self.raw.execute(self.dialect.sql(statement), tuple(params))

    def close(self) -> None:
        self.raw.close()


def is_database_url(target: str | Path) -> bool:
    """Whether a store location is a PostgreSQL URL (else a SQLite file path)."""
    return str(target).startswith(("postgresql://", "postgres://"))


class Store:
    """The store in a SQLite file or a PostgreSQL database; a connection per thread and
    process (waitress serves from a thread pool, gunicorn forks workers).

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
        host = parts.hostname or ""
        return (
            f"{parts.scheme}://{parts.username + '@' if parts.username else ''}{host}{parts.path}"
        )

    # ------------------------------------------------------------ connections

    @property
    def conn(self) -> _Connection:
        conn: _Connection | None = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            conn = self._connect()  # a connection never crosses a fork
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
        raw_sqlite = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        raw_sqlite.row_factory = sqlite3.Row
        raw_sqlite.execute("PRAGMA journal_mode=WAL")
        raw_sqlite.execute("PRAGMA synchronous=FULL")  # a 2xx means the change is on disk
        raw_sqlite.execute("PRAGMA foreign_keys=ON")
        return _Connection(raw_sqlite, SQLITE)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
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
        self.conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = self.conn.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    def migrate(self) -> int:
        """Apply pending migrations; return the schema version."""
        version = self._schema_version()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.location} has schema version {version}, newer than this skillcircle "
                f"({SCHEMA_VERSION}); upgrade skillcircle"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self._transaction() as conn:
                for statement in MIGRATIONS[target - 1]:
                    conn.execute(statement.format(**self.dialect.tokens))
                if self.url is None:
                    conn.execute(f"PRAGMA user_version = {target}")
                else:
                    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (target,))
        return SCHEMA_VERSION

    def check_tables(self) -> None:
        """Refuse a database whose item tables differ from the entity models.

        Raises
        ------
        StoreError
            Naming each table, the columns it lacks or has beyond the model
            (:data:`TABLE_MODELS`) and the store's own :data:`ITEM_KEYS`.
        """
        problems = []
        for table, model in TABLE_MODELS.items():
            cursor = self.conn.execute(f"SELECT * FROM {table} LIMIT 0")
            columns = [str(column[0]) for column in cursor.description or ()]
            lacking = [k for k in ITEM_KEYS if k not in columns]
            if lacking:
                problems.append(f"table {table} lacks column(s) {', '.join(lacking)}")
            own = [c for c in columns if c not in ITEM_KEYS]
            problems += column_problems(model, own, f"table {table}")
        if problems:
            raise StoreError(
                f"{self.location}: {'; '.join(problems)} (geo/models.py); the database was "
                "changed by hand or by another skillcircle version: restore a backup or "
                "open it with the version that wrote it"
            )

    @property
    def version(self) -> int:
        return self._schema_version()

    # ----------------------------------------------------------------- tokens

    def create_token(self, name: str, county: str | None) -> tuple[int, str]:
        """A new random token (returned once, never stored) and its id."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.write(None, "create", "token", name, county=county) as tx:
            row = tx.conn.execute(
                "INSERT INTO tokens (name, county, hash, created_at) VALUES (?, ?, ?, ?) "
                "RETURNING id",
                (name, county, hash_token(token), now()),
            ).fetchone()
            token_id = int(row["id"])
            tx.entity_id = str(token_id)
            tx.after = {"id": token_id, "name": name, "county": county}
        return token_id, token

    def revoke_token(self, token_id: int) -> dict[str, Any]:
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
        rows = self.conn.execute(
            "SELECT id, name, county, created_at, revoked_at FROM tokens ORDER BY id"
        )
        return [dict(r) for r in rows]

    def authenticate(self, token: str) -> Principal | None:
        """The principal of a valid, unrevoked token, else None."""
        digest = hash_token(token)
        row = self.conn.execute(
            "SELECT id, name, county, hash FROM tokens WHERE hash = ? AND revoked_at IS NULL",
            (digest,),
        ).fetchone()
        if row is None or not hmac.compare_digest(row["hash"], digest):
            return None
        return Principal(int(row["id"]), row["name"], row["county"])

    # ------------------------------------------------------------- facilities

    def facility_count(self) -> int:
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
        row = self.conn.execute("SELECT data FROM facilities WHERE id = ?", (fid,)).fetchone()
        return None if row is None else dict(json.loads(row["data"]))

    def facility_records(self) -> list[dict[str, Any]]:
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
        _check_table(table)
        order = "start_date" if table == "courses" else "date"
        rows = self.conn.execute(
            f"SELECT * FROM {table} WHERE facility_id = ? ORDER BY {order}, id", (facility_id,)
        )
        return self._checked(table, rows)

    def item(self, table: str, item_id: int) -> dict[str, Any] | None:
        _check_table(table)
        row = self.conn.execute(f"SELECT * FROM {table} WHERE id = ?", (item_id,)).fetchone()
        return None if row is None else self._checked(table, [row])[0]

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
        return out

    # --------------------------------------------------- data versions and jobs

    def data_versions(self) -> dict[str, int]:
        """``{"facilities": n, "content": m}``: bumped by every facility / any write."""
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
        row = self.conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else dict(row)

    def jobs_waiting(self) -> int:
        """Jobs queued or running."""
        row = self.conn.execute(
            "SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')"
        ).fetchone()
        return int(row[0])

    # ------------------------------------------------------------------ audit

    def audit(self, county: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Newest entries first; a county sees its own entries only."""
        if county is None:
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
                "before, after) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    now(),
                    principal.token_id if principal else None,
                    principal.name if principal else who,
                    action,
                    entity,
                    tx.entity_id,
                    tx.county or county,
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
    before: Any = None
    after: Any = None
    #: Set by the facility statements: the commit bumps the facilities version and
    #: queues a recompute job (its id in :attr:`job_id`).
    facilities_changed: bool = False
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
        self.facilities_changed = True
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
        row = self.conn.execute(
            f"INSERT INTO {table} (facility_id, {', '.join(fields)}, updated_at) "
            f"VALUES (?, {', '.join('?' * len(fields))}, ?) RETURNING id",
            (facility_id, *(values[f] for f in fields), now()),
        ).fetchone()
        return int(row["id"])

    def update_item(self, table: str, item_id: int, values: Mapping[str, Any]) -> None:
        """Replace a course's or session's fields; ``values`` must pass the table's model."""
        values = _item_values(table, values)
        fields = list(TABLE_FIELDS[table])
        assignments = ", ".join(f"{f} = ?" for f in [*fields, "updated_at"])
        self.conn.execute(
            f"UPDATE {table} SET {assignments} WHERE id = ?",
            (*(values[f] for f in fields), now(), item_id),
        )

    def delete_item(self, table: str, item_id: int) -> None:
        _check_table(table)
        self.conn.execute(f"DELETE FROM {table} WHERE id = ?", (item_id,))


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
