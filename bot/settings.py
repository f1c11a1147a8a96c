"""Settings: read once from the environment by the ``jit`` command, then passed down.

:func:`load_settings` gathers every problem and raises one :class:`~bot.core.errors.ConfigError`
naming them all, so an operator fixes the environment in one go instead of one crash at a time.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.core.errors import ConfigError

#: Slack's Web API; tests and ``jit sandbox`` point it at a local Slack. The trailing slash matters.
DEFAULT_SLACK_API_URL = 'https://slack.com/api/'


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the processes need. See the README's configuration table for each key."""

    #: The bot token (``xoxb-``): posts messages, reads users.
    slack_bot_token: str
    #: Verifies that requests come from Slack (HMAC of each request body).
    slack_signing_secret: str
    #: ``xapp-`` token: when set, Socket Mode instead of HTTP.
    slack_app_token: str | None = None
    slack_api_url: str = DEFAULT_SLACK_API_URL
    #: Left unset, ``jit sandbox`` starts a Redis of its own; the processes need one.
    redis_url: str = 'redis://127.0.0.1:6379/0'
    #: Sentinels (``REDIS_SENTINELS``, ``host:port`` pairs) that name the primary of ``redis_sentinel_master``;
    #: empty: ``redis_url`` is the Redis. With sentinels, ``redis_url`` gives only the db, password and TLS.
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_sentinel_master: str | None = None
    #: The sentinels' own password (``requirepass`` in sentinel.conf), when they have one.
    redis_sentinel_password: str | None = None
    policy_dir: str = 'policies'
    #: Channel ID that mirrors every audit event; empty: no mirror (the record is in Redis).
    audit_channel: str | None = None
    port: int = 3000
    #: Where ``jit worker`` serves ``/metrics`` (``JIT_METRICS_PORT``); unset: not served. ``jit serve`` serves
    #: it on ``PORT`` beside the health checks.
    metrics_port: int | None = None
    data_dir: str = '.jit'
    #: How often the sweeper looks for grants past their expiry. Revokes are at most this late
    #: when the scheduled job was lost; 2 s keeps "at most 5 s late" with room to spare.
    sweep_interval: float = 2.0
    #: When approvers are first reminded of a pending request; later reminders wait twice as long
    #: each time (15 min, 30 min, 1 h...), so a forgotten request is noticed without nagging.
    reminder_after: float = 900.0
    #: How often the worker asks providers what they hold and revokes what jit does not know as active.
    reconcile_interval: float = 300.0
    idle_interval: float = 60.0
    #: Processes of one ``jit worker`` that grant and revoke (its own and more): one revokes about 350 grants a
    #: second (Python's threads share one core). Default: 2 on a machine with 2 cores or more, else 1.
    worker_processes: int = 2
    #: Requests one person (or pipeline) may file per hour; 0: no limit. Keeps approvers' DMs usable
    #: against a script in a loop, and a person from asking the same thing over and over.
    requests_per_hour: int = 20
    #: Requests one person may have waiting for a decision at once; 0: no cap.
    max_open_requests: int = 5
    log_level: str = 'INFO'
    #: ``json`` for machines, ``console`` for people; default: console on a terminal.
    log_format: str | None = None
    #: Prefix of every Redis key, so one Redis can hold several jit installations (and tests).
    redis_prefix: str = 'jit:'
    #: Audit sinks (``workers.audit_sinks``), each optional, fed from the stream by the worker's pump.
    #: A file of JSON lines, fsync'd: a durable copy on the worker's disk (or a mounted volume).
    audit_file: str | None = None
    #: A SIEM's HTTP endpoint; each batch is signed with ``X-JIT-Signature`` (HMAC-SHA256 with the secret).
    audit_webhook_url: str | None = None
    audit_webhook_secret: str | None = None
    #: The S3 archive: batches and signed digests, under Object Lock where the bucket has it enabled.
    audit_s3_bucket: str | None = None
    #: Key prefix inside the bucket: empty, or ending with ``/``.
    audit_s3_prefix: str = ''
    #: For S3-compatible stores, VPC endpoints and tests; empty: AWS's own endpoint for the region.
    audit_s3_endpoint_url: str | None = None
    #: Object Lock (COMPLIANCE) retention of each archived object: nobody, root included, may delete it
    #: before. A year covers SOC 2 and ISO 27001 audit periods; raise it for longer obligations.
    audit_s3_retention_days: int = 365
    #: The Ed25519 private key (PEM, or the path of a PEM file) that signs the S3 digests; needed with S3.
    audit_digest_key: str | None = None
    #: Seconds after which events are trimmed from the Redis stream, once a durable sink (file or S3)
    #: holds them; None: the stream keeps everything (jit itself never deletes an event).
    audit_retention: float | None = None
    #: The pipelines that may use the HTTP API: ``{sha256 hash of the token: pipeline name}``
    #: (``JIT_API_TOKENS``, see ``bot.api.tokens``). Empty: the API answers 401 to everyone.
    api_tokens: dict[str, str] = field(default_factory=dict)
    #: Approvals by email and Teams (``bot.mail``, ``bot.links``). The mail server (``JIT_SMTP_URL``):
    #: ``smtp://user:pass@host:587`` (STARTTLS required), ``smtps://…:465`` (TLS from the start) or
    #: ``smtp+insecure://host:25`` (a relay on the same host only); unset: jit sends no mail.
    smtp_url: str | None = field(default=None, repr=False)
    #: The sender of jit's mail (``jit <jit@example.com>``): a domain whose SPF/DKIM the mail server passes.
    mail_from: str | None = None
    #: CA certificates (PEM) to trust for the mail server besides the system's: a private CA.
    smtp_ca_file: str | None = None
    #: Where people reach ``jit serve`` (``https://jit.example.com``, no trailing slash): decision links point here.
    public_url: str | None = None
    #: Signs decision links (HMAC-SHA256, ``bot.links``); changing it voids every link sent. At least 32 characters.
    link_key: str | None = field(default=None, repr=False)


