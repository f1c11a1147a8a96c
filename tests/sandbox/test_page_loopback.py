"""The sandbox page's server answers only the page itself: no other site, directly (CSRF) or by DNS rebinding.

The local Slack runs on its thread with the probe Bolt app behind it, as the other page tests run it; the
requests are raw HTTP (``http.client``) so each test sets the ``Host``, ``Origin`` and ``Content-Type`` a
browser on another site would send. A refused request must reach nothing: no signed request to the app, no
Web API call, no Teams card.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from slack_sdk import WebClient

from bot.sandbox.local_slack import LocalSlack
from bot.sandbox.page import attach_teams
from bot.sandbox.teams_channel import TeamsChannels

from ._bolt_probe import BoltProbe

EVIL = 'rebind.attacker.example'
ADAPTIVE = {'type': 'AdaptiveCard', 'version': '1.4', 'body': [{'type': 'TextBlock', 'text': 'hi'}]}
CARD = {
    'type': 'message',
    'attachments': [{'contentType': 'application/vnd.microsoft.card.adaptive', 'content': ADAPTIVE}],
}


def _send(
    slack: LocalSlack, method: str, path: str, body: Any = None, *, host: str | None = None, **headers: str
) -> tuple[int, str]:
    """One request to the local Slack's server as a browser would send it; `host` defaults to the right one."""
    port = urllib.parse.urlsplit(slack.base_url).port
    connection = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
    try:
        data = None if body is None else json.dumps(body).encode()
        sent = {
            'Host': f'127.0.0.1:{port}' if host is None else host,
            **{k.replace('_', '-'): v for k, v in headers.items()},
        }
        connection.request(method, path, body=data, headers=sent)
        answer = connection.getresponse()
        return answer.status, answer.read().decode()
    finally:
        connection.close()


@pytest.fixture(name='page')
def _page(threaded_slack: LocalSlack, threaded_bolt: BoltProbe) -> Iterator[dict[str, Any]]:
    """The page with a Teams channel, and a message in sam's DM with an Approve button the probe answers."""
    teams = TeamsChannels()
    attach_teams(threaded_slack, teams)
    button = {'type': 'button', 'action_id': 'approve', 'value': 'req-1', 'text': {'type': 'plain_text', 'text': 'OK'}}
    posted = WebClient(token=threaded_slack.bot_token, base_url=threaded_slack.api_url).chat_postMessage(
        channel='U0SAM', text='approve?', blocks=[{'type': 'actions', 'elements': [button]}]
    )
    click = {
        'user': 'U0SAM',
        'channel': posted['channel'],
        'ts': posted['ts'],
        'action_id': 'approve',
        'value': 'req-1',
    }
    yield {
        'slack': threaded_slack, 'bolt': threaded_bolt, 'teams': teams,
        'calls': len(threaded_slack.calls), 'messages': len(threaded_slack.workspace.messages(posted['channel'])),
        'posts': {
            '/sandbox/command': {'user': 'U0DANA', 'text': 'request demo-app read 2m x'},
            '/sandbox/click': click,
            '/sandbox/submit': {'user': 'U0SAM', 'view_id': 'V0NONE', 'values': {}},
            '/sandbox/teams/ops?sig=' + urllib.parse.quote(teams.key, safe=''): CARD,
        },
        'dm': posted['channel'],
    }  # fmt: skip


def _nothing_happened(page: dict[str, Any]) -> None:
    """No signed request reached the app, no Web API call was made, no message or card was added."""
    slack = page['slack']
    assert page['bolt'].seen == {}
    assert len(slack.calls) == page['calls']
    assert len(slack.workspace.messages(page['dm'])) == page['messages']
    assert page['teams'].posts == []


POSTS = ['/sandbox/command', '/sandbox/click', '/sandbox/submit', '/sandbox/teams/ops']


@pytest.mark.parametrize('path', ['/', '/sandbox/state?user=U0SEC', '/sandbox/mail/1', '/api/api.test'])
@pytest.mark.parametrize('name', [EVIL, '127.0.0.1.nip.io', 'localhost', '127.0.0.1:1', ''])
def test_a_foreign_host_reads_nothing(page: dict[str, Any], path: str, name: str) -> None:
    """DNS rebinding: the page, a user's state (DMs, inbox), a mail and the Web API all refuse another name."""
    port = urllib.parse.urlsplit(page['slack'].base_url).port
    host = name if name in {'', 'localhost', '127.0.0.1:1'} else f'{name}:{port}'
    status, text = _send(page['slack'], 'GET', path, host=host)
    assert status == 421, text
    assert text.startswith('jit sandbox answers only at http://127.0.0.1:') and 'D0' not in text


