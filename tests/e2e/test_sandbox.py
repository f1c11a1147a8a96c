"""`jit sandbox` end to end: one command, then the whole request flow driven through the sandbox page's API.

The sandbox runs as a real subprocess (`python -m bot sandbox`, started by ``tests/support/jit_sandbox.py``) on a
Redis database of its own (db 14 of the test process's own Redis), so this checks the wiring `run_sandbox` does:
local Slack, webhook receiver, `jit serve` and `jit worker`, and the page routes a browser uses. The second test
follows the example policy's two-step rule outside Slack: the approval emails through the sandbox's SMTP server
to the Inbox, a decision from an email's link on jit's page, and the Teams channel's cards.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.jit_sandbox import jit_sandbox
from tests.support.processes import wait_until
from tests.support.redis_server import own_redis_url

pytestmark = [pytest.mark.e2e, pytest.mark.redis]
REDIS_URL = own_redis_url(14)
ALEX, SAM, SEC = 'U0ALEX', 'U0SAM', 'U0SEC'


def _get(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.status, answer.headers.get('Content-Type', ''), answer.read().decode()


def _post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method='POST',
                                     headers={'Content-Type': 'application/json'})  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


@pytest.fixture(name='sandbox')
def _sandbox(tmp_path) -> Iterator[str]:
    """`python -m bot sandbox` on a free port; yields the page URL it printed."""
    with jit_sandbox(tmp_path / 'jit', REDIS_URL) as url:
        yield url


def _state(base: str, user: str) -> dict[str, Any]:
    return json.loads(_get(f'{base}sandbox/state?user={user}')[2])


def test_sandbox_runs_the_request_flow(sandbox: str) -> None:
    """alex files through the page API, sam approves by clicking, the demo webhook grants, then revokes."""
    status, content_type, page = _get(sandbox)
    assert status == 200 and content_type.startswith('text/html') and 'jit sandbox' in page

    ack = _post(f'{sandbox}sandbox/command', {'user': ALEX, 'text': 'request demo-app read 15s trying the sandbox'})
    assert ack['status'] == 200 and 'Filed' in ack['text'], ack
    request_id = ack['text'].split('`')[1]

    def approve_button() -> tuple[dict[str, Any], dict[str, Any]] | None:
        dm = next(c for c in _state(sandbox, SAM)['channels'] if c['id'] == 'D0SAM')
        for message in dm['messages']:
            for button in message['buttons']:
                if button['action_id'] == 'jit.approve' and button['value'] == request_id:
                    return message, button
        return None

    message, button = wait_until(approve_button, timeout=15, interval=0.2, what="sam's Approve button")
    click = {'user': SAM, 'channel': message['channel'], 'ts': message['ts'], 'action_id': button['action_id'],
             'value': button['value']}  # fmt: skip
    clicked = _post(f'{sandbox}sandbox/click', click)
    assert clicked['status'] == 200, clicked

    def active() -> dict[str, Any]:
        return {grant['request_id']: grant for grant in _state(sandbox, ALEX)['webhook']['active']}

    grant = wait_until(lambda: active().get(request_id), timeout=15, interval=0.2, what='the webhook grant')
    assert (grant['resource'], grant['role'], grant['user']['slack_id']) == ('demo-app', 'read', ALEX)
    wait_until(lambda: request_id not in active(), timeout=25, interval=0.5, what='the revoke')
    calls = _state(sandbox, ALEX)['webhook']['calls']
    assert [c['action'] for c in calls if c['request_id'] == request_id] == ['grant', 'revoke']


def _click_approve(base: str, user: str, request_id: str) -> None:
    """Press Approve on the approval DM `user` got for the request (waiting for it to come)."""

    def approve_button() -> tuple[dict[str, Any], dict[str, Any]] | None:
        dm = next(c for c in _state(base, user)['channels'] if c['id'] == 'D' + user[1:])
        for message in dm['messages']:
            for button in message['buttons']:
                if button['action_id'] == 'jit.approve' and button['value'] == request_id:
                    return message, button
        return None

    message, button = wait_until(approve_button, timeout=15, interval=0.2, what=f"{user}'s Approve button")
    click = {'user': user, 'channel': message['channel'], 'ts': message['ts'], 'action_id': button['action_id'],
             'value': button['value']}  # fmt: skip
    clicked = _post(f'{base}sandbox/click', click)
    assert clicked['status'] == 200, clicked


def _mail_about(base: str, user: str, request_id: str) -> dict[str, Any] | None:
    """The email in `user`'s Inbox about the request, read in full, if one came."""
    for summary in _state(base, user)['inbox']['mails']:
        mail = json.loads(_get(f'{base}sandbox/mail/{summary["id"]}')[2])
        if request_id in (mail['text'] or ''):
            return mail
    return None


