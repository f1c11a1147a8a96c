"""Settings: every problem named at once; Socket Mode needs no signing secret; the request limits."""

from __future__ import annotations

import pytest

from bot.core.errors import ConfigError
from bot.settings import load_settings

BASE = {'SLACK_BOT_TOKEN': 'xoxb-1', 'SLACK_SIGNING_SECRET': 's'}


def test_defaults():
    settings = load_settings(BASE)
    assert (settings.requests_per_hour, settings.max_open_requests, settings.slack_app_token) == (20, 5, None)


def test_socket_mode_needs_no_signing_secret_http_does():
    settings = load_settings({'SLACK_BOT_TOKEN': 'xoxb-1', 'SLACK_APP_TOKEN': 'xapp-1-a'})
    assert settings.slack_app_token == 'xapp-1-a'
    with pytest.raises(ConfigError) as refused:
        load_settings({'SLACK_BOT_TOKEN': 'xoxb-1'})
    assert 'SLACK_SIGNING_SECRET is not set' in refused.value.user_message


def test_every_bad_setting_is_named_at_once():
    with pytest.raises(ConfigError) as refused:
        load_settings({**BASE, 'SLACK_APP_TOKEN': 'xoxb-wrong-kind', 'JIT_REQUESTS_PER_HOUR': 'lots',
                       'JIT_MAX_OPEN_REQUESTS': '2.5'})  # fmt: skip
    assert refused.value.problems == [
        'SLACK_APP_TOKEN must be an app-level token starting with xapp-',
        "JIT_REQUESTS_PER_HOUR='lots' is not a number",
        "JIT_MAX_OPEN_REQUESTS='2.5' must be a whole number",
    ]


def test_zero_turns_a_limit_off():
    settings = load_settings({**BASE, 'JIT_REQUESTS_PER_HOUR': '0', 'JIT_MAX_OPEN_REQUESTS': '0'})
    assert (settings.requests_per_hour, settings.max_open_requests) == (0, 0)


@pytest.mark.parametrize('key', ['PORT', 'JIT_REQUESTS_PER_HOUR', 'JIT_MAX_OPEN_REQUESTS', 'JIT_SWEEP_INTERVAL',
                                 'JIT_AUDIT_S3_RETENTION_DAYS'])  # fmt: skip
@pytest.mark.parametrize('value', ['1e999', 'nan', '-inf', 'Infinity', '9' * 5000])
def test_numbers_that_are_not_finite_are_named_not_a_traceback(key, value):
    """float() reads inf and nan (and 1e999 as inf): each is a problem named like any other, not an
    OverflowError or ValueError from int() at start-up."""
    with pytest.raises(ConfigError) as refused:
        load_settings({**BASE, key: value})
    [problem] = refused.value.problems
    assert problem.startswith(key) and len(problem) < 200, problem[:300]


@pytest.mark.parametrize('key', ['PORT', 'JIT_METRICS_PORT'])
@pytest.mark.parametrize('value', ['\u00b2', '\u0661\u0662\u0663', '3000.5', '70000', '-1', '1e6'])
def test_a_port_is_a_whole_number_of_ascii_digits_from_1_to_65535(key, value):
    """'\u00b2'.isdigit() is true and int() refuses it; int() reads Arabic-Indic digits; a fraction or a number past
    65535 is no port: each is a problem named at start-up, not a traceback or a port nobody meant."""
    with pytest.raises(ConfigError) as refused:
        load_settings({**BASE, key: value})
    [problem] = refused.value.problems
    assert problem.startswith(key) and 'port number (1 to 65535)' in problem, problem


def test_ports_as_written_load():
    settings = load_settings({**BASE, 'PORT': '8080', 'JIT_METRICS_PORT': '9100'})
    assert (settings.port, settings.metrics_port) == (8080, 9100)


def test_sentinels_name_the_primary_and_redis_url_gives_db_password_and_tls():
    settings = load_settings({**BASE, 'REDIS_SENTINELS': 's1:26379, [::1]:26380,s3:26381',
                              'REDIS_SENTINEL_MASTER': 'jit', 'REDIS_SENTINEL_PASSWORD': 'sp',
                              'REDIS_URL': 'rediss://:pw@ignored:6379/3'})  # fmt: skip
    assert settings.redis_sentinels == (('s1', 26379), ('::1', 26380), ('s3', 26381))
    assert (settings.redis_sentinel_master, settings.redis_sentinel_password) == ('jit', 'sp')
    plain = load_settings(BASE)
    assert (plain.redis_sentinels, plain.redis_sentinel_master, plain.redis_sentinel_password) == ((), None, None)