def _number(environ: Mapping[str, str], key: str, default: float, problems: list[str], *, low: float) -> float:
    raw = environ.get(key)
    if raw in (None, ''):
        return default
    try:
        value = float(raw)
    except ValueError:
        problems.append(f'{key}={raw[:40]!r} is not a number')
        return default
    if not math.isfinite(value):  # float() reads inf and nan, and 1e999 or 400 digits as inf: int() would raise
        problems.append(f'{key}={raw[:40]!r} is not a finite number')
        return default
    if value < low:
        problems.append(f'{key}={raw!r} must be at least {low:g}')
    return value


def _is_port(text: str) -> bool:
    """1 to 65535 in ASCII digits (``'²'.isdigit()`` is true and ``int()`` refuses it; ``int()`` reads other
    scripts' digits, and refuses more than 4,300 of them)."""
    return text.isascii() and text.isdigit() and len(text) <= 5 and 0 < int(text) < 65536


def _port(environ: Mapping[str, str], key: str, default: int | None, problems: list[str]) -> int | None:
    """The port ``key`` names (see :func:`_is_port`); ``default`` when it is unset."""
    raw = (environ.get(key) or '').strip()
    if not raw:
        return default
    if not _is_port(raw):
        problems.append(f'{key}={raw[:40]!r} must be a port number (1 to 65535)')
        return default
    return int(raw)


