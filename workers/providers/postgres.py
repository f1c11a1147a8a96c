"""The ``postgres`` provider: one short-lived login role per request, member of the roles the policy names.

Grant creates ``jit_<request id>`` (``r-4ut2m89f`` gives ``jit_r_4ut2m89f``) with a random password,
``VALID UNTIL`` the end of the grant (so PostgreSQL refuses the login by itself if jit is down) and
``IN ROLE`` the role's ``grant:`` roles; ``COMMENT ON ROLE`` says which request, requester and resource
it is for, which roles it was granted and when (the server's clock) it was made: revoke reads the last two.
The password goes to PostgreSQL only as a SCRAM-SHA-256 verifier computed here, so it is in no statement
text, server log or ``pg_stat_activity``; it is returned once in the details.
Revoke sets ``NOLOGIN``, terminates the role's sessions, takes its granted roles away, rolls back the
prepared transactions the login could have left (as itself or as a role it could become, since the role was
made), drops everything it owns with whatever was built on it (``DROP OWNED ... CASCADE`` in every database
where it owns or holds anything) and drops it. Nothing the grantee made is handed to anyone: an object kept
and owned by the admin role would run the grantee's code with the admin's rights (a ``SECURITY DEFINER``
function, a view, a trigger on someone else's table), and reassigning it to a role holding nothing still
leaves triggers and invoker functions to run as whoever touches them. Every admin connection resolves names
in ``pg_catalog`` only, so an operator or function a grantee plants in ``public`` never catches the admin's
own queries. The SQL of revoke's steps is in :mod:`workers.providers._postgres_revoke`; the admin connection (its
timeouts, search path and errors) and the questions about roles every operation asks are in
:mod:`workers.providers._postgres_admin`. What stays here (a little over 300 lines) is the provider's
operations, each reading top to bottom in the order it runs against the server.

:meth:`PostgresProvider.check_target` says what the granted roles let a grantee create or leave behind
(``jit policy validate --check-targets``); a grant whose login may create objects logs a warning and tells
the grantee that what the login owns goes at revoke (both ask :mod:`workers.providers._postgres_reach`).

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
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import psycopg
import structlog
from psycopg import sql

from bot.core.errors import PermanentProviderError
from bot.core.model import AccessRequest
from workers.providers._postgres_admin import (
    COMMENT_TAG,
    TIMEOUT,
    connect,
    dsn_password,
    grant_roles,
    mapped,
    parse_comment,
    require_roles,
    role_row,
)
from workers.providers._postgres_reach import reach_of, target_findings
from workers.providers._postgres_revoke import (
    could_become,
    created_at,
    databases_of,
    drop_owned,
    end_prepared,
    leave_roles,
    prepared_since,
    role_names,
    terminate,
)
from workers.providers.base import resolve_settings, target_expiry

log = structlog.get_logger(__name__)

#: Milliseconds ``pg_terminate_backend`` waits for each session to be gone before revoke goes on.
TERMINATE_WAIT_MS = 5000
#: Rounds of ``DROP OWNED`` before ``DROP ROLE``: one, and more only if something was created meanwhile (a
#: ``SECURITY DEFINER`` function of the role called by another login while revoke runs).
DISOWN_ROUNDS = 3
#: Told to the grantee, with the details, when the login may create objects.
DROPPED_NOTE = 'what this login creates (tables, functions, ...) is dropped when the access ends'
#: Every role jit creates starts with this (the `role_prefix` setting changes it).
DEFAULT_PREFIX = 'jit_'
_REQUEST_ID = re.compile(r'r_([a-z0-9]+)')


def new_password() -> str:
    """32 random bytes, URL-safe: goes into a connection URI as it is."""
    return secrets.token_urlsafe(32)


def _timestamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()


class PostgresProvider:
    """Grants by creating a login role that expires by itself; revokes by ending its sessions and dropping it."""

    name = 'postgres'
    secret_settings = frozenset({'dsn'})  # the only settings that may be env:NAME, never shown

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
        conf = resolve_settings(settings, secret=self.secret_settings)
        roles = grant_roles(params)
        role = self.role_name(request.id, conf)
        valid_until = _timestamp(target_expiry(request))
        password = self.password_factory()
        hidden = (password, dsn_password(conf))
        about: dict[str, Any] = {'request_id': request.id, 'resource': request.resource, 'role': request.role,
                                 'requester': request.requester.email, 'grant': roles}  # fmt: skip
        with self._connect(conf) as conn, mapped(f'create the role `{role}`', hidden), conn.transaction():
            require_roles(conn, roles)
            # Only a SCRAM verifier crosses the wire: the statement text may be logged by the server.
            verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b'scram-sha-256').decode()
            ident, granted = sql.Identifier(role), sql.SQL(', ').join(map(sql.Identifier, roles))
            row = role_row(conn, role)
            if row is None:
                conn.execute(sql.SQL('CREATE ROLE {} LOGIN PASSWORD {} VALID UNTIL {} IN ROLE {}').format(
                    ident, sql.Literal(verifier), sql.Literal(valid_until), granted))  # fmt: skip
                # The server's clock, as pg_prepared_xacts.prepared: nothing the role did can be older than this
                # transaction's start. Only CREATEROLE may change a role's comment, which the grantee has not.
                made = conn.execute('SELECT now()').fetchone()
                about['created'] = made[0].isoformat() if made else None
                event = 'postgres.role_created'
            else:  # a retried grant: a new password (the old one was never shown), the same end, the same roles
                if (created := created_at(parse_comment(row[1]))) is not None:
                    about['created'] = created.isoformat()  # when the role was first made, not now
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
            comment = COMMENT_TAG + json.dumps(about)
            conn.execute(sql.SQL('COMMENT ON ROLE {} IS {}').format(ident, sql.Literal(comment)))
            host, port, dbname = conn.info.host, conn.info.port, conn.info.dbname
            reach = reach_of(conn, [role])
        log.info(event, request_id=request.id, role=role, granted=roles, valid_until=valid_until)
        if reach.creates:
            # Not a refusal: the policy grants it. Whoever reads the worker's log learns what the login may plant.
            log.warning('postgres.grant_can_create', request_id=request.id, role=role, granted=roles,
                        schemas=reach.schemas, databases=reach.databases, lasting=reach.lasting)  # fmt: skip
        host = str(conf.get('connect_host') or host)
        port = int(conf.get('connect_port') or port)
        dbname = str(conf.get('database') or dbname)
        details: dict[str, Any] = {
            'user': role, 'password': password, 'host': host, 'port': port, 'database': dbname,
            'valid_until': valid_until,
            'connection_string': f'postgresql://{role}:{quote(password, safe="")}@{host}:{port}/{quote(dbname)}',
            'psql': f"psql 'host={host} port={port} dbname={dbname} user={role}'",
        }  # fmt: skip
        if reach.creates:
            details['note'] = DROPPED_NOTE
        return details

    def revoke(self, request: AccessRequest, *, settings: dict[str, Any], params: dict[str, Any]) -> None:
        conf = resolve_settings(settings, secret=self.secret_settings)
        role = self.role_name(request.id, conf)
        ident = sql.Identifier(role)
        with self._connect(conf) as conn, mapped(f'drop the role `{role}`', (dsn_password(conf),)):
            try:
                row = role_row(conn, role)
                if row is None:
                    log.info('postgres.role_already_gone', request_id=request.id, role=role)
                    return
                oid, about = row[0], parse_comment(row[1]) or {}
                # New logins first, then the sessions that are in: nothing can get in between.
                conn.execute(sql.SQL('ALTER ROLE {} NOLOGIN PASSWORD NULL').format(ident))
                ended = terminate(conn, oid, self.terminate_wait_ms)
                # Whom the login could have been when it prepared a transaction, read before its roles go; the
                # roles the comment (and the policy) name as well, for a retry that finds them gone already.
                could_be = could_become(conn, oid, [*role_names(about.get('grant')), *role_names(params.get('grant'))])
                # Then the granted roles: should a step below fail (and be retried), whatever the role left
                # behind already runs with none of their rights.
                leave_roles(conn, oid, ident)
                # DROP OWNED needs the role's privileges (PostgreSQL 16 no longer implies them), and rolling back
                # what it prepared as itself needs SET ROLE to it.
                conn.execute(sql.SQL('GRANT {} TO CURRENT_USER').format(ident))
                end_prepared(
                    lambda dbname: self._connect(conf, dbname=dbname),
                    conn,
                    request,
                    role,
                    could_be,
                    prepared_since(about, request),
                )
                others: list[str] = []
                for round_ in range(DISOWN_ROUNDS):
                    where = databases_of(conn, oid)
                    if round_ == 0 and conn.info.dbname not in where:
                        where.insert(0, conn.info.dbname)  # privileges on shared objects go from any database
                    if not where:
                        break
                    for dbname in where:
                        if dbname == conn.info.dbname:
                            dependents = drop_owned(conn, ident)
                        else:
                            others.append(dbname)
                            with self._connect(conf, dbname=dbname) as other:
                                dependents = drop_owned(other, ident)
                        if dependents:  # someone else's objects, built on the grantee's: they went too
                            log.warning('postgres.dropped_dependents', request_id=request.id, role=role,
                                        database=dbname, dropped=dependents)  # fmt: skip
                conn.execute(sql.SQL('DROP ROLE IF EXISTS {}').format(ident))
                ended += terminate(conn, oid, self.terminate_wait_ms)  # a session that was still authenticating
            except psycopg.errors.UndefinedObject:
                log.info('postgres.role_already_gone', request_id=request.id, role=role)  # a revoke running alongside
                return
        log.info('postgres.role_dropped', request_id=request.id, role=role, sessions_ended=ended,
                 other_databases=sorted(set(others)))  # fmt: skip

    def extend(self, request: AccessRequest, *, settings: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        """Move ``VALID UNTIL`` to ``request.expires_at``; the password stays, so there is nothing to show."""
        conf = resolve_settings(settings, secret=self.secret_settings)
        role = self.role_name(request.id, conf)
        valid_until = _timestamp(target_expiry(request))
        with self._connect(conf) as conn, mapped(f'extend the role `{role}`', (dsn_password(conf),)):
            try:
                conn.execute(sql.SQL('ALTER ROLE {} VALID UNTIL {}').format(
                    sql.Identifier(role), sql.Literal(valid_until)))  # fmt: skip
            except psycopg.errors.UndefinedObject:
                raise PermanentProviderError(f'the role `{role}` no longer exists in PostgreSQL') from None
        log.info('postgres.role_extended', request_id=request.id, role=role, valid_until=valid_until)
        return {}

    def list_live(self, resource: str, *, settings: dict[str, Any]) -> list[tuple[str, str]] | None:
        """``(request_id, role)`` of every jit role whose comment names ``resource``."""
        conf = resolve_settings(settings, secret=self.secret_settings)
        prefix = str(conf.get('role_prefix') or DEFAULT_PREFIX)
        with self._connect(conf) as conn, mapped('list its roles', (dsn_password(conf),)):
            rows = conn.execute(
                "SELECT rolname, shobj_description(oid, 'pg_authid') FROM pg_roles WHERE starts_with(rolname, %s)",
                [prefix],
            ).fetchall()
        live = []
        for name, comment in rows:
            about = parse_comment(comment)
            if about is None or about.get('resource') != resource:
                continue  # not jit's, or another resource's on the same server
            match = _REQUEST_ID.fullmatch(name[len(prefix) :])
            request_id = f'r-{match.group(1)}' if match else about.get('request_id')
            if isinstance(request_id, str):
                live.append((request_id, str(about.get('role') or '')))
        return live

    def last_used(self, request: AccessRequest, *, settings: dict[str, Any], params: dict[str, Any]) -> float | None:
        """Now, if the role has a session open; PostgreSQL keeps no last-login time, so otherwise None."""
        conf = resolve_settings(settings, secret=self.secret_settings)
        role = self.role_name(request.id, conf)
        with self._connect(conf) as conn, mapped('read pg_stat_activity', (dsn_password(conf),)):
            row = conn.execute('SELECT 1 FROM pg_stat_activity WHERE usename = %s LIMIT 1', [role]).fetchone()
        return time.time() if row else None

    def check_target(self, *, settings: dict[str, Any], params: dict[str, Any]) -> list[tuple[str, str]]:
        """What a login in the roles of ``params`` may create or leave behind, as ``(code, message)`` warnings.

        For ``jit policy validate --check-targets``: the policy linter is pure and cannot see the database,
        so the check runs here, against the target, in every database the admin role may connect to.
        ``target-create``: CREATE on a schema or a database. What the login itself owns goes at revoke, but
        during the grant it can plant functions and operators that run as whoever resolves them, and what it
        creates as a granted role (``SET ROLE``) outlives the revoke. ``target-lasting``: a role the login can
        become may create logins (CREATEROLE) or replication slots (REPLICATION), or act as the server's OS user:
        nothing a revoke can undo.
        ``target-prepared``: the server allows prepared transactions, which outlive a login's sessions; revoke
        rolls back those the login could have made, but until then any member of the role it prepared one as
        may commit it.
        """
        conf = resolve_settings(settings, secret=self.secret_settings)
        roles = grant_roles(params)
        hidden = (dsn_password(conf),)
        with self._connect(conf) as conn, mapped('check the granted roles', hidden):
            require_roles(conn, roles)
            reach = reach_of(conn, roles)
            setting = conn.execute("SELECT current_setting('max_prepared_transactions')::int").fetchone()
            prepared = int(setting[0]) if setting else 0
            others = [d for (d,) in conn.execute(
                'SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate AND datname <> %s'
                " AND has_database_privilege(datname, 'CONNECT') ORDER BY 1", [conn.info.dbname])]  # fmt: skip
            schemas = {conn.info.dbname: reach.schemas}
        for dbname in others:
            with self._connect(conf, dbname=dbname) as other, mapped(f'check the database `{dbname}`', hidden):
                schemas[dbname] = reach_of(other, roles).schemas
        return target_findings(roles, reach, schemas, prepared)

    # -- helpers ----------------------------------------------------------------------------------------------------

    @staticmethod
    def role_name(request_id: str, conf: dict[str, Any]) -> str:
        """``jit_r_4ut2m89f`` for ``r-4ut2m89f``: the request ID is in the name, for the reconciler."""
        return (str(conf.get('role_prefix') or DEFAULT_PREFIX) + request_id.replace('-', '_')).lower()

    def _connect(
        self, conf: dict[str, Any], *, dbname: str | None = None
    ) -> AbstractContextManager[psycopg.Connection[Any]]:
        """The admin connection, with this provider's timeout (:func:`workers.providers._postgres_admin.connect`)."""
        return connect(conf, timeout=self.timeout, dbname=dbname)
