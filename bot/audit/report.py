"""Who had access to a resource in a period, from the audit events alone: ``jit audit report``.

A grant counts when its access overlapped the period: it became active (``grant.active``) before
the period ends and was not revoked (``grant.revoked``) before it starts; grants that started earlier
or are still active count too. Each row says from when to when, how it ended and by whom, who
approved it (every approval, auto-approval and break-glass included) under which rule and policy
version, and the reason. Extensions are folded into the grant they extend (``1h more at ...``), since
an extension request holds no access of its own. People are named alike in every column, as
:class:`~bot.audit.identities.Identities` names them from the whole trail read (``Name <email>``, the email, or
a Slack ID nobody linked). Pure: records in, rows out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.audit.formats import visible
from bot.audit.identities import Identities
from bot.audit.records import iso, request_of
from bot.core.durations import format_duration
from bot.core.model import AuditName

REPORT_COLUMNS = (
    'request_id', 'grantee', 'grantee_slack_id', 'role', 'granted_at', 'ended_at', 'ended', 'ended_by',
    'expires_at', 'approved_by', 'rule', 'policy_version', 'reason', 'ticket', 'extensions',
)  # fmt: skip


@dataclass
class Grant:
    """One grant of access to the resource, as the trail tells it."""

    request_id: str
    grantee: str
    grantee_slack_id: str
    role: str
    reason: str
    ticket: str
    rule: str = ''
    policy_version: str = ''
    granted_at: float | None = None
    expires_at: float | None = None
    ended_at: float | None = None
    ended: str = ''
    ended_by: str = ''
    approved_by: list[str] = field(default_factory=list)
    extensions: list[str] = field(default_factory=list)
    extends: str | None = None
    revoke_failures: int = 0
    # As the trail recorded them, named at the end (when every person in the trail is known):
    requester: dict[str, Any] = field(default_factory=dict, repr=False)
    approvals: list[dict[str, Any]] = field(default_factory=list, repr=False)  # the request.approved records
    ended_by_actor: str = ''
    extended: list[tuple[dict[str, Any], str]] = field(default_factory=list, repr=False)  # (record, its text)

    def row(self) -> dict[str, Any]:
        """The grant as a CSV row (times in UTC ISO form)."""
        return {
            'request_id': self.request_id, 'grantee': self.grantee, 'grantee_slack_id': self.grantee_slack_id,
            'role': self.role, 'granted_at': iso(self.granted_at), 'ended_at': iso(self.ended_at),
            'ended': self.ended or 'still active', 'ended_by': self.ended_by, 'expires_at': iso(self.expires_at),
            'approved_by': '; '.join(self.approved_by), 'rule': self.rule, 'policy_version': self.policy_version,
            'reason': self.reason, 'ticket': self.ticket, 'extensions': '; '.join(self.extensions),
        }  # fmt: skip


@dataclass
class AccessReport:
    """The grants of one resource that overlap ``[since, until)``, and what part of the trail was read."""

    resource: str
    since: float
    until: float
    grants: list[Grant]
    events: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    first_time: float | None = None
    last_time: float | None = None


def _approver(record: dict[str, Any], names: Identities) -> str:
    actor = str(record.get('actor') or '?')
    if actor == 'policy':
        why = str((record.get('detail') or {}).get('why') or '')
        return 'break-glass (self-approved)' if 'break-glass' in why else 'auto-approved by the policy'
    via = str((record.get('detail') or {}).get('via') or 'slack')
    # An approval by email or Teams link says so: it was taken as the address the link was sent to.
    return names.label(actor) + (f' (by {via} link)' if via != 'slack' else '')


def _approvers(grant: Grant, names: Identities) -> list[str]:
    out: list[str] = []
    for record in grant.approvals:
        who = _approver(record, names)
        if who not in out:
            out.append(who)
    return out


def access_report(records: Iterable[dict[str, Any]], *, resource: str, since: float, until: float) -> AccessReport:
    """Read every event once and keep the grants of ``resource`` whose access overlaps the period."""
    grants: dict[str, Grant] = {}
    names = Identities()
    # (grant, which of its extensions, the extension request): the request's approvers are added at the end
    extended_by: list[tuple[Grant, int, str]] = []
    report = AccessReport(resource, since, until, [])
    for record in records:
        report.events += 1
        report.first_seq = report.first_seq or record.get('seq')
        report.last_seq = record.get('seq')
        report.first_time = report.first_time or record.get('time')
        report.last_time = record.get('time')
        names.learn(record)
        req = request_of(record)
        requester = req.get('requester') or {}
        if req.get('resource') != resource or not req.get('id'):
            continue
        grant = grants.get(req['id'])
        if grant is None:
            grant = grants[req['id']] = Grant(
                request_id=req['id'], grantee='', requester=dict(requester),
                grantee_slack_id=requester.get('slack_id') or '', role=str(req.get('role') or ''),
                reason=str(req.get('reason') or ''), ticket=str(req.get('ticket') or ''),
            )  # fmt: skip
        grant.rule = str(record.get('rule') or grant.rule)
        grant.policy_version = str(record.get('policy_version') or grant.policy_version)
        _apply(grant, record, extended_by)
    for grant in grants.values():
        grant.grantee = names.requester(grant.requester)
        grant.approved_by = _approvers(grant, names)
        grant.ended_by = names.label(grant.ended_by_actor) if grant.ended_by_actor else ''
        grant.extensions = [
            f'{text} by {names.label(str(record.get("actor") or "?"))}' for record, text in grant.extended
        ]
    for grant, index, extension in extended_by:
        approvers = grants[extension].approved_by if extension in grants else []
        if approvers:
            grant.extensions[index] += f' (request {extension}, approved by {", ".join(approvers)})'
    report.grants = sorted(
        (g for g in grants.values() if g.extends is None and _overlaps(g, since, until)),
        key=lambda g: (g.granted_at if g.granted_at is not None else float('-inf'), g.request_id),
    )
    return report


def _apply(grant: Grant, record: dict[str, Any], extended_by: list[tuple[Grant, int, str]]) -> None:
    event, detail = record.get('event'), record.get('detail') or {}
    if event == AuditName.REQUEST_CREATED and detail.get('extends'):
        grant.extends = str(detail['extends'])
    elif event == AuditName.REQUEST_APPROVED:
        grant.approvals.append(record)
    elif event == AuditName.GRANT_ACTIVE:
        grant.granted_at = record['time']
        grant.expires_at = detail.get('expires_at', grant.expires_at)
    elif event == AuditName.GRANT_EXTENDED:
        grant.expires_at = detail.get('to', grant.expires_at)
        grant.extended.append((record, f'{format_duration(int(detail.get("by") or 0))} more at {iso(record["time"])}'))
        if detail.get('extension'):
            extended_by.append((grant, len(grant.extended) - 1, str(detail['extension'])))
    elif event == AuditName.GRANT_REVOKED:
        grant.ended_at = record['time']
        grant.ended = str(detail.get('why') or 'revoked')
        if record.get('actor') == 'reconciler':
            grant.ended = 'revoked by the reconciler (jit did not know it as active)'
        grant.ended_by_actor = str(record.get('actor') or '')
    elif event == AuditName.GRANT_REVOKE_FAILED:
        grant.revoke_failures += 1


def _overlaps(grant: Grant, since: float, until: float) -> bool:
    if grant.granted_at is None and grant.ended_at is None:
        return False  # never active (denied, cancelled, failed...), or nothing about it in this part of the trail
    started_in_time = grant.granted_at is None or grant.granted_at < until
    return started_in_time and (grant.ended_at is None or grant.ended_at > since)


def _cell(text: str) -> str:
    """One line of a Markdown table cell, with nothing a terminal would obey (see :func:`visible`)."""
    return visible(text.replace('|', '\\|').replace('\n', ' '))


def markdown(report: AccessReport, source: str) -> str:
    """The report as Markdown: a heading, one table row per grant, and what part of the trail it rests on."""
    period = f'{iso(report.since)} to {iso(report.until)}'
    resource = visible(report.resource)
    out = [f'## Access to `{resource}`, {period}', '']
    columns: Sequence[str] = ('grantee', 'role', 'from', 'to', 'ended', 'approved by', 'rule', 'policy version',
                              'reason', 'request')  # fmt: skip
    if report.grants:
        out += ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
        for g in report.grants:
            start = iso(g.granted_at) if g.granted_at is not None else 'before the trail here'
            end = iso(g.ended_at) if g.ended_at is not None else f'still active (ends {iso(g.expires_at)})'
            ended = g.ended + (f' ({g.ended_by})' if g.ended_by and g.ended_by != 'jit' else '')
            if g.extensions:
                ended += '; extended ' + '; '.join(g.extensions)
            if g.revoke_failures:
                ended += f'; revoke failed {g.revoke_failures} time(s) first'
            reason = g.reason + (f' ({g.ticket})' if g.ticket and g.ticket not in g.reason else '')
            cells = [g.grantee, g.role, start, end, ended or '-', ', '.join(g.approved_by) or '-', g.rule,
                     g.policy_version, reason, g.request_id]  # fmt: skip
            out.append('| ' + ' | '.join(_cell(c) for c in cells) + ' |')
    else:
        out.append(f'Nobody had access to `{resource}` in this period.')
    out.append('')
    if report.first_seq is None:
        out.append(f'The trail in {source} is empty.')
    else:
        out.append(f'{len(report.grants)} grant(s), from {report.events} events of {source}: seq {report.first_seq}-'
                   f'{report.last_seq}, {iso(report.first_time)} to {iso(report.last_time)}.')  # fmt: skip
        if report.first_seq != 1 or (report.first_time or 0) > report.since:
            out.append(f'The trail here starts at seq {report.first_seq} ({iso(report.first_time)}): grants made '
                       'before that are shown only if their end is in it.')  # fmt: skip
    return '\n'.join(out)
