"""Redis goes away in the middle of a decision taken from an email link: the link is not spent by a decision that
did not happen, and no decision is taken twice.

The page marks a link used before it decides, and takes the mark back when the decision is refused. When Redis
goes away between the two, neither the decision nor taking the mark back can happen: the approver is told to try
again, and once Redis is back the link must still decide (not "already used" for as long as the request waits).
"""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest

from bot.app import create_web_app
from bot.core.model import Principal, RequestStatus
from bot.decision_page import routes
from bot.deps import build_deps
from bot.links import LinkSigner
from bot.settings import load_settings
from tests.support.served import Served
from tests.support.slack import local_slack

pytestmark = [pytest.mark.slow, pytest.mark.redis]

SECRET = 'decision-outage-signing-secret'
KEY = 'decision-outage-link-key-0123456789abcdef'
POLICY = """\
groups:
  devops: [alex@example.com]
  leads: [sam@example.com]
resources:
  demo-app:
    provider: webhook
    settings: {url: 'http://127.0.0.1:9/none'}
    roles: [read]
requests:
  - name: by-email
    resources: [demo-app]
    roles: [read]
    requesters: [group:devops]
    approvers: [group:leads]
    ask: [email]
    timeout: 2h
"""


class OutageMidDecision:
    """The approve use case, with Redis shut down (SHUTDOWN: the AOF keeps what it had) just before its first call:
    after the page marked the link, before the decision."""

    def __init__(self, real: Any, server: Any) -> None:
        self.real, self.server, self.struck = real, server, False

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        if not self.struck:
            self.struck = True
            self.server.shutdown()
        return self.real.execute(*args, **kwargs)


def call(url: str, form: dict[str, str] | None = None) -> tuple[int, str]:
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data), timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_a_decision_cut_short_by_redis_does_not_spend_the_link(private_redis, tmp_path, monkeypatch):
    monkeypatch.setattr(routes, 'CLAIM_SECONDS', 2, raising=False)  # how long a cut-short decision holds the link
    (tmp_path / 'policy.yaml').write_text(POLICY)
    with local_slack(SECRET) as slack:
        settings = load_settings({
            'SLACK_BOT_TOKEN': slack.bot_token, 'SLACK_SIGNING_SECRET': SECRET, 'SLACK_API_URL': slack.api_url,
            'REDIS_URL': private_redis.url, 'JIT_POLICY_DIR': str(tmp_path), 'JIT_LINK_KEY': KEY,
            'JIT_PUBLIC_URL': 'http://127.0.0.1:1',
        })  # fmt: skip
        deps = build_deps(settings, providers=['webhook'])
        rid = deps.submit.execute(requester=Principal(slack_id='U0ALEX', email='alex@example.com'),
                                  resource='demo-app', role='read', duration=1800, reason='the outage').id  # fmt: skip
        request = deps.store.get(rid)
        assert request is not None
        token = LinkSigner(KEY).mint(request_id=rid, email='sam@example.com', digest=request.digest(), via='email',
                                     expires_at=time.time() + 3600)  # fmt: skip
        deps.approve = OutageMidDecision(deps.approve, private_redis)  # type: ignore[assignment]
        served = Served(create_web_app(deps))
        link = f'http://127.0.0.1:{served.port}/decide/{token}'
        try:
            status, page = call(link, {'do': 'approve'})
            assert status == 503 and 'Try again' in page, (status, page[-300:])
            private_redis.start()
            assert deps.store.get(rid).status is RequestStatus.PENDING  # nothing was decided
            time.sleep(2.5)
            status, page = call(link + '?do=approve')
            assert status == 200 and 'already used' not in page, (status, page[-300:])
            status, page = call(link, {'do': 'approve'})
            assert status == 200 and 'Approved' in page, (status, page[-300:])
            assert deps.store.get(rid).status is RequestStatus.APPROVED
            # Spent now, by the decision it took: a replay is refused, and nothing is decided twice.
            status, page = call(link, {'do': 'approve'})
            assert status == 409 and 'already decided' in page, (status, page[-300:])
            approvals = [e for e in deps.store.audit_events(1, 10_000) if e['event'] == 'request.approved']
            assert [(e['actor'], e['detail']['via']) for e in approvals] == [('sam@example.com', 'email')]
        finally:
            served.stop()
