"""A PostgreSQL that checks passwords, for the postgres provider's tests and the providers' end-to-end test
(``tests/providers/test_postgres.py``, ``tests/e2e/test_providers_e2e.py``: import the fixtures explicitly).

Fixtures:
    pg_server (session): a superuser on a server with ``scram-sha-256`` authentication. Its own cluster
        (``initdb`` + ``pg_ctl`` from ``/usr/lib/postgresql/<version>/bin``, as the ``postgres`` OS user when
        run as root) on a free port of 127.0.0.1, with ``log_statement = all`` and prepared transactions on;
        stopped and deleted at the end.
        With ``JIT_TEST_POSTGRES_DSN`` set (a superuser DSN of a throwaway server) that server is used instead.
    pg_env (session): on that server, the databases ``jit_provider_test`` and ``jit_provider_test2``, the
        roles ``analytics_read``, ``billing_read`` and ``scratch_write`` with what they may read and write, and
        the least-privilege admin role ``jitadmin`` created with the SQL of ``docs/providers/postgres.md``.
        ``scratch_write`` may create: in the schema ``scratch`` and (as PostgreSQL <= 14 lets everyone) in
        ``public`` of both databases, and schemas in ``jit_provider_test2``; it may insert into and put
        triggers on ``scratch.shared``, a table the superuser owns.
        Everything is dropped at the end (and first, so a crashed run does not get in the way).

The local server of the machine uses trust authentication, which would make "login refused" meaningless:
hence a cluster of our own.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

DOC = Path(__file__).resolve().parents[2] / 'docs' / 'providers' / 'postgres.md'
DB, DB2 = 'jit_provider_test', 'jit_provider_test2'
ADMIN = 'jitadmin'
FIXTURE_ROLES = ('analytics_read', 'billing_read', 'scratch_write')
#: Resources of the tests' requests all start with this; leftover jit roles of such resources are dropped.
RESOURCE_PREFIX = 'pgtest-'


@dataclass(frozen=True)
class PgServer:
    """Where the server is, and its superuser. ``log`` is the server log (None for an outside server)."""

    host: str
    port: int
    user: str
    password: str
    log: Path | None

    def dsn(self, dbname: str, *, user: str | None = None, password: str | None = None) -> str:
        return make_conninfo(host=self.host, port=self.port, dbname=dbname, user=user or self.user,
                             password=password if user else self.password, connect_timeout=5)  # fmt: skip

    def connect(self, dbname: str, *, user: str | None = None, password: str | None = None) -> psycopg.Connection:
        return psycopg.connect(self.dsn(dbname, user=user, password=password), autocommit=True)


@dataclass(frozen=True)
class PgEnv:
    server: PgServer
    admin_password: str

    @property
    def admin_dsn(self) -> str:
        return self.server.dsn(DB, user=ADMIN, password=self.admin_password)

    def su(self, dbname: str = DB) -> psycopg.Connection:
        return self.server.connect(dbname)


def _bindir() -> Path | None:
    found = sorted(Path('/usr/lib/postgresql').glob('*/bin/initdb'), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return int(s.getsockname()[1])


def _own_cluster(tmp: Path, bindir: Path) -> tuple[PgServer, list[str]]:
    # initdb refuses to run as root: then the postgres OS user runs the server.
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(tmp, 'postgres', 'postgres')
        as_user = ['runuser', '-u', 'postgres', '--']
    password = secrets.token_urlsafe(16)
    pwfile = tmp / 'pwfile'
    pwfile.write_text(password + '\n')
    pwfile.chmod(0o600)
    if as_user:
        shutil.chown(pwfile, 'postgres', 'postgres')
    data, log = tmp / 'data', tmp / 'server.log'
    subprocess.run([*as_user, str(bindir / 'initdb'), '-D', str(data), '-U', 'postgres', f'--pwfile={pwfile}',
                    '--auth=scram-sha-256', '-E', 'UTF8', '--no-sync'], check=True, capture_output=True)  # fmt: skip
    (data / 'pg_hba.conf').write_text('local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n')
    port = _free_port()
    opts = (
        f'-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c log_statement=all -c fsync=off'
        ' -c max_prepared_transactions=4'
    )
    ctl = [*as_user, str(bindir / 'pg_ctl'), '-D', str(data), '-l', str(log)]
    subprocess.run([*ctl, '-w', '-t', '30', '-o', opts, 'start'], check=True, capture_output=True)
    return PgServer('127.0.0.1', port, 'postgres', password, log), [*ctl, '-m', 'immediate', 'stop']


@pytest.fixture(name='pg_server', scope='session')
def _pg_server() -> Iterator[PgServer]:
    outside = os.environ.get('JIT_TEST_POSTGRES_DSN')
    if outside:
        conf = conninfo_to_dict(outside)
        yield PgServer(str(conf.get('host') or '127.0.0.1'), int(conf.get('port') or 5432),
                       str(conf.get('user') or 'postgres'), str(conf.get('password') or ''), None)  # fmt: skip
        return
    bindir = _bindir()
    if bindir is None:
        reason = 'no PostgreSQL server binaries (apt-get install postgresql) and no JIT_TEST_POSTGRES_DSN'
        if os.environ.get('CI'):  # .ci/run installs them: there the provider's tests must run, never skip
            pytest.fail(f'CI must provide PostgreSQL: {reason}', pytrace=False)
        pytest.skip(reason)
    tmp = Path(tempfile.mkdtemp(prefix='jit-pg-'))
    try:
        server, stop = _own_cluster(tmp, bindir)
        try:
            yield server
        finally:
            subprocess.run(stop, check=False, capture_output=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def admin_sql_from_doc() -> list[str]:
    """The statements of the doc's first ``sql`` block: what an operator runs to create jit's admin role."""
    block = re.search(r'```sql\n(.*?)```', DOC.read_text(), re.S)
    assert block, f'{DOC} has no ```sql block'
    text = '\n'.join(line for line in block.group(1).splitlines() if not line.strip().startswith('--'))
    return [s.strip() for s in text.split(';') if s.strip()]


def _drop_all(su: psycopg.Connection) -> None:
    for db in (DB, DB2):
        su.execute(sql.SQL('DROP DATABASE IF EXISTS {} WITH (FORCE)').format(sql.Identifier(db)))
    leftovers = [r for (r,) in su.execute(
        "SELECT rolname FROM pg_roles WHERE shobj_description(oid, 'pg_authid') LIKE %s",
        [f'jit {{"request_id": %"resource": "{RESOURCE_PREFIX}%'])]  # fmt: skip
    for role in [*leftovers, ADMIN, *FIXTURE_ROLES]:
        su.execute(sql.SQL('DROP ROLE IF EXISTS {}').format(sql.Identifier(role)))


@pytest.fixture(name='pg_env', scope='session')
def _pg_env(pg_server: PgServer) -> Iterator[PgEnv]:
    admin_password = secrets.token_urlsafe(16)
    with pg_server.connect('postgres') as su:
        _drop_all(su)
        for role in FIXTURE_ROLES:
            su.execute(sql.SQL('CREATE ROLE {} NOLOGIN').format(sql.Identifier(role)))
        for db in (DB, DB2):
            su.execute(sql.SQL('CREATE DATABASE {}').format(sql.Identifier(db)))
        for statement in admin_sql_from_doc():
            su.execute(statement.replace("'choose-a-password'", str(sql.Literal(admin_password).as_string(su))))
            if 'WITH ADMIN OPTION' in statement:  # the doc's "once for every role": ours are two
                su.execute(statement.replace('analytics_read', 'scratch_write'))
    with pg_server.connect(DB) as su:
        su.execute("""
            CREATE SCHEMA analytics;
            CREATE TABLE analytics.events (id int, what text);
            INSERT INTO analytics.events VALUES (1, 'signup');
            GRANT USAGE ON SCHEMA analytics TO analytics_read;
            GRANT SELECT ON analytics.events TO analytics_read;
            CREATE SCHEMA billing;
            CREATE TABLE billing.invoices (id int, amount int);
            GRANT USAGE ON SCHEMA billing TO PUBLIC;
            GRANT SELECT ON billing.invoices TO billing_read;
            CREATE SCHEMA scratch;
            GRANT USAGE, CREATE ON SCHEMA scratch TO scratch_write;
            CREATE TABLE scratch.shared (x int);
            GRANT INSERT, TRIGGER ON scratch.shared TO scratch_write;
            GRANT CREATE ON SCHEMA public TO scratch_write;
        """)
    with pg_server.connect(DB2) as su:
        su.execute('GRANT CREATE ON SCHEMA public TO scratch_write')
        su.execute(sql.SQL('GRANT CREATE ON DATABASE {} TO scratch_write').format(sql.Identifier(DB2)))
    try:
        yield PgEnv(pg_server, admin_password)
    finally:
        with pg_server.connect('postgres') as su:
            _drop_all(su)
