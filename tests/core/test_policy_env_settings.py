"""``env:NAME`` is allowed only in the settings a provider declares secret.

A display-only setting (postgres ``connect_host``, ssh ``host``) written ``env:SLACK_SIGNING_SECRET`` once
passed ``jit policy validate --strict`` and sent the worker's secret to the requester in the granted DM.
Now the loader refuses it (``file:line:col``), ``jit policy validate`` exits 1, and the running processes keep
the last good policy.
"""

from __future__ import annotations

import pytest

from bot.cli import main
from bot.core.errors import PolicyConfigError
from bot.core.policy_lint import lint
from bot.core.policy_loader import BUILTIN_PROVIDERS, BUILTIN_SECRET_SETTINGS, build_policy

POSTGRES = """\
resources:
  analytics:
    provider: postgres
    settings:
      dsn: env:PG_ADMIN_DSN
      connect_host: env:SLACK_SIGNING_SECRET
    roles: {read: {grant: pg_read_all_data}}
requests:
  - name: r
    approvers: [U0SAM]
"""


def problems_of(text: str, **kwargs) -> list[str]:
    with pytest.raises(PolicyConfigError) as info:
        build_policy({'p.yaml': text}, **kwargs)
    return info.value.problems


def test_env_in_a_display_setting_is_a_problem_at_its_value():
    assert problems_of(POSTGRES) == [
        'p.yaml:6:21: `connect_host` of resource `analytics` is written `env:SLACK_SIGNING_SECRET`, but the '
        'postgres provider reads the environment only for its secret settings (dsn): a setting that is not '
        'secret may be shown to requesters, so write its value here'
    ]


def test_env_in_a_secret_setting_loads():
    policy = build_policy({'p.yaml': POSTGRES.replace('env:SLACK_SIGNING_SECRET', 'db.internal')})
    assert policy.resources['analytics'].settings['dsn'] == 'env:PG_ADMIN_DSN'


@pytest.mark.parametrize('provider, key', [
    ('webhook', 'reconcile'), ('postgres', 'database'), ('postgres', 'role_prefix'), ('ssh', 'host'),
    ('ssh', 'user'), ('ssh', 'revoked_keys'), ('aws_sso', 'start_url'), ('aws_iam', 'role_arn'),
    ('aws_sso', 'region'),
], ids=lambda v: v)  # fmt: skip
def test_every_non_secret_setting_of_every_builtin_provider_refuses_env(provider, key):
    text = f'resources:\n  r:\n    provider: {provider}\n    settings: {{{key}: env:SLACK_BOT_TOKEN}}\n    roles: [x]\n'
    problems = problems_of(text)
    assert len(problems) == 1 and problems[0].startswith('p.yaml:4:') and f'`{key}` of resource `r`' in problems[0]


@pytest.mark.parametrize('provider, key', [
    (provider, key) for provider, keys in sorted(BUILTIN_SECRET_SETTINGS.items()) for key in sorted(keys)
])  # fmt: skip
def test_every_declared_secret_setting_accepts_env(provider, key):
    build_policy({'p.yaml': f'resources:\n  r:\n    provider: {provider}\n    settings: {{{key}: env:X}}\n'
                            '    roles: [x]\n'})  # fmt: skip


def test_a_plugin_provider_declares_its_own_secret_settings():
    """Providers from the ``jit.providers`` entry point: what the wiring hands in; none declared, none allowed."""
    text = 'resources:\n  r:\n    provider: vault\n    settings: {token: env:T, addr: env:A}\n    roles: [x]\n'
    problems = problems_of(text, providers={**BUILTIN_SECRET_SETTINGS, 'vault': frozenset({'token'})})
    assert len(problems) == 1 and '`addr` of resource `r`' in problems[0] and '(token)' in problems[0]
    problems = problems_of(text, providers={*BUILTIN_PROVIDERS, 'vault'})
    assert len(problems) == 2 and 'reads the environment only for its secret settings (none)' in problems[0]


def test_the_builtin_declarations_are_the_providers_own():
    """The core keeps the declarations (it must not import the workers); each provider class states the same."""
    from workers.providers.aws_iam import AwsIamProvider
    from workers.providers.aws_sso import AwsSsoProvider
    from workers.providers.postgres import PostgresProvider
    from workers.providers.registry import provider_names
    from workers.providers.ssh import SshProvider
    from workers.providers.webhook import WebhookProvider

    classes = {c.name: c for c in (AwsIamProvider, AwsSsoProvider, PostgresProvider, SshProvider, WebhookProvider)}
    assert set(classes) == set(BUILTIN_PROVIDERS) == set(BUILTIN_SECRET_SETTINGS)
    assert {name: cls.secret_settings for name, cls in classes.items()} == dict(BUILTIN_SECRET_SETTINGS)
    names = provider_names()
    assert {name: names[name] for name in BUILTIN_PROVIDERS} == dict(BUILTIN_SECRET_SETTINGS)


def test_validate_exits_1_naming_file_and_line(tmp_path, capsys):
    """`jit policy validate`, even without --strict: the policy does not load."""
    (tmp_path / 'p.yaml').write_text(POSTGRES)
    assert main(['policy', 'validate', str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f'{tmp_path}/p.yaml:6:21: `connect_host` of resource `analytics` is written `env:'), out


def test_lint_no_longer_asks_for_env_where_it_is_refused():
    """ssh ``revoked_keys`` is a path, not a secret: lint once told people to write it as env:NAME."""
    text = ('resources:\n  bastion:\n    provider: ssh\n    settings: {ca_key: env:CA, revoked_keys: /etc/ssh/krl}\n'
            '    roles: {login: {principals: [ops]}}\nrequests:\n  - name: r\n    resources: [bastion]\n'
            '    requesters: [U0ALEX]\n    approvers: [U0SAM]\n')  # fmt: skip
    assert [f.code for f in lint(build_policy({'p.yaml': text}))] == []
    inline = text.replace('ca_key: env:CA', 'ca_key: "-----BEGIN OPENSSH PRIVATE KEY-----"')
    assert [f.code for f in lint(build_policy({'p.yaml': inline}))] == ['inline-secret']
