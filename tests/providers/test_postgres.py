"""The postgres provider against a real PostgreSQL with password authentication (the server and its fixtures:
``tests/support/postgres_server.py``).

Every outcome is checked by logging in as the requester would: with the returned password, during the
grant and after it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import secrets
import textwrap
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from structlog.testing import capture_logs

from bot.core.errors import PermanentProviderError, ProviderError, TransientProviderError
from bot.core.model import AccessRequest, RequestStatus
from bot.policy_tools.validate import add_arguments, run
from tests.core.policy_fixtures import ALEX
from tests.support.postgres_server import (  # noqa: F401 (fixtures, used by name)
    ADMIN,
    DB,
    DB2,
    RESOURCE_PREFIX,
    PgEnv,
    _pg_env,
    _pg_server,
)
from workers.providers.postgres import PostgresProvider, new_password

pytestmark = pytest.mark.postgres

RESOURCE = f'{RESOURCE_PREFIX}analytics'
READ = {'grant': 'analytics_read'}


@pytest.fixture(name='settings')
def _settings(pg_env: PgEnv, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The resource's settings as a policy writes them: the admin DSN comes from the environment."""
    monkeypatch.setenv('PG_ADMIN_DSN', pg_env.admin_dsn)
    return {'dsn': 'env:PG_ADMIN_DSN'}


@pytest.fixture(name='passwords')
def _passwords() -> list[str]:
    return []


@pytest.fixture(name='provider')
def _provider(passwords: list[str]) -> PostgresProvider:
    """The real provider; its password source is the real one, remembered so the tests can look for leaks."""

    def recorded() -> str:
        passwords.append(new_password())
        return passwords[-1]

    return PostgresProvider(password_factory=recorded, terminate_wait_ms=3000)


@pytest.fixture(name='make_request')
def _make_request(provider: PostgresProvider, settings: dict[str, str]) -> Iterator[Callable[..., AccessRequest]]:
    """Builds requests with fresh IDs; revokes every one at the end (a no-op for those already revoked)."""
    made: list[AccessRequest] = []

    def make(*, resource: str = RESOURCE, role: str = 'read', expires_at: float | None = None) -> AccessRequest:
        request = AccessRequest(
            id='r-' + secrets.token_hex(4), requester=ALEX, resource=resource, role=role, duration=600,
            reason='INC-1 look at signups', rule='prod-read', policy_version='v1', created_at=time.time(),
            status=RequestStatus.GRANTING, expires_at=expires_at,
        )  # fmt: skip
        made.append(request)
        return request

    yield make
    for request in made:
        provider.revoke(request, settings=settings, params={})


def chain_text(exc: BaseException | None) -> str:
    """What an exception says, with every exception it was raised from (messages, not source lines)."""
    out = []
    while exc is not None:
        out.append(''.join(traceback.format_exception_only(exc)) + repr(exc.args))
        exc = exc.__cause__ or exc.__context__
    return '\n'.join(out)


def login(pg_env: PgEnv, details: dict[str, object], dbname: str = DB) -> psycopg.Connection:
    return pg_env.server.connect(dbname, user=str(details['user']), password=str(details['password']))


def role_row(pg_env: PgEnv, role: str) -> tuple[object, ...] | None:
    with pg_env.su() as su:
        return su.execute(
            "SELECT rolcanlogin, rolvaliduntil, shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = %s",
            [role],
        ).fetchone()


def test_admin_role_is_the_least_privileged_one_of_the_doc(pg_env: PgEnv) -> None:
    """The fixture's admin role (the doc's SQL): no superuser, CREATEROLE, pg_signal_backend, ADMIN on the roles."""
    with pg_env.su() as su:
        attrs = su.execute(
            'SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls FROM pg_roles'
            ' WHERE rolname = %s',
            [ADMIN],
        ).fetchone()
        held: dict[str, bool] = dict(su.execute(
            'SELECT r.rolname, m.admin_option FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid'
            ' JOIN pg_roles a ON a.oid = m.member WHERE a.rolname = %s', [ADMIN]).fetchall())  # fmt: skip
    assert attrs == (False, True, False, False, False)
    assert held == {'pg_signal_backend': False, 'analytics_read': True, 'scratch_write': True}


