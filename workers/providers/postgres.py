"""The ``postgres`` provider: one short-lived login role per request, member of the roles the policy names.

Grant creates ``jit_<request id>`` (``r-4ut2m89f`` gives ``jit_r_4ut2m89f``) with a random password,
``VALID UNTIL`` the end of the grant (so PostgreSQL refuses the login by itself if jit is down) and
``IN ROLE`` the role's ``grant:`` roles; ``COMMENT ON ROLE`` says which request, requester and resource
it is for. The password goes to PostgreSQL only as a SCRAM-SHA-256 verifier computed here, so it is
in no statement text, server log or ``pg_stat_activity``; it is returned once in the details.
Revoke sets ``NOLOGIN``, terminates the role's sessions, reassigns what it owns to the admin role
(``REASSIGN OWNED`` + ``DROP OWNED`` in every database where it owns or holds anything) and drops it.

Settings: ``dsn`` (the admin connection, usually ``env:PG_ADMIN_DSN``), optional ``connect_host``,
``connect_port`` and ``database`` for the details (default: what the admin connection uses), and
``role_prefix`` (default ``jit_``). Params: ``grant``, a role name or a list of them.
The admin role needs CREATEROLE, membership in ``pg_signal_backend`` and ADMIN OPTION on the granted
roles: see ``docs/providers/postgres.md``.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import psycopg
import structlog
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from bot.core.errors import PermanentProviderError, ProviderError, TransientProviderError
from bot.core.model import AccessRequest
from workers.providers.base import resolve_settings, target_expiry

log = structlog.get_logger(__name__)

#: Seconds to wait for the admin connection, and for any one statement (a lock held elsewhere ends in a retry).
TIMEOUT = 10.0
#: Milliseconds ``pg_terminate_backend`` waits for each session to be gone before revoke goes on.
TERMINATE_WAIT_MS = 5000
#: Every role jit creates starts with this (the `role_prefix` setting changes it).
DEFAULT_PREFIX = 'jit_'
#: The comment on every role jit creates starts with this; the rest is JSON (request, resource, role, requester).
COMMENT_TAG = 'jit '
_REQUEST_ID = re.compile(r'r_([a-z0-9]+)')
#: Server errors worth another try: the database is busy, not refusing.
#: ``DuplicateObject``: a grant running alongside created the role first; the next try updates it.
_TRANSIENT = (psycopg.OperationalError, psycopg.InterfaceError, OSError, psycopg.errors.DuplicateObject)


def new_password() -> str:
    """32 random bytes, URL-safe: goes into a connection URI as it is."""
    return secrets.token_urlsafe(32)


def _timestamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()


def _message(exc: BaseException) -> str:
    diag = getattr(exc, 'diag', None)
    primary = getattr(diag, 'message_primary', None)
    text = (primary or str(exc).strip() or type(exc).__name__).splitlines()[0].strip()
    detail = getattr(diag, 'message_detail', None)
    if isinstance(exc, psycopg.errors.DependentObjectsStillExist) and detail:
        text += f' ({"; ".join(detail.splitlines())})'  # which objects, in which database
    return text


@contextmanager
def _mapped(action: str, hidden: tuple[str, ...] = ()) -> Iterator[None]:
    """psycopg's errors as jit's: busy or unreachable is transient, a refusal is permanent."""

    def clean(text: str) -> str:
        for secret in hidden:
            if secret:
                text = text.replace(secret, '***')
        return text

    try:
        yield
    except ProviderError:
        raise
    except psycopg.errors.InsufficientPrivilege as exc:
        raise PermanentProviderError(f"jit's PostgreSQL admin role may not {action}: {clean(_message(exc))}") from exc
    except _TRANSIENT as exc:
        raise TransientProviderError(f'PostgreSQL could not {action} now: {clean(_message(exc))}') from exc
    except psycopg.Error as exc:
        raise PermanentProviderError(f'PostgreSQL refused to {action}: {clean(_message(exc))}') from exc


class PostgresProvider:
    """Grants by creating a login role that expires by itself; revokes by ending its sessions and dropping it."""

    name = 'postgres'

    def __init__(
        self, *, timeout: float = TIMEOUT, terminate_wait_ms: int = TERMINATE_WAIT_MS,
        password_factory: Callable[[], str] = new_password,
    ) -> None:  # fmt: skip
        """``password_factory``: where passwords come from (the tests wrap it to look for leaks)."""
        self.timeout = timeout
        self.terminate_wait_ms = terminate_wait_ms
        self.password_factory = password_factory

    # -- the interface ----------------------------------------------------------------------------------------------

    def grant(self, request: AccessRequest, *, settings: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        conf = resolve_settings(settings)
        roles = _grant_roles(params)
        role = self.role_name(request.id, conf)
        valid_until = _timestamp(target_expiry(request))
        password = self.password_factory()
        hidden = (password, _dsn_password(conf))
        comment = COMMENT_TAG + json.dumps({'request_id': request.id, 'resource': request.resource,
                                            'role': request.role, 'requester': request.requester.email})  # fmt: skip
        with self._connect(conf) as conn, _mapped(f'create the role `{role}`', hidden), conn.transaction():
            existing = {r for (r,) in conn.execute('SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)', [roles])}
            if missing := [r for r in roles if r not in existing]:
                raise PermanentProviderError(_missing(missing))
            # Only a SCRAM verifier crosses the wire: the statement text may be logged by the server.
            verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b'scram-sha-256').decode()
            ident, granted = sql.Identifier(role), sql.SQL(', ').join(map(sql.Identifier, roles))
            row = conn.execute('SELECT oid FROM pg_roles WHERE rolname = %s', [role]).fetchone()
            if row is None:
                conn.execute(sql.SQL('CREATE ROLE {} LOGIN PASSWORD {} VALID UNTIL {} IN ROLE {}').format(
                    ident, sql.Literal(verifier), sql.Literal(valid_until), granted))  # fmt: skip
                event = 'postgres.role_created'
            else:  # a retried grant: a new password (the old one was never shown), the same end, the same roles
                conn.execute(sql.SQL('ALTER ROLE {} LOGIN PASSWORD {} VALID UNTIL {}').format(
                    ident, sql.Literal(verifier), sql.Literal(valid_until)))  # fmt: skip
                current = {r for (r,) in conn.execute(
                    'SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid WHERE m.member = %s',
                    [row[0]])}  # fmt: skip
                if extra := sorted(current - set(roles)):
                    conn.execute(sql.SQL('REVOKE {} FROM {}').format(
                        sql.SQL(', ').join(map(sql.Identifier, extra)), ident))  # fmt: skip
                if [r for r in roles if r not in current]:
                    conn.execute(sql.SQL('GRANT {} TO {}').format(granted, ident))
                event = 'postgres.role_updated'
            conn.execute(sql.SQL('COMMENT ON ROLE {} IS {}').format(ident, sql.Literal(comment)))
            host, port, dbname = conn.info.host, conn.info.port, conn.info.dbname
        log.info(event, request_id=request.id, role=role, granted=roles, valid_until=valid_until)
        host = str(conf.get('connect_host') or host)
        port = int(conf.get('connect_port') or port)
        dbname = str(conf.get('database') or dbname)
        return {
            'user': role, 'password': password, 'host': host, 'port': port, 'database': dbname,
            'valid_until': valid_until,
            'connection_string': f'postgresql://{role}:{quote(password, safe="")}@{host}:{port}/{quote(dbname)}',
            'psql': f"psql 'host={host} port={port} dbname={dbname} user={role}'",
        }  # fmt: skip

    def revoke(self, request: AccessRequest, *, settings: dict[str, Any], params: dict[str, Any]) -> None:
        conf = resolve_settings(settings)
        role = self.role_name(request.id, conf)
        ident = sql.Identifier(role)
        with self._connect(conf) as conn, _mapped(f'drop the role `{role}`', (_dsn_password(conf),)):
            try:
                row = conn.execute('SELECT oid FROM pg_roles WHERE rolname = %s', [role]).fetchone()
                if row is None:
                    log.info('postgres.role_already_gone', request_id=request.id, role=role)
                    return
                oid = row[0]
                # New logins first, then the sessions that are in: nothing can get in between.
                conn.execute(sql.SQL('ALTER ROLE {} NOLOGIN PASSWORD NULL').format(ident))
                ended = self._terminate(conn, oid)
                # REASSIGN/DROP OWNED need the role's privileges (PostgreSQL 16 no longer implies them).
                conn.execute(sql.SQL('GRANT {} TO CURRENT_USER').format(ident))
                here = conn.info.dbname
                others = [d for (d,) in conn.execute(
                    'SELECT DISTINCT d.datname FROM pg_shdepend s JOIN pg_database d ON d.oid = s.dbid'
                    " WHERE s.refclassid = 'pg_authid'::regclass AND s.refobjid = %s AND d.datname <> %s",
                    [oid, here])]  # fmt: skip
                _disown(conn, ident)
                for dbname in others:
                    with self._connect(conf, dbname=dbname) as other:
                        _disown(other, ident)
                conn.execute(sql.SQL('DROP ROLE IF EXISTS {}').format(ident))
                ended += self._terminate(conn, oid)  # a session that was still authenticating
            except psycopg.errors.UndefinedObject:
                log.info('postgres.role_already_gone', request_id=request.id, role=role)  # a revoke running alongside
                return
        log.info('postgres.role_dropped', request_id=request.id, role=role, sessions_ended=ended,
                 other_databases=others)  # fmt: skip

    def extend(self, request: AccessRequest, *, settings: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        """Move ``VALID UNTIL`` to ``request.expires_at``; the password stays, so there is nothing to show."""
        conf = resolve_settings(settings)
        role = self.role_name(request.id, conf)
        valid_until = _timestamp(target_expiry(request))
        with self._connect(conf) as conn, _mapped(f'extend the role `{role}`', (_dsn_password(conf),)):
            try:
                conn.execute(sql.SQL('ALTER ROLE {} VALID UNTIL {}').format(
                    sql.Identifier(role), sql.Literal(valid_until)))  # fmt: skip
            except psycopg.errors.UndefinedObject:
                raise PermanentProviderError(f'the role `{role}` no longer exists in PostgreSQL') from None
        log.info('postgres.role_extended', request_id=request.id, role=role, valid_until=valid_until)
        return {}

    def list_live(self, resource: str, *, settings: dict[str, Any]) -> list[tuple[str, str]] | None:
        """``(request_id, role)`` of every jit role whose comment names ``resource``."""
        conf = resolve_settings(settings)
        prefix = str(conf.get('role_prefix') or DEFAULT_PREFIX)
        with self._connect(conf) as conn, _mapped('list its roles', (_dsn_password(conf),)):
            rows = conn.execute(
                "SELECT rolname, shobj_description(oid, 'pg_authid') FROM pg_roles WHERE starts_with(rolname, %s)",
                [prefix],
            ).fetchall()
        live = []
        for name, comment in rows:
            about = _parse_comment(comment)
            if about is None or about.get('resource') != resource:
                continue  # not jit's, or another resource's on the same server
            match = _REQUEST_ID.fullmatch(name[len(prefix) :])
            request_id = f'r-{match.group(1)}' if match else about.get('request_id')
            if isinstance(request_id, str):
                live.append((request_id, str(about.get('role') or '')))
        return live

    def last_used(self, request: AccessRequest, *, settings: dict[str, Any], params: dict[str, Any]) -> float | None:
        """Now, if the role has a session open; PostgreSQL keeps no last-login time, so otherwise None."""
        conf = resolve_settings(settings)
        role = self.role_name(request.id, conf)
        with self._connect(conf) as conn, _mapped('read pg_stat_activity', (_dsn_password(conf),)):
            row = conn.execute('SELECT 1 FROM pg_stat_activity WHERE usename = %s LIMIT 1', [role]).fetchone()
        return time.time() if row else None

    # -- helpers ----------------------------------------------------------------------------------------------------

    @staticmethod
    def role_name(request_id: str, conf: dict[str, Any]) -> str:
        """``jit_r_4ut2m89f`` for ``r-4ut2m89f``: the request ID is in the name, for the reconciler."""
        return (str(conf.get('role_prefix') or DEFAULT_PREFIX) + request_id.replace('-', '_')).lower()

    @contextmanager
    def _connect(self, conf: dict[str, Any], *, dbname: str | None = None) -> Iterator[psycopg.Connection[Any]]:
        dsn = conf.get('dsn')
        if not dsn or not isinstance(dsn, str):
            raise PermanentProviderError('the postgres resource needs a `dsn` setting (usually `env:PG_ADMIN_DSN`)')
        hidden = (_dsn_password(conf),)
        extra: dict[str, Any] = {'dbname': dbname} if dbname else {}
        with _mapped('be reached', hidden):
            conn = psycopg.connect(dsn, autocommit=True, connect_timeout=max(2, round(self.timeout)),
                                   application_name='jit', **extra)  # fmt: skip
        try:
            with _mapped('be set up', hidden):
                ms = sql.Literal(int(self.timeout * 1000))
                conn.execute(sql.SQL('SET statement_timeout = {}').format(ms))
                conn.execute(sql.SQL('SET lock_timeout = {}').format(ms))
            yield conn
        finally:
            conn.close()

    def _terminate(self, conn: psycopg.Connection[Any], oid: int) -> int:
        # By usesysid, not usename: a session of a role dropped meanwhile has no name any more.
        rows = conn.execute(
            'SELECT pg_terminate_backend(pid, %s) FROM pg_stat_activity'
            ' WHERE usesysid = %s AND pid <> pg_backend_pid()',
            [self.terminate_wait_ms, oid],
        ).fetchall()
        return len(rows)


def _disown(conn: psycopg.Connection[Any], ident: sql.Identifier) -> None:
    """What the role created goes to the admin role; its privileges go away (in ``conn``'s database only)."""
    conn.execute(sql.SQL('REASSIGN OWNED BY {} TO CURRENT_USER').format(ident))
    conn.execute(sql.SQL('DROP OWNED BY {}').format(ident))


def _grant_roles(params: dict[str, Any]) -> list[str]:
    value = params.get('grant')
    roles = [value] if isinstance(value, str) else value
    if not roles or not isinstance(roles, list) or not all(isinstance(r, str) and r for r in roles):
        raise PermanentProviderError('a postgres role needs `grant:` (a PostgreSQL role name or a list of them)')
    return list(dict.fromkeys(roles))


def _missing(roles: list[str]) -> str:
    names = ', '.join(f'`{r}`' for r in roles)
    return f'the role {names} does not exist in PostgreSQL' if len(roles) == 1 else \
        f'the roles {names} do not exist in PostgreSQL'  # fmt: skip


def _dsn_password(conf: dict[str, Any]) -> str:
    """The admin password inside the DSN, to keep it out of error messages."""
    try:
        return str(conninfo_to_dict(str(conf.get('dsn') or '')).get('password') or '')
    except psycopg.Error:
        raise PermanentProviderError('the `dsn` setting is not a valid PostgreSQL connection string') from None


def _parse_comment(comment: str | None) -> dict[str, Any] | None:
    if not comment or not comment.startswith(COMMENT_TAG):
        return None
    try:
        about = json.loads(comment[len(COMMENT_TAG) :])
    except ValueError:
        return None
    return about if isinstance(about, dict) else None
