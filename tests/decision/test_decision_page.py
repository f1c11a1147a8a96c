"""The decision page over real HTTP (``jit serve``'s unmodified web app, a real Redis): what a link may and may not do.

A GET never decides; a POST decides as the address the link was sent to, once, through the same state machine as a
Slack click (self-approval, steps, one decision wins); a changed, expired, foreign or used link changes nothing.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.app import create_web_app
from bot.core import transitions
from bot.core.errors import InvalidTransition
from bot.core.model import AccessRequest, Principal, RequestStatus
from bot.decision_page import routes
from bot.deps import Deps, build_deps
from bot.links import LinkSigner
from bot.settings import load_settings
from tests.support.redis_server import own_redis_url
from tests.support.served import Served
from tests.support.slack import local_slack

pytestmark = pytest.mark.redis

SECRET = 'decision-page-signing-secret'
KEY = 'decision-page-link-key-0123456789abcdef'
POLICY = """\
groups:
  devops: [alex@example.com]
  leads: [sam@example.com, lee@example.com]
  security: [sec@example.com]
teams:
  approvers: {webhook: env:DECISION_PAGE_TEAMS_WEBHOOK}
resources:
  demo-app:
    provider: webhook
    settings: {url: 'http://127.0.0.1:9/none'}
    roles: [read, deploy, admin, audit]
requests:
  - name: by-email
    resources: [demo-app]
    roles: [read]
    requesters: [group:devops, sam@example.com]
    approvers: [group:leads, group:security]
    ask: [slack, email]
    timeout: 2h
  - name: two-steps
    resources: [demo-app]
    roles: [deploy]
    requesters: [group:devops]
    steps:
      - {approvers: [group:leads], approvals: 1}
      - {approvers: [group:security], approvals: 1}
    ask: [email]
    require_deny_reason: true
    timeout: 1h
  - name: slack-only
    resources: [demo-app]
    roles: [admin]
    requesters: [group:devops]
    approvers: [group:leads]
    timeout: 1h
  - name: in-teams
    resources: [demo-app]
    roles: [audit]
    requesters: [group:devops]
    approvers: [group:leads]
    ask: [teams:approvers]
    timeout: 1h