def test_grant_gives_a_login_with_the_granted_privileges_only_and_revoke_refuses_it(
    pg_env: PgEnv, provider: PostgresProvider, settings: dict[str, str], make_request: Callable[..., AccessRequest]
) -> None:
    """During the grant the password logs in and reads what analytics_read may read, nothing else; after, no login."""
    request = make_request()
    details = provider.grant(request, settings=settings, params=READ)
    role = 'jit_' + request.id.replace('-', '_')
    assert details['user'] == role
    assert (details['host'], details['port'], details['database']) == (pg_env.server.host, pg_env.server.port, DB)
    with login(pg_env, details) as conn:
        assert conn.execute('SELECT what FROM analytics.events').fetchall() == [('signup',)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute('SELECT * FROM billing.invoices')
    with psycopg.connect(str(details['connection_string']), connect_timeout=5) as conn:
        assert conn.execute('SELECT current_user').fetchone() == (role,)
    row = role_row(pg_env, role)
    assert row is not None
    assert row[0] is True
    assert all(part in str(row[2]) for part in (request.id, 'alex@example.com', RESOURCE))

    provider.revoke(request, settings=settings, params=READ)
    assert role_row(pg_env, role) is None
    with pytest.raises(psycopg.OperationalError):
        login(pg_env, details)


def test_revoke_cuts_a_session_that_is_open(
    pg_env: PgEnv, provider: PostgresProvider, settings: dict[str, str], make_request: Callable[..., AccessRequest]
) -> None:
    """A session opened during the grant does not outlive the revoke: its next query fails."""
    request = make_request()
    details = provider.grant(request, settings=settings, params=READ)
    conn = login(pg_env, details)
    try:
        assert conn.execute('SELECT count(*) FROM analytics.events').fetchone() == (1,)
        provider.revoke(request, settings=settings, params=READ)
        with pytest.raises(psycopg.OperationalError):
            conn.execute('SELECT count(*) FROM analytics.events')
    finally:
        conn.close()


@pytest.mark.slow
def test_login_is_refused_after_valid_until_without_jit(
    pg_env: PgEnv, provider: PostgresProvider, settings: dict[str, str], make_request: Callable[..., AccessRequest]
) -> None:
    """The expiry is PostgreSQL's own: past VALID UNTIL the password no longer logs in, with no revoke at all."""
    ends = time.time() + 3
    request = make_request(expires_at=ends)
    details = provider.grant(request, settings=settings, params=READ)
    row = role_row(pg_env, str(details['user']))
    assert row is not None
    assert isinstance(row[1], datetime)
    assert abs(row[1].timestamp() - ends) < 0.01
    login(pg_env, details).close()
    time.sleep(max(0.0, ends - time.time()) + 1)
    with pytest.raises(psycopg.OperationalError):
        login(pg_env, details)


def test_grant_twice_updates_the_one_role_and_the_second_password_works(
    pg_env: PgEnv, provider: PostgresProvider, settings: dict[str, str], make_request: Callable[..., AccessRequest]
) -> None:
    """A retried grant keeps one role, restores its membership, and only the new password (the one shown) works."""
    request = make_request()
    first = provider.grant(request, settings=settings, params=READ)
    made = role_row(pg_env, str(first['user']))
    with pg_env.su() as su:  # drift: someone took the membership away between the two tries
        su.execute(f'REVOKE analytics_read FROM {first["user"]}')
    second = provider.grant(request, settings=settings, params=READ)
    assert second['user'] == first['user']
    again = role_row(pg_env, str(second['user']))
    assert made is not None and again is not None
    about = [json.loads(str(row[2]).removeprefix('jit ')) for row in (made, again)]
    assert about[0]['grant'] == about[1]['grant'] == ['analytics_read']
    assert about[0]['created'] == about[1]['created']  # when the role was first made: revoke's window starts there
    assert second['password'] != first['password']
    with pytest.raises(psycopg.OperationalError):
        login(pg_env, first)
    with login(pg_env, second) as conn:
        assert conn.execute('SELECT count(*) FROM analytics.events').fetchone() == (1,)


def test_revoke_twice_and_revoke_of_nothing_succeed(
    pg_env: PgEnv, provider: PostgresProvider, settings: dict[str, str], make_request: Callable[..., AccessRequest]
) -> None:
    """Already gone is success: a second revoke, and a revoke of a request never granted, raise nothing."""
    request = make_request()
    details = provider.grant(request, settings=settings, params=READ)
    provider.revoke(request, settings=settings, params=READ)
    provider.revoke(request, settings=settings, params=READ)
    provider.revoke(make_request(), settings=settings, params=READ)
    assert role_row(pg_env, str(details['user'])) is None


def test_extend_moves_valid_until(
    pg_env: PgEnv, provider: PostgresProvider, settings: dict[str, str], make_request: Callable[..., AccessRequest]
) -> None:
    """Extend pushes the new end down to VALID UNTIL, keeps the password, and has nothing new to show."""
    request = make_request(expires_at=time.time() + 60)
    details = provider.grant(request, settings=settings, params=READ)
    later = time.time() + 7200
    extended = AccessRequest(**{**request.to_dict(), 'requester': ALEX, 'status': RequestStatus.ACTIVE,
                                'expires_at': later})  # fmt: skip
    assert provider.extend(extended, settings=settings, params=READ) == {}
    row = role_row(pg_env, str(details['user']))
    assert row is not None
    assert isinstance(row[1], datetime)
    assert abs(row[1].timestamp() - later) < 0.01
    login(pg_env, details).close()
    provider.revoke(request, settings=settings, params=READ)
    with pytest.raises(PermanentProviderError, match='no longer exists'):
        provider.extend(extended, settings=settings, params=READ)


def test_list_live_returns_live_grants_of_the_resource_only(
    pg_env: PgEnv, provider: PostgresProvider, settings: dict[str, str], make_request: Callable[..., AccessRequest]
) -> None:
    """list_live: (request ID, jit role) of this resource's live grants; not revoked ones, nor other resources'."""
    kept, gone = make_request(), make_request(role='write')
    other = make_request(resource=f'{RESOURCE_PREFIX}other')
    for request in (kept, gone, other):
        provider.grant(request, settings=settings, params=READ)
    provider.revoke(gone, settings=settings, params=READ)
    with pg_env.su() as su:
        su.execute('CREATE ROLE jit_not_ours')
    try:
        live = provider.list_live(RESOURCE, settings=settings)
    finally:
        with pg_env.su() as su:
            su.execute('DROP ROLE jit_not_ours')
    assert live is not None
    assert (kept.id, 'read') in live
    ids = {request_id for request_id, _ in live}
    assert gone.id not in ids
    assert other.id not in ids
    assert (other.id, 'read') in (provider.list_live(other.resource, settings=settings) or [])


def test_last_used_is_now_while_a_session_is_open(
    pg_env: PgEnv, provider: PostgresProvider, settings: dict[str, str], make_request: Callable[..., AccessRequest]
) -> None:
    """last_used: unknown without a session, now with one open, unknown again once it is closed."""
    request = make_request()
    details = provider.grant(request, settings=settings, params=READ)
    assert provider.last_used(request, settings=settings, params=READ) is None
    with login(pg_env, details):
        used = provider.last_used(request, settings=settings, params=READ)
        assert used is not None
        assert abs(used - time.time()) < 5
    deadline = time.time() + 5  # the backend leaves pg_stat_activity just after the client hangs up
    while provider.last_used(request, settings=settings, params=READ) is not None and time.time() < deadline:
        time.sleep(0.05)
    assert provider.last_used(request, settings=settings, params=READ) is None


WRITE = {'grant': ['analytics_read', 'scratch_write']}


def owned_by(pg_env: PgEnv, role: str) -> list[tuple[str, str, int]]:
    """(database, catalog, OID) of everything ``role`` owns, in every database of the cluster (pg_shdepend)."""
    with pg_env.su() as su:
        return [(str(db), str(cat), int(oid)) for db, cat, oid in su.execute(
            "SELECT coalesce(d.datname, '<shared>'), s.classid::regclass::text, s.objid FROM pg_shdepend s"
            ' LEFT JOIN pg_database d ON d.oid = s.dbid JOIN pg_roles r ON r.oid = s.refobjid'
            " WHERE s.refclassid = 'pg_authid'::regclass AND s.deptype = 'o' AND r.rolname = %s ORDER BY 1, 2, 3",
            [role])]  # fmt: skip


def role_names(pg_env: PgEnv) -> set[str]:
    with pg_env.su() as su:
        return {r for (r,) in su.execute('SELECT rolname FROM pg_roles')}


def drop_roles(pg_env: PgEnv, *roles: str) -> None:
    with pg_env.su() as su:
        for role in roles:
            su.execute(sql.SQL('DROP ROLE IF EXISTS {}').format(sql.Identifier(role)))


def runs_programs(pg_env: PgEnv, role: str, password: str) -> bool:
    """Whether ``role`` logs in with ``password`` and runs a program on the server (``COPY ... TO PROGRAM``)."""
    try:
        with pg_env.server.connect(DB, user=role, password=password) as conn:
            conn.execute("COPY (SELECT 1) TO PROGRAM 'true'")
    except psycopg.Error:
        return False
    return True


def test_a_security_definer_function_a_grantee_leaves_is_no_backdoor_for_the_next_grantee(
    pg_env: PgEnv, provider: PostgresProvider, settings: dict[str, str], make_request: Callable[..., AccessRequest]
) -> None:
    """Grant A creates a SECURITY DEFINER function; revoke A; grant B calls it to make a login of its own in
    pg_execute_server_program and the granted roles. Revoke A leaves nothing to call (the admin owns nothing),
    the login is never made, and once B is revoked no role is left behind."""
    backdoor, password = f'evil_{secrets.token_hex(3)}', secrets.token_urlsafe(12)
    before = role_names(pg_env)
    first, second = make_request(), make_request()
    try:
        with login(pg_env, provider.grant(first, settings=settings, params=WRITE)) as conn:
            conn.execute("""
                CREATE FUNCTION scratch.helper(who text, pw text) RETURNS text
                LANGUAGE plpgsql SECURITY DEFINER AS $$
                BEGIN
                    EXECUTE format('CREATE ROLE %I LOGIN PASSWORD %L'
                                   ' IN ROLE pg_execute_server_program, analytics_read, scratch_write', who, pw);
                    RETURN current_user;
                END $$""")
        provider.revoke(first, settings=settings, params=WRITE)
        left_to_admin = owned_by(pg_env, ADMIN)
        ran_as: object = None
        details = provider.grant(second, settings=settings, params=WRITE)
        # UndefinedFunction: revoke A dropped it, there is nothing to call.
        with login(pg_env, details) as conn, contextlib.suppress(psycopg.errors.UndefinedFunction):
            ran_as = conn.execute('SELECT scratch.helper(%s, %s)', [backdoor, password]).fetchone()
        provider.revoke(second, settings=settings, params=WRITE)
        escalated = runs_programs(pg_env, backdoor, password)
        assert (left_to_admin, ran_as, escalated) == ([], None, False)
        assert role_names(pg_env) == before
        assert owned_by(pg_env, ADMIN) == []
    finally:
        drop_roles(pg_env, backdoor)
        with pg_env.su() as su:
            su.execute('DROP FUNCTION IF EXISTS scratch.helper(text, text)')


def test_a_trigger_a_grantee_puts_on_someone_elses_table_does_not_outlive_the_revoke(
    pg_env: PgEnv, provider: PostgresProvider, settings: dict[str, str], make_request: Callable[..., AccessRequest]
) -> None:
    """A trigger on the superuser's table (TRIGGER privilege) runs the grantee's function as whoever inserts:
    after revoke neither the trigger nor its function is left, so a superuser's insert creates no superuser."""
    backdoor = f'evil_{secrets.token_hex(3)}'
    request = make_request()
    try:
        with login(pg_env, provider.grant(request, settings=settings, params=WRITE)) as conn:
            conn.execute(f"""
                CREATE FUNCTION scratch.trap() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF current_setting('is_superuser') = 'on' THEN
                        CREATE ROLE {backdoor} LOGIN SUPERUSER PASSWORD 'x';
                    END IF;
                    RETURN NULL;
                END $$;
                CREATE TRIGGER trap AFTER INSERT ON scratch.shared FOR EACH ROW EXECUTE FUNCTION scratch.trap();
            """)
        provider.revoke(request, settings=settings, params=WRITE)
        with pg_env.su() as su:
            su.execute('INSERT INTO scratch.shared VALUES (1)')
            triggers = su.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = 'scratch.shared'::regclass").fetchall()
        assert (triggers, backdoor in role_names(pg_env)) == ([], False)
        assert owned_by(pg_env, ADMIN) == []
    finally:
        drop_roles(pg_env, backdoor)
        with pg_env.su() as su:
            su.execute(
                'DROP TRIGGER IF EXISTS trap ON scratch.shared; DROP FUNCTION IF EXISTS scratch.trap();'
                ' TRUNCATE scratch.shared'
            )


def test_an_operator_a_grantee_plants_in_public_never_runs_as_the_admin(
    pg_env: PgEnv, provider: PostgresProvider, settings: dict[str, str], make_request: Callable[..., AccessRequest]
) -> None:
    """Where the grantee may create in ``public`` (every role may, on PostgreSQL <= 14), an ``=`` for the types of
    the admin's query parameters would catch the admin's own queries: jit's connection resolves pg_catalog only."""
    backdoor = f'evil_{secrets.token_hex(3)}'
    request = make_request()
    body = f"""
        BEGIN
            IF current_user = '{ADMIN}' AND NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{backdoor}') THEN
                CREATE ROLE {backdoor} LOGIN PASSWORD 'x' IN ROLE pg_execute_server_program;
            END IF;
            RETURN a = b::bigint::oid;
        END"""
    try:
        with login(pg_env, provider.grant(request, settings=settings, params=WRITE)) as conn:
            for kind in ('smallint', 'integer', 'bigint'):
                conn.execute(
                    f'CREATE FUNCTION public.trojan(a oid, b {kind}) RETURNS boolean LANGUAGE plpgsql AS $${body}$$'
                )
                conn.execute(f'CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = {kind}, FUNCTION = public.trojan)')
        provider.extend(request, settings=settings, params=WRITE)
        provider.grant(request, settings=settings, params=WRITE)  # a retried grant reads the memberships
        provider.last_used(request, settings=settings, params=WRITE)
        provider.revoke(request, settings=settings, params=WRITE)
        assert backdoor not in role_names(pg_env)
        assert owned_by(pg_env, ADMIN) == []
    finally:
        drop_roles(pg_env, backdoor)
        with pg_env.su() as su:
            for kind in ('smallint', 'integer', 'bigint'):
                su.execute(
                    f'DROP OPERATOR IF EXISTS public.= (oid, {kind});'
                    f' DROP FUNCTION IF EXISTS public.trojan(oid, {kind})'
                )


def test_revoke_drops_what_the_role_created_in_every_database(
    pg_env: PgEnv, provider: PostgresProvider, settings: dict[str, str], make_request: Callable[..., AccessRequest]
) -> None:
    """Whatever the login owns (here and in another database) is dropped, with what was built on it: nothing is
    handed to the admin, nothing blocks the drop, nothing is left to run or read with anyone's rights."""
    request = make_request()
    details = provider.grant(request, settings=settings, params=WRITE)
    role = str(details['user'])
    with login(pg_env, details) as conn:
        conn.execute("""
            CREATE TABLE scratch.notes (x int);
            CREATE VIEW scratch.leak WITH (security_barrier) AS SELECT * FROM analytics.events;
            GRANT SELECT ON scratch.leak TO PUBLIC;
            CREATE SEQUENCE scratch.counter;
            CREATE TYPE scratch.mood AS ENUM ('ok');
            CREATE DOMAIN scratch.positive AS int CHECK (VALUE > 0);
            CREATE FUNCTION scratch.f() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1';
            CREATE PROCEDURE scratch.p() LANGUAGE sql SECURITY DEFINER AS 'SELECT 1';
            CREATE AGGREGATE scratch.agg(int) (SFUNC = int4pl, STYPE = int);
            ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO PUBLIC;
            SELECT lo_create(0);
        """)
    with login(pg_env, details, DB2) as conn:
        conn.execute("""
            CREATE SCHEMA mine;
            CREATE TABLE mine.t (x int);
            CREATE TABLE public.notes (x int);
            CREATE FUNCTION public.g() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1';
        """)
    with pg_env.su(DB2) as su:
        if su.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'hstore'").fetchone():
            with login(pg_env, details, DB2) as conn:  # a trusted extension: its members belong to the superuser
                conn.execute('CREATE EXTENSION hstore SCHEMA mine')
    with pg_env.su() as su:  # someone else builds on the grantee's table: it goes with it, and the log says so
        su.execute('CREATE VIEW scratch.on_top AS SELECT * FROM scratch.notes')
    assert len(owned_by(pg_env, role)) >= 12
    with capture_logs() as logs:
        provider.revoke(request, settings=settings, params={})
    assert [(e['database'], e['dropped']) for e in logs if e['event'] == 'postgres.dropped_dependents'] == [
        (DB, ['drop cascades to view scratch.on_top'])]  # fmt: skip
    assert role_row(pg_env, role) is None
    assert owned_by(pg_env, ADMIN) == []
    with pg_env.su() as su:
        left = su.execute(
            "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'scratch'::regnamespace AND c.relname <> 'shared'"
            " UNION ALL SELECT proname FROM pg_proc WHERE pronamespace = 'scratch'::regnamespace"
            " UNION ALL SELECT typname FROM pg_type WHERE typnamespace = 'scratch'::regnamespace"
            " AND typname NOT IN ('shared', '_shared')"
            ' UNION ALL SELECT oid::text FROM pg_largeobject_metadata'
            ' UNION ALL SELECT defaclrole::regrole::text FROM pg_default_acl'
        ).fetchall()
    with pg_env.su(DB2) as su:
        left += su.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname = 'mine' UNION ALL SELECT extname FROM pg_extension"
            " WHERE extname <> 'plpgsql'"
            " UNION ALL SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
            " UNION ALL SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace"
        ).fetchall()
    assert left == []


