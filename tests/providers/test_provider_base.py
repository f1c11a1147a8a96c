"""``resolve_settings`` reads the environment only for the settings a provider declares secret.

The loader refuses ``env:`` anywhere else; this is the second line: a policy that slipped past it (a grant
recorded under an older jit, a provider called by hand) still cannot turn a display setting into a secret.
"""

from __future__ import annotations

import time

import pytest

from bot.core.errors import PermanentProviderError
from bot.core.model import AccessRequest, Principal
from workers.providers.base import resolve_settings

ENV = {'SLACK_SIGNING_SECRET': 's3cr3t-signing', 'PG_ADMIN_DSN': 'postgresql://admin:pw@db/app'}


def test_a_secret_setting_is_read_from_the_environment():
    conf = resolve_settings({'dsn': 'env:PG_ADMIN_DSN', 'connect_host': 'db.example.com'}, ENV, secret={'dsn'})
    assert conf == {'dsn': 'postgresql://admin:pw@db/app', 'connect_host': 'db.example.com'}


def test_env_in_a_setting_that_is_not_secret_is_refused_without_reading_it():
    with pytest.raises(PermanentProviderError) as info:
        resolve_settings({'dsn': 'env:PG_ADMIN_DSN', 'connect_host': 'env:SLACK_SIGNING_SECRET'}, ENV, secret={'dsn'})
    assert 'connect_host' in str(info.value) and 's3cr3t' not in str(info.value)


def test_without_a_declaration_only_the_builtin_secret_settings_are_read():
    """A caller that declares nothing gets the settings some built-in provider declares secret, and no more."""
    assert resolve_settings({'dsn': 'env:PG_ADMIN_DSN'}, ENV)['dsn'].startswith('postgresql://')
    with pytest.raises(PermanentProviderError):
        resolve_settings({'database': 'env:SLACK_SIGNING_SECRET'}, ENV)


def a_request():
    return AccessRequest(
        id='r-1',
        requester=Principal(slack_id='U0ALEX', email='alex@example.com'),
        resource='r',
        role='read',
        duration=60,
        reason='x',
        rule='r',
        policy_version='v',
        created_at=time.time(),
    )


#: A display setting of each built-in provider, beside what the provider needs to get as far as reading it.
DISPLAY = {
    'webhook': {'url': 'http://127.0.0.1:9/hook', 'secret': 'x', 'shared': 'env:SLACK_SIGNING_SECRET'},
    'postgres': {'dsn': 'env:PG_ADMIN_DSN', 'connect_host': 'env:SLACK_SIGNING_SECRET'},
    'ssh': {'ca_key': 'env:NO_SUCH_KEY', 'revoked_keys': '/tmp/krl', 'host': 'env:SLACK_SIGNING_SECRET'},
    'aws_iam': {'region': 'env:SLACK_SIGNING_SECRET'},
    'aws_sso': {'instance_arn': 'arn', 'identity_store_id': 'd-1', 'start_url': 'env:SLACK_SIGNING_SECRET'},
}


@pytest.mark.parametrize('provider', sorted(DISPLAY))
def test_every_builtin_provider_refuses_env_in_a_display_setting(provider, monkeypatch):
    """Called the way a grant calls it, each provider stops before it uses (or shows) the environment's value."""
    from workers.providers.registry import ProviderRegistry

    monkeypatch.setenv('SLACK_SIGNING_SECRET', 's3cr3t-signing')
    monkeypatch.setenv('PG_ADMIN_DSN', 'postgresql://admin:pw@127.0.0.1:9/app')
    request = a_request()
    params = {'grant': 'reader', 'principals': ['ops'], 'group': 'g', 'policy_arn': 'arn:aws:iam::aws:policy/x',
              'permission_set_arn': 'arn:ps', 'account_id': '123456789012'}  # fmt: skip
    with pytest.raises(PermanentProviderError) as info:
        ProviderRegistry()(provider).grant(request, settings=DISPLAY[provider], params=params)
    assert 'not secret' in str(info.value) and 's3cr3t' not in str(info.value)


@pytest.mark.parametrize('url', ['not a url?token=SECRET', 'http://host:port/SECRET', 'http://[::1/SECRET',
                                 'http://exa mple.com/?token=SECRET', 'file:///etc/SECRET'])  # fmt: skip
def test_a_bad_webhook_url_is_refused_without_quoting_it(url):
    """The URL is a secret setting: urllib's ValueError quotes it, so it must not reach a log or a message."""
    from workers.providers.webhook import WebhookProvider

    with pytest.raises(PermanentProviderError) as info:
        WebhookProvider(timeout=1).grant(a_request(), settings={'url': url, 'secret': 's'}, params={})
    assert 'SECRET' not in str(info.value) and '`url`' in str(info.value)
    assert info.value.__cause__ is None and (info.value.__context__ is None or info.value.__suppress_context__)