"""
ALEX = Principal(slack_id='U0ALEX', email='alex@example.com', name='Alex')


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    text: str


def call(url: str, *, form: dict[str, str] | None = None) -> Answer:
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data, method='POST' if form is not None else 'GET')
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return Answer(answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read().decode())
    except urllib.error.HTTPError as error:
        return Answer(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read().decode())


@dataclass
class Jit:
    deps: Deps
    base: str
    signer: LinkSigner

    def file(self, role: str = 'read', who: Principal = ALEX, reason: str = 'checking the deploy') -> str:
        return self.deps.submit.execute(requester=who, resource='demo-app', role=role, duration=1800,
                                        reason=reason).id  # fmt: skip

    def link(self, request_id: str, email: str, *, via: str = 'email', expires_at: float | None = None) -> str:
        request = self.deps.store.get(request_id)
        assert request is not None
        token = self.signer.mint(request_id=request_id, email=email, digest=request.digest(), via=via,
                                 expires_at=expires_at or time.time() + 600)  # fmt: skip
        return f'{self.base}/decide/{"" if email else "teams/"}{token}'

    def status(self, request_id: str) -> RequestStatus:
        request = self.deps.store.get(request_id)
        assert request is not None
        return request.status

    def events(self, request_id: str) -> list[dict[str, object]]:
        return [e for e in self.deps.store.audit_events(1, 10_000) if (e.get('request') or {}).get('id') == request_id]


@pytest.fixture(name='jit')
def _jit(tmp_path: Path) -> Iterator[Jit]:
    (tmp_path / 'policy.yaml').write_text(POLICY)
    with local_slack(SECRET) as slack:
        settings = load_settings({
            'SLACK_BOT_TOKEN': slack.bot_token, 'SLACK_SIGNING_SECRET': SECRET, 'SLACK_API_URL': slack.api_url,
            'REDIS_URL': own_redis_url(23), 'JIT_POLICY_DIR': str(tmp_path), 'JIT_LINK_KEY': KEY,
            'JIT_PUBLIC_URL': 'http://127.0.0.1:1',
        })  # fmt: skip
        deps = build_deps(settings, providers=['webhook'])
        deps.redis.flushdb()
        served = Served(create_web_app(deps))
        try:
            yield Jit(deps, f'http://127.0.0.1:{served.port}', LinkSigner(KEY))
        finally:
            served.stop()
            deps.redis.flushdb()


def test_a_get_shows_the_request_and_decides_nothing(jit):
    rid = jit.file()
    link = jit.link(rid, 'sam@example.com')
    for _ in range(3):  # a scanner, a previewer, the approver
        page = call(link + '?do=approve')
        assert page.status == 200
        assert 'Approve this access request?' in page.text and 'checking the deploy' in page.text
        assert 'sam@example.com' in page.text and '<form method="post">' in page.text
    assert call(link + '?do=deny').status == 200
    assert jit.status(rid) is RequestStatus.PENDING
    assert [e['event'] for e in jit.events(rid)] == ['request.created']


def test_the_page_allows_no_script_and_no_referrer(jit):
    page = call(jit.link(jit.file(), 'sam@example.com') + '?do=approve')
    csp = page.headers['content-security-policy']
    assert "default-src 'none'" in csp and "form-action 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers['referrer-policy'] == 'no-referrer' and page.headers['cache-control'] == 'no-store'
    assert '<script' not in page.text


def test_a_post_approves_as_the_address_the_link_was_sent_to(jit):
    rid = jit.file()
    done = call(jit.link(rid, 'sam@example.com'), form={'do': 'approve'})
    assert done.status == 200 and 'Approved' in done.text
    assert jit.status(rid) is RequestStatus.APPROVED
    [approved] = [e for e in jit.events(rid) if e['event'] == 'request.approved']
    assert approved['actor'] == 'sam@example.com' and approved['detail']['via'] == 'email'
    request = jit.deps.store.get(rid)
    assert request.decided_by.email == 'sam@example.com' and request.approved_digest == request.digest()


def test_a_replayed_post_is_refused_and_changes_nothing(jit):
    rid = jit.file(role='deploy')  # two steps: a second approval by the same link would move it on
    link = jit.link(rid, 'sam@example.com')
    assert call(link, form={'do': 'approve'}).status == 200
    before = jit.events(rid)
    again = call(link, form={'do': 'approve'})
    assert again.status == 409 and 'already used' in again.text
    deny = call(link, form={'do': 'deny', 'reason': 'changed my mind'})
    assert deny.status == 409
    assert jit.events(rid) == before and jit.status(rid) is RequestStatus.PENDING


def test_a_changed_token_is_refused(jit):
    rid = jit.file()
    link = jit.link(rid, 'sam@example.com')
    head, token = link.rsplit('/', 1)
    version, body, mac = token.split('.')
    flipped = mac[:-2] + ('A' if mac[-2] != 'A' else 'B') + mac[-1]
    for bad in (f'{head}/{version}.{body}.{flipped}', f'{head}/{token[:-10]}', f'{head}/v1.e30.e30'):
        answer = call(bad, form={'do': 'approve'})
        assert answer.status == 403, bad
        assert call(bad + '?do=approve').status == 403
    assert jit.status(rid) is RequestStatus.PENDING and len(jit.events(rid)) == 1


def test_an_expired_token_is_refused(jit):
    rid = jit.file()
    link = jit.link(rid, 'sam@example.com', expires_at=time.time() - 1)
    assert call(link, form={'do': 'approve'}).status == 410
    assert call(link + '?do=approve').status == 410
    assert jit.status(rid) is RequestStatus.PENDING


def test_a_token_for_another_request_decides_nothing_here(jit):
    first, second = jit.file(), jit.file(reason='another thing')
    token = jit.link(first, 'sam@example.com').rsplit('/', 1)[1]
    # The token names its request: it decides that one, whatever the address says around it.
    assert call(f'{jit.base}/decide/{token}', form={'do': 'approve'}).status == 200
    assert jit.status(second) is RequestStatus.PENDING


def test_only_an_approver_of_the_step_may_decide(jit):
    rid = jit.file(role='deploy')
    # Security approves the second step only: its link is refused while the first is open.
    refused = call(jit.link(rid, 'sec@example.com'), form={'do': 'approve'})
    assert refused.status == 403 and 'not an approver' in refused.text
    eve = call(jit.link(rid, 'eve@example.com'), form={'do': 'approve'})
    assert eve.status == 403
    assert jit.status(rid) is RequestStatus.PENDING and len(jit.events(rid)) == 1
    # The refused link was not spent: once the first step is approved, security's link works.
    assert call(jit.link(rid, 'lee@example.com'), form={'do': 'approve'}).status == 200
    assert call(jit.link(rid, 'sec@example.com'), form={'do': 'approve'}).status == 200
    assert jit.status(rid) is RequestStatus.APPROVED
    vias = [e['detail']['via'] for e in jit.events(rid) if e['event'] == 'request.approved']
    assert vias == ['email', 'email']


def test_the_requester_cannot_approve_their_own_request_by_email(jit):
    sam = Principal(slack_id='U0SAM', email='sam@example.com', name='Sam')
    rid = jit.file(who=sam)
    refused = call(jit.link(rid, 'SAM@example.com'), form={'do': 'approve'})
    assert refused.status == 403 and 'own request' in refused.text
    assert jit.status(rid) is RequestStatus.PENDING


def test_no_link_decides_a_request_whose_requester_has_no_known_address(jit):
    """Filed before the rule asked by email (filing now refuses it): sam's own link would pass for another
    approver's, so no link decides it, and the page says to decide in Slack."""
    sam = Principal(slack_id='U0SAM', name='Sam')  # as Slack describes him to an app without users:read.email
    request = AccessRequest(id='r-noemail1', requester=sam, resource='demo-app', role='read', duration=600,
                            reason='checking', rule='by-email', policy_version=jit.deps.policy().version,
                            created_at=time.time(), pending_until=time.time() + 600)  # fmt: skip
    jit.deps.store.create(*transitions.created(request))
    for email in ('sam@example.com', 'lee@example.com'):
        refused = call(jit.link(request.id, email), form={'do': 'approve'})
        assert refused.status == 403 and 'decided in Slack' in refused.text, refused.text
    assert jit.status(request.id) is RequestStatus.PENDING
    assert [e['event'] for e in jit.events(request.id)] == ['request.created']


