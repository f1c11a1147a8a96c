"""The postgres provider against a real PostgreSQL with password authentication (see ``conftest_postgres``).

Every outcome is checked by logging in as the requester would: with the returned password, during the
grant and after it.
"""

from __future__ import annotations

import logging
import secrets
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from structlog.testing import capture_logs

from bot.core.errors import PermanentProviderError, ProviderError, TransientProviderError
from bot.core.model import AccessRequest, RequestStatus
from tests.core.policy_fixtures import ALEX
from tests.providers.conftest_postgres import (  # noqa: F401 (fixtures, used by name)
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
    with pg_env.su() as su:  # drift: someone took the membership away between the two tries
        su.execute(f'REVOKE analytics_read FROM {first["user"]}')
    second = provider.grant(request, settings=settings, params=READ)
    assert second['user'] == first['user']
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


def test_revoke_hands_what_the_role_created_to_the_admin_in_every_database(
    pg_env: PgEnv, provider: PostgresProvider, settings: dict[str, str], make_request: Callable[..., AccessRequest]
) -> None:
    """Tables the grantee created, here and in another database, do not block the drop: the admin owns them."""
    request = make_request()
    details = provider.grant(request, settings=settings, params={'grant': ['analytics_read', 'scratch_write']})
    table = f'notes_{request.id[2:]}'
    with login(pg_env, details) as conn:
        conn.execute(f'CREATE TABLE scratch.{table} (x int)')
    with login(pg_env, details, DB2) as conn:
        conn.execute(f'CREATE TABLE public.{table} (x int)')
    provider.revoke(request, settings=settings, params={})
    assert role_row(pg_env, str(details['user'])) is None
    for dbname, schema in ((DB, 'scratch'), (DB2, 'public')):
        with pg_env.su(dbname) as su:
            owner = su.execute('SELECT tableowner FROM pg_tables WHERE schemaname = %s AND tablename = %s',
                               [schema, table]).fetchone()  # fmt: skip
            su.execute(f'DROP TABLE {schema}.{table}')
        assert owner == (ADMIN,)


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
