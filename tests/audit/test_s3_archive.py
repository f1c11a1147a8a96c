"""The S3 archive against moto's server mode: Object Lock, signed digests, resume, and ``verify --s3``.

Fixtures: ``moto`` (``tests/support/aws_server.py``: one server for this module, its state wiped at the end),
``s3``: a boto3 S3 client of ``moto`` (dummy credentials, no real AWS reachable) and a bucket with Object Lock
enabled, ``(client, bucket)``.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from bot.audit import archive
from bot.audit.records import dumps
from bot.core.model import chain_hash
from tests.audit.conftest import cli
from tests.core.policy_fixtures import ALEX, SAM
from tests.support.aws_server import (
    MotoServer,
    blank_aws_env,
    moto_fixture,  # noqa: F401 (the `moto` fixture, used by name)
)
from workers.audit_pump import AuditPump
from workers.audit_sinks import S3Sink

pytestmark = [pytest.mark.redis, pytest.mark.aws]


@pytest.fixture(name='s3')
def _s3(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str]:
    blank_aws_env(monkeypatch)
    monkeypatch.setenv('JIT_AUDIT_S3_ENDPOINT_URL', moto.endpoint)
    client = moto.client('s3')
    bucket = f'audit-{uuid.uuid4().hex[:12]}'
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    return client, bucket


def _sink(client, bucket, jit, key, **kw) -> S3Sink:
    return S3Sink(client=client, bucket=bucket, prefix='jit/', signer=key, clock=jit.clock, batch_max=20,
                  batch_age=0, retention_days=30, **kw)  # fmt: skip


def _keys(client, bucket, directory: str) -> list[str]:
    return [o['Key'] for o in client.list_objects_v2(Bucket=bucket, Prefix='jit/' + directory).get('Contents', [])]


def test_the_archive_is_write_once_signed_and_verifies(seeded, s3, digest_key, cli_env, capsys):
    """Batches of 20 under COMPLIANCE retention, each with a digest chained to the one before, signed with Ed25519."""
    jit, _ = seeded
    client, bucket = s3
    key, _private, public = digest_key
    pump = AuditPump(store=jit.store, sinks=[_sink(client, bucket, jit, key)], clock=jit.clock)
    assert list(pump.pump_once().values()) == [54]
    batches = _keys(client, bucket, 'audit/')
    assert batches == ['jit/audit/2026/10/10/000000000001-000000000020.jsonl',
                       'jit/audit/2026/11/15/000000000021-000000000040.jsonl',
                       'jit/audit/2026/11/21/000000000041-000000000054.jsonl']  # fmt: skip
    digests = _keys(client, bucket, 'audit-digest/')
    assert [d.replace('audit-digest/', 'audit/').replace('.json', '.jsonl') for d in digests] == batches
    head = client.head_object(Bucket=bucket, Key=batches[0])
    assert head['ObjectLockMode'] == 'COMPLIANCE'
    until = datetime.fromtimestamp(jit.clock.now(), tz=UTC) + timedelta(days=30)
    assert abs((head['ObjectLockRetainUntilDate'] - until).total_seconds()) < 2
    assert client.head_object(Bucket=bucket, Key=digests[-1])['ObjectLockMode'] == 'COMPLIANCE'
    body = client.get_object(Bucket=bucket, Key=batches[1])['Body'].read()
    assert body == b''.join(dumps(e).encode() + b'\n' for e in jit.store.audit_events(21, 20))
    raws = [client.get_object(Bucket=bucket, Key=d)['Body'].read() for d in digests]
    second = json.loads(raws[1])
    assert second['previous_digest_key'] == digests[0]
    assert second['previous_digest_sha256'] == archive.sha256(raws[0])
    assert second['batch_sha256'] == archive.sha256(body)
    assert (second['first_seq'], second['last_seq'], second['last_hash']) == (21, 40, jit.store.audit_event(40)['hash'])
    assert archive.signature_problem(second, key.public_key()) is None
    assert archive.signature_problem({**second, 'last_seq': 41}, key.public_key()) == \
        'its signature does not match its content'  # fmt: skip
    capsys.readouterr()  # structlog's lines, unconfigured in tests, go to stdout
    assert cli('verify', '--s3', f's3://{bucket}/jit', '--public-key', str(public)) == 0
    head_hash = jit.store.audit_event(54)['hash']
    fingerprint = archive.fingerprint(key.public_key())
    assert capsys.readouterr().out == \
        f'54 events, chain intact, head {head_hash}; 3 batches, digests intact, signed by {fingerprint}\n'  # fmt: skip


def test_verify_s3_detects_a_replaced_batch_and_a_removed_digest(seeded, s3, digest_key, cli_env, capsys):
    """Object Lock keeps the original versions, but a new version, a delete marker or another key still show."""
    jit, _ = seeded
    client, bucket = s3
    key, private, public = digest_key
    AuditPump(store=jit.store, sinks=[_sink(client, bucket, jit, key)], clock=jit.clock).pump_once()
    capsys.readouterr()
    batches, digests = _keys(client, bucket, 'audit/'), _keys(client, bucket, 'audit-digest/')
    target = f's3://{bucket}/jit/'

    # A batch replaced by a version where seq 27's reason was edited (its hash left as it was).
    events = jit.store.audit_events(21, 20)
    events[6] = {**events[6], 'request': {**events[6]['request'], 'reason': 'routine'}}
    forged = client.put_object(Bucket=bucket, Key=batches[1], Body=archive.batch_body(events))
    assert cli('verify', '--s3', target, '--public-key', str(public)) == 1
    out = capsys.readouterr().out
    assert out.startswith("seq 27 changed: the batch was replaced (its SHA-256 is not the digest's): its hash does not")
    assert f'{batches[1]}:7' in out
    # ... also when the forger recomputed every hash in it: the digest's last hash no longer matches.
    rehashed, prev = [], events[0]['prev_hash']
    for event in events:
        event = {**event, 'prev_hash': prev}
        event['hash'] = prev = chain_hash(event, prev)
        rehashed.append(event)
    client.put_object(Bucket=bucket, Key=batches[1], Body=archive.batch_body(rehashed))
    assert cli('verify', '--s3', target, '--public-key', str(public)) == 1
    assert capsys.readouterr().out.startswith('seq 40 changed: the batch was replaced')
    versions = client.list_object_versions(Bucket=bucket, Prefix=batches[1])['Versions']
    with pytest.raises(client.exceptions.ClientError, match='AccessDenied'):  # the original is locked
        client.delete_object(Bucket=bucket, Key=batches[1], VersionId=versions[-1]['VersionId'])
    for version in versions[:-1]:  # the forged versions are not: take them away
        client.delete_object(Bucket=bucket, Key=batches[1], VersionId=version['VersionId'])
    assert forged['VersionId'] in {v['VersionId'] for v in versions[:-1]}
    assert cli('verify', '--s3', target, '--public-key', str(public)) == 0
    capsys.readouterr()

    # A digest removed (a delete marker: the locked version stays, but the key is gone).
    marker = client.delete_object(Bucket=bucket, Key=digests[1])
    assert cli('verify', '--s3', target, '--public-key', str(public)) == 1
    out = capsys.readouterr().out
    assert out.startswith(f'seq 21 removed: it names {digests[1]} as the digest before it, which is missing')
    client.delete_object(Bucket=bucket, Key=digests[1], VersionId=marker['VersionId'])

    # The last batch removed; then a digest signed by another key.
    marker = client.delete_object(Bucket=bucket, Key=batches[2])
    assert cli('verify', '--s3', target, '--public-key', str(public)) == 1
    assert capsys.readouterr().out.startswith('seq 41 removed: the batch of seqs 41-54 is missing')
    client.delete_object(Bucket=bucket, Key=batches[2], VersionId=marker['VersionId'])
    assert cli('verify', '--s3', target, '--public-key', str(private)) == 0  # a private PEM gives its public half
    capsys.readouterr()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    stranger = Ed25519PrivateKey.generate()
    digest = json.loads(client.get_object(Bucket=bucket, Key=digests[2])['Body'].read())
    records = jit.store.audit_events(41, 20)
    client.put_object(Bucket=bucket, Key=digests[2], Body=archive.build_digest(
        records=records, batch=batches[2], body=archive.batch_body(records),
        previous_key=digest['previous_digest_key'], previous_sha256=digest['previous_digest_sha256'],
        signer=stranger, created_at=digest['created_at']))  # fmt: skip
    assert cli('verify', '--s3', target, '--public-key', str(public)) == 1
    assert capsys.readouterr().out.startswith('seq 41 changed: digest: signed by another key')


def test_the_s3_sink_resumes_without_archiving_a_range_twice(seeded, s3, digest_key, cli_env, capsys):
    """A restart that lost the cursor (or crashed before saving it) finds the newest digest and goes on after it."""
    jit, _ = seeded
    client, bucket = s3
    key, _private, public = digest_key
    pump = AuditPump(store=jit.store, sinks=[_sink(client, bucket, jit, key)], clock=jit.clock)
    pump.pump_once()
    sink_key = pump.sinks[0].key
    jit.store.redis.delete(f'jit:audit:sink:{sink_key}')
    rid = jit.at('2026-12-03T08:00:00+00:00').file(ALEX, 'prod-db', 'read', 900, 'INC-14 after the restart')
    jit.approve.execute(rid, SAM)
    with capture_logs() as logs:
        restarted = AuditPump(store=jit.store, sinks=[_sink(client, bucket, jit, key)], clock=jit.clock)
        assert restarted.pump_once() == {sink_key: 56}
    assert ('audit.s3_resumed', 54) in [(e['event'], e.get('seq')) for e in logs]
    capsys.readouterr()
    ranges = [archive.parse_key(k)[1:] for k in _keys(client, bucket, 'audit/')]
    assert ranges == [(1, 20), (21, 40), (41, 54), (55, 56)]
    assert cli('verify', '--s3', f's3://{bucket}/jit', '--public-key', str(public)) == 0
    assert capsys.readouterr().out.startswith('56 events, chain intact')


def test_a_bucket_without_object_lock_is_still_archived_and_said_so(jit, s3, digest_key, cli_env, capsys):
    """No Object Lock (as get_object_lock_configuration says): plain objects, a warning; the digests still verify."""
    client, _ = s3
    bucket = 'plain-audit-bucket'
    client.create_bucket(Bucket=bucket)
    key, _private, public = digest_key
    jit.file(ALEX, 'prod-db', 'read', 900, 'INC-1 first')
    with capture_logs() as logs:
        AuditPump(store=jit.store, sinks=[_sink(client, bucket, jit, key)], clock=jit.clock).pump_once()
    assert [e['event'] for e in logs] == ['audit.s3_without_object_lock', 'audit.s3_archived']
    capsys.readouterr()
    batch = _keys(client, bucket, 'audit/')[0]
    assert 'ObjectLockMode' not in client.head_object(Bucket=bucket, Key=batch)
    assert cli('verify', '--s3', f's3://{bucket}/jit', '--public-key', str(public)) == 0
    assert capsys.readouterr().out.startswith('1 events, chain intact')


def test_s3_batches_wait_until_full_or_old(jit, s3, digest_key):
    """Fewer than ``batch_max`` events younger than ``batch_age`` wait in Redis; the cursor moves only with a batch."""
    client, bucket = s3
    key, _private, _public = digest_key
    sink = S3Sink(client=client, bucket=bucket, prefix='jit/', signer=key, clock=jit.clock, batch_max=20,
                  batch_age=60)  # fmt: skip
    pump = AuditPump(store=jit.store, sinks=[sink], clock=jit.clock)
    jit.file(ALEX, 'prod-db', 'read', 900, 'INC-1 first')
    assert pump.pump_once() == {sink.key: 0} and _keys(client, bucket, 'audit/') == []
    jit.clock.advance(61)
    assert pump.pump_once() == {sink.key: 1} and len(_keys(client, bucket, 'audit/')) == 1


def test_an_unreadable_archive_is_one_line_and_exit_2(s3, cli_env, capsys):
    """No such bucket, or not an s3:// URL: one line on stderr, exit 2, nothing else."""
    assert cli('verify', '--s3', 's3://no-such-bucket-here/jit') == 2
    err = capsys.readouterr().err
    assert err.startswith('jit: cannot read the S3 archive:') and 'NoSuchBucket' in err
    assert cli('query', '--s3', 'https://example.com/bucket') == 2
    assert "is not s3://BUCKET or s3://BUCKET/PREFIX" in capsys.readouterr().err


def test_a_prefix_with_nothing_under_it_is_no_trail(s3, cli_env, capsys):
    """An empty prefix of a bucket (a typo in it, say) is not an intact archive: exit 3, naming where."""
    _client, bucket = s3
    assert cli('verify', '--s3', f's3://{bucket}/not-jit') == 3
    assert capsys.readouterr() == ('', f'jit: no audit trail found at s3://{bucket}/not-jit/\n')
