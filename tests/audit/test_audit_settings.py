"""The ``JIT_AUDIT_*`` settings: each problem named at start, all at once, never quoting a secret."""

from __future__ import annotations

import pytest

from bot.core.errors import ConfigError
from bot.settings import load_settings

BASE = {'SLACK_BOT_TOKEN': 'xoxb-1', 'SLACK_SIGNING_SECRET': 's'}


def test_defaults_configure_no_sink():
    settings = load_settings(BASE)
    assert (settings.audit_file, settings.audit_webhook_url, settings.audit_s3_bucket, settings.audit_retention) == (
        None, None, None, None)  # fmt: skip
    assert settings.audit_s3_retention_days == 365 and settings.audit_s3_prefix == ''


def test_every_audit_setting(digest_key, tmp_path):
    _key, private, _public = digest_key
    settings = load_settings({**BASE, 'JIT_AUDIT_FILE': str(tmp_path / 'audit.jsonl'),
                              'JIT_AUDIT_WEBHOOK_URL': 'https://siem.example.com/jit', 'JIT_AUDIT_WEBHOOK_SECRET': 'w',
                              'JIT_AUDIT_S3_BUCKET': 'acme-audit', 'JIT_AUDIT_S3_PREFIX': '/prod/jit/',
                              'JIT_AUDIT_S3_ENDPOINT_URL': 'http://127.0.0.1:9000',
                              'JIT_AUDIT_S3_RETENTION_DAYS': '2555',
                              'JIT_AUDIT_DIGEST_KEY': str(private), 'JIT_AUDIT_RETENTION': '90d'})  # fmt: skip
    assert settings.audit_file == str(tmp_path / 'audit.jsonl')
    assert settings.audit_s3_prefix == 'prod/jit/' and settings.audit_s3_retention_days == 2555
    assert settings.audit_retention == 90 * 86400
    assert load_settings({**BASE, 'JIT_AUDIT_S3_BUCKET': 'b-1', 'JIT_AUDIT_DIGEST_KEY': private.read_text()}) \
        .audit_digest_key == private.read_text()  # PEM text works as well as a path  # fmt: skip


def test_all_audit_problems_are_named_at_once(tmp_path):
    """One ConfigError naming each bad key; the webhook secret and the key's content never appear in it."""
    rsa_like = tmp_path / 'not-a-key.pem'
    rsa_like.write_text('-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END PRIVATE KEY-----\n')
    with pytest.raises(ConfigError) as raised:
        load_settings({**BASE, 'JIT_AUDIT_FILE': str(tmp_path / 'missing' / 'audit.jsonl'),
                       'JIT_AUDIT_WEBHOOK_URL': 'siem.example.com', 'JIT_AUDIT_S3_BUCKET': 'Bad_Bucket',
                       'JIT_AUDIT_S3_ENDPOINT_URL': 'minio:9000', 'JIT_AUDIT_S3_RETENTION_DAYS': '1.5',
                       'JIT_AUDIT_DIGEST_KEY': str(rsa_like), 'JIT_AUDIT_RETENTION': 'forever'})  # fmt: skip
    problems = raised.value.problems
    assert [p.split()[0].split('=')[0].rstrip(':') for p in problems] == [
        'JIT_AUDIT_FILE',
        'JIT_AUDIT_WEBHOOK_URL',
        'JIT_AUDIT_WEBHOOK_SECRET',
        'JIT_AUDIT_S3_BUCKET',
        'JIT_AUDIT_S3_ENDPOINT_URL',
        'JIT_AUDIT_S3_RETENTION_DAYS',
        'JIT_AUDIT_DIGEST_KEY',
        'JIT_AUDIT_RETENTION',
    ]
    assert 'c2VjcmV0' not in raised.value.user_message
    with pytest.raises(ConfigError) as raised:
        load_settings({**BASE, 'JIT_AUDIT_WEBHOOK_SECRET': 'hunter2', 'JIT_AUDIT_S3_BUCKET': 'acme-audit'})
    assert [p.split()[0] for p in raised.value.problems] == ['JIT_AUDIT_WEBHOOK_SECRET', 'JIT_AUDIT_DIGEST_KEY']
    assert 'hunter2' not in raised.value.user_message
