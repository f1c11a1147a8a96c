"""The SQL of the postgres provider's revoke: what the jit role holds, could become, owns, and where.

:meth:`workers.providers.postgres.PostgresProvider.revoke` runs these in order on the admin connection; each
is one question or one step, on a connection it is given (rolling back prepared transactions opens its own, in
their databases, through the ``connect`` it is given), so that the provider reads as the order of the steps
and why, and each step's SQL reads on its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import psycopg
import structlog
from psycopg import sql

from bot.core.errors import PermanentProviderError, ProviderError
from bot.core.model import AccessRequest
from workers.providers._postgres_admin import message

# The provider's logger: what revoke logs reads as the provider's, whichever of its modules ran the step.
log = structlog.get_logger('workers.providers.postgres')

#: Seconds a request's own times (the worker's clock) are moved back when a role's comment does not say when the
#: server made it (a role of an older jit): the window of prepared transactions that could be the grantee's.
CLOCK_SKEW = 300.0


def terminate(conn: psycopg.Connection[Any], oid: int, wait_ms: int) -> int:
    """End every session of the role (waiting up to ``wait_ms`` for each to be gone); how many there were."""
    # By usesysid, not usename: a session of a role dropped meanwhile has no name any more.
    rows = conn.execute(
        'SELECT pg_terminate_backend(pid, %s) FROM pg_stat_activity WHERE usesysid = %s AND pid <> pg_backend_pid()',
        [wait_ms, oid],
    ).fetchall()
    return len(rows)


def could_become(conn: psycopg.Connection[Any], oid: int, recorded: list[str]) -> list[str]:
    """Every role the jit role is in, directly or not, or could be through ``recorded`` roles; itself too.

    ``MEMBER``: every role a ``SET ROLE`` (or an inherited membership) can reach, so every possible owner of a
    transaction the login prepared. Names that no longer exist are skipped.
    """
    return [r for (r,) in conn.execute(
        "SELECT r.rolname FROM pg_roles r WHERE pg_has_role(%s::oid, r.oid, 'MEMBER') OR EXISTS (SELECT FROM pg_roles g"
        " WHERE g.rolname = ANY(%s::name[]) AND pg_has_role(g.oid, r.oid, 'MEMBER')) ORDER BY 1",
        [oid, recorded])]  # fmt: skip


def prepared_since(about: dict[str, Any], request: AccessRequest) -> datetime:
    """Since when a prepared transaction of a role the login could become may be the grantee's.

    The server's time the role was made, from its comment (the same clock as ``pg_prepared_xacts.prepared``);
    for a role whose comment does not say, the request's grant (or filing) time less ``CLOCK_SKEW``, or all time.
    """
    if (created := created_at(about)) is not None:
        return created
    at = request.granted_at or request.created_at
    return datetime.fromtimestamp(max(0.0, at - CLOCK_SKEW) if at else 0.0, tz=UTC)


def created_at(about: dict[str, Any] | None) -> datetime | None:
    """When the server made the role, as its comment says (a retried grant keeps it); None if it does not."""
    value = (about or {}).get('created')
    try:
        created = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return created if created is not None and created.tzinfo is not None else None


def role_names(value: Any) -> list[str]:
    """Role names from a ``grant:`` value or a comment, whatever it holds (revoke must not fail on it)."""
    names = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return [n for n in names if isinstance(n, str) and n]


def leave_roles(conn: psycopg.Connection[Any], oid: int, ident: sql.Identifier) -> None:
    """Take every role the jit role is a member of away from it."""
    held = [r for (r,) in conn.execute(
        'SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid WHERE m.member = %s::oid'
        ' ORDER BY 1', [oid])]  # fmt: skip
    if held:
        conn.execute(sql.SQL('REVOKE {} FROM {}').format(sql.SQL(', ').join(map(sql.Identifier, held)), ident))


def databases_of(conn: psycopg.Connection[Any], oid: int) -> list[str]:
    """Every database where the role owns something or holds a privilege (pg_shdepend is cluster-wide)."""
    return [d for (d,) in conn.execute(
        'SELECT DISTINCT d.datname FROM pg_shdepend s JOIN pg_database d ON d.oid = s.dbid'
        " WHERE s.refclassid = 'pg_authid'::regclass AND s.refobjid = %s::oid ORDER BY 1", [oid])]  # fmt: skip


def drop_owned(conn: psycopg.Connection[Any], ident: sql.Identifier) -> list[str]:
    """Everything the role owns in ``conn``'s database goes, with what depends on it; its privileges there too.

    CASCADE: a trigger the grantee put on someone else's table, a default or check calling the grantee's
    function, a view built on the grantee's table all depend on the grantee's objects; kept, they would run
    the grantee's code with other people's rights. Returns what went besides the role's own objects, as
    PostgreSQL's notices name it (``drop cascades to view scratch.report``), for the log.
    """
    cascaded: list[str] = []

    def note(diag: psycopg.errors.Diagnostic) -> None:
        # One object: the message names it; several: "... N other objects", and the detail names them.
        cascaded.extend((diag.message_detail or diag.message_primary or '').splitlines())

    conn.add_notice_handler(note)
    try:
        conn.execute(sql.SQL('DROP OWNED BY {} CASCADE').format(ident))
    finally:
        conn.remove_notice_handler(note)
    return cascaded


def end_prepared(
    connect: Callable[[str], AbstractContextManager[psycopg.Connection[Any]]], conn: psycopg.Connection[Any],
    request: AccessRequest, role: str, could_be: list[str], since: datetime,
) -> None:  # fmt: skip
    """Roll back every prepared transaction that could be the grantee's; fail, naming them, if one stays.

    A prepared transaction outlives the sessions: it keeps its locks, holds back vacuum, and whoever may act
    as its owner can COMMIT PREPARED it later. Its ``owner`` is the role in effect at PREPARE, so the
    grantee's may be owned by any role it could ``SET ROLE`` to. Those prepared since the role was made, and
    every one owned by the role itself, could be the grantee's: another member's, prepared as the same role
    in that window, looks the same and goes too (logged). Rolling back is allowed to the owner: the admin
    becomes it (ADMIN OPTION on the granted roles makes the admin their member, and so a member of what they
    are in), on a connection of its own (``connect(dbname)``), in the transaction's database, and runs nothing
    else there.
    """
    rows = conn.execute(
        'SELECT gid, owner, database, prepared FROM pg_prepared_xacts'
        ' WHERE owner = %s OR (owner = ANY(%s::name[]) AND prepared >= %s) ORDER BY database, prepared',
        [role, could_be, since],
    ).fetchall()
    ended: list[dict[str, str]] = []
    left: dict[str, list[str]] = {}  # why -> gids
    for dbname in dict.fromkeys(str(r[2]) for r in rows):
        here = [(str(gid), str(owner), prepared) for gid, owner, db, prepared in rows if db == dbname]
        try:
            with connect(dbname) as other:
                for gid, owner, prepared in here:
                    try:
                        other.execute(sql.SQL('SET ROLE {}').format(sql.Identifier(owner)))
                    except psycopg.Error as exc:
                        left.setdefault(f'in `{dbname}`: {message(exc)}', []).append(gid)
                        continue
                    try:
                        other.execute(sql.SQL('ROLLBACK PREPARED {}').format(sql.Literal(gid)))
                    except psycopg.errors.UndefinedObject:
                        continue  # finished meanwhile, by another member of its owner
                    except psycopg.Error as exc:
                        left.setdefault(f'in `{dbname}`: {message(exc)}', []).append(gid)
                        continue
                    ended.append({'gid': gid, 'owner': owner, 'database': dbname, 'prepared': _iso(prepared)})
        except ProviderError as exc:  # the admin may not connect there (or not now)
            left.setdefault(exc.user_message, []).extend(gid for gid, _, _ in here)
    if ended:  # a warning: one of them may have been another member's
        log.warning('postgres.prepared_rolled_back', request_id=request.id, role=role, transactions=ended)
    if left:
        gids = [gid for names in left.values() for gid in names]
        raise PermanentProviderError(
            f'{len(gids)} prepared transaction(s) the role `{role}` could have made (as itself or a role it '
            f'could become) could not be rolled back: {"; ".join(f"{_gids(g)} ({why})" for why, g in left.items())}'
            '. It can no longer log in and holds no granted role, but a superuser must ROLLBACK PREPARED them '
            'before jit can finish the revoke')  # fmt: skip


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _gids(gids: list[str]) -> str:
    """Transaction names are the grantee's text: quoted, escaped and cut short."""
    return ', '.join(json.dumps(g[:64] + ('...' if len(g) > 64 else '')) for g in gids)