def load_settings(environ: Mapping[str, str], *, require_slack: bool = True) -> Settings:
    """Build settings from ``environ``; raise ConfigError naming every missing or invalid key.

    Args:
        environ: usually ``os.environ``.
        require_slack: False for commands that never talk to Slack (``jit policy ...``).
    """
    problems: list[str] = []
    token = environ.get('SLACK_BOT_TOKEN', '')
    secret = environ.get('SLACK_SIGNING_SECRET', '')
    if require_slack:
        if not token:
            problems.append('SLACK_BOT_TOKEN is not set (the bot token, xoxb-...)')
        elif not token.startswith('xoxb-'):
            problems.append('SLACK_BOT_TOKEN must be a bot token starting with xoxb-')
    app_token = environ.get('SLACK_APP_TOKEN') or None
    if require_slack and not secret and not app_token:
        # Socket Mode needs no signing secret: the socket is opened with the app token instead.
        problems.append(
            'SLACK_SIGNING_SECRET is not set (Basic Information > App Credentials), nor SLACK_APP_TOKEN for Socket Mode'
        )
    if app_token and not app_token.startswith('xapp-'):
        problems.append('SLACK_APP_TOKEN must be an app-level token starting with xapp-')
    api_url = environ.get('SLACK_API_URL') or DEFAULT_SLACK_API_URL
    if not api_url.startswith(('http://', 'https://')):
        problems.append(f'SLACK_API_URL={api_url!r} must be an http(s) URL')
    elif not api_url.endswith('/'):
        api_url += '/'  # slack_sdk drops the last path part without it
    redis_url = environ.get('REDIS_URL') or 'redis://127.0.0.1:6379/0'
    if not redis_url.startswith(('redis://', 'rediss://', 'unix://')):
        problems.append(f'REDIS_URL={redis_url!r} must start with redis://, rediss:// or unix://')
    sentinels = sentinel_settings(environ, redis_url, problems)
    port = _port(environ, 'PORT', 3000, problems)
    metrics_port = _port(environ, 'JIT_METRICS_PORT', None, problems)
    sweep = _number(environ, 'JIT_SWEEP_INTERVAL', 2.0, problems, low=0.1)
    reminder = _number(environ, 'JIT_REMINDER_AFTER', 900.0, problems, low=0)
    reconcile = _number(environ, 'JIT_RECONCILE_INTERVAL', 300.0, problems, low=1)
    idle = _number(environ, 'JIT_IDLE_INTERVAL', 60.0, problems, low=1)
    processes = _number(environ, 'JIT_WORKER_PROCESSES', min(2, os.cpu_count() or 1), problems, low=1)
    if processes != int(processes) or processes > 64:
        problems.append(f'JIT_WORKER_PROCESSES={environ["JIT_WORKER_PROCESSES"]!r} must be a whole number from 1 to 64')
    per_hour = _number(environ, 'JIT_REQUESTS_PER_HOUR', 20, problems, low=0)
    max_open = _number(environ, 'JIT_MAX_OPEN_REQUESTS', 5, problems, low=0)
    for key, value in (('JIT_REQUESTS_PER_HOUR', per_hour), ('JIT_MAX_OPEN_REQUESTS', max_open)):
        if value != int(value):
            problems.append(f'{key}={environ[key]!r} must be a whole number')
    level = (environ.get('LOG_LEVEL') or 'INFO').upper()
    if level not in ('DEBUG', 'INFO', 'WARNING', 'ERROR'):
        problems.append(f'LOG_LEVEL={level!r} must be DEBUG, INFO, WARNING or ERROR')
    fmt = environ.get('JIT_LOG_FORMAT') or None
    if fmt not in (None, 'json', 'console'):
        problems.append(f'JIT_LOG_FORMAT={fmt!r} must be json or console')
    audit = _audit_settings(environ, problems)
    from bot.api.tokens import parse_tokens

    api_tokens = parse_tokens(environ.get('JIT_API_TOKENS') or '', problems)
    mail = _mail_settings(environ, problems)
    if problems:
        raise ConfigError(problems)
    return Settings(
        slack_bot_token=token, slack_signing_secret=secret, slack_app_token=app_token, slack_api_url=api_url,
        redis_url=redis_url, **sentinels, policy_dir=environ.get('JIT_POLICY_DIR') or 'policies',
        audit_channel=environ.get('JIT_AUDIT_CHANNEL') or None, port=port or 3000,
        metrics_port=metrics_port,
        data_dir=environ.get('JIT_DATA_DIR') or '.jit', sweep_interval=sweep, reminder_after=reminder,
        reconcile_interval=reconcile, idle_interval=idle, worker_processes=int(processes),
        requests_per_hour=int(per_hour),
        max_open_requests=int(max_open),
        log_level=level, log_format=fmt,
        redis_prefix=environ.get('JIT_REDIS_PREFIX') or 'jit:', api_tokens=api_tokens, **audit, **mail,
    )  # fmt: skip