def test_a_rule_that_asks_in_slack_only_takes_no_link(jit):
    rid = jit.file(role='admin')
    refused = call(jit.link(rid, 'sam@example.com'), form={'do': 'approve'})
    assert refused.status == 403 and 'Slack only' in refused.text
    assert jit.status(rid) is RequestStatus.PENDING


def test_deny_asks_for_a_reason_when_the_rule_requires_one(jit):
    rid = jit.file(role='deploy')
    link = jit.link(rid, 'sam@example.com')
    form = call(link + '?do=deny')
    assert 'name="reason"' in form.text and 'required' in form.text
    for blank in ('  ', '\u200b', '\u3164 \u2800'):  # white space, a zero-width space, blank-looking letters
        refused = call(link, form={'do': 'deny', 'reason': blank})
        assert refused.status == 409 and jit.status(rid) is RequestStatus.PENDING, blank
    refused = call(link, form={'do': 'deny', 'reason': 'no\x1b[2K'})
    assert refused.status == 400 and 'control character' in refused.text and jit.status(rid) is RequestStatus.PENDING
    denied = call(link, form={'do': 'deny', 'reason': 'not during the freeze'})
    assert denied.status == 200 and jit.status(rid) is RequestStatus.DENIED
    [event] = [e for e in jit.events(rid) if e['event'] == 'request.denied']
    assert event['detail'] == {'why': 'not during the freeze', 'via': 'email'}


def test_a_decided_request_shows_its_outcome_and_no_form(jit):
    rid = jit.file()
    jit.deps.deny.execute(rid, Principal(slack_id='U0LEE', email='lee@example.com'), 'no', via='slack')
    page = call(jit.link(rid, 'sam@example.com') + '?do=approve')
    assert page.status == 409 and 'Denied by' in page.text and '<form' not in page.text


