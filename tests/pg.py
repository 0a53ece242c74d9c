"""A throw-away PostgreSQL server for the tests (Debian's ``postgresql`` package).

:func:`find_bindir` finds ``initdb``/``pg_ctl`` under ``/usr/lib/postgresql/<version>/bin``
(or ``SKILLCIRCLE_PG_BINDIR``); :class:`PostgresServer` makes a cluster in a
temporary directory, starts it on a free port of 127.0.0.1 (password login, as a
real deployment) and a Unix socket in that directory, hands out fresh databases
and removes everything at :meth:`PostgresServer.stop`.

``initdb`` refuses to run as root: as root the cluster belongs to the ``postgres``
system user the Debian package creates, and its programs run through ``runuser``.
The cluster trades durability for speed (``fsync=off``): it is thrown away.
"""

from __future__ import annotations

import itertools
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

#: The superuser of the test cluster and its password (the URL carries both).
USER = "skillcircle"
PASSWORD = "pg-test-secret"


#: The store backends the store-level tests run on (ids of the ``database`` fixture).
BACKENDS = ("sqlite", "postgresql")


def store_location(request: pytest.FixtureRequest, backend: str) -> str:
    """A fresh store for a fixture: a SQLite file path, or the URL of a new database of
    the session's PostgreSQL server (fixture ``postgres``, which skips without one)."""
    if backend == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        return server.new_database()
    return str(request.getfixturevalue("new_database")())


class PostgresUnavailableError(Exception):
    """No PostgreSQL server can be started here (the message says why)."""


def find_bindir() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding initdb and pg_ctl."""
    given = os.environ.get("SKILLCIRCLE_PG_BINDIR")
    candidates = (
        [Path(given)]
        if given
        else sorted(
            Path("/usr/lib/postgresql").glob("*/bin"),
            key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.name)] or [0],
            reverse=True,
        )
    )
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    raise PostgresUnavailableError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql: "
        "install the Debian package `postgresql` (listed in .ci/apt-packages.txt) "
        "or set SKILLCIRCLE_PG_BINDIR"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory, for one test session."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.run_as: str | None = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailableError(
                    "the tests run as root, initdb refuses root, and there is no `postgres` "
                    "system user (the Debian package `postgresql` creates it)"
                ) from None
            self.run_as = "postgres"
        self.root = Path(tempfile.mkdtemp(prefix="skillcircle-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._names = itertools.count(1)
        if self.run_as is not None:
            os.chown(self.root, owner.pw_uid, owner.pw_gid)

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.run_as is not None:
            command = ["runuser", "-u", self.run_as, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(
                f"{args[0]} failed ({done.returncode}): {(done.stderr or done.stdout).strip()}"
            )
        return done

    def start(self) -> PostgresServer:
        pwfile = self.root / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if self.run_as is not None:
            shutil.chown(pwfile, self.run_as)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            USER,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        pwfile.unlink()
        options = " ".join(
            (
                f"-p {self.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.root}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=400",
                "-c shared_buffers=32MB",
            )
        )
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"),
                  "-w", "-t", "60", "start")  # fmt: skip
        return self

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        """A ``postgresql://`` URL of a database of this server, with the password."""
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = f"test_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0 STRATEGY FILE_COPY')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database of :meth:`new_database`, ending the sessions still on it (a
        test's stores): a session holds hundreds of them, ~7 MB of files each."""
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
