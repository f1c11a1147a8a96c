"""API tokens (configured as hashes) and the sealed box that carries a pipeline's access details."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from bot.api.server import ApiError, parse_new_request
from bot.api.tokens import hash_token, new_token, parse_tokens, pipeline_for
from bot.sealed_box import ALG, Recipient, SealedBoxError, public_key, seal
from bot.settings import load_settings

BASE = {'SLACK_BOT_TOKEN': 'xoxb-1', 'SLACK_SIGNING_SECRET': 's'}


def test_a_token_maps_to_its_pipeline_and_nothing_else_does():
    deploy, nightly = new_token(), new_token()
    settings = load_settings(
        {**BASE, 'JIT_API_TOKENS': f'deploy:{hash_token(deploy)},\n nightly:{hash_token(nightly)}'}
    )
    assert pipeline_for(deploy, settings.api_tokens) == 'deploy'
    assert pipeline_for(nightly, settings.api_tokens) == 'nightly'
    assert pipeline_for(deploy[:-1], settings.api_tokens) is None
    assert pipeline_for(hash_token(deploy), settings.api_tokens) is None  # the hash is not a token
    assert deploy not in repr(settings)


@pytest.mark.parametrize(('raw', 'says'), [
    ('deploy:{token}', 'is a token, not its hash'),
    ('{token}', 'is a token, not its hash'),
    ('deploy:sha256:abc', 'expected NAME:sha256:<64 hex digits>'),
    ('-bad:{hash}', 'pipeline name must be'),
    ('deploy:{hash},deploy:{hash2}', 'names pipeline \'deploy\' twice'),
    ('a:{hash},b:{hash}', 'gives one token to both'),
])  # fmt: skip
def test_bad_token_settings_name_the_entry_and_never_quote_a_token(raw, says):
    token = new_token()
    raw = raw.format(token=token, hash=hash_token(token), hash2=hash_token(new_token()))
    problems: list[str] = []
    parse_tokens(raw, problems)
    assert len(problems) == 1 and says in problems[0], problems
    assert token not in problems[0]


def test_sealed_details_open_only_with_the_key_and_request_they_were_sealed_for():
    me, someone = Recipient(), Recipient()
    box = json.loads(seal(me.public_key, {'password': 's3cret'}, request_id='r-aaaaaaaa'))
    assert box['alg'] == ALG and 's3cret' not in json.dumps(box)
    assert me.open(box, request_id='r-aaaaaaaa') == {'password': 's3cret'}
    with pytest.raises(SealedBoxError, match='not sealed to this key'):
        someone.open(box, request_id='r-aaaaaaaa')
    with pytest.raises(SealedBoxError, match='not sealed to this key'):
        me.open(box, request_id='r-bbbbbbbb')  # moved to another request
    tampered = dict(box, ciphertext=box['ciphertext'][:-2] + ('AA' if box['ciphertext'][-2:] != 'AA' else 'BB'))
    with pytest.raises(SealedBoxError):
        me.open(tampered, request_id='r-aaaaaaaa')
    with pytest.raises(SealedBoxError):
        me.open({'alg': 'none', 'ciphertext': 's3cret'}, request_id='r-aaaaaaaa')


@pytest.mark.parametrize('key', [None, 42, '', 'not base64!', 'AAAA', 'A' * 44 + 'AAAA', 'A' * 100])
def test_public_keys_that_are_not_x25519_are_refused(key):
    with pytest.raises(SealedBoxError, match='public_key'):
        public_key(key)


# --- the public key is checked when filing; the box is standard HPKE -------------------------------------------

P = 2**255 - 19


def _u(value: int) -> str:
    """An X25519 public key (a u-coordinate, little-endian) as the API takes it."""
    return base64.urlsafe_b64encode(value.to_bytes(32, 'little')).rstrip(b'=').decode()


ORDER_8 = [int.from_bytes(bytes.fromhex(h), 'little') for h in (
    'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
    '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
)]  # fmt: skip
#: Every one gives the all-zero shared secret whatever the private key (X25519 raises for it).
LOW_ORDER = {'all zeros ("A" * 43)': _u(0), 'one': _u(1), 'order 8 (a)': _u(ORDER_8[0]),
             'order 8 (b)': _u(ORDER_8[1]), 'p - 1': _u(P - 1)}  # fmt: skip
#: Another string for a point: u >= p, or the top bit X25519 ignores set.
NON_CANONICAL = {'p': _u(P), 'p + 1': _u(P + 1), 'top bit on zero': _u(2**255),
                 'top bit on a good key': _u(int.from_bytes(base64.urlsafe_b64decode(Recipient().public_key + '='),
                                                            'little') | 2**255)}  # fmt: skip


def test_the_low_order_points_listed_are_low_order():
    """The list itself is right: X25519 with any of them refuses (the shared secret would be all zeros)."""
    assert LOW_ORDER['all zeros ("A" * 43)'] == 'A' * 43
    for key in LOW_ORDER.values():
        with pytest.raises(ValueError):
            X25519PrivateKey.generate().exchange(X25519PublicKey.from_public_bytes(_unpad(key)))


@pytest.mark.parametrize('key', [*LOW_ORDER.values(), *NON_CANONICAL.values()], ids=[*LOW_ORDER, *NON_CANONICAL])
def test_low_order_and_non_canonical_public_keys_are_refused_when_filing(key):
    with pytest.raises(SealedBoxError, match='public_key'):
        public_key(key)
    with pytest.raises(ApiError) as refused:
        parse_new_request({'resource': 'demo-app', 'public_key': key})
    assert refused.value.status == 422 and set(refused.value.extra['errors']) == {'public_key'}
    with pytest.raises(SealedBoxError):
        seal(key, {'password': 's3cret'}, request_id='r-aaaaaaaa')


@pytest.mark.parametrize('key', ['A' * 42 + '!', '!' + Recipient().public_key[1:], Recipient().public_key + '==',
                                 Recipient().public_key[:20] + '.' + Recipient().public_key[20:]],
                         ids=['42+!', '!+42', 'two =', 'a dot inside'])  # fmt: skip
def test_public_keys_with_characters_base64_decoding_would_skip_are_refused(key):
    with pytest.raises(SealedBoxError, match='public_key'):
        public_key(key)


def test_details_that_are_not_json_are_not_sealed():
    key = Recipient().public_key
    for details in ({'cert': b'bytes'}, {'ttl': float('nan')}):
        with pytest.raises(SealedBoxError, match='JSON'):
            seal(key, details, request_id='r-aaaaaaaa')


def _unpad(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + '=' * (-len(text) % 4))


class Rfc9180:
    """Single-shot HPKE, mode Base, DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / ChaCha20-Poly1305, written out
    from RFC 9180 sections 4, 5.1 and 5.2 with HMAC-SHA256 and the bare primitives: a second implementation,
    independent of both jit's code and cryptography's ``hpke`` module, to open jit's boxes with."""

    KEM_SUITE = b'KEM' + (0x0020).to_bytes(2, 'big')
    SUITE = b'HPKE' + (0x0020).to_bytes(2, 'big') + (0x0001).to_bytes(2, 'big') + (0x0003).to_bytes(2, 'big')

    @staticmethod
    def extract(salt: bytes, label: bytes, ikm: bytes, suite: bytes) -> bytes:
        return hmac.new(salt, b'HPKE-v1' + suite + label + ikm, hashlib.sha256).digest()

    @staticmethod
    def expand(prk: bytes, label: bytes, info: bytes, length: int, suite: bytes) -> bytes:
        labeled = length.to_bytes(2, 'big') + b'HPKE-v1' + suite + label + info
        out, block, counter = b'', b'', 1
        while len(out) < length:
            block = hmac.new(prk, block + labeled + bytes([counter]), hashlib.sha256).digest()
            out, counter = out + block, counter + 1
        return out[:length]

    @classmethod
    def key_and_nonce(cls, dh: bytes, enc: bytes, pk_r: bytes, info: bytes) -> tuple[bytes, bytes]:
        eae_prk = cls.extract(b'', b'eae_prk', dh, cls.KEM_SUITE)
        shared = cls.expand(eae_prk, b'shared_secret', enc + pk_r, 32, cls.KEM_SUITE)
        context = (b'\x00' + cls.extract(b'', b'psk_id_hash', b'', cls.SUITE)
                   + cls.extract(b'', b'info_hash', info, cls.SUITE))  # fmt: skip
        secret = cls.extract(shared, b'secret', b'', cls.SUITE)
        return cls.expand(secret, b'key', context, 32, cls.SUITE), cls.expand(secret, b'base_nonce', context, 12,
                                                                             cls.SUITE)  # fmt: skip

    @classmethod
    def open(cls, sk_r: bytes, enc: bytes, ct: bytes, *, info: bytes, aad: bytes = b'') -> bytes:
        private = X25519PrivateKey.from_private_bytes(sk_r)
        dh = private.exchange(X25519PublicKey.from_public_bytes(enc))
        pk_r = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        key, nonce = cls.key_and_nonce(dh, enc, pk_r, info)
        return ChaCha20Poly1305(key).decrypt(nonce, ct, aad)  # sequence number 0: the base nonce itself

    @classmethod
    def seal(cls, pk_r: bytes, pt: bytes, *, info: bytes, aad: bytes = b'') -> tuple[bytes, bytes]:
        ephemeral = X25519PrivateKey.generate()
        enc = ephemeral.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        key, nonce = cls.key_and_nonce(ephemeral.exchange(X25519PublicKey.from_public_bytes(pk_r)), enc, pk_r, info)
        return enc, ChaCha20Poly1305(key).encrypt(nonce, pt, aad)