def race(jit: Jit, rid: str, link: str) -> list[str]:
    """An email POST and a Slack click on ``rid`` at the same moment; what each got."""
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def by_email() -> None:
        barrier.wait()
        outcomes.append(str(call(link, form={'do': 'approve'}).status))

    def in_slack() -> None:
        barrier.wait()
        try:
            jit.deps.approve.execute(rid, Principal(slack_id='U0LEE', email='lee@example.com'))
            outcomes.append('slack')
        except InvalidTransition:
            outcomes.append('slack refused')

    threads = [threading.Thread(target=by_email), threading.Thread(target=in_slack)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return sorted(outcomes)


def test_a_slack_click_and_an_email_post_at_once_make_one_decision(jit):
    for _ in range(5):
        rid = jit.file()
        outcomes = race(jit, rid, jit.link(rid, 'sam@example.com'))
        assert outcomes in (['200', 'slack refused'], ['409', 'slack']), outcomes
        assert [e['event'] for e in jit.events(rid)].count('request.approved') == 1


def test_user_text_is_shown_as_text(jit):
    reason = '<script>alert(1)</script> "><img src=x onerror=alert(2)> &amp; \u202eevil'
    rid = jit.file(reason=reason)
    page = call(jit.link(rid, 'sam@example.com') + '?do=approve').text
    assert '<script>' not in page and '<img' not in page and '\u202e' not in page
    assert '&lt;script&gt;alert(1)&lt;/script&gt; &quot;&gt;&lt;img src=x onerror=alert(2)&gt; &amp;amp;' in page


def test_a_teams_link_asks_who_you_are_and_decides_nothing(jit):
    rid = jit.file()
    link = jit.link(rid, '', via='teams')
    page = call(link + '?do=approve')
    assert page.status == 200 and 'Your work email' in page.text
    # The Teams link is not a personal link: the personal route refuses it, and the reverse.
    assert call(link.replace('/decide/teams/', '/decide/'), form={'do': 'approve'}).status == 403
    assert call(jit.link(rid, 'sam@example.com').replace('/decide/', '/decide/teams/'), form={'do': 'approve',
                'email': 'sam@example.com'}).status == 403  # fmt: skip
    assert jit.status(rid) is RequestStatus.PENDING


def test_a_bad_form_is_a_clear_400(jit):
    link = jit.link(jit.file(), 'sam@example.com')
    assert call(link, form={'do': 'sudo'}).status == 400
    assert call(link + '?do=x').status == 400
    assert re.search('Approve or Deny', call(link, form={}).text)


def send(url: str, body: bytes, **headers: str) -> Answer:
    """A POST of ``body`` as it is, with ``headers`` (a form's bytes, a content type or coding of one's choosing)."""
    request = urllib.request.Request(url, body, {k.replace('_', '-'): v for k, v in headers.items()}, method='POST')
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return Answer(answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read().decode())
    except urllib.error.HTTPError as error:
        return Answer(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read().decode())


def test_a_form_in_a_charset_or_coding_that_cannot_be_read_is_a_400(jit):
    """What a client says the body is, and is not: a charset nobody knows, a gzip or deflate body that is not one.
    Each is the page's clear 400 on both routes, never a 500 with a traceback, and nothing is decided."""
    rid = jit.file()
    form = 'application/x-www-form-urlencoded'
    multipart = 'multipart/form-data; boundary=XX'
    part = b'--XX\r\nContent-Disposition: form-data; name="do"\r\nContent-Type: text/plain; charset=bogus\r\n\r\n' \
           b'deny\r\n--XX--\r\n'  # fmt: skip
    named = b'--XX\r\nContent-Disposition: form-data; name="_charset_"\r\n\r\nbogus-9\r\n--XX\r\n' \
            b'Content-Disposition: form-data; name="do"\r\n\r\ndeny\r\n--XX--\r\n'  # fmt: skip
    bodies = [
        (b'do=deny&reason=x', {'Content_Type': f'{form}; charset=bogus-42'}),
        (part, {'Content_Type': multipart}),
        (named, {'Content_Type': multipart}),
        (b'do=deny, but not gzip', {'Content_Type': form, 'Content_Encoding': 'gzip'}),
        (b'do=deny, but not deflate', {'Content_Type': form, 'Content_Encoding': 'deflate'}),
    ]
    for link in (jit.link(rid, 'sam@example.com'), jit.link(rid, '', via='teams')):
        for body, headers in bodies:
            answer = send(link, body, **headers)
            assert answer.status == 400, (headers, answer.status, answer.text[:300])
            assert 'could not be read' in answer.text
    assert jit.status(rid) is RequestStatus.PENDING and len(jit.events(rid)) == 1


def test_one_link_posted_many_times_at_once_decides_once(jit):
    """Twenty POSTs of one link at the same moment, approving and denying: one decision; the others are refused."""
    rid = jit.file(role='deploy')  # two steps: an approval leaves it pending, so a second decision could follow
    link = jit.link(rid, 'sam@example.com')
    barrier, statuses = threading.Barrier(20), []

    def post(i: int) -> None:
        barrier.wait()
        statuses.append(call(link, form={'do': 'deny' if i % 2 else 'approve', 'reason': 'no'}).status)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert sorted(statuses) == [200] + [409] * 19, statuses
    assert len([e for e in jit.events(rid) if e['event'] in ('request.approved', 'request.denied')]) == 1


def link_mails(jit: Jit, request_id: str) -> list[str]:
    """The addresses of the links queued for ``request_id`` from its Teams page (the outbox's due queue)."""
    keys = jit.deps.redis.zrange(f'{jit.deps.settings.redis_prefix}outbox:due', 0, -1)
    return sorted(k.split('|')[2] for k in keys if k.startswith(f'link-email|{request_id}|'))


def test_the_teams_page_mails_an_approver_a_few_links_at_most(jit, monkeypatch):
    """Whoever reads the channel can ask for an approver's link again and again: a few links reach the approver,
    spaced in time, and then no more for that request, however often it is asked. The answer never changes."""
    monkeypatch.setattr(routes, 'LINK_MAIL_EVERY', 1.0)  # the spacing between two links to one address
    rid = jit.file(role='audit')
    link = jit.link(rid, '', via='teams')
    for _ in range(7):
        answer = call(link, form={'do': 'approve', 'email': 'sam@example.com'})
        assert answer.status == 200 and 'Check your email' in answer.text
        time.sleep(1.05)
    assert link_mails(jit, rid) == ['sam@example.com'] * 3  # routes.LINK_MAILS
    assert call(link, form={'do': 'approve', 'email': 'lee@example.com'}).status == 200  # another approver: theirs
    assert link_mails(jit, rid).count('lee@example.com') == 1


def client_commands(jit: Jit, post: Callable[[], object]) -> list[str]:
    """The commands jit's web process sends Redis while ``post`` runs (MONITOR; a script's own commands aside)."""
    seen: list[str] = []
    with jit.deps.redis.monitor() as monitor:
        time.sleep(0.2)
        done = threading.Event()

        def run() -> None:
            post()
            jit.deps.redis.echo('done')
            done.set()

        threading.Thread(target=run).start()
        for line in monitor.listen():
            command = line['command']
            if command == 'ECHO done':
                break
            name = command.split()[0].upper()
            if line.get('client_type') != 'lua' and name not in ('PING', 'HELLO', 'SELECT', 'CLIENT'):
                seen.append(name)  # (a new connection's handshake aside: the pool opens one when it needs one)
    assert done.wait(10)
    return seen


def test_the_teams_page_does_the_same_work_whoever_is_named(jit):
    """The answer is the same whether or not the address may decide; so is what the page asks Redis, command for
    command, so the time it takes tells nobody who the approvers are either."""
    rid = jit.file(role='audit')
    link = jit.link(rid, '', via='teams')

    def ask(email: str) -> Callable[[], object]:
        return lambda: call(link, form={'do': 'approve', 'email': email})

    ask('warm@example.com')()  # the first time the page loads what it needs (a script, the policy)
    approver, outsider = client_commands(jit, ask('sam@example.com')), client_commands(jit, ask('eve@example.com'))
    assert approver == outsider, (approver, outsider)
    again, outsider_again = (
        client_commands(jit, ask('sam@example.com')),
        client_commands(jit, ask('nobody@example.com')),
    )
    assert again == outsider_again, (again, outsider_again)
    assert link_mails(jit, rid) == ['sam@example.com']


def test_a_deny_reason_past_the_limit_is_refused_in_words_and_decides_nothing(jit):
    rid = jit.file()
    link = jit.link(rid, 'sam@example.com')
    refused = call(link, form={'do': 'deny', 'reason': 'x' * 1001})
    assert refused.status == 400 and '1,000' in refused.text
    assert jit.status(rid) is RequestStatus.PENDING
    assert call(link, form={'do': 'deny', 'reason': 'x' * 1000}).status == 200  # the link was not spent
    assert jit.status(rid) is RequestStatus.DENIED
