"""The postgres provider's admin connection: how it is opened, how its errors become jit's, and the questions
about roles that grant, revoke and the target check all ask on it.

Every connection resolves names in ``pg_catalog`` only and has a statement and lock timeout; every error is
jit's transient or permanent kind, with the admin's password (and a grant's new one) never in its message.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from bot.core.errors import PermanentProviderError, ProviderError, TransientProviderError

#: Seconds to wait for the admin connection, and for any one statement (a lock held elsewhere ends in a retry).
TIMEOUT = 10.0
#: The comment on every role jit creates starts with this; the rest is JSON (request, resource, role, requester,
#: the granted roles and when the server made the role).
COMMENT_TAG = 'jit '
#: Server errors worth another try: the database is busy, not refusing.
#: ``DuplicateObject``: a grant running alongside created the role first; the next try updates it.
_TRANSIENT = (psycopg.OperationalError, psycopg.InterfaceError, OSError, psycopg.errors.DuplicateObject)


def message(exc: BaseException) -> str:
    """The first line of what PostgreSQL said; for objects still depending on others, which ones, and where."""
    diag = getattr(exc, 'diag', None)
    primary = getattr(diag, 'message_primary', None)
    text = (primary or str(exc).strip() or type(exc).__name__).splitlines()[0].strip()
    detail = getattr(diag, 'message_detail', None)
    if isinstance(exc, psycopg.errors.DependentObjectsStillExist) and detail:
        text += f' ({"; ".join(detail.splitlines())})'  # which objects, in which database
    return text


@contextmanager
def mapped(action: str, hidden: tuple[str, ...] = ()) -> Iterator[None]:
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
        raise PermanentProviderError(f"jit's PostgreSQL admin role may not {action}: {clean(message(exc))}") from exc
    except _TRANSIENT as exc:
        raise TransientProviderError(f'PostgreSQL could not {action} now: {clean(message(exc))}') from exc
    except psycopg.Error as exc:
        raise PermanentProviderError(f'PostgreSQL refused to {action}: {clean(message(exc))}') from exc


@contextmanager
def connect(conf: dict[str, Any], *, timeout: float, dbname: str | None = None) -> Iterator[psycopg.Connection[Any]]:
    """The admin connection of the resolved settings ``conf`` (to ``dbname`` instead of the DSN's, if given)."""
    dsn = conf.get('dsn')
    if not dsn or not isinstance(dsn, str):
        raise PermanentProviderError('the postgres resource needs a `dsn` setting (usually `env:PG_ADMIN_DSN`)')
    hidden = (dsn_password(conf),)
    extra: dict[str, Any] = {'dbname': dbname} if dbname else {}
    with mapped('be reached', hidden):
        conn = psycopg.connect(dsn, autocommit=True, connect_timeout=max(2, round(timeout)),
                               application_name='jit', **extra)  # fmt: skip
    try:
        with mapped('be set up', hidden):
            ms = sql.Literal(int(timeout * 1000))
            conn.execute(sql.SQL('SET statement_timeout = {}').format(ms))
            conn.execute(sql.SQL('SET lock_timeout = {}').format(ms))
            # Names resolve in pg_catalog only: an `=` for (oid, smallint) that a grantee created in a schema
            # of the default path (`public`, which everyone may write on PostgreSQL <= 14) would match the
            # admin's parameters better than the built-in one and run the grantee's code as the admin.
            conn.execute('SET search_path = pg_catalog, pg_temp')
        yield conn
    finally:
        conn.close()


def dsn_password(conf: dict[str, Any]) -> str:
    """The admin password inside the DSN, to keep it out of error messages."""
    try:
        return str(conninfo_to_dict(str(conf.get('dsn') or '')).get('password') or '')
    except psycopg.Error:
        raise PermanentProviderError('the `dsn` setting is not a valid PostgreSQL connection string') from None


def grant_roles(params: dict[str, Any]) -> list[str]:
    """The roles a policy's ``grant:`` names, each once; a permanent error when it names none, or not as text."""
    value = params.get('grant')
    roles = [value] if isinstance(value, str) else value
    if not roles or not isinstance(roles, list) or not all(isinstance(r, str) and r for r in roles):
        raise PermanentProviderError('a postgres role needs `grant:` (a PostgreSQL role name or a list of them)')
    return list(dict.fromkeys(roles))


def require_roles(conn: psycopg.Connection[Any], roles: list[str]) -> None:
    """A permanent error naming every one of ``roles`` that does not exist in PostgreSQL."""
    existing = {r for (r,) in conn.execute('SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)', [roles])}
    if missing := [r for r in roles if r not in existing]:
        names = ', '.join(f'`{r}`' for r in missing)
        raise PermanentProviderError(f'the role {names} does not exist in PostgreSQL' if len(missing) == 1 else
                                     f'the roles {names} do not exist in PostgreSQL')  # fmt: skip


def role_row(conn: psycopg.Connection[Any], role: str) -> tuple[Any, ...] | None:
    """``(oid, comment)`` of the jit role ``role``, or None when it does not exist."""
    return conn.execute("SELECT oid, shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = %s",
                        [role]).fetchone()  # fmt: skip


def parse_comment(comment: str | None) -> dict[str, Any] | None:
    """What a jit role's comment records (see ``COMMENT_TAG``); None for a role that is not jit's."""
    if not comment or not comment.startswith(COMMENT_TAG):
        return None
    try:
        about = json.loads(comment[len(COMMENT_TAG) :])
    except ValueError:
        return None
    return about if isinstance(about, dict) else None
