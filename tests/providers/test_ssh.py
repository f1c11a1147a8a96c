"""The ``ssh`` provider against a real OpenSSH sshd: certificates log in while valid, not after.

Fixtures: ``ca`` (a fresh ed25519 CA), ``sshd`` (one sshd for the module that trusts it and lets
principal ``deploy`` in, see ``tests/support/sshd_server.py``), ``settings`` (the resource's settings, the CA in an
environment variable), ``user_key`` (the requester's key pair on disk).
"""

from __future__ import annotations

import base64
import dataclasses
import os
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import SSHCertificate, load_ssh_public_identity
from structlog.testing import capture_logs

from bot.core.errors import PermanentProviderError
from bot.core.model import AccessRequest, Principal
from tests.support.sshd_server import SSH_KEYGEN, SSHD, SshdServer
from workers.providers import krl
from workers.providers.ssh import SshProvider, serial_for

pytestmark = pytest.mark.sshd

if SSHD is None or SSH_KEYGEN is None:
    if os.environ.get('CI'):
        pytest.fail('CI must install openssh-server and openssh-client', pytrace=False)
    pytest.skip('needs OpenSSH: apt-get install -y openssh-server', allow_module_level=True)

CA_ENV = 'JIT_TEST_SSH_CA_KEY'
ALEX = Principal(slack_id='U0ALEX', email='alex@example.com')
PARAMS = {'principals': ['deploy']}
#: A well-formed FIDO security key (``sk-ssh-ed25519@openssh.com``): type, 32-byte key, application.
SK_BLOB = base64.b64encode(
    b''.join(len(part).to_bytes(4, 'big') + part for part in (b'sk-ssh-ed25519@openssh.com', bytes(range(32)), b'ssh:'))
).decode()


