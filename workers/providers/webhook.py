"""The ``webhook`` provider: jit POSTs a signed JSON body to your endpoint, which does the granting.

Contract (product.md §3): ``POST settings.url`` with ``{"action": "grant"|"revoke", "request_id",
"user": {"slack_id", "email"}, "resource", "role", "expires_at", "reason"}`` and the header
``X-JIT-Signature: sha256=HEX`` (HMAC-SHA256 of the raw body with ``settings.secret``). A 2xx
answer is success; a 5xx, 429, timeout or connection error is retried with backoff; any other
4xx is permanent (the endpoint refused, retrying will not change its mind), and so is a redirect (a
signed call is never sent on to wherever an answer points). The receiver must be
idempotent by ``request_id``: jit may send the same action twice after a timeout. When a grant is
extended, or was confirmed more than ``ACTIVATION_SLACK`` after the call, jit sends ``grant`` again with
the end jit recorded as ``expires_at``: a receiver that keeps an expiry of its own moves it.

Optional, with ``reconcile: true`` in the resource's settings: ``{"action": "list", "resource"}``, answered
with ``{"live": [{"request_id", "role"}, ...]}`` - what the receiver holds, so jit's reconciler can revoke
grants it no longer knows as active (after a lost Redis, say).
"""

from __future__ import annotations

import json
import threading
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from typing import Any

import urllib3

from bot.adapters.http_errors import unreachable_why
from bot.core.errors import PermanentProviderError, TransientProviderError
from bot.core.model import AccessRequest
from workers.providers.base import resolve_settings, sign_body, target_expiry

#: The longest jit waits for an answer before counting the call as failed (and retrying).
TIMEOUT = 10.0
#: Connections kept open per endpoint: as many as calls run at once (the revoker's threads).
POOL_SIZE = 32