@pytest.mark.parametrize('path', POSTS)
def test_a_foreign_host_changes_nothing(page: dict[str, Any], path: str) -> None:
    """The attacker's page posts the right JSON with its own Host and Origin: refused before anything runs."""
    port = urllib.parse.urlsplit(page['slack'].base_url).port
    path = next(p for p in page['posts'] if p.startswith(path))
    status, text = _send(page['slack'], 'POST', path, page['posts'][path], host=f'{EVIL}:{port}',
                         Origin=f'http://{EVIL}:{port}', Content_Type='application/json')  # fmt: skip
    assert status == 421, text
    _nothing_happened(page)


@pytest.mark.parametrize('content_type', ['text/plain', 'application/x-www-form-urlencoded', None])
@pytest.mark.parametrize('path', POSTS)
def test_a_post_that_is_not_json_is_refused(page: dict[str, Any], path: str, content_type: str | None) -> None:
    """A body a cross-site form or `fetch` can send without a preflight is refused, though it reads as JSON."""
    path = next(p for p in page['posts'] if p.startswith(path))
    headers = {} if content_type is None else {'Content_Type': content_type}
    status, text = _send(page['slack'], 'POST', path, page['posts'][path], **headers)
    assert (status, text) == (415, 'jit sandbox takes only application/json here\n')
    _nothing_happened(page)


@pytest.mark.parametrize('origin', [f'http://{EVIL}', 'null', 'https://127.0.0.1:{port}', 'http://localhost:{port}'])
@pytest.mark.parametrize('path', POSTS)
def test_a_post_from_another_origin_is_refused(page: dict[str, Any], path: str, origin: str) -> None:
    """JSON with the right Host but another page's Origin (another site, a sandboxed frame, another scheme or name)."""
    port = urllib.parse.urlsplit(page['slack'].base_url).port
    path = next(p for p in page['posts'] if p.startswith(path))
    status, text = _send(page['slack'], 'POST', path, page['posts'][path], Origin=origin.format(port=port),
                         Content_Type='application/json')  # fmt: skip
    assert (status, text) == (403, 'jit sandbox takes this only from its own page\n')
    _nothing_happened(page)


@pytest.mark.parametrize('name', ['127.0.0.1', 'localhost', 'LocalHost', '[::1]'])
def test_the_page_itself_still_works_at_each_loopback_name(page: dict[str, Any], name: str) -> None:
    """The page's own requests (its Host, its Origin or none, JSON) read the state, type, click and post cards."""
    slack, bolt = page['slack'], page['bolt']
    port = urllib.parse.urlsplit(slack.base_url).port
    here = {'host': f'{name}:{port}', 'Origin': f'http://{name}:{port}', 'Content_Type': 'application/json'}
    status, html = _send(slack, 'GET', '/', host=here['host'])
    assert status == 200 and 'jit sandbox' in html
    status, state = _send(slack, 'GET', '/sandbox/state?user=U0SAM', host=here['host'])
    assert status == 200 and json.loads(state)['user'] == 'U0SAM'
    status, ack = _send(slack, 'POST', '/sandbox/command', page['posts']['/sandbox/command'], **here)
    assert status == 200 and json.loads(ack)['status'] == 200
    assert bolt.seen['command'][0]['user_id'] == 'U0DANA'
    status, clicked = _send(slack, 'POST', '/sandbox/click', page['posts']['/sandbox/click'], **here)
    assert status == 200 and json.loads(clicked)['status'] == 200
    assert bolt.seen['approve'][0]['user']['id'] == 'U0SAM'
    teams_path = next(p for p in page['posts'] if p.startswith('/sandbox/teams/'))
    no_origin = {'host': here['host'], 'Content_Type': 'application/json'}  # jit posts its cards without one
    assert _send(slack, 'POST', teams_path, CARD, **no_origin)[0] == 202
    assert [post.channel for post in page['teams'].posts] == ['ops']
