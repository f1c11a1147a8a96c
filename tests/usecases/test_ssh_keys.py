"""``/jit ssh-key``: what is accepted as a key to sign for, what is refused and why, and the audit event."""

from __future__ import annotations

import subprocess

import pytest

from bot.core.errors import TooManyRequests
from bot.deps import SystemClock
from bot.usecases.ssh_keys import SSH_KEY_CHANGES_PER_HOUR, BadSshKey, SshKeys, fingerprint, parse_public_key
from tests.core.policy_fixtures import ALEX
from tests.support.redis_server import own_redis_url
from tests.support.stores import new_store

URL = own_redis_url(12)


def _keygen(tmp_path, kind: str, bits: str = '') -> tuple[str, str]:
    path = tmp_path / f'id_{kind}{bits}'
    args = ['ssh-keygen', '-q', '-t', kind, '-N', '', '-C', 'alex@laptop', '-f', str(path)] + (
        ['-b', bits] if bits else []
    )
    subprocess.run(args, check=True)
    return path.read_text(), (tmp_path / f'{path.name}.pub').read_text()


@pytest.fixture(name='keys')
def _keys(store_kind):
    store = new_store(store_kind, SystemClock(), url=URL)
    return SshKeys(store=store), store


def test_a_public_key_is_registered_replaced_and_audited(keys, tmp_path):
    ssh_keys, store = keys
    _, pub = _keygen(tmp_path, 'ed25519')
    assert ssh_keys.show(ALEX) is None
    printed = ssh_keys.register(ALEX, f'`{pub.strip()}`')  # pasted with Slack's code quotes
    expected = subprocess.run(['ssh-keygen', '-l', '-f', str(tmp_path / 'id_ed25519.pub')], check=True,
                              capture_output=True, text=True).stdout.split()[1]  # fmt: skip
    assert printed == expected == ssh_keys.show(ALEX), 'the fingerprint ssh-keygen shows'
    assert store.ssh_key(ALEX.slack_id) == ' '.join(pub.split()[:2]), 'stored without the comment'
    _, other = _keygen(tmp_path, 'ecdsa')
    ssh_keys.register(ALEX, other)
    events = [e for e in store.audit_events() if e['event'] == 'ssh_key.registered']
    assert [e['actor'] for e in events] == [ALEX.slack_id] * 2
    assert events[1]['detail']['replaced'] == expected and events[1]['detail']['type'] == 'ecdsa-sha2-nistp256'


@pytest.mark.parametrize(('text', 'says'), [
    ('', 'Paste your public key'),
    ('ssh-ed25519 not-base64!!', 'not an OpenSSH public key'),
    ('hello world', 'not an OpenSSH public key'),
    ('ssh-ed25519-cert-v01@openssh.com AAAA', 'certificate'),
    ('x' * 9000, 'Paste your public key'),
])  # fmt: skip
def test_what_is_not_a_public_key_is_refused_with_a_reason(keys, text, says):
    ssh_keys, store = keys
    with pytest.raises(BadSshKey, match=says):
        ssh_keys.register(ALEX, text)
    assert store.ssh_key(ALEX.slack_id) is None and store.audit_events() == []


def test_a_private_key_is_refused_and_called_exposed(keys, tmp_path):
    ssh_keys, store = keys
    private, _ = _keygen(tmp_path, 'ed25519')
    with pytest.raises(BadSshKey, match='private') as refused:
        ssh_keys.register(ALEX, private)
    assert 'exposed' in refused.value.user_message and private.splitlines()[1] not in refused.value.user_message
    assert store.ssh_key(ALEX.slack_id) is None


def test_short_rsa_keys_are_refused(tmp_path):
    _, pub = _keygen(tmp_path, 'rsa', '1024')
    with pytest.raises(BadSshKey, match='1024 bits'):
        parse_public_key(pub)
    _, pub = _keygen(tmp_path, 'rsa', '2048')
    assert fingerprint(parse_public_key(pub)).startswith('SHA256:')


def test_registering_the_same_key_again_records_nothing(keys, tmp_path):
    """30 identical `/jit ssh-key` give one audit event: an unchanged key is not a change."""
    ssh_keys, store = keys
    _, pub = _keygen(tmp_path, 'ed25519')
    for _ in range(30):
        ssh_keys.register(ALEX, pub)
    assert len([e for e in store.audit_events() if e['event'] == 'ssh_key.registered']) == 1


def test_key_changes_are_rate_limited(keys, tmp_path):
    """Replacing the key over and over (a script, or someone at alex's keyboard) stops after a few an hour."""
    ssh_keys, store = keys
    pubs = [_keygen(tmp_path / str(i), 'ed25519')[1] for i in range(12) if (tmp_path / str(i)).mkdir() is None]
    changed = 0
    with pytest.raises(TooManyRequests, match='SSH key'):
        for pub in pubs:
            ssh_keys.register(ALEX, pub)
            changed += 1
    assert changed == SSH_KEY_CHANGES_PER_HOUR
    assert len([e for e in store.audit_events() if e['event'] == 'ssh_key.registered']) == changed
    assert fingerprint(store.ssh_key(ALEX.slack_id)) == fingerprint(' '.join(pubs[changed - 1].split()[:2]))