def sentinel_settings(environ: Mapping[str, str], redis_url: str, problems: list[str]) -> dict[str, Any]:
    """``REDIS_SENTINELS``, ``REDIS_SENTINEL_MASTER`` and ``REDIS_SENTINEL_PASSWORD``: both of the first two or
    neither; each sentinel ``host:port`` (``[::1]:26379`` for IPv6)."""
    raw = (environ.get('REDIS_SENTINELS') or '').strip()
    master = (environ.get('REDIS_SENTINEL_MASTER') or '').strip() or None
    password = environ.get('REDIS_SENTINEL_PASSWORD') or None
    sentinels: list[tuple[str, int]] = []
    malformed = False
    for item in (part.strip() for part in raw.split(',')):
        if not item:
            continue
        host, _, port = item.rpartition(':')
        host = host.removeprefix('[').removesuffix(']')
        if not host or not _is_port(port):
            problems.append(f'REDIS_SENTINELS: {item[:60]!r} is not host:port (e.g. sentinel-1:26379)')
            malformed = True
            continue
        sentinels.append((host, int(port)))
    if raw and not sentinels and not malformed:
        problems.append(f'REDIS_SENTINELS={raw[:60]!r} names no sentinel (host:port,host:port,...)')
    if raw and master is None:
        problems.append('REDIS_SENTINELS is set but REDIS_SENTINEL_MASTER is not (the service name in the '
                        "sentinels' configuration, e.g. mymaster)")  # fmt: skip
    if master is not None and not raw:
        problems.append('REDIS_SENTINEL_MASTER is set but REDIS_SENTINELS is not (host:port,host:port,...)')
    if password is not None and not raw:
        problems.append('REDIS_SENTINEL_PASSWORD is set but REDIS_SENTINELS is not')
    if raw and redis_url.startswith('unix://'):
        problems.append('REDIS_URL is a unix:// socket, but REDIS_SENTINELS name the primary: use redis:// or '
                        'rediss:// (its db, password and TLS are used; its host is not)')  # fmt: skip
    return {'redis_sentinels': tuple(sentinels), 'redis_sentinel_master': master if raw else None,
            'redis_sentinel_password': password}  # fmt: skip


_BUCKET = re.compile(r'^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$')


def _audit_settings(environ: Mapping[str, str], problems: list[str]) -> dict[str, Any]:
    """The audit sinks' settings (``JIT_AUDIT_*``), each problem added to ``problems``; never quotes a secret."""
    from bot.audit.archive import DigestKeyError, load_private_key
    from bot.core.durations import DurationError, parse_duration

    out: dict[str, Any] = {}
    path = environ.get('JIT_AUDIT_FILE') or None
    if path is not None:
        folder = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path):
            problems.append(f'JIT_AUDIT_FILE={path!r} is a directory; name a file in it')
        elif not os.path.isdir(folder):
            problems.append(f'JIT_AUDIT_FILE={path!r}: the directory {folder} does not exist')
        elif not os.access(path if os.path.exists(path) else folder, os.W_OK):
            problems.append(f'JIT_AUDIT_FILE={path!r} is not writable by this process')
    out['audit_file'] = path
    url = environ.get('JIT_AUDIT_WEBHOOK_URL') or None
    secret = environ.get('JIT_AUDIT_WEBHOOK_SECRET') or None
    if url is not None and not url.startswith(('http://', 'https://')):
        problems.append('JIT_AUDIT_WEBHOOK_URL must be an http(s) URL')
    if url is not None and secret is None:
        problems.append('JIT_AUDIT_WEBHOOK_SECRET is not set (the SIEM checks X-JIT-Signature with it)')
    if secret is not None and url is None:
        problems.append('JIT_AUDIT_WEBHOOK_SECRET is set but JIT_AUDIT_WEBHOOK_URL is not')
    out.update(audit_webhook_url=url, audit_webhook_secret=secret)
    bucket = environ.get('JIT_AUDIT_S3_BUCKET') or None
    if bucket is not None and (not _BUCKET.match(bucket) or '..' in bucket):
        problems.append(f'JIT_AUDIT_S3_BUCKET={bucket!r} is not an S3 bucket name (3-63 of a-z, 0-9, dots, hyphens)')
    prefix = (environ.get('JIT_AUDIT_S3_PREFIX') or '').strip('/')
    endpoint = environ.get('JIT_AUDIT_S3_ENDPOINT_URL') or None
    if endpoint is not None and not endpoint.startswith(('http://', 'https://')):
        problems.append(f'JIT_AUDIT_S3_ENDPOINT_URL={endpoint!r} must be an http(s) URL')
    days = _number(environ, 'JIT_AUDIT_S3_RETENTION_DAYS', 365, problems, low=1)
    if days != int(days):
        problems.append(f'JIT_AUDIT_S3_RETENTION_DAYS={environ["JIT_AUDIT_S3_RETENTION_DAYS"]!r} must be whole days')
    key = environ.get('JIT_AUDIT_DIGEST_KEY') or None
    if key is not None:
        try:
            load_private_key(key)
        except DigestKeyError as exc:
            problems.append(f'JIT_AUDIT_DIGEST_KEY {exc}')
    elif bucket is not None:
        problems.append('JIT_AUDIT_DIGEST_KEY is not set: the S3 archive signs its digests with an Ed25519 key '
                        '(openssl genpkey -algorithm ed25519 -out audit-digest.pem)')  # fmt: skip
    out.update(audit_s3_bucket=bucket, audit_s3_prefix=prefix + '/' if prefix else '', audit_s3_endpoint_url=endpoint,
               audit_s3_retention_days=int(days), audit_digest_key=key)  # fmt: skip
    retention = environ.get('JIT_AUDIT_RETENTION') or None
    out['audit_retention'] = None
    if retention is not None:
        try:
            out['audit_retention'] = float(parse_duration(retention))
        except DurationError as exc:
            problems.append(f'JIT_AUDIT_RETENTION: {exc}')
    return out