@pytest.mark.parametrize(
    ('env', 'problem'),
    [
        ({'REDIS_SENTINELS': 's1:26379'}, 'REDIS_SENTINELS is set but REDIS_SENTINEL_MASTER is not'),
        ({'REDIS_SENTINEL_MASTER': 'jit'}, 'REDIS_SENTINEL_MASTER is set but REDIS_SENTINELS is not'),
        ({'REDIS_SENTINEL_PASSWORD': 'sp'}, 'REDIS_SENTINEL_PASSWORD is set but REDIS_SENTINELS is not'),
        ({'REDIS_SENTINELS': 's1', 'REDIS_SENTINEL_MASTER': 'jit'}, "REDIS_SENTINELS: 's1' is not host:port"),
        ({'REDIS_SENTINELS': 's1:99999', 'REDIS_SENTINEL_MASTER': 'jit'}, "REDIS_SENTINELS: 's1:99999' is not"),
        ({'REDIS_SENTINELS': ':26379', 'REDIS_SENTINEL_MASTER': 'jit'}, "REDIS_SENTINELS: ':26379' is not"),
        ({'REDIS_SENTINELS': 's1:\u00b2', 'REDIS_SENTINEL_MASTER': 'jit'}, "REDIS_SENTINELS: 's1:\u00b2' is not"),
        ({'REDIS_SENTINELS': 's1:' + '9' * 5000, 'REDIS_SENTINEL_MASTER': 'jit'}, 'REDIS_SENTINELS: '),
        ({'REDIS_SENTINELS': ' , ', 'REDIS_SENTINEL_MASTER': 'jit'}, 'names no sentinel'),
        ({'REDIS_SENTINELS': 's1:26379', 'REDIS_SENTINEL_MASTER': 'jit', 'REDIS_URL': 'unix:///tmp/r.sock'},
         'REDIS_URL is a unix:// socket'),
    ],
)  # fmt: skip
def test_half_set_or_malformed_sentinels_are_named(env, problem):
    with pytest.raises(ConfigError) as refused:
        load_settings({**BASE, **env})
    [said] = refused.value.problems
    assert problem in said, said


def test_redis_clients_follow_the_settings():
    """Without sentinels a client is REDIS_URL's, as before; with them, the primary of the service, with
    REDIS_URL's db, password and TLS, and the sentinels' own password."""
    from redis.sentinel import SentinelConnectionPool, SentinelManagedSSLConnection

    from bot.adapters.redis_connect import redis_client, redis_location

    plain = load_settings({**BASE, 'REDIS_URL': 'redis://:pw@h:6390/2'})
    client = redis_client(plain, decode_responses=True, socket_timeout=3)
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs['host'], kwargs['port'], kwargs['db'], kwargs['password']) == ('h', 6390, 2, 'pw')
    assert redis_location(plain) == 'redis://:***@h:6390/2'
    ha = load_settings({**BASE, 'REDIS_URL': 'rediss://:pw@ignored/4', 'REDIS_SENTINELS': 's1:1,s2:2',
                        'REDIS_SENTINEL_MASTER': 'jit', 'REDIS_SENTINEL_PASSWORD': 'sp'})  # fmt: skip
    client = redis_client(ha, decode_responses=False, socket_timeout=3)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == 'jit'
    assert pool.connection_class is SentinelManagedSSLConnection
    assert (pool.connection_kwargs['db'], pool.connection_kwargs['password']) == (4, 'pw')
    assert 'host' not in pool.connection_kwargs and not pool.connection_kwargs.get('decode_responses')
    sentinels = pool.sentinel_manager.sentinels
    assert [s.connection_pool.connection_kwargs['port'] for s in sentinels] == [1, 2]
    assert all(s.connection_pool.connection_kwargs['password'] == 'sp' for s in sentinels)
    assert redis_location(ha) == 'sentinel://s1:1,s2:2/jit'


MAIL = {'JIT_SMTP_URL': 'smtp://jit:s%40cret-pw@mail.example.com:587', 'JIT_MAIL_FROM': 'jit <jit@example.com>',
        'JIT_PUBLIC_URL': 'https://jit.example.com/', 'JIT_LINK_KEY': 'k' * 32}  # fmt: skip


