"""A PostgreSQL 15 server for the tests: a throwaway cluster, or one the developer names.

Tests that need PostgreSQL must not touch a server someone depends on, and CI has no
server running. So, as pytest-postgresql does, :func:`postgres_server` makes a cluster
in a temporary folder (``initdb``, ``pg_ctl -w start``), listening on a unix socket in
that folder only (no TCP), with ``fsync=off``, and deletes it at the end. initdb refuses
to run as root, so as root the cluster belongs to the ``postgres`` user (``runuser``).

``VO_CLIP_TEST_POSTGRES_DSN``, an admin connection string, replaces the throwaway
cluster with an existing server; the tests then only create and drop their own
databases on it (named ``vo_clip_test_*``).

Every test database is a copy of a template that has ``pg_sphere`` created, so each
test starts from an empty database with the extension, in one ``CREATE DATABASE``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

#: The environment variable naming an existing server to use instead of a throwaway one.
DSN_VARIABLE = "VO_CLIP_TEST_POSTGRES_DSN"
INSTALL_HINT = ("PostgreSQL 15 with pgsphere (apt-get install postgresql-15 "
                "postgresql-15-pgsphere)")
_FALLBACK_BINDIR = Path("/usr/lib/postgresql/15/bin")
_START_TIMEOUT_S = 60


class MissingTool(Exception):
    """What the machine lacks to run the PostgreSQL tests (the skip reason says it)."""


def _psycopg():
    try:
        import psycopg
    except ImportError:
        raise MissingTool("psycopg 3 (pip install 'vo_clip[postgres]')") from None
    return psycopg


def find_bindir() -> Path:
    """The folder of ``initdb`` and ``pg_ctl``: ``pg_config --bindir``, else Debian's."""
    candidates = []
    if shutil.which("pg_config"):
        try:
            out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                                 timeout=30, check=True).stdout.strip()
            candidates.append(Path(out))
        except (subprocess.SubprocessError, OSError):
            pass
    candidates.append(_FALLBACK_BINDIR)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    raise MissingTool(f"initdb and pg_ctl, searched in {', '.join(map(str, candidates))}: "
                      f"{INSTALL_HINT}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run_as_owner(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a PostgreSQL tool; as root, as the ``postgres`` user (initdb refuses root)."""
    if os.geteuid() == 0:
        args = ["runuser", "-u", "postgres", "--", *args]
    return subprocess.run(args, capture_output=True, text=True, **kwargs)


@dataclass
class PostgresServer:
    """A server the tests may create and drop databases on.

    Attributes
    ----------
    admin_dsn : str
        Connection string of a superuser (or a role allowed to create databases), to
        the maintenance database.
    """

    admin_dsn: str
    template: str = field(default_factory=lambda: f"vo_clip_test_tpl_{secrets.token_hex(4)}")

    def dsn(self, database: str) -> str:
        """The admin connection string, to ``database`` instead."""
        psycopg = _psycopg()
        return psycopg.conninfo.make_conninfo(self.admin_dsn, dbname=database)

    def execute(self, statement: str, database: str | None = None) -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE need that)."""
        psycopg = _psycopg()
        dsn = self.dsn(database) if database else self.admin_dsn
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            conn.execute(statement)

    def prepare_template(self) -> None:
        """A template database with pg_sphere; MissingTool if the extension is absent."""
        psycopg = _psycopg()
        self.execute(f'CREATE DATABASE "{self.template}"')
        try:
            self.execute("CREATE EXTENSION pg_sphere", self.template)
        except psycopg.Error as error:
            self.execute(f'DROP DATABASE "{self.template}"')
            raise MissingTool(f"the pg_sphere extension ({str(error).strip()}): "
                              "apt-get install postgresql-15-pgsphere") from None

    def create_database(self, extensions: tuple[str, ...] = ()) -> tuple[str, str]:
        """A new empty database with pg_sphere (and ``extensions``): (name, DSN)."""
        name = f"vo_clip_test_{secrets.token_hex(6)}"
        self.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        for extension in extensions:
            self.execute(f'CREATE EXTENSION IF NOT EXISTS "{extension}"', name)
        return name, self.dsn(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name``, closing whatever connections a test left open on it."""
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @contextmanager
    def database(self, extensions: tuple[str, ...] = ()) -> Iterator[PostgresDatabase]:
        """A fresh database for the time of the ``with`` block."""
        name, dsn = self.create_database(extensions)
        try:
            yield PostgresDatabase(name=name, dsn=dsn, server=self)
        finally:
            self.drop_database(name)

    def drop_template(self) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')


@dataclass(frozen=True)
class PostgresDatabase:
    """One test's database: its name, a DSN to it, and the server for more."""

    name: str
    dsn: str
    server: PostgresServer

    @property
    def admin_dsn(self) -> str:
        return self.server.admin_dsn


@contextmanager
def throwaway_cluster() -> Iterator[str]:
    """Start a private cluster; yields its admin DSN; stops and deletes it afterwards."""
    bindir = find_bindir()
    root_user = os.geteuid() == 0
    if root_user and shutil.which("runuser") is None:
        raise MissingTool("runuser (util-linux), to run initdb as the postgres user")
    # short path: the socket's full name must stay under ~107 bytes
    top = Path(tempfile.mkdtemp(prefix="vo-clip-pg-"))
    try:
        if root_user:
            try:
                shutil.chown(top, user="postgres", group="postgres")
            except (LookupError, PermissionError) as error:
                raise MissingTool(f"the postgres user ({error}): {INSTALL_HINT}") from None
        data, log = top / "data", top / "server.log"
        done = _run_as_owner([str(bindir / "initdb"), "-D", str(data), "-A", "trust",
                              "-U", "vo", "-E", "UTF8", "--no-locale"], timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{done.stdout}\n{done.stderr}")
        port = _free_port()
        options = (f"-p {port} -k {top} -c listen_addresses='' -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100")
        done = _run_as_owner([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log),
                              "-o", options, "-w", "-t", str(_START_TIMEOUT_S), "start"],
                             timeout=_START_TIMEOUT_S + 30)
        if done.returncode != 0:
            text = log.read_text(errors="replace") if log.exists() else ""
            raise RuntimeError(f"pg_ctl start failed:\n{done.stdout}\n{done.stderr}\n{text}")
        try:
            yield f"host={top} port={port} user=vo dbname=postgres"
        finally:
            _run_as_owner([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                           "-w", "stop"], timeout=120)
    finally:
        shutil.rmtree(top, ignore_errors=True)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """The server of this test session (see the module's docstring).

    Raises
    ------
    MissingTool
        If psycopg, the PostgreSQL binaries or the pg_sphere extension are missing.
    """
    _psycopg()
    given = os.environ.get(DSN_VARIABLE, "").strip()
    with (_given(given) if given else throwaway_cluster()) as admin_dsn:
        server = PostgresServer(admin_dsn)
        server.prepare_template()
        try:
            yield server
        finally:
            server.drop_template()


@contextmanager
def _given(dsn: str) -> Iterator[str]:
    yield dsn