def test_a_revoke_that_cannot_finish_still_leaves_nothing_usable(
    pg_env: PgEnv, provider: PostgresProvider, settings: dict[str, str], make_request: Callable[..., AccessRequest]
) -> None:
    """The admin may not reach a database where the grantee left a function: revoke fails (and is retried), but
    the role has already lost its login and every granted role, so what it left runs with no granted rights."""
    request = make_request()
    details = provider.grant(request, settings=settings, params=WRITE)
    role = str(details['user'])
    with login(pg_env, details, DB2) as conn:
        conn.execute("CREATE FUNCTION public.h() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1'")
    with pg_env.su() as su:
        su.execute(f'REVOKE CONNECT ON DATABASE {DB2} FROM PUBLIC')
    try:
        with pytest.raises(ProviderError):
            provider.revoke(request, settings=settings, params={})
        with pg_env.su() as su:
            memberships = su.execute(
                'SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid'
                ' JOIN pg_roles g ON g.oid = m.member WHERE g.rolname = %s', [role]).fetchall()  # fmt: skip
        row = role_row(pg_env, role)
        assert row is not None
        assert (row[0], memberships) == (False, [])
        with pytest.raises(psycopg.OperationalError):
            login(pg_env, details)
    finally:
        with pg_env.su() as su:
            su.execute(f'GRANT CONNECT ON DATABASE {DB2} TO PUBLIC')
    provider.revoke(request, settings=settings, params={})
    assert role_row(pg_env, role) is None
    assert owned_by(pg_env, role) == []


