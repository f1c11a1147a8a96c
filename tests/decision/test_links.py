"""Decision links (bot/links.py): a token decides for the one address, request and digest it was minted for, until
it expires, and nothing but the key makes one."""

from __future__ import annotations

import base64
import json

import pytest

from bot.links import MAX_TOKEN_LENGTH, LinkExpired, LinkRefused, LinkSigner

KEY = 'k' * 32
NOW = 1_800_000_000.0


def mint(signer: LinkSigner | None = None, **kw) -> str:
    fields = {'request_id': 'r-0001', 'email': 'Sec@Example.com', 'digest': 'abc123', 'via': 'email',
              'expires_at': NOW + 600} | kw  # fmt: skip
    return (signer or LinkSigner(KEY)).mint(**fields)


def test_a_token_says_who_it_was_sent_to_and_what_for():
    claims = LinkSigner(KEY).check(mint(), now=NOW)
    assert (claims.request_id, claims.email, claims.digest, claims.via) == ('r-0001', 'sec@example.com', 'abc123',
                                                                            'email')  # fmt: skip
    assert claims.personal and claims.expires_at == NOW + 600


def test_two_tokens_for_the_same_approver_differ_so_each_is_used_once():
    a, b = LinkSigner(KEY).check(mint(), now=NOW), LinkSigner(KEY).check(mint(), now=NOW)
    assert a.nonce != b.nonce


def test_a_teams_channel_token_names_nobody():
    claims = LinkSigner(KEY).check(mint(email='', via='teams'), now=NOW)
    assert not claims.personal and claims.via == 'teams'


def test_every_changed_character_is_refused():
    token = mint()
    signer = LinkSigner(KEY)
    for i, char in enumerate(token):
        for other in {'A', 'b', '0', '.', '-'} - {char}:
            changed = token[:i] + other + token[i + 1 :]
            try:
                claims = signer.check(changed, now=NOW)
            except LinkRefused:
                continue
            # base64 may decode two spellings of the same bytes (the last character's unused bits): same claims only
            assert claims == signer.check(token, now=NOW), f'character {i} changed to {other!r} was taken'


def test_a_token_made_with_another_key_is_refused():
    with pytest.raises(LinkRefused, match='not valid'):
        LinkSigner(KEY).check(mint(LinkSigner('x' * 32)), now=NOW)


def test_a_rewritten_email_with_the_old_signature_is_refused():
    version, body, mac = mint().split('.')
    claims = json.loads(base64.urlsafe_b64decode(body + '=' * (-len(body) % 4)))
    claims['e'] = 'eve@example.com'
    forged = base64.urlsafe_b64encode(json.dumps(claims, separators=(',', ':')).encode()).rstrip(b'=').decode()
    with pytest.raises(LinkRefused):
        LinkSigner(KEY).check(f'{version}.{forged}.{mac}', now=NOW)


def test_an_expired_token_is_refused_as_expired():
    with pytest.raises(LinkExpired) as refused:
        LinkSigner(KEY).check(mint(expires_at=NOW - 1), now=NOW)
    assert refused.value.status == 410


NOT_TOKENS = [
    '',
    'v1',
    'v1..',
    'v1.a.b',
    'v2.' + 'a' * 20 + '.' + 'b' * 43,
    'x' * (MAX_TOKEN_LENGTH + 1),
    'v1.%%%.###',
    'v1.\u00e9\u00e9.\u00e9',
]


@pytest.mark.parametrize('token', NOT_TOKENS)
def test_what_is_not_a_token_is_refused_in_words(token):
    with pytest.raises(LinkRefused) as refused:
        LinkSigner(KEY).check(token, now=NOW)
    assert refused.value.status == 403 and str(refused.value)


def test_an_old_key_still_checks_during_a_rotation_but_signs_nothing():
    old = mint(LinkSigner('o' * 32))
    rotated = LinkSigner(KEY, old_keys=('o' * 32,))
    assert rotated.check(old, now=NOW).email == 'sec@example.com'
    with pytest.raises(LinkRefused):
        LinkSigner('o' * 32).check(mint(rotated), now=NOW)


def test_a_short_key_is_refused():
    with pytest.raises(ValueError, match='32'):
        LinkSigner('short')


def test_a_signed_token_with_an_endless_expiry_is_refused():
    signer = LinkSigner(KEY)
    for forever in (float('inf'), float('nan')):
        body = json.dumps({'r': 'r-1', 'e': 'sam@example.com', 'd': 'x', 'v': 'email', 'x': forever, 'n': 'n'}).encode()
        token = f'v1.{base64.urlsafe_b64encode(body).rstrip(b"=").decode()}.'
        token += base64.urlsafe_b64encode(signer._mac(signer._key, body)).rstrip(b'=').decode()
        with pytest.raises(LinkRefused):
            signer.check(token, now=NOW)
