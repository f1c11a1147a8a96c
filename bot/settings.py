"""Settings: read once from the environment by the ``jit`` command, then passed down.

:func:`load_settings` gathers every problem and raises one :class:`~bot.core.errors.ConfigError`
naming them all, so an operator fixes the environment in one go instead of one crash at a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

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
    policy_dir: str = 'policies'
    #: Channel ID that mirrors every audit event; empty: no mirror (the record is in Redis).
    audit_channel: str | None = None
    port: int = 3000
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
    log_level: str = 'INFO'
    #: ``json`` for machines, ``console`` for people; default: console on a terminal.
    log_format: str | None = None
    #: Prefix of every Redis key, so one Redis can hold several jit installations (and tests).
    redis_prefix: str = 'jit:'


def _number(environ: Mapping[str, str], key: str, default: float, problems: list[str], *, low: float) -> float:
    raw = environ.get(key)
    if raw in (None, ''):
        return default
    try:
        value = float(raw)
    except ValueError:
        problems.append(f'{key}={raw!r} is not a number')
        return default
    if value < low:
        problems.append(f'{key}={raw!r} must be at least {low:g}')
    return value


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
        if not secret:
            problems.append('SLACK_SIGNING_SECRET is not set (Basic Information > App Credentials)')
    app_token = environ.get('SLACK_APP_TOKEN') or None
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
    port = _number(environ, 'PORT', 3000, problems, low=0)
    sweep = _number(environ, 'JIT_SWEEP_INTERVAL', 2.0, problems, low=0.1)
    reminder = _number(environ, 'JIT_REMINDER_AFTER', 900.0, problems, low=0)
    reconcile = _number(environ, 'JIT_RECONCILE_INTERVAL', 300.0, problems, low=1)
    idle = _number(environ, 'JIT_IDLE_INTERVAL', 60.0, problems, low=1)
    level = (environ.get('LOG_LEVEL') or 'INFO').upper()
    if level not in ('DEBUG', 'INFO', 'WARNING', 'ERROR'):
        problems.append(f'LOG_LEVEL={level!r} must be DEBUG, INFO, WARNING or ERROR')
    fmt = environ.get('JIT_LOG_FORMAT') or None
    if fmt not in (None, 'json', 'console'):
        problems.append(f'JIT_LOG_FORMAT={fmt!r} must be json or console')
    if problems:
        raise ConfigError(problems)
    return Settings(
        slack_bot_token=token, slack_signing_secret=secret, slack_app_token=app_token, slack_api_url=api_url,
        redis_url=redis_url, policy_dir=environ.get('JIT_POLICY_DIR') or 'policies',
        audit_channel=environ.get('JIT_AUDIT_CHANNEL') or None, port=int(port),
        data_dir=environ.get('JIT_DATA_DIR') or '.jit', sweep_interval=sweep, reminder_after=reminder,
        reconcile_interval=reconcile, idle_interval=idle,
        log_level=level, log_format=fmt,
        redis_prefix=environ.get('JIT_REDIS_PREFIX') or 'jit:',
    )  # fmt: skip
