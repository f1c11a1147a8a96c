"""``jit audit report``, ``query`` and ``export`` on a seeded history (tests/audit/seed.py), from Redis and a file."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from bot.audit.filters import parse_when
from bot.audit.records import iso
from bot.core.model import Principal
from tests.audit.conftest import cli
from tests.audit.seed import ts
from tests.core.policy_fixtures import EVE

pytestmark = pytest.mark.redis


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_who_had_access_to_prod_db_in_november(seeded, cli_env, capsys):
    """Exactly the five grants whose access overlapped November, with who approved them, how they ended, and why.

    Not in it: the October grant, the December one, the denied, cancelled and failed requests, the extension
    request (folded into the grant it extended) and the grant of another resource.
    """
    jit, ids = seeded
    version = jit.policy.version
    november = ('--resource', 'prod-db', '--since', '2026-11-01', '--until', '2026-11-30')
    assert cli('report', *november, '--format', 'csv') == 0
    rows = _csv(capsys.readouterr().out)
    keep = ('request_id', 'grantee', 'role', 'granted_at', 'ended_at', 'ended', 'ended_by', 'approved_by', 'rule',
            'policy_version', 'reason', 'extensions')  # fmt: skip
    assert [{k: row[k] for k in keep} for row in rows] == [
        {'request_id': ids['overnight'], 'grantee': 'alex@example.com', 'role': 'read',
         'granted_at': '2026-10-31T22:06:00Z', 'ended_at': '2026-11-01T00:06:00Z', 'ended': 'expired',
         'ended_by': 'jit', 'approved_by': 'sam@example.com', 'rule': 'prod-read', 'policy_version': version,
         'reason': 'INC-1 overnight', 'extensions': ''},
        {'request_id': ids['released'], 'grantee': 'alex@example.com', 'role': 'read',
         'granted_at': '2026-11-10T09:03:00Z', 'ended_at': '2026-11-10T09:30:00Z', 'ended': 'released',
         'ended_by': 'alex@example.com', 'approved_by': 'sec@example.com', 'rule': 'prod-read',
         'policy_version': version, 'reason': 'INC-3 orders', 'extensions': ''},
        {'request_id': ids['break_glass'], 'grantee': 'sec@example.com', 'role': 'write',
         'granted_at': '2026-11-15T03:00:30Z', 'ended_at': '2026-11-15T03:10:00Z', 'ended': 'revoked by an admin',
         'ended_by': 'sec@example.com', 'approved_by': 'break-glass (self-approved)', 'rule': 'prod-break-glass',
         'policy_version': version, 'reason': 'INC-9 outage', 'extensions': ''},
        {'request_id': ids['extended'], 'grantee': 'alex@example.com', 'role': 'read',
         'granted_at': '2026-11-20T14:01:00Z', 'ended_at': '2026-11-20T15:31:00Z', 'ended': 'expired',
         'ended_by': 'jit', 'approved_by': 'sam@example.com', 'rule': 'prod-read', 'policy_version': version,
         'reason': 'INC-7 migration',
         'extensions': f'30m more at 2026-11-20T14:52:00Z by sec@example.com (request {ids["extension"]}, '
                       'approved by sec@example.com)'},
        {'request_id': ids['active'], 'grantee': 'Dana@Example.com', 'role': 'read',
         'granted_at': '2026-11-30T23:01:00Z', 'ended_at': '', 'ended': 'still active', 'ended_by': '',
         'approved_by': 'sam@example.com', 'rule': 'prod-read', 'policy_version': version,
         'reason': 'CHG-11 still going', 'extensions': ''},
    ]  # fmt: skip
    assert rows[-1]['expires_at'] == '2026-12-01T01:01:00Z'
    assert cli('report', *november) == 0
    text = capsys.readouterr().out
    assert text.startswith('## Access to `prod-db`, 2026-11-01T00:00:00Z to 2026-12-01T00:00:00Z\n')
    assert text.count(f'| {version} |') == 5
    assert '| Dana@Example.com | read | 2026-11-30T23:01:00Z | still active (ends 2026-12-01T01:01:00Z) |' in text
    assert '5 grant(s), from 54 events of Redis stream jit:audit: seq 1-54' in text


def test_report_of_a_period_nobody_had_access_in(seeded, cli_env, capsys):
    """A quiet period says so in words, and a bad period is refused with what would work."""
    assert cli('report', '--resource', 'prod-db', '--since', '2026-11-02', '--until', '2026-11-09') == 0
    assert 'Nobody had access to `prod-db` in this period.' in capsys.readouterr().out
    assert cli('report', '--resource', 'prod-db', '--since', 'last tuesday') == 2
    assert "'last tuesday' is neither a date" in capsys.readouterr().err
    assert cli('report', '--resource', 'prod-db', '--since', '2026-11-09', '--until', '2026-11-02') == 2
    assert 'is not before --until' in capsys.readouterr().err


def _seqs(out: str) -> list[int]:
    return [json.loads(line)['seq'] for line in out.splitlines()]


def test_query_filters(seeded, cli_env, capsys):
    """--user (requester or actor; email or Slack ID), --resource, --role, --event, --since, --until, --request."""
    jit, ids = seeded
    events = jit.store.audit_events(1, 1000)

    def query(*argv: str) -> list[int]:
        assert cli('query', '--format', 'jsonl', *argv) == 0
        return _seqs(capsys.readouterr().out)

    def expect(keep) -> list[int]:
        return [e['seq'] for e in events if keep(e)]

    req = lambda e: e.get('request') or {}  # noqa: E731
    assert query() == expect(lambda e: True)
    # SEC approved and revoked; alex@example.com is also U0ALEX, the actor of his own filings and releases.
    assert query('--user', 'U0SEC') == expect(lambda e: 'U0SEC' in (e['actor'], req(e)['requester']['slack_id']))
    assert (
        query('--user', 'ALEX@example.com')
        == query('--user', 'U0ALEX')
        == expect(lambda e: 'U0ALEX' in (e['actor'], req(e)['requester']['slack_id']))
    )
    assert query('--resource', 'demo') == expect(lambda e: req(e).get('resource') == 'demo')
    assert query('--resource', 'prod-db', '--role', 'write') == expect(lambda e: req(e).get('role') == 'write')
    assert query('--event', 'grant.revoked', '--event', 'request.denied') == expect(
        lambda e: e['event'] in ('grant.revoked', 'request.denied')
    )
    assert query('--event', 'request.*', '--user', 'U0DANA') == expect(
        lambda e: e['event'].startswith('request.') and 'U0DANA' in (e['actor'], req(e)['requester']['slack_id'])
    )
    assert query('--since', '2026-11-20', '--until', '2026-11-21') == expect(
        lambda e: ts('2026-11-20T00:00:00+00:00') <= e['time'] < ts('2026-11-22T00:00:00+00:00')
    )
    assert query('--request', ids['extended']) == expect(
        lambda e: ids['extended'] in (req(e).get('id'), (e.get('detail') or {}).get('extends'))
    )
    assert query('--user', 'nobody@example.com') == []
    assert cli('query', '--event', 'policy.rejected', '--format', 'jsonl') == 0
    err = capsys.readouterr().err
    assert 'policy.rejected is not an audit event' in err and 'policy.loaded' in err


def test_query_table_and_csv(seeded, cli_env, capsys):
    """The table is for people (aligned, one line per event, a count); CSV for spreadsheets, formulas defused."""
    jit, ids = seeded
    assert cli('query', '--request', ids['released'], '--format', 'table') == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ['SEQ', 'TIME', '(UTC)', 'EVENT', 'ACTOR', 'REQUEST', 'REQUESTER', 'ACCESS',
                                'OUTCOME', 'NOTE']  # fmt: skip
    assert lines[1].split()[:4] == ['11', '2026-11-10', '09:00:00', 'request.created']
    assert 'reason: INC-3 orders' in lines[1] and 'read on prod-db 1h' in lines[1]
    assert lines[-1] == '5 event(s)'
    jit.at('2026-12-02T00:00:00+00:00').file(EVE, 'demo', None, 300, '=HYPERLINK("http://x")')
    assert cli('query', '--resource', 'demo', '--event', 'request.created', '--format', 'csv') == 0
    rows = _csv(capsys.readouterr().out)
    assert rows[-1]['reason'] == '\'=HYPERLINK("http://x")' and rows[-1]['requester_email'] == 'eve@example.com'


def test_export_ranges_round_trip_through_verify(seeded, cli_env, capsys, tmp_path):
    """An export of a seq or time range is a JSONL file that ``verify --file`` checks from its first seq."""
    jit, _ = seeded
    events = jit.store.audit_events(1, 1000)
    out = tmp_path / 'export.jsonl'
    assert cli('export', '--from-seq', '10', '--to-seq', '30', '--output', str(out)) == 0
    assert capsys.readouterr().err == 'exported 21 events (seq 10-30)\n'
    assert _seqs(out.read_text()) == list(range(10, 31))
    assert cli('verify', '--file', str(out)) == 0
    assert capsys.readouterr().out == f'21 events from seq 10, chain intact, head {events[29]["hash"]}\n'
    assert cli('export', '--since', '2026-11-15', '--until', '2026-11-15', '--format', 'csv') == 0
    rows = _csv(capsys.readouterr().out)
    assert [int(r['seq']) for r in rows] == [e['seq'] for e in events if iso(e['time']).startswith('2026-11-15')]
    assert {r['event'] for r in rows} >= {'request.approved', 'grant.revoked'}
    assert cli('export', '--from-seq', '30', '--to-seq', '10') == 2
    with pytest.raises(SystemExit) as usage:
        cli('export', '--from-seq', 'x')
    assert usage.value.code == 2 and "'x' is not a seq" in capsys.readouterr().err


def test_parse_when():
    """Dates are UTC unless they say otherwise; durations mean ago; a bare --until date is the end of that day."""
    now = ts('2026-11-28T12:00:00+00:00')
    assert parse_when('7d', now=now) == ts('2026-11-21T12:00:00+00:00')
    assert parse_when('1h30m', now=now) == now - 5400
    assert parse_when('2026-11-01', now=now) == ts('2026-11-01T00:00:00+00:00')
    assert parse_when('2026-11-30', now=now, end=True) == ts('2026-12-01T00:00:00+00:00')
    assert parse_when('2026-11-01T09:30+01:00', now=now) == ts('2026-11-01T08:30:00+00:00')
    assert parse_when('2026-11-01T09:30Z', now=now, end=True) == ts('2026-11-01T09:30:00+00:00')


def test_an_approval_by_link_says_so_in_the_report():
    """An approver who decided by an email or Teams link is named with it: the link decided as that address."""
    from bot.audit.report import access_report

    alex = {'slack_id': 'U0ALEX', 'email': 'alex@example.com'}
    request = {'id': 'r-1', 'requester': alex, 'resource': 'prod-db', 'role': 'read', 'duration': 600}
    base = {'request': request, 'rule': 'r', 'policy_version': 'v'}
    records = [
        {**base, 'seq': 1, 'time': 100.0, 'event': 'request.created', 'actor': 'U0ALEX'},
        {**base, 'seq': 2, 'time': 110.0, 'event': 'request.approved', 'actor': 'sam@example.com',
         'detail': {'via': 'email', 'step': 0}},
        {**base, 'seq': 3, 'time': 111.0, 'event': 'request.approved', 'actor': 'U0SEC', 'detail': {'via': 'slack'}},
        {**base, 'seq': 4, 'time': 112.0, 'event': 'grant.active', 'actor': 'jit', 'detail': {'expires_at': 712.0}},
    ]  # fmt: skip
    [grant] = access_report(records, resource='prod-db', since=0, until=1000).grants
    assert grant.approved_by == ['sam@example.com (by email link)', 'U0SEC']


def test_one_name_for_each_person_in_report_query_and_export(seeded, cli_env, capsys):
    """An approver is ``Name <email>`` beside a grantee named the same way, in the report, the query table and
    the CSV of query and export alike: the approval records the approver's email and name beside the Slack ID
    (``detail.actor_email``, ``detail.actor_name``), the chain still verifies, and ``--user EMAIL`` finds the
    approvals of someone who never filed a request."""
    jit, _ = seeded
    alex = Principal(slack_id='U0ALEX', email='alex@example.com', name='Alex Dev')
    sam = Principal(slack_id='U0SAM', email='sam@example.com', name='Sam Lead')
    rid = jit.at('2026-12-03T10:00:00+00:00').file(alex, 'prod-db', 'read', 1800, 'INC-12 december')
    jit.at('2026-12-03T10:01:00+00:00').approve.execute(rid, sam)
    jit.grant.execute(rid)
    jit.at('2026-12-03T10:10:00+00:00').end.release(rid, alex)
    jit.revoke.execute(rid)
    events = {e['event']: e for e in jit.store.audit_events(1, 1000) if (e.get('request') or {}).get('id') == rid}
    approved = events['request.approved']
    assert approved['actor'] == 'U0SAM'
    assert approved['detail'] | {'actor_email': 'sam@example.com', 'actor_name': 'Sam Lead'} == approved['detail']
    assert 'actor_email' not in (events['request.created'].get('detail') or {}), 'the requester is in the request'
    assert cli('verify') == 0
    capsys.readouterr()
    alex_named, sam_named = 'Alex Dev <alex@example.com>', 'Sam Lead <sam@example.com>'

    assert cli('report', '--resource', 'prod-db', '--since', '2026-10-31', '--format', 'csv') == 0
    rows = {row['request_id']: row for row in _csv(capsys.readouterr().out)}
    assert (rows[rid]['grantee'], rows[rid]['approved_by'], rows[rid]['ended_by']) == (
        alex_named,
        sam_named,
        alex_named,
    )
    # The same people in November's grants, named as the trail now knows them (U0SAM there recorded no email).
    assert {row['approved_by'] for row in rows.values()} == {
        sam_named,
        'sec@example.com',
        'break-glass (self-approved)',
    }
    assert {row['grantee'] for row in rows.values()} == {alex_named, 'sec@example.com', 'Dana@Example.com'}

    assert cli('query', '--request', rid, '--format', 'table') == 0
    [line] = [line for line in capsys.readouterr().out.splitlines() if 'request.approved' in line]
    assert re.split(' {2,}', line)[2:6] == ['request.approved', sam_named, rid, alex_named]
    for argv in (('query', '--request', rid), ('export', '--since', '2026-12-03')):
        assert cli(*argv, '--format', 'csv') == 0
        [row] = [r for r in _csv(capsys.readouterr().out) if r['event'] == 'request.approved']
        assert (row['actor'], row['actor_identity'], row['requester_identity']) == ('U0SAM', sam_named, alex_named)
    assert cli('query', '--user', 'sam@example.com', '--format', 'jsonl') == 0
    by_email = _seqs(capsys.readouterr().out)
    assert cli('query', '--user', 'U0SAM', '--format', 'jsonl') == 0
    assert by_email == _seqs(capsys.readouterr().out) and approved['seq'] in by_email