def test_the_independent_implementation_matches_the_rfc_9180_test_vector():
    """RFC 9180 appendix A.2.1 (this suite, mode Base), first encryption: the implementation above is right."""
    opened = Rfc9180.open(
        bytes.fromhex('8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb'),
        bytes.fromhex('1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a'),
        bytes.fromhex('1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1b51a28'),
        info=bytes.fromhex('4f6465206f6e2061204772656369616e2055726e'), aad=bytes.fromhex('436f756e742d30'),
    )  # fmt: skip
    assert opened == b'Beauty is truth, truth beauty'


def test_a_sealed_box_is_rfc_9180_hpke_that_an_independent_implementation_opens():
    """What a pipeline in another language does: its own HPKE library, the request ID as info, no aad."""
    private = X25519PrivateKey.generate()
    raw_public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    details = {'password': 's3cret', 'pem': '-----BEGIN-----\nab\n', 'port': 5432, 'ünï': 'cødé'}
    box = json.loads(seal(base64.urlsafe_b64encode(raw_public).rstrip(b'=').decode(), details,
                          request_id='r-k3m9x2pq'))  # fmt: skip
    assert box['alg'] == ALG == 'HPKE-Base-X25519-SHA256-ChaCha20Poly1305' and set(box) == {'alg', 'enc', 'ciphertext'}
    assert all('=' not in box[f] for f in ('enc', 'ciphertext')) and len(box['enc']) == 43
    sk = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                               serialization.NoEncryption())  # fmt: skip
    plain = Rfc9180.open(sk, _unpad(box['enc']), _unpad(box['ciphertext']), info=b'r-k3m9x2pq')
    assert json.loads(plain) == details
    with pytest.raises(InvalidTag):  # the request ID is bound in: moved to another request, it does not open
        Rfc9180.open(sk, _unpad(box['enc']), _unpad(box['ciphertext']), info=b'r-aaaaaaaa')


def test_jit_ci_opens_a_box_sealed_by_an_independent_implementation():
    """And the other way: what any RFC 9180 sender seals to the key jit ci sent, jit ci opens."""
    me = Recipient()
    enc, ct = Rfc9180.seal(_unpad(me.public_key), json.dumps({'token': 't0k'}).encode(), info=b'r-k3m9x2pq')
    box = {'alg': ALG, 'enc': base64.urlsafe_b64encode(enc).rstrip(b'=').decode(),
           'ciphertext': base64.urlsafe_b64encode(ct).rstrip(b'=').decode()}  # fmt: skip
    assert me.open(box, request_id='r-k3m9x2pq') == {'token': 't0k'}
    with pytest.raises(SealedBoxError, match='not sealed to this key for this request'):
        me.open(box, request_id='r-aaaaaaaa')
    for bad_enc in (LOW_ORDER['all zeros ("A" * 43)'], 'A' * 42, box['enc'] + '.'):
        with pytest.raises(SealedBoxError):
            me.open({**box, 'enc': bad_enc}, request_id='r-k3m9x2pq')