def _rfc3339(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace('+00:00', 'Z') if ts else None


class WebhookProvider:
    """Grants and revokes by calling an HTTP endpoint you run."""

    name = 'webhook'
    #: The only settings that may be ``env:NAME``; never shown. A URL often carries a credential (a token in its
    #: path or query, a password before the @), so it is secret too.
    secret_settings = frozenset({'url', 'secret'})

    def __init__(self, *, timeout: float = TIMEOUT) -> None:
        self.timeout = timeout

    def grant(self, request: AccessRequest, *, settings: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        # The grant's clock starts when jit records it active, just after this answer: the endpoint learns the end
        # the grant will really have, the duration from now plus ACTIVATION_SLACK (never the end of the grant's
        # retry window, which a receiver that enforces its own expiry would keep access for).
        answer = self._call('grant', request, settings, expires_at=target_expiry(request))
        details = answer.get('details') if isinstance(answer, dict) else None
        return details if isinstance(details, dict) else {}

    def revoke(self, request: AccessRequest, *, settings: dict[str, Any], params: dict[str, Any]) -> None:
        self._call('revoke', request, settings, expires_at=request.expires_at)

    def extend(self, request: AccessRequest, *, settings: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        """The grant again, with the later ``expires_at``: the contract knows two actions, and grant is idempotent."""
        answer = self._call('grant', request, settings, expires_at=request.expires_at)
        details = answer.get('details') if isinstance(answer, dict) else None
        return details if isinstance(details, dict) else {}

    def list_live(self, resource: str, *, settings: dict[str, Any]) -> list[tuple[str, str]] | None:
        """``(request_id, role)`` of every grant the receiver holds for ``resource``; None if it cannot tell."""
        if not settings.get('reconcile'):
            return None
        answer = self._post('list', {'action': 'list', 'resource': resource}, settings)
        live = answer.get('live') if isinstance(answer, dict) else None
        if not isinstance(live, list):
            raise PermanentProviderError('the webhook answered `list` without a `live` list')
        return [(str(item['request_id']), str(item.get('role', ''))) for item in live
                if isinstance(item, dict) and 'request_id' in item]  # fmt: skip

    def _call(self, action: str, request: AccessRequest, settings: dict[str, Any], *, expires_at: float | None) -> Any:
        user: dict[str, str | None] = {'slack_id': request.requester.slack_id, 'email': request.requester.email}
        if request.requester.pipeline:  # a pipeline has neither: the target learns which one asked
            user['pipeline'] = request.requester.pipeline
        payload = {
            'action': action, 'request_id': request.id, 'user': user,
            'resource': request.resource, 'role': request.role, 'expires_at': _rfc3339(expires_at),
            'reason': request.reason,
        }  # fmt: skip
        return self._post(action, payload, settings)

    def _post(self, action: str, payload: dict[str, Any], settings: dict[str, Any]) -> Any:
        conf = resolve_settings(settings, secret=self.secret_settings)
        url, secret = conf.get('url'), conf.get('secret')
        if not url or not secret:
            raise PermanentProviderError('the webhook resource needs `url` and `secret` settings')
        # The URL is a secret setting (it may carry a token): no message quotes it, and no error chains one that does.
        body = json.dumps(payload).encode()
        try:
            if not isinstance(url, str) or urllib.parse.urlsplit(url).scheme not in ('http', 'https'):
                raise PermanentProviderError('the webhook `url` setting must be an http:// or https:// URL')
            response = _pool_for(url).request('POST', url, body=body, headers={
                'Content-Type': 'application/json', 'X-JIT-Signature': sign_body(str(secret), body),
                'User-Agent': 'jit-webhook/1',
            }, timeout=urllib3.Timeout(connect=self.timeout, read=self.timeout), retries=False, redirect=False,
                preload_content=False)  # fmt: skip
            try:
                text = response.read(65536)
            finally:
                response.release_conn()
        except PermanentProviderError:
            raise
        except ValueError:  # a bad port, spaces, brackets (urllib3's LocationParseError too): their messages quote it
            raise PermanentProviderError('the webhook `url` setting is not a valid URL') from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            # urllib3's messages name the host and port: only what went wrong is told, and nothing is chained.
            raise TransientProviderError(f'{action} could not reach the webhook: {unreachable_why(exc)}') from None
        if response.status >= 500 or response.status in (408, 425, 429):
            raise TransientProviderError(f'{action} answered HTTP {response.status}')
        if response.status >= 300:
            # A redirect too: a signed POST is not sent on to wherever an answer points.
            raise PermanentProviderError(f'{action} refused with HTTP {response.status}')
        try:
            return json.loads(text) if text.strip() else None
        except ValueError:
            return None


_pools: dict[str | None, urllib3.PoolManager] = {}
_pool_of_endpoint: dict[tuple[str, str], urllib3.PoolManager] = {}
_pools_lock = threading.Lock()


def _pool_for(url: str) -> urllib3.PoolManager:
    """Connections kept open per endpoint (one per revoker thread at most), through the proxy the environment
    names for it (``HTTPS_PROXY``, ``NO_PROXY``), as ``urllib`` did: a revoke costs no new TCP or TLS handshake.
    The environment is read once per endpoint (reading it took a third of a millisecond per call).
    """
    parts = urllib.parse.urlsplit(url)
    endpoint = (parts.scheme, parts.netloc)
    pool = _pool_of_endpoint.get(endpoint)
    if pool is not None:
        return pool
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and urllib.request.proxy_bypass(parts.hostname or ''):
        proxy = None
    with _pools_lock:
        pool = _pools.get(proxy)
        if pool is None:
            kw: dict[str, Any] = {'num_pools': 64, 'maxsize': POOL_SIZE}
            pool = _pools[proxy] = urllib3.ProxyManager(proxy, **kw) if proxy else urllib3.PoolManager(**kw)
        if len(_pool_of_endpoint) < 10_000:
            _pool_of_endpoint[endpoint] = pool
        return pool