def test_unknown_grant_role_is_permanent_with_a_clear_message(
    pg_env: PgEnv, provider: PostgresProvider, settings: dict[str, str], make_request: Callable[..., AccessRequest]
) -> None:
    """A role the policy names that PostgreSQL does not know: the user reads which, and nothing is created."""
    request = make_request()
    with pytest.raises(PermanentProviderError) as caught:
        provider.grant(request, settings=settings, params={'grant': ['analytics_read', 'analytics_reed']})
    assert caught.value.user_message == 'the role `analytics_reed` does not exist in PostgreSQL'
    with pytest.raises(PermanentProviderError, match='needs `grant:`'):
        provider.grant(request, settings=settings, params={})
    assert role_row(pg_env, 'jit_' + request.id.replace('-', '_')) is None


def test_a_role_the_admin_may_not_grant_is_permanent(
    pg_env: PgEnv, provider: PostgresProvider, settings: dict[str, str], make_request: Callable[..., AccessRequest]
) -> None:
    """Permission denied (a superuser role, beyond any CREATEROLE): permanent, said plainly, nothing left behind."""
    request = make_request()
    with pytest.raises(PermanentProviderError, match="admin role may not create the role") as caught:
        provider.grant(request, settings=settings, params={'grant': pg_env.server.user})
    assert 'superuser' in caught.value.user_message
    assert role_row(pg_env, 'jit_' + request.id.replace('-', '_')) is None