def _cards(base: str) -> list[str]:
    """The text of each card in the example policy's Teams channel, in order, its links as `[title](url)`."""
    [channel] = _state(base, ALEX)['teams']
    assert channel['name'] == 'approvers'
    out = []
    for card in channel['cards']:
        parts = []
        for item in card['items']:
            if item['kind'] == 'text':
                parts.append(''.join(run['text'] for run in item['runs']))
            elif item['kind'] == 'link':
                parts.append(f'[{item["title"]}]({item["url"]})')
        out.append('\n'.join(parts))
    return out


def test_sandbox_approves_from_the_inbox_and_posts_to_teams(sandbox: str) -> None:
    """demo-deploy asks by email and in Teams: sam approves in Slack, sec from the email's link; the cards follow."""
    ack = _post(f'{sandbox}sandbox/command', {'user': ALEX, 'text': 'request demo-app deploy 2m shipping <b>v2</b>'})
    assert ack['status'] == 200 and 'Filed' in ack['text'], ack
    request_id = ack['text'].split('`')[1]

    # Step 1 (leads): sam is asked by DM and by email, the channel by a card.
    sam_mail = wait_until(lambda: _mail_about(sandbox, SAM, request_id), timeout=20, interval=0.3, what="sam's email")
    assert sam_mail['to'] == 'sam@example.com' and 'jit@sandbox.example' in sam_mail['from']
    first = wait_until(lambda: _cards(sandbox), timeout=20, interval=0.3, what='the first Teams card')[0]
    assert request_id in first and 'shipping <b>v2</b>' in first  # the reason as written, in a text run
    teams_link = re.search(r'\[Approve\]\((\S+)\)', first)
    assert teams_link is not None
    bot = urllib.parse.urlsplit(teams_link.group(1))
    assert bot.hostname == '127.0.0.1' and bot.path.startswith('/decide/teams/') and bot.query == 'do=approve'
    assert _mail_about(sandbox, SEC, request_id) is None  # sec's step has not come

    _click_approve(sandbox, SAM, request_id)

    # Step 2 (security): sec's email, with links to jit serve's decision page.
    mail = wait_until(lambda: _mail_about(sandbox, SEC, request_id), timeout=20, interval=0.3, what="sec's email")
    assert mail['to'] == 'sec@example.com' and mail['html'] and '<b>v2</b>' not in mail['html']
    found = re.search(r'https?://\S+/decide/\S+\?do=approve', mail['text'])
    assert found is not None, mail['text']
    approve = found.group(0)
    assert urllib.parse.urlsplit(approve).netloc == bot.netloc and approve in mail['html'].replace('&amp;', '&')

    status, content_type, page = _get(approve)  # what a mail scanner does: decides nothing
    assert status == 200 and content_type.startswith('text/html') and request_id in page
    assert request_id not in {g['request_id'] for g in _state(sandbox, ALEX)['webhook']['active']}

    form = urllib.parse.urlencode({'do': 'approve'}).encode()
    confirm = urllib.request.Request(approve, data=form, method='POST')
    with urllib.request.urlopen(confirm, timeout=30) as answer:
        assert answer.status == 200 and 'Approved' in answer.read().decode()

    def granted() -> dict[str, Any] | None:
        return {g['request_id']: g for g in _state(sandbox, ALEX)['webhook']['active']}.get(request_id)

    grant = wait_until(granted, timeout=20, interval=0.3, what='the grant at the demo webhook')
    assert (grant['resource'], grant['role'], grant['user']['slack_id']) == ('demo-app', 'deploy', ALEX)

    # The channel: a card per step, then the outcome.
    cards = wait_until(lambda: (c := _cards(sandbox)) and len(c) >= 3 and c, timeout=20, interval=0.3,
                       what='the outcome card')  # fmt: skip
    assert len(cards) == 3 and all(request_id in card for card in cards), cards
    assert '[Approve]' in cards[1] and '[Approve]' not in cards[2] and 'Approved' in cards[2]
    assert 'sec@example.com' in cards[2]  # who approved last: the address the link was sent to