def private_pem(key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()


def public_line(key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def make_request(*, expires_at: float | None = None, duration: int = 600) -> AccessRequest:
    return AccessRequest(
        id=f'r-{uuid.uuid4().hex[:10]}', requester=ALEX, resource='prod-ssh', role='deploy', duration=duration,
        reason='deploy the fix', rule='prod-ssh', policy_version='v1', created_at=time.time(), expires_at=expires_at,
    )  # fmt: skip


@pytest.fixture(name='ca', scope='module')
def _ca() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture(name='sshd', scope='module')
def _sshd(ca, tmp_path_factory):
    with SshdServer(tmp_path_factory.mktemp('sshd'), ca_public=public_line(ca), principals={'deploy'}) as server:
        yield server


@pytest.fixture(name='settings')
def _settings(ca, sshd, monkeypatch):
    monkeypatch.setenv(CA_ENV, private_pem(ca))
    return {'ca_key': f'env:{CA_ENV}', 'revoked_keys': str(sshd.krl), 'host': '127.0.0.1', 'user': sshd.user}


@pytest.fixture(name='user_key')
def _user_key(tmp_path) -> tuple[Path, str]:
    """The requester's private key file (mode 0600, as ssh wants it) and public key line."""
    key = ed25519.Ed25519PrivateKey.generate()
    path = tmp_path / 'id_ed25519'
    path.write_text(private_pem(key))
    path.chmod(0o600)
    return path, public_line(key) + ' alex@laptop'


def provider_for(public: str | None) -> SshProvider:
    return SshProvider(public_key_for=lambda request: public)


def save(details: dict, folder: Path, name: str = 'id_ed25519-cert.pub') -> Path:
    path = folder / name
    path.write_text(details['certificate'] + '\n')
    return path


def certificate(details: dict) -> SSHCertificate:
    cert = load_ssh_public_identity(details['certificate'].encode())
    assert isinstance(cert, SSHCertificate)
    return cert


def assert_logs_in(sshd: SshdServer, key: Path, cert: Path) -> None:
    result = sshd.login(key, cert)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'jit-ok'


def assert_refused(sshd: SshdServer, key: Path, cert: Path, why: str) -> None:
    """Login fails, and sshd's log says why (so it is refused for the right reason)."""
    offset = sshd.log_size()
    result = sshd.login(key, cert)
    assert result.returncode == 255
    assert 'Permission denied' in result.stderr
    assert 'jit-ok' not in result.stdout
    deadline = time.monotonic() + 3
    while why not in sshd.log_since(offset) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert why in sshd.log_since(offset)


def keygen_list(krl_path: Path) -> str:
    """``ssh-keygen -Q -l``: the KRL's contents as OpenSSH reads them."""
    assert SSH_KEYGEN is not None
    return subprocess.run(
        [SSH_KEYGEN, '-Q', '-l', '-f', str(krl_path)], capture_output=True, text=True, check=True
    ).stdout


def keygen_query(krl_path: Path, cert: Path) -> subprocess.CompletedProcess[str]:
    assert SSH_KEYGEN is not None
    return subprocess.run([SSH_KEYGEN, '-Q', '-f', str(krl_path), str(cert)], capture_output=True, text=True)


def test_valid_certificate_logs_in_and_runs_the_command(sshd, settings, user_key, tmp_path):
    """The certificate carries the key, principals, key ID, serial and validity; sshd lets it in."""
    key, public = user_key
    request = make_request()
    before = time.time()
    details = provider_for(public).grant(request, settings=settings, params=PARAMS)

    cert = certificate(details)
    assert details['certificate'].startswith('ssh-ed25519-cert-v01@openssh.com AAAA')
    assert details['certificate'].endswith(f' jit:{request.id}:alex@example.com')
    assert details['save_as'] == '~/.ssh/id_ed25519-cert.pub'
    assert details['command'] == f'ssh -o CertificateFile=~/.ssh/id_ed25519-cert.pub {sshd.user}@127.0.0.1'
    assert cert.key_id == f'jit:{request.id}:alex@example.com'.encode()
    assert cert.serial == serial_for(request.id)
    assert cert.valid_principals == [b'deploy']
    assert cert.extensions == {b'permit-pty': b''}
    assert cert.critical_options == {}
    assert before - 61 <= cert.valid_after <= before - 59
    assert before + 600 <= cert.valid_before <= time.time() + 600 + 31  # duration + activation slack
    assert cert.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH) == (
        ' '.join(public.split()[:2]).encode()
    )
    cert.verify_cert_signature()

    assert_logs_in(sshd, key, save(details, tmp_path))


def test_principal_the_server_does_not_accept_is_refused(sshd, settings, user_key, tmp_path):
    """A valid certificate of the trusted CA, for a principal not in the server's list: no login."""
    key, public = user_key
    details = provider_for(public).grant(make_request(), settings=settings, params={'principals': ['intruder']})
    assert_refused(sshd, key, save(details, tmp_path), 'Certificate does not contain an authorized principal')


def test_expired_certificate_is_refused(sshd, settings, user_key, tmp_path):
    """The end is in the certificate: sshd refuses it afterwards by itself, with no revoke."""
    key, public = user_key
    request = make_request(expires_at=time.time() + 4)
    details = provider_for(public).grant(request, settings=settings, params=PARAMS)
    cert = save(details, tmp_path)
    assert_logs_in(sshd, key, cert)

    time.sleep(max(0.0, certificate(details).valid_before - time.time()) + 1.1)
    assert_refused(sshd, key, cert, 'Certificate invalid: expired')


def test_revoked_certificate_is_refused_and_others_still_work(sshd, settings, user_key, tmp_path):
    """Revoke puts the serial in the KRL: that certificate is refused, another of the same CA still logs in."""
    key, public = user_key
    provider = provider_for(public)
    revoked, kept = make_request(), make_request()
    revoked_cert = save(provider.grant(revoked, settings=settings, params=PARAMS), tmp_path, 'revoked-cert.pub')
    kept_cert = save(provider.grant(kept, settings=settings, params=PARAMS), tmp_path, 'kept-cert.pub')
    assert_logs_in(sshd, key, revoked_cert)

    provider.revoke(revoked, settings=settings, params=PARAMS)
    provider.revoke(revoked, settings=settings, params=PARAMS)  # twice is success

    assert_refused(sshd, key, revoked_cert, 'revoked by file')
    assert_logs_in(sshd, key, kept_cert)
    answer = keygen_query(sshd.krl, revoked_cert)
    assert answer.returncode != 0
    assert 'REVOKED' in answer.stdout
    answer = keygen_query(sshd.krl, kept_cert)
    assert answer.returncode == 0
    assert 'ok' in answer.stdout
    assert keygen_list(sshd.krl).count(f'serial: {serial_for(revoked.id)}\n') == 1


def test_grant_again_signs_again_and_extend_signs_to_the_new_end(sshd, settings, user_key, tmp_path):
    """Same serial every time; extend returns a certificate that ends at the new ``expires_at`` and logs in."""
    key, public = user_key
    provider = provider_for(public)
    request = make_request(expires_at=time.time() + 600)
    first = certificate(provider.grant(request, settings=settings, params=PARAMS))
    second = certificate(provider.grant(request, settings=settings, params=PARAMS))
    assert first.serial == second.serial == serial_for(request.id)
    assert first.valid_before == second.valid_before == int(request.expires_at or 0)

    longer = dataclasses.replace(request, expires_at=time.time() + 1800)
    details = provider.extend(longer, settings=settings, params=PARAMS)
    extended = certificate(details)
    assert extended.serial == first.serial
    assert extended.valid_before == int(longer.expires_at or 0)
    assert_logs_in(sshd, key, save(details, tmp_path))


def test_revoke_after_the_certificate_ended_writes_nothing(settings, tmp_path):
    """An expired certificate needs no KRL entry: a late revoke (past the end plus slack) is success, file untouched."""
    settings = {**settings, 'revoked_keys': str(tmp_path / 'late.krl')}
    request = make_request(expires_at=time.time() - 3600)
    SshProvider().revoke(request, settings=settings, params=PARAMS)
    assert not (tmp_path / 'late.krl').exists()


def test_krl_keeps_what_was_already_in_it(ca, settings, user_key, tmp_path):
    """A KRL made by ssh-keygen (serials, a range, a key ID, another CA) keeps all of it after jit adds a serial."""
    assert SSH_KEYGEN is not None
    other = ed25519.Ed25519PrivateKey.generate()
    (tmp_path / 'ca.pub').write_text(public_line(ca) + '\n')
    (tmp_path / 'other.pub').write_text(public_line(other) + '\n')
    (tmp_path / 'ours.spec').write_text('serial: 7\nserial: 100-110\nid: bob\n')
    (tmp_path / 'theirs.spec').write_text('serial: 8\n')
    path = tmp_path / 'revoked.krl'
    subprocess.run([SSH_KEYGEN, '-q', '-k', '-f', str(path), '-s', str(tmp_path / 'ca.pub'),
                    str(tmp_path / 'ours.spec')], check=True)  # fmt: skip
    subprocess.run([SSH_KEYGEN, '-q', '-k', '-u', '-f', str(path), '-s', str(tmp_path / 'other.pub'),
                    str(tmp_path / 'theirs.spec')], check=True)  # fmt: skip
    request = make_request()
    _, public = user_key
    details = provider_for(public).grant(request, settings=settings, params=PARAMS)

    SshProvider().revoke(request, settings={**settings, 'revoked_keys': str(path)}, params=PARAMS)

    ours, theirs = keygen_list(path).split('# CA key ')[1:]
    if 'serial: 8' in ours.splitlines():  # a whole line: jit's own serial may start with 8 (serial: 8123...)
        ours, theirs = theirs, ours
    for line in ('serial: 7', 'serial: 100-110', 'id: bob', f'serial: {serial_for(request.id)}'):
        assert line in ours
    assert theirs.strip().endswith('serial: 8')
    assert 'REVOKED' in keygen_query(path, save(details, tmp_path)).stdout


def test_missing_registered_key_is_a_clear_permanent_error(settings):
    """No lookup, or no key registered: the requester is told how to register one."""
    for provider in (SshProvider(), provider_for(None), provider_for('  ')):
        with pytest.raises(PermanentProviderError) as caught:
            provider.grant(make_request(), settings=settings, params=PARAMS)
        assert caught.value.user_message == 'register your SSH public key first: /jit ssh-key ssh-ed25519 AAAA…'


@pytest.mark.parametrize(
    ('public', 'says'),
    [
        ('not a key at all', 'could not be read'),
        ('ssh-ed25519 AAAA', 'could not be read'),
        ('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL8zZm9v!!!', 'could not be read'),
        ('ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAABAQ', 'could not be read'),
        (f'sk-ssh-ed25519@openssh.com {SK_BLOB} yubikey', 'type sk-ssh-ed25519@openssh.com is not supported'),
        ('ssh-dss AAAAB3NzaC1kc3MAAACBAO alex@old', 'type ssh-dss is not supported'),
        (public_line(rsa.generate_private_key(public_exponent=65537, key_size=1024)), '1024 bits'),
    ],
    ids=['garbage', 'truncated', 'bad-base64', 'type-mismatch', 'security-key', 'dsa', 'short-rsa'],
)
def test_malformed_or_unsupported_public_key_is_a_clear_permanent_error(settings, public, says):
    """The message says what is wrong and how to fix it; nothing is signed."""
    with pytest.raises(PermanentProviderError) as caught:
        provider_for(public).grant(make_request(), settings=settings, params=PARAMS)
    assert says in caught.value.user_message
    assert '/jit ssh-key' in caught.value.user_message


@pytest.mark.parametrize(
    ('params', 'says'),
    [
        ({}, 'needs `principals`'),
        ({'principals': []}, 'needs `principals`'),
        ({'principals': ['de ploy']}, 'invalid principal'),
        ({'principals': ['deploy'], 'extensions': ['permit-everything']}, 'unknown extensions permit-everything'),
    ],
)
def test_role_without_usable_principals_or_extensions_is_refused(settings, user_key, params, says):
    """Never a certificate without principals: OpenSSH would accept it for every login name."""
    with pytest.raises(PermanentProviderError) as caught:
        provider_for(user_key[1]).grant(make_request(), settings=settings, params=params)
    assert says in caught.value.user_message


def test_grant_needs_a_revoked_keys_file_it_can_write(settings, user_key, tmp_path):
    """No certificate that could not be revoked: no KRL setting, or a folder that is not there, fails the grant."""
    provider = provider_for(user_key[1])
    without = {k: v for k, v in settings.items() if k != 'revoked_keys'}
    with pytest.raises(PermanentProviderError, match='needs a `revoked_keys` setting'):
        provider.grant(make_request(), settings=without, params=PARAMS)
    elsewhere = {**settings, 'revoked_keys': str(tmp_path / 'no-such-folder' / 'revoked.krl')}
    with pytest.raises(PermanentProviderError, match='revoke would fail'):
        provider.grant(make_request(), settings=elsewhere, params=PARAMS)


def test_ca_key_never_reaches_logs_errors_or_details(ca, settings, user_key, tmp_path, monkeypatch):
    """Grant, extend, revoke and every broken-CA error: no piece of the CA private key in what they say."""
    pem = private_pem(ca)
    raw = ca.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    body = [line for line in pem.splitlines() if line and not line.startswith('-----')]
    secrets = [*body, raw.hex(), base64.b64encode(raw).decode(), pem]
    provider = provider_for(user_key[1])
    said: list[str] = []
    assert SSH_KEYGEN is not None
    (tmp_path / 'ca').write_text(pem)
    (tmp_path / 'ca').chmod(0o600)
    subprocess.run([SSH_KEYGEN, '-q', '-p', '-N', 'pass', '-f', str(tmp_path / 'ca')], check=True, capture_output=True)
    pkcs8 = ca.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.BestAvailableEncryption(b'pass')).decode()  # fmt: skip
    broken = [pem[: len(pem) // 2], pem.replace(body[1], body[1][::-1]), (tmp_path / 'ca').read_text(), pkcs8,
              public_line(ca)]  # fmt: skip
    with capture_logs() as logs:
        request = make_request(expires_at=time.time() + 600)
        said.extend(map(str, provider.grant(request, settings=settings, params=PARAMS).values()))
        said.extend(map(str, provider.extend(request, settings=settings, params=PARAMS).values()))
        provider.revoke(request, settings=settings, params=PARAMS)
        for bad in broken:
            monkeypatch.setenv(CA_ENV, bad)
            for call in (provider.grant, provider.revoke):
                with pytest.raises(PermanentProviderError) as caught:
                    call(request, settings=settings, params=PARAMS)
                assert 'ca_key' in caught.value.user_message
                # no parser error chained on, for a traceback to print
                assert caught.value.__cause__ is None
                assert caught.value.__context__ is None or caught.value.__suppress_context__
                said.extend([str(caught.value), repr(caught.value)])
    said.extend(repr(entry) for entry in logs)
    assert {entry['event'] for entry in logs} >= {'ssh.certificate_signed', 'ssh.certificate_revoked'}
    for text in said:
        for secret in secrets:
            assert secret not in text


def test_rsa_user_key_with_an_ecdsa_ca(tmp_path, monkeypatch):
    """Other key types: an ECDSA CA signs an RSA user key; ssh-keygen reads the certificate as jit meant it."""
    assert SSH_KEYGEN is not None
    ca = ec.generate_private_key(ec.SECP256R1())
    monkeypatch.setenv(CA_ENV, private_pem(ca))
    user = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    request = make_request()
    settings = {'ca_key': f'env:{CA_ENV}', 'revoked_keys': str(tmp_path / 'k.krl'), 'host': 'bastion.example.com'}
    details = provider_for(public_line(user)).grant(request, settings=settings, params={'principals': 'deploy'})

    assert details['save_as'] == '~/.ssh/id_rsa-cert.pub'
    assert details['command'] == 'ssh -o CertificateFile=~/.ssh/id_rsa-cert.pub deploy@bastion.example.com'
    certificate(details).verify_cert_signature()
    shown = subprocess.run([SSH_KEYGEN, '-L', '-f', str(save(details, tmp_path))], capture_output=True, text=True,
                           check=True).stdout  # fmt: skip
    assert 'Type: ssh-rsa-cert-v01@openssh.com user certificate' in shown
    assert 'Signing CA: ECDSA' in shown
    assert f'Key ID: "jit:{request.id}:alex@example.com"' in shown
    assert f'Serial: {serial_for(request.id)}' in shown


def test_list_live_is_none(settings):
    """Certificates live on the requester's machine: nothing at the servers to reconcile with."""
    assert SshProvider().list_live('prod-ssh', settings=settings) is None


def test_revokes_at_the_same_moment_all_land(ca, tmp_path):
    """Workers revoking at once take turns on the KRL's lock: no serial is lost to a read-modify-write race."""
    path = str(tmp_path / 'revoked.krl')
    blob = base64.b64decode(public_line(ca).split()[1])
    serials = [1000 + 7 * i for i in range(16)]  # apart: ssh-keygen -l would print neighbours as a range
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda serial: krl.add_serials(path, blob, [serial]), serials))
    assert krl.read_serials(path, blob) == set(serials)
    assert keygen_list(Path(path)).count('serial: ') == len(serials)


def test_a_text_revoked_keys_file_is_refused_not_overwritten(settings, tmp_path):
    """sshd also reads a text list of keys; jit does not turn it into a KRL behind the operator's back."""
    path = tmp_path / 'revoked_keys'
    path.write_text('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl old@laptop\n')
    before = path.read_bytes()
    with pytest.raises(PermanentProviderError, match='not a binary KRL'):
        SshProvider().revoke(make_request(), settings={**settings, 'revoked_keys': str(path)}, params=PARAMS)
    assert path.read_bytes() == before