def test_unreachable_server_is_transient_and_a_bad_dsn_permanent(
    provider: PostgresProvider, make_request: Callable[..., AccessRequest]
) -> None:
    """Connection refused is worth retrying; neither message shows the admin password of the DSN."""
    request = make_request()
    with pytest.raises(TransientProviderError) as caught:
        provider.grant(request, settings={'dsn': 'postgresql://jitadmin:s3cret-admin@127.0.0.1:1/x'}, params=READ)
    assert 'Connection refused' in caught.value.user_message
    with pytest.raises(PermanentProviderError, match='not a valid PostgreSQL connection string') as bad:
        provider.revoke(request, settings={'dsn': "host=x password='s3cret-admin"}, params=READ)
    for exc in (caught.value, bad.value):
        assert 's3cret-admin' not in chain_text(exc)


def test_password_is_in_no_log_record_exception_or_server_log(
    pg_env: PgEnv, provider: PostgresProvider, settings: dict[str, str], passwords: list[str],
    make_request: Callable[..., AccessRequest], caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """Every password made (shown or not) stays out of structlog, stdlib logging, exceptions and the server's log."""
    caplog.set_level(logging.DEBUG)
    failures: list[ProviderError] = []
    with capture_logs() as logs:
        request = make_request()
        provider.grant(request, settings=settings, params=READ)
        provider.grant(request, settings=settings, params=READ)
        provider.extend(request, settings=settings, params=READ)
        provider.last_used(request, settings=settings, params=READ)
        provider.list_live(RESOURCE, settings=settings)
        provider.revoke(request, settings=settings, params=READ)
        for params in ({'grant': pg_env.server.user}, {'grant': 'no_such_role'}):  # failures after a password is made
            try:
                provider.grant(make_request(), settings=settings, params=params)
            except ProviderError as exc:
                failures.append(exc)
    assert len(passwords) == 4
    assert len(failures) == 2
    events = {entry['event'] for entry in logs}
    assert {'postgres.role_created', 'postgres.role_updated', 'postgres.role_dropped'} <= events
    texts = [repr(logs), caplog.text, *(chain_text(exc) for exc in failures)]
    if pg_env.server.log is not None:  # our own cluster logs every statement: the password is not in one
        server_log = pg_env.server.log.read_text(errors='replace')
        assert f'CREATE ROLE "jit_{request.id.replace("-", "_")}"' in server_log
        texts.append(server_log)
    for password in passwords:
        assert all(password not in text for text in texts)


def test_valid_until_is_utc(
    pg_env: PgEnv, provider: PostgresProvider, settings: dict[str, str], make_request: Callable[..., AccessRequest]
) -> None:
    """The details say when the login stops working, in UTC, the same instant PostgreSQL holds."""
    ends = time.time() + 600
    details = provider.grant(make_request(expires_at=ends), settings=settings, params=READ)
    assert datetime.fromisoformat(str(details['valid_until'])) == datetime.fromtimestamp(ends, tz=UTC)


def skip_without_prepared_transactions(pg_env: PgEnv) -> None:
    with pg_env.su() as su:
        if su.execute('SHOW max_prepared_transactions').fetchone() == ('0',):
            pytest.skip('the server allows no prepared transactions')


def prepared(pg_env: PgEnv, gid: str) -> list[tuple[object, ...]]:
    """(owner, database) of the prepared transaction ``gid``, if it is still there."""
    with pg_env.su() as su:
        return su.execute('SELECT owner, database FROM pg_prepared_xacts WHERE gid = %s', [gid]).fetchall()


def end_prepared(pg_env: PgEnv, *gids: str) -> None:
    """Clean-up: roll back whichever of ``gids`` are still there, each in its own database."""
    for gid in gids:
        for _, dbname in prepared(pg_env, gid):
            with pg_env.su(str(dbname)) as su, contextlib.suppress(psycopg.errors.UndefinedObject):
                su.execute(sql.SQL('ROLLBACK PREPARED {}').format(sql.Literal(gid)))


def lock_free(pg_env: PgEnv, table: str) -> bool:
    """Whether the superuser's DDL on ``table`` gets its lock within 2 s (nothing left holds one)."""
    with pg_env.su() as su:
        su.execute("SET lock_timeout = '2s'")
        try:
            with su.transaction():
                su.execute(f'LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE')
        except psycopg.errors.LockNotAvailable:
            return False
    return True


UPPER = 'jit_test_upper'


@pytest.mark.parametrize(
    ('params', 'as_role'),
    [(READ, 'analytics_read'), (WRITE, 'scratch_write'), (READ, UPPER)],
    ids=['read grant, as the granted role', 'write grant, as the granted role', 'as a role the granted role is in'],
)
def test_a_prepared_transaction_made_as_a_role_the_login_could_become_does_not_outlive_the_revoke(
    pg_env: PgEnv, provider: PostgresProvider, settings: dict[str, str], make_request: Callable[..., AccessRequest],
    params: dict[str, object], as_role: str,
) -> None:  # fmt: skip
    """`BEGIN; SET LOCAL ROLE <granted role>; ...; PREPARE TRANSACTION` leaves a transaction owned by the granted
    role, not the login. Revoke rolls it back: no lock is left on the production table, the write grant's
    insert never lands, no member of the role can commit it later, and the role is dropped."""
    skip_without_prepared_transactions(pg_env)
    with pg_env.su() as su:
        su.execute(f'CREATE ROLE {UPPER} NOLOGIN; GRANT {UPPER} TO analytics_read')
        su.execute(f'GRANT USAGE ON SCHEMA analytics TO {UPPER}; GRANT SELECT ON analytics.events TO {UPPER}')
    request = make_request()
    details = provider.grant(request, settings=settings, params=params)
    role, gid = str(details['user']), f'jit-test-{request.id}'
    try:
        with login(pg_env, details) as conn:
            conn.execute('BEGIN')
            conn.execute(f'SET LOCAL ROLE {as_role}')
            if as_role == 'scratch_write':
                conn.execute('INSERT INTO scratch.shared VALUES (4242)')
            else:
                conn.execute('SELECT * FROM analytics.events')  # an ACCESS SHARE lock on a production table
            conn.execute(f"PREPARE TRANSACTION '{gid}'")
        assert prepared(pg_env, gid) == [(as_role, DB)]
        with capture_logs() as logs:
            provider.revoke(request, settings=settings, params={})
        assert role_row(pg_env, role) is None
        assert prepared(pg_env, gid) == []
        assert lock_free(pg_env, 'analytics.events')
        assert lock_free(pg_env, 'scratch.shared')
        with pg_env.su() as su:
            assert su.execute('SELECT count(*) FROM scratch.shared WHERE x = 4242').fetchone() == (0,)
        rolled_back = [entry for entry in logs if entry['event'] == 'postgres.prepared_rolled_back']
        assert [(t['gid'], t['owner'], t['database']) for e in rolled_back for t in e['transactions']] == [
            (gid, as_role, DB)]  # fmt: skip
    finally:
        end_prepared(pg_env, gid)
        with pg_env.su() as su:
            su.execute(f'DROP OWNED BY {UPPER}; DROP ROLE {UPPER}')


def test_a_prepared_transaction_of_the_grantee_as_itself_is_rolled_back(
    pg_env: PgEnv, provider: PostgresProvider, settings: dict[str, str], make_request: Callable[..., AccessRequest]
) -> None:
    """A transaction the login prepared as itself: the admin makes itself a member of the role (as for DROP
    OWNED), rolls it back as the role, and drops the role; the insert never lands."""
    skip_without_prepared_transactions(pg_env)
    request = make_request()
    details = provider.grant(request, settings=settings, params=WRITE)
    role, gid = str(details['user']), f'jit-test-{request.id}'
    try:
        with login(pg_env, details) as conn:
            conn.execute('BEGIN')
            conn.execute('INSERT INTO scratch.shared VALUES (2)')
            conn.execute(f"PREPARE TRANSACTION '{gid}'")
        assert prepared(pg_env, gid) == [(role, DB)]
        provider.revoke(request, settings=settings, params={})
        assert role_row(pg_env, role) is None
        assert prepared(pg_env, gid) == []
        with pg_env.su() as su:
            assert su.execute('SELECT count(*) FROM scratch.shared WHERE x = 2').fetchone() == (0,)
        assert owned_by(pg_env, ADMIN) == []
    finally:
        end_prepared(pg_env, gid)


def test_a_prepared_transaction_jit_cannot_end_fails_the_revoke_by_name_and_the_role_holds_nothing_meanwhile(
    pg_env: PgEnv, provider: PostgresProvider, settings: dict[str, str], make_request: Callable[..., AccessRequest]
) -> None:
    """Prepared as a granted role in a database the admin may no longer connect to: revoke fails, saying how
    many and which (the name quoted, as the grantee wrote it), after the role lost its login and granted roles.
    The retry finds the roles gone already, still knows whom the login could have been, and finishes."""
    skip_without_prepared_transactions(pg_env)
    request = make_request()
    details = provider.grant(request, settings=settings, params=WRITE)
    role, gid = str(details['user']), f'jit-test `{request.id}`\n*bold*'
    try:
        with login(pg_env, details, DB2) as conn:
            conn.execute('BEGIN')
            conn.execute('SET LOCAL ROLE analytics_read')
            conn.execute(sql.SQL('PREPARE TRANSACTION {}').format(sql.Literal(gid)))
        with pg_env.su() as su:
            su.execute(f'REVOKE CONNECT ON DATABASE {DB2} FROM PUBLIC')
        try:
            with pytest.raises(PermanentProviderError) as caught:
                provider.revoke(request, settings=settings, params={})
            message = caught.value.user_message
            assert message.startswith(f'1 prepared transaction(s) the role `{role}` could have made')
            assert json.dumps(gid) in message
            assert '\n' not in message
            assert 'a superuser must ROLLBACK PREPARED them' in message
            row = role_row(pg_env, role)
            assert row is not None
            assert row[0] is False
            with pg_env.su() as su:
                assert su.execute('SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.member'
                                  ' WHERE g.rolname = %s', [role]).fetchall() == []  # fmt: skip
            assert prepared(pg_env, gid) == [('analytics_read', DB2)]
        finally:
            with pg_env.su() as su:
                su.execute(f'GRANT CONNECT ON DATABASE {DB2} TO PUBLIC')
        provider.revoke(request, settings=settings, params={})
        assert role_row(pg_env, role) is None
        assert prepared(pg_env, gid) == []
    finally:
        end_prepared(pg_env, gid)


def test_prepared_transactions_the_grantee_could_not_have_made_are_left_alone(
    pg_env: PgEnv, provider: PostgresProvider, settings: dict[str, str], make_request: Callable[..., AccessRequest]
) -> None:
    """Someone else's prepared transactions stay: one as a role the login cannot become (billing_read), made
    during the grant, and one as a granted role made before the grant began."""
    skip_without_prepared_transactions(pg_env)
    request = make_request()
    before, other = f'jit-test-before-{request.id}', f'jit-test-other-{request.id}'

    def prepare(gid: str, as_role: str) -> None:
        with pg_env.su() as su:
            su.execute('BEGIN')
            su.execute(f'SET LOCAL ROLE {as_role}')
            su.execute('SELECT 1')
            su.execute(sql.SQL('PREPARE TRANSACTION {}').format(sql.Literal(gid)))

    try:
        prepare(before, 'analytics_read')
        details = provider.grant(request, settings=settings, params=WRITE)
        prepare(other, 'billing_read')
        provider.revoke(request, settings=settings, params={})
        assert role_row(pg_env, str(details['user'])) is None
        assert (prepared(pg_env, before), prepared(pg_env, other)) == ([('analytics_read', DB)], [('billing_read', DB)])
    finally:
        end_prepared(pg_env, before, other)


def not_prepared(found: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """check_target's findings but the server-wide one about prepared transactions (its own test below)."""
    return [(code, message) for code, message in found if code != 'target-prepared']


def test_check_target_warns_when_the_server_allows_prepared_transactions(
    pg_env: PgEnv, provider: PostgresProvider, settings: dict[str, str]
) -> None:
    """max_prepared_transactions > 0: every role gets one warning saying so (what a grantee prepares outlives its
    sessions until the revoke); none where the server allows none."""
    with pg_env.su() as su:
        allowed = int(su.execute('SHOW max_prepared_transactions').fetchone()[0])
    found = [f for f in provider.check_target(settings=settings, params=READ) if f[0] == 'target-prepared']
    if not allowed:
        assert found == []
        return
    assert len(found) == 1
    message = found[0][1]
    assert message.startswith(
        f'the server allows prepared transactions (max_prepared_transactions = {allowed}): a '
        'login in `analytics_read` can PREPARE TRANSACTION as itself or as a role it can become'
    )
    assert 'set it to 0 unless' in message


def test_check_target_warns_about_roles_that_may_create_and_grant_says_so(
    pg_env: PgEnv, provider: PostgresProvider, settings: dict[str, str], make_request: Callable[..., AccessRequest]
) -> None:
    """check_target names every schema and database where the granted roles may create, in every database, and
    roles they can become whose doings last; a read-only role gets nothing. A grant that may create logs a
    warning and tells the grantee that what the login creates is dropped; a read-only grant does neither."""
    assert not_prepared(provider.check_target(settings=settings, params=READ)) == []
    found = not_prepared(provider.check_target(settings=settings, params={'grant': 'scratch_write'}))
    assert [code for code, _ in found] == ['target-create'] * 3
    assert '`public`, `scratch` of database `jit_provider_test`:' in found[0][1]
    assert '`public` of database `jit_provider_test2`:' in found[1][1]
    assert 'may create schemas in database(s) `jit_provider_test2`' in found[2][1]
    with pg_env.su() as su:
        su.execute('CREATE ROLE jit_test_maker NOLOGIN CREATEROLE; GRANT jit_test_maker TO billing_read')
    try:
        lasting = not_prepared(provider.check_target(settings=settings, params={'grant': ['billing_read']}))
    finally:
        with pg_env.su() as su:
            su.execute('DROP ROLE jit_test_maker')
    assert lasting == [('target-lasting', '`billing_read` can become `jit_test_maker`, which has CREATEROLE '
                        '(creates logins): what that leaves outlives the revoke')]  # fmt: skip
    with pytest.raises(PermanentProviderError, match='`no_such_role` does not exist'):
        provider.check_target(settings=settings, params={'grant': 'no_such_role'})

    with capture_logs() as logs:
        writer = provider.grant(make_request(), settings=settings, params=WRITE)
        reader = provider.grant(make_request(), settings=settings, params=READ)
    warned = [entry for entry in logs if entry['event'] == 'postgres.grant_can_create']
    assert len(warned) == 1
    assert warned[0]['role'] == writer['user']
    assert (warned[0]['schemas'], warned[0]['databases']) == (['public', 'scratch'], ['jit_provider_test2'])
    assert 'dropped when the access ends' in str(writer['note'])
    assert 'note' not in reader


def test_check_target_warns_about_a_role_that_can_become_one_with_replication(
    pg_env: PgEnv, provider: PostgresProvider, settings: dict[str, str], make_request: Callable[..., AccessRequest]
) -> None:
    """`SET ROLE` to a REPLICATION role creates a replication slot: it has no owner, keeps WAL until dropped and
    outlives the revoke (shown here), so check_target says so and the grant logs it."""
    slot = f'jit_test_slot_{secrets.token_hex(3)}'
    with pg_env.su() as su:
        su.execute('CREATE ROLE jit_test_repl NOLOGIN REPLICATION; GRANT jit_test_repl TO billing_read')
    try:
        found = not_prepared(provider.check_target(settings=settings, params={'grant': 'billing_read'}))
        assert found == [('target-lasting', '`billing_read` can become `jit_test_repl`, which has REPLICATION '
                          '(creates replication slots, which keep WAL until dropped): what that leaves outlives '
                          'the revoke')]  # fmt: skip
        request = make_request()
        with capture_logs() as logs:
            details = provider.grant(request, settings=settings, params={'grant': 'billing_read'})
        assert [e['lasting'] for e in logs if e['event'] == 'postgres.grant_can_create'] == [
            ['`jit_test_repl`, which has REPLICATION (creates replication slots, which keep WAL until dropped)']
        ]
        with login(pg_env, details) as conn:
            conn.execute('SET ROLE jit_test_repl')
            conn.execute('SELECT pg_create_physical_replication_slot(%s, true)', [slot])
        provider.revoke(request, settings=settings, params={})
        with pg_env.su() as su:
            assert su.execute('SELECT 1 FROM pg_replication_slots WHERE slot_name = %s', [slot]).fetchall() == [(1,)]
    finally:
        with pg_env.su() as su:
            if su.execute('SELECT 1 FROM pg_replication_slots WHERE slot_name = %s', [slot]).fetchone():
                su.execute('SELECT pg_drop_replication_slot(%s)', [slot])
            su.execute('DROP ROLE jit_test_repl')


def test_policy_validate_check_targets_prints_the_warnings(
    pg_env: PgEnv, settings: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """`jit policy validate --check-targets`: one warning line per finding, at the resource; --strict fails; a
    target it cannot check is a warning too, without a traceback."""
    (tmp_path / 'p.yaml').write_text(textwrap.dedent(f"""\
        groups:
          devops: [alex@example.com]
          leads: [sam@example.com]
        resources:
          {RESOURCE}:
            provider: postgres
            settings: {{dsn: env:PG_ADMIN_DSN}}
            roles:
              read: {{grant: analytics_read}}
              write: {{grant: [analytics_read, scratch_write]}}
        requests:
          - name: db
            resources: [{RESOURCE}]
            requesters: [group:devops]
            approvers: [group:leads]
            approvals: 1
            timeout: 1h
        """))  # fmt: skip

    def validate(*argv: str) -> int:
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        return run(parser.parse_args([*argv, str(tmp_path)]))

    assert validate() == 0
    assert 'warning[target' not in capsys.readouterr().out
    assert validate('--check-targets', '--strict') == 1
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if 'warning[target-create]' in line]
    assert len(lines) == 3
    assert all(line.startswith(f'{tmp_path}/p.yaml:5:') and f'resource `{RESOURCE}` role `write`' in line
               for line in lines)  # fmt: skip
    assert [line for line in out.splitlines() if 'role `read`' in line and 'target-prepared' not in line] == []
    with pg_env.su() as su:
        allowed = su.execute('SHOW max_prepared_transactions').fetchone() != ('0',)
    assert out.count('warning[target-prepared]') == (2 if allowed else 0)
    assert pg_env.admin_password not in out
    monkeypatch.delenv('PG_ADMIN_DSN')
    assert validate('--check-targets') == 0
    out = capsys.readouterr().out
    assert out.count('warning[target-unchecked]') == 2
    assert 'could not check the target: setting `dsn` needs the environment variable PG_ADMIN_DSN' in out