#: Hosts a ``JIT_PUBLIC_URL`` may name over plain http: this machine only (the sandbox, tests).
LOOPBACK_HOSTS = frozenset({'localhost', '127.0.0.1', '::1'})


def _mail_settings(environ: Mapping[str, str], problems: list[str]) -> dict[str, Any]:
    """``JIT_SMTP_URL``, ``JIT_MAIL_FROM``, ``JIT_SMTP_CA_FILE``, ``JIT_PUBLIC_URL`` and ``JIT_LINK_KEY``, each
    problem added to ``problems``; never quotes the SMTP URL (it may hold a password) nor the link key."""
    import ssl
    from urllib.parse import urlsplit

    from bot.links import MIN_KEY_LENGTH
    from bot.mail.smtp import envelope_sender, parse_smtp_url

    smtp_url = environ.get('JIT_SMTP_URL') or None
    if smtp_url is not None:
        try:
            parse_smtp_url(smtp_url)
        except ValueError as exc:
            problems.append(f'JIT_SMTP_URL {exc}')
    mail_from = (environ.get('JIT_MAIL_FROM') or '').strip() or None
    if mail_from is not None:
        try:
            envelope_sender(mail_from)
        except ValueError as exc:
            problems.append(f'JIT_MAIL_FROM={mail_from[:80]!r} {exc}')
    elif smtp_url is not None:
        problems.append('JIT_MAIL_FROM is not set: the sender of approval mail (jit <jit@example.com>) is needed '
                        'with JIT_SMTP_URL')  # fmt: skip
    ca_file = environ.get('JIT_SMTP_CA_FILE') or None
    if ca_file is not None:
        try:
            ssl.create_default_context().load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError, ValueError) as exc:
            ssl_error = isinstance(exc, ssl.SSLError)  # an OSError too, whose strerror is OpenSSL's code
            why = (
                exc.strerror
                if isinstance(exc, OSError) and exc.strerror and not ssl_error
                else 'holds no PEM certificate'
            )
            problems.append(f'JIT_SMTP_CA_FILE={ca_file[:200]!r}: {why}')
    public_url = (environ.get('JIT_PUBLIC_URL') or '').strip() or None
    if public_url is not None:
        public_url = public_url.rstrip('/')
        parts = urlsplit(public_url)
        try:
            port_ok = parts.port != 0
        except ValueError:  # not a number, or over 65535
            port_ok = False
        shown = repr(public_url[:80])
        if parts.scheme not in ('https', 'http') or not parts.hostname or not port_ok:
            problems.append(f'JIT_PUBLIC_URL={shown} must be an https:// URL (https://jit.example.com)')
        elif parts.scheme == 'http' and parts.hostname not in LOOPBACK_HOSTS:
            problems.append(f'JIT_PUBLIC_URL={shown} must be https:// (decision links carry approvals); http:// '
                            'only for localhost, 127.0.0.1 or [::1]')  # fmt: skip
        elif parts.query or parts.fragment or '?' in public_url or '#' in public_url:
            problems.append(f'JIT_PUBLIC_URL={shown} must have no query (?) or fragment (#): links are added to it')
        elif parts.username is not None or parts.password is not None:
            problems.append('JIT_PUBLIC_URL must not hold a user name or password: every link in every email '
                            'would carry it')  # fmt: skip
        elif any(c.isspace() for c in public_url):
            problems.append(f'JIT_PUBLIC_URL={shown} must have no white space')
    link_key = environ.get('JIT_LINK_KEY') or None
    if link_key is not None and len(link_key) < MIN_KEY_LENGTH:
        problems.append(f'JIT_LINK_KEY is {len(link_key)} characters; it must be at least {MIN_KEY_LENGTH} '
                        '(openssl rand -hex 32)')  # fmt: skip
    return {'smtp_url': smtp_url, 'mail_from': mail_from, 'smtp_ca_file': ca_file, 'public_url': public_url,
            'link_key': link_key}  # fmt: skip
