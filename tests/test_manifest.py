"""``manifest.yml`` is what creates the Slack app: it must name every surface jit listens on."""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.core.commands import SUBCOMMANDS
from bot.ids import ActionId, CallbackId

MANIFEST = yaml.safe_load((Path(__file__).parent.parent / 'manifest.yml').read_text())
#: product.md §5, and nothing more: jit asks for no scope it does not use.
SCOPES = {'commands', 'chat:write', 'chat:write.public', 'im:write', 'users:read', 'users:read.email'}


def test_scopes_are_exactly_the_ones_jit_uses():
    assert set(MANIFEST['oauth_config']['scopes']['bot']) == SCOPES


def test_the_command_events_and_interactivity_all_reach_slack_events():
    [command] = MANIFEST['features']['slash_commands']
    settings = MANIFEST['settings']
    urls = {command['url'], settings['event_subscriptions']['request_url'], settings['interactivity']['request_url']}
    assert command['command'] == '/jit' and len(urls) == 1 and urls.pop().endswith('/slack/events')
    assert settings['interactivity']['is_enabled'] is True, 'buttons and modals need interactivity'
    assert command['should_escape'] is False, 'jit reads user IDs as sent, not escaped'


def test_the_home_tab_and_its_event_are_on():
    assert MANIFEST['features']['app_home']['home_tab_enabled'] is True
    assert 'app_home_opened' in MANIFEST['settings']['event_subscriptions']['bot_events']


def test_socket_mode_is_an_option_left_off():
    """HTTP by default; SLACK_APP_TOKEN (an app-level token with connections:write) would switch it on."""
    assert MANIFEST['settings']['socket_mode_enabled'] is False


def test_every_listener_id_is_namespaced():
    """Action and callback IDs carry ``jit.`` so another app's payload can never match a jit listener."""
    assert all(str(i).startswith('jit.') for i in (*ActionId, *CallbackId))


def test_the_usage_hint_names_every_subcommand_within_slacks_limit():
    """What Slack shows under ``/jit`` as it is typed: every subcommand jit answers, in at most 1,000 characters."""
    [command] = MANIFEST['features']['slash_commands']
    hint = command['usage_hint']
    named = {part.split()[0] for part in hint.split(' | ')}
    assert named == set(SUBCOMMANDS), f'missing {set(SUBCOMMANDS) - named}, unknown {named - set(SUBCOMMANDS)}'
    assert len(hint) <= 1000
