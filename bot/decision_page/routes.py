"""The decision page of ``jit serve``: where the Approve and Deny links of an email or a Teams card lead.

==========================================  ===================================================================
``GET  /decide/{token}?do=approve|deny``    the request and a confirm button; a GET never decides (mail
                                            scanners and link previewers open links)
``POST /decide/{token}``                    decides as the address the link was sent to (``do``, ``reason``)
``GET  /decide/teams/{token}?do=…``         a Teams card's link: asks the reader's work email
``POST /decide/teams/{token}``              queues a personal link to that address, if it may decide
==========================================  ===================================================================

The token (:mod:`bot.links`) is the only credential: no cookie, no session. Every decision goes through the same
use cases as a Slack click (:mod:`bot.usecases.decide_request`), so self-approval, steps, quorum, the digest and
"one decision wins" hold unchanged; the audit event says ``via: email`` or ``via: teams``. A token decides once:
it is held (``SET NX``, for :data:`CLAIM_SECONDS`) while its decision is taken, marked used once it is taken, and
let go if the decision is refused. A decision cut short (Redis gone, the process killed) spends nothing: the hold
lapses by itself and the link decides again.

Answers: 200 a page; 400 a form that cannot be read or a reason that cannot be taken; 403 a forged or changed
link, or a decision that is not this person's to take; 404 no such request; 409 already used or already decided;
410 expired; 503 Redis away. Every page is sent with a Content-Security-Policy that allows no script and no
resource from elsewhere, and ``Referrer-Policy: no-referrer`` (the token is in the address).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import redis
import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from bot.adapters.outbox import OutboxStore
from bot.content_coding import encoded
from bot.core.errors import InvalidTransition, RequestError, RequestNotFound, UsageError
from bot.core.model import MAX_REASON, AccessRequest, Principal, RequestStatus
from bot.core.policy import Policy, Rule
from bot.core.progress import waiting_text
from bot.decision_page import html
from bot.links import DEFAULT_LIFETIME, LinkClaims, LinkRefused, LinkSigner

if TYPE_CHECKING:
    from bot.deps import Deps

log = structlog.get_logger(__name__)

#: A decision form is a few short fields.
MAX_FORM = 16 * 1024
#: One "email me a link" per address and request in this many seconds, and this many in all: a personal link
#: decides for as long as the request waits, so asking again is for a lost email, not a mailbox to fill.
LINK_MAIL_EVERY = 60.0
LINK_MAILS = 3
#: How long a link is held while its decision is taken (milliseconds, unless Redis is slow or gone): a decision cut
#: short leaves the link held no longer than this, and then it decides again.
CLAIM_SECONDS = 60
_DECIDING, _USED = 'deciding', 'used'
_EMAIL = re.compile(r'^[^@\s<>"\',;]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$')
HEADERS = {
    'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    'Referrer-Policy': 'no-referrer',
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'DENY',
}


def _html(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type='text/html', charset='utf-8', headers=HEADERS)


def _refused(status: int, title: str, message: str) -> web.Response:
    return _html(html.refused_page(title, message), status)


class DecisionPage:
    """The handlers, over the process's dependencies."""

    def __init__(self, deps: Deps, signer: LinkSigner) -> None:
        self.deps, self.signer = deps, signer
        self.outbox = OutboxStore(deps.redis, prefix=deps.settings.redis_prefix)

    # -- reading the link and the request --------------------------------------------------------------
    def _claims(self, request: web.Request, *, personal: bool) -> LinkClaims:
        claims = self.signer.check(request.match_info['token'], now=time.time())
        if claims.personal is not personal:  # a Teams channel's link on the personal route, or the reverse
            raise LinkRefused('This link is not valid here.')
        return claims

    def _request(self, claims: LinkClaims) -> tuple[AccessRequest, Rule | None, Policy]:
        found = self.deps.store.get(claims.request_id)
        if found is None:
            raise web.HTTPNotFound(text=html.refused_page('Not found', 'jit has no such request (any more).'),
                                   content_type='text/html', headers=HEADERS)  # fmt: skip
        if found.digest() != claims.digest:
            raise LinkRefused('This link was made for another request.')
        policy = self.deps.policy()
        return found, policy.rule_named(found.rule), policy

    @staticmethod
    def _action(value: str | None) -> str:
        if value not in ('approve', 'deny'):
            raise web.HTTPBadRequest(text=html.refused_page('Not understood', 'Choose Approve or Deny.'),
                                     content_type='text/html', headers=HEADERS)  # fmt: skip
        return value

    async def _form(self, request: web.Request) -> dict[str, str]:
        if request.content_length is not None and request.content_length > MAX_FORM:
            raise web.HTTPRequestEntityTooLarge(MAX_FORM, request.content_length)
        if encoded(request):  # a browser does not compress a form (bot/content_coding.py)
            raise web.HTTPBadRequest(text=html.refused_page('Not understood', 'The form could not be read.'),
                                     content_type='text/html', headers=HEADERS)  # fmt: skip
        try:
            form = await request.post()
        except (ValueError, LookupError, web.RequestPayloadError, HttpProcessingError):
            # ValueError: not UTF-8 or not a form; LookupError: a charset nobody knows; RequestPayloadError and
            # HttpProcessingError: a body that is not in the Content-Encoding it claims (gzip that is not gzip).
            raise web.HTTPBadRequest(text=html.refused_page('Not understood', 'The form could not be read.'),
                                     content_type='text/html', headers=HEADERS) from None  # fmt: skip
        return {k: v for k, v in form.items() if isinstance(v, str)}

    # -- personal links --------------------------------------------------------------------------------
    async def show(self, request: web.Request) -> web.StreamResponse:
        claims = self._claims(request, personal=True)
        action = self._action(request.query.get('do', 'approve'))
        found, rule, _ = await asyncio.to_thread(self._request, claims)
        waiting = waiting_text(found, rule)
        if found.status is not RequestStatus.PENDING:
            return _html(html.decided_page(found, rule, headline='This request was already decided'), 409)
        if await asyncio.to_thread(self._used, claims):
            return _html(html.decided_page(found, rule, headline='This link was already used', waiting=waiting), 409)
        return _html(html.confirm_page(found, rule, waiting, action=action, approver=claims.email))

    async def decide(self, request: web.Request) -> web.StreamResponse:
        claims = self._claims(request, personal=True)
        form = await self._form(request)
        action = self._action(form.get('do'))
        reason = ' '.join(form.get('reason', '').split())
        if len(reason) > MAX_REASON:  # refused as on every other surface, not cut without a word
            return _refused(400, 'Too long', f'A reason is at most {MAX_REASON:,} characters; this one has '
                                             f'{len(reason):,}. Go back and shorten it.')  # fmt: skip
        return await asyncio.to_thread(self._decide, claims, action, reason)

    def _mark(self, claims: LinkClaims) -> str:
        return f'{self.deps.settings.redis_prefix}link-used:{claims.nonce}'

    def _used(self, claims: LinkClaims) -> bool:
        held = self.deps.redis.get(self._mark(claims))
        return held is not None and held != _DECIDING

    def _decide(self, claims: LinkClaims, action: str, reason: str) -> web.Response:
        found, rule, _ = self._request(claims)
        if found.status is not RequestStatus.PENDING:
            return _html(html.decided_page(found, rule, headline='This request was already decided'), 409)
        mark = self._mark(claims)
        if not self.deps.redis.set(mark, _DECIDING, nx=True, ex=CLAIM_SECONDS):
            if self.deps.redis.get(mark) in (None, _DECIDING):
                return _refused(409, 'Being decided', 'A decision with this link is being taken, or was cut short '
                                'a moment ago. Open the link again in a minute to see where it stands.')  # fmt: skip
            return _html(html.decided_page(found, rule, headline='This link was already used',
                                           waiting=waiting_text(found, rule)), 409)  # fmt: skip
        approver = Principal(email=claims.email, name=claims.email)
        try:
            if action == 'approve':
                after = self.deps.approve.execute(found.id, approver, via=claims.via)
            else:
                after = self.deps.deny.execute(found.id, approver, reason, via=claims.via)
        except RequestError as exc:
            self.deps.redis.delete(mark)  # refused: nothing was decided with it
            log.info('decision_page.refused', request_id=found.id, via=claims.via, action=action,
                     error=type(exc).__name__)  # fmt: skip
            status = (409 if isinstance(exc, InvalidTransition) else 404 if isinstance(exc, RequestNotFound)
                      else 400 if isinstance(exc, UsageError) else 403)  # fmt: skip
            return _refused(status, 'Not decided', str(exc))
        except BaseException:
            self.deps.redis.delete(mark)
            raise
        try:
            self.deps.redis.set(mark, _USED, ex=int(max(60.0, claims.expires_at - time.time() + 60)))
        except redis.RedisError:  # decided all the same; once the hold lapses, the state machine refuses a replay
            log.warning('decision_page.link_not_marked', request_id=found.id)
        log.info('decision_page.decided', request_id=found.id, via=claims.via, action=action, status=after.status)
        headline = 'Denied' if action == 'deny' else 'Approved'
        if action == 'approve' and after.status is RequestStatus.PENDING:
            headline = 'Your approval is recorded'
        return _html(html.decided_page(after, rule, headline=headline, waiting=waiting_text(after, rule)))

    # -- a Teams card's links --------------------------------------------------------------------------
    async def teams_show(self, request: web.Request) -> web.StreamResponse:
        claims = self._claims(request, personal=False)
        action = self._action(request.query.get('do', 'approve'))
        found, rule, _ = await asyncio.to_thread(self._request, claims)
        if found.status is not RequestStatus.PENDING:
            return _html(html.decided_page(found, rule, headline='This request was already decided'), 409)
        return _html(html.email_form_page(found, rule, waiting_text(found, rule), action=action))

    async def teams_send(self, request: web.Request) -> web.StreamResponse:
        claims = self._claims(request, personal=False)
        form = await self._form(request)
        self._action(form.get('do'))
        email = form.get('email', '').strip().lower()
        if not _EMAIL.fullmatch(email):
            return _refused(400, 'Not an email address', 'Type your work email address, e.g. sam@example.com.')
        return await asyncio.to_thread(self._send_link, claims, email)

    def _send_link(self, claims: LinkClaims, email: str) -> web.Response:
        found, rule, policy = self._request(claims)
        if found.status is not RequestStatus.PENDING:
            return _html(html.decided_page(found, rule, headline='This request was already decided'), 409)
        approvers = policy.rule_approvers(rule) if rule else ()
        may = (rule is not None and rule.decides_via('teams') and email in approvers
               and not Principal(email=email).same_as(found.requester))  # fmt: skip
        # The same answer, after the same work, whether or not the address may decide: neither the page nor the time
        # it takes tells anybody who the approvers are.
        now = time.time()
        queued = self.outbox.ask_link(found.id, email, now, may=bool(may), every=LINK_MAIL_EVERY, most=LINK_MAILS,
                                      keep=(found.pending_until or now + DEFAULT_LIFETIME) - now + 60)  # fmt: skip
        log.info('decision_page.link_asked', request_id=found.id, queued=queued)
        return _html(html.link_sent_page(email))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _guarded(handler: Handler) -> Handler:
    async def run(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except LinkRefused as exc:
            return _refused(exc.status, 'This link does not work', str(exc))
        except redis.RedisError:
            return _refused(503, 'Try again in a moment', 'jit cannot reach its store right now.')

    return run


def add_decision_routes(app: web.Application, deps: Deps) -> None:
    """Serve the decision page when ``JIT_LINK_KEY`` is set (without it no link can be checked: 404)."""
    if not deps.settings.link_key:
        return
    view = DecisionPage(deps, LinkSigner(deps.settings.link_key))
    app.router.add_get('/decide/teams/{token}', _guarded(view.teams_show), allow_head=False)
    app.router.add_post('/decide/teams/{token}', _guarded(view.teams_send))
    app.router.add_get('/decide/{token}', _guarded(view.show), allow_head=False)
    app.router.add_post('/decide/{token}', _guarded(view.decide))