def test_mail_and_link_settings_are_read_and_kept_out_of_the_repr():
    settings = load_settings({**BASE, **MAIL})
    assert (settings.smtp_url, settings.mail_from) == (MAIL['JIT_SMTP_URL'], 'jit <jit@example.com>')
    assert settings.public_url == 'https://jit.example.com'  # trailing slash stripped: links are added to it
    assert settings.link_key == 'k' * 32 and settings.smtp_ca_file is None
    assert 's%40cret-pw' not in repr(settings) and 'kkkk' not in repr(settings)
    unset = load_settings(BASE)
    assert (unset.smtp_url, unset.mail_from, unset.public_url, unset.link_key) == (None, None, None, None)


@pytest.mark.parametrize('url', ['http://localhost:3000', 'http://127.0.0.1:8080/jit/', 'http://[::1]:3000',
                                 'https://jit.example.com/approvals'])  # fmt: skip
def test_a_public_url_may_be_plain_http_on_loopback_only(url):
    assert load_settings({**BASE, 'JIT_PUBLIC_URL': url}).public_url == url.rstrip('/')


@pytest.mark.parametrize(
    ('env', 'problem'),
    [
        ({'JIT_SMTP_URL': 'http://jit:s%40cret-pw@mail.example.com'}, 'JIT_SMTP_URL must start with smtp://'),
        ({'JIT_SMTP_URL': 'smtp://jit:s/cret-pw@mail.example.com'}, 'JIT_SMTP_URL has a port that is not a number'),
        ({'JIT_SMTP_URL': 'smtp://jit:s%40cret-pw@mail.example.com:70000'}, 'JIT_SMTP_URL has a port'),
        ({'JIT_SMTP_URL': 'smtp://jit:s%40cret-pw@'}, 'JIT_SMTP_URL names no host'),
        ({'JIT_SMTP_URL': 'smtp+insecure://jit:s%40cret-pw@relay:25'}, 'smtp+insecure:// takes no user name'),
        ({'JIT_SMTP_URL': 'smtps://jit:s%40cret-pw@mail.example.com/x?y'}, 'JIT_SMTP_URL has a path, query'),
        ({'JIT_MAIL_FROM': None}, 'JIT_MAIL_FROM is not set'),
        ({'JIT_MAIL_FROM': 'jit'}, "JIT_MAIL_FROM='jit' is not an email address"),
        ({'JIT_MAIL_FROM': 'jit <nobody>'}, 'is not an email address'),
        ({'JIT_PUBLIC_URL': 'http://jit.example.com'}, 'must be https://'),
        ({'JIT_PUBLIC_URL': 'jit.example.com'}, 'must be an https:// URL'),
        ({'JIT_PUBLIC_URL': 'https://jit.example.com:99999'}, 'must be an https:// URL'),
        ({'JIT_PUBLIC_URL': 'https://jit.example.com/?a=1'}, 'must have no query (?) or fragment (#)'),
        ({'JIT_PUBLIC_URL': 'https://jit.example.com/#top'}, 'must have no query (?) or fragment (#)'),
        ({'JIT_PUBLIC_URL': 'https://u:s%40cret-pw@jit.example.com'}, 'must not hold a user name or password'),
        ({'JIT_LINK_KEY': 's@cret-pw-31-characters-long-xx'}, 'JIT_LINK_KEY is 31 characters; it must be at least 32'),
        ({'JIT_SMTP_CA_FILE': '/nonexistent/ca.pem'}, "JIT_SMTP_CA_FILE='/nonexistent/ca.pem': No such file"),
    ],
)  # fmt: skip
def test_mail_settings_that_cannot_work_are_named_without_quoting_a_secret(env, problem):
    environ = {**BASE, **MAIL, **env}
    environ = {k: v for k, v in environ.items() if v is not None}
    with pytest.raises(ConfigError) as refused:
        load_settings(environ)
    [said] = refused.value.problems
    assert problem in said, said
    assert 'cret-pw' not in said and 'cret-pw' not in str(refused.value)


def test_a_ca_file_must_hold_a_certificate(tmp_path):
    (tmp_path / 'empty.pem').write_text('not a certificate\n')
    with pytest.raises(ConfigError) as refused:
        load_settings({**BASE, 'JIT_SMTP_CA_FILE': str(tmp_path / 'empty.pem')})
    assert refused.value.problems == [f"JIT_SMTP_CA_FILE={str(tmp_path / 'empty.pem')!r}: holds no PEM certificate"]
    from tests.support.smtp_server import make_ca_file

    ca = make_ca_file(tmp_path / 'ca.pem')
    assert load_settings({**BASE, 'JIT_SMTP_CA_FILE': str(ca)}).smtp_ca_file == str(ca)
