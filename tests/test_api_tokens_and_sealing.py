"""API tokens (configured as hashes) and the sealed box that carries a pipeline's access details."""

from __future__ import annotations

import json

import pytest

from bot.adapters.sealed_box import ALG, Recipient, SealedBoxError, public_key, seal
from bot.api.tokens import hash_token, new_token, parse_tokens, pipeline_for
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
