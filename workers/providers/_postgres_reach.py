"""What a login in some PostgreSQL roles may create, or become, that a revoke cannot undo.

The postgres provider asks at every grant (a warning in the worker's log, a note to the grantee) and for
``jit policy validate --check-targets`` (:func:`target_findings`, the words of its warnings).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

#: Roles whose holders can leave something behind that outlives any revoke of theirs.
LASTING = {'pg_execute_server_program': "runs programs as the server's OS user",
           'pg_write_server_files': "writes files as the server's OS user"}  # fmt: skip


@dataclass(frozen=True)
class Reach:
    """What a login in some roles may create (schemas here, databases anywhere) or become, that lasts."""

    schemas: list[str]
    databases: list[str]
    lasting: list[str]

    @property
    def creates(self) -> bool:
        return bool(self.schemas or self.databases or self.lasting)


#: Every role a member of the roles of the array parameter can become (``SET ROLE``), themselves included.
_BECOMES = ('SELECT r.oid, r.rolname, r.rolcreaterole, r.rolreplication FROM pg_roles r,'
            " unnest(%s::text[]) AS g(name) WHERE pg_has_role(g.name::name, r.oid, 'MEMBER')")  # fmt: skip


def reach_of(conn: psycopg.Connection[Any], roles: list[str]) -> Reach:
    """What a member of ``roles`` may do as any role it can become, PUBLIC's rights included.

    Schemas are those of ``conn``'s database; databases and roles are cluster-wide.
    """
    schemas = [n for (n,) in conn.execute(
        'SELECT DISTINCT n.nspname FROM pg_namespace n, (' + _BECOMES + ') w'
        " WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'"
        " AND has_schema_privilege(w.oid, n.oid, 'CREATE') ORDER BY 1", [roles])]  # fmt: skip
    databases = [d for (d,) in conn.execute(
        'SELECT DISTINCT d.datname FROM pg_database d, (' + _BECOMES + ') w'
        " WHERE NOT d.datistemplate AND has_database_privilege(w.oid, d.oid, 'CREATE') ORDER BY 1",
        [roles])]  # fmt: skip
    lasting = []
    become = 'SELECT DISTINCT rolname, rolcreaterole, rolreplication FROM (' + _BECOMES + ') w ORDER BY 1'
    for name, creates_roles, replicates in conn.execute(become, [roles]):
        if creates_roles:
            lasting.append(f'`{name}`, which has CREATEROLE (creates logins)')
        elif replicates:  # a slot has no owner: no revoke can tell the grantee's from anyone's
            lasting.append(f'`{name}`, which has REPLICATION (creates replication slots, which keep WAL until dropped)')
        elif name in LASTING:
            lasting.append(f'`{name}`, which {LASTING[name]}')
    return Reach(schemas, databases, lasting)


def target_findings(
    roles: list[str], found: Reach, schemas: dict[str, list[str]], prepared: int
) -> list[tuple[str, str]]:
    """The warnings of ``check_target``, as ``(code, message)``: from what a member of ``roles`` may do
    (``found``, cluster-wide), the schemas it may create in (by database) and ``max_prepared_transactions``."""
    granted = listed(roles)
    why = ('during the grant a login can plant functions or operators there that run as whoever calls them, '
           'and what it makes as a granted role (SET ROLE) outlives the revoke')  # fmt: skip
    out = [('target-create', f'{granted} may create objects in schema(s) {listed(names)} of database '
            f'`{dbname}`: {why}') for dbname, names in schemas.items() if names]  # fmt: skip
    if found.databases:
        out.append(('target-create', f'{granted} may create schemas in database(s) {listed(found.databases)}: '
                    f'{why}'))  # fmt: skip
    out += [('target-lasting', f'{granted} can become {what}: what that leaves outlives the revoke')
            for what in found.lasting]  # fmt: skip
    if prepared > 0:
        out.append(('target-prepared', f'the server allows prepared transactions (max_prepared_transactions = '
                    f'{prepared}): a login in {granted} can PREPARE TRANSACTION as itself or as a role it can '
                    'become, which outlives its sessions, keeps its locks and may be committed by any member '
                    'of that role until the revoke rolls it back; set it to 0 unless something on this server '
                    'uses two-phase commit'))  # fmt: skip
    return out


def listed(names: list[str]) -> str:
    return ', '.join(f'`{n}`' for n in names)
