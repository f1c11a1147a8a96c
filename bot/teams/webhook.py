"""Posting a card to a Teams channel's webhook: a Workflows webhook, or an old incoming webhook.

The URL is a secret: whoever holds it posts to the channel (a Workflows URL carries its signature in the query,
``sig=…``). So nothing here logs, and no error quotes it: messages name the host alone, and none chains an
exception of urllib3's (whose messages quote the host, the port and at times the URL).

What an answer means:

* 2xx: delivered. Workflows answers 202 Accepted, an old incoming webhook 200 with the body ``1``. An old
  incoming webhook also answers 200 when Teams refused the message, its body reading ``Webhook message delivery
  failed with error: Microsoft Teams endpoint returned HTTP error 429 …``: that is read as the error it names.
* 429 and 5xx, a timeout, a connection that fails: :class:`DeliveryError` with ``transient=True`` (and
  ``retry_after`` from a ``Retry-After`` header, in seconds or as a date).
* Any other answer, a 3xx included: permanent. No redirect is followed, so the card goes nowhere but where it
  was sent; nor is a certificate jit cannot verify accepted.

HTTPS only, the server's certificate verified against the system's CAs (and ``ca_file``'s, when given); plain
http only to a loopback address (a local receiver). Proxies as the environment names them (``HTTPS_PROXY``,
``NO_PROXY``). Connections are kept open per host.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import ssl
import threading
import time
import urllib.parse
import urllib.request
from email.utils import parsedate_to_datetime
from typing import Any

import urllib3

from bot.adapters.http_errors import unreachable_why
from bot.core.errors import DeliveryError

#: The longest jit waits to connect, and then for each read of the answer.
TIMEOUT = 10.0
#: How an old incoming webhook reports, under a 200, that Teams refused the message.
_WRAPPED_ERROR = re.compile(rb'^\s*Webhook message delivery failed.*?HTTP error (\d{3})', re.DOTALL)


class TeamsWebhook:
    """Posts Adaptive Card payloads to Teams webhooks (one instance serves every channel).

    Args:
        timeout: seconds to connect, and then for each read of the answer.
        ca_file: a PEM bundle of CAs to trust besides the system's (a private CA, an inspecting proxy's).
    """

    def __init__(self, timeout: float = TIMEOUT, *, ca_file: str | None = None) -> None:
        self.timeout = timeout
        self._context = ssl.create_default_context()
        if ca_file:
            self._context.load_verify_locations(cafile=ca_file)
        self._pools: dict[str | None, urllib3.PoolManager] = {}
        self._lock = threading.Lock()

    def post(self, url: str, payload: dict[str, Any]) -> None:
        """POST ``payload`` as JSON to the webhook at ``url``.

        Raises:
            DeliveryError: not delivered; ``transient`` when trying again later may work.
        """
        host = _checked_host(url)
        body = json.dumps(payload, ensure_ascii=False).encode()
        try:
            response = self._pool_for(url).request(
                'POST', url, body=body, headers={'Content-Type': 'application/json', 'User-Agent': 'jit-teams/1'},
                timeout=urllib3.Timeout(connect=self.timeout, read=self.timeout), retries=False, redirect=False,
                preload_content=False,
            )  # fmt: skip
            try:
                answer = response.read(65536)
            finally:
                response.release_conn()
        except urllib3.exceptions.SSLError as exc:
            # Not a hiccup: the certificate is not one jit trusts (a wrong host, an inspecting proxy, no CA).
            raise DeliveryError(
                f'the Teams webhook at {host} failed TLS: {unreachable_why(exc)}', transient=False
            ) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise DeliveryError(
                f'the Teams webhook at {host} could not be reached: {unreachable_why(exc)}', transient=True
            ) from None
        status = response.status
        if 200 <= status < 300 and (wrapped := _WRAPPED_ERROR.match(answer)):
            code = int(wrapped.group(1))
            raise DeliveryError(f'the Teams webhook at {host} answered {status}, but Teams refused the message with '
                                f'HTTP {code}', transient=_transient(code))  # fmt: skip
        if 200 <= status < 300:
            return
        if _transient(status):
            retry_after = _retry_after(response.headers.get('Retry-After'))
            raise DeliveryError(f'the Teams webhook at {host} answered HTTP {status}', transient=True,
                                retry_after=retry_after)  # fmt: skip
        what = 'redirected (not followed)' if 300 <= status < 400 else 'refused'
        raise DeliveryError(f'the Teams webhook at {host} {what}: HTTP {status}', transient=False)

    def _pool_for(self, url: str) -> urllib3.PoolManager:
        """The connections to the webhook's host, through the proxy the environment names for it."""
        parts = urllib.parse.urlsplit(url)
        proxy = urllib.request.getproxies().get(parts.scheme)
        if proxy and urllib.request.proxy_bypass(parts.hostname or ''):
            proxy = None
        with self._lock:
            pool = self._pools.get(proxy)
            if pool is None:
                kw: dict[str, Any] = {'num_pools': 16, 'maxsize': 4, 'ssl_context': self._context}
                pool = urllib3.ProxyManager(proxy, **kw) if proxy else urllib3.PoolManager(**kw)
                self._pools[proxy] = pool
            return pool


def _checked_host(url: str) -> str:
    """The webhook's host, once the URL is one jit posts to: https, or http to a loopback address."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ''
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number in range
    except (ValueError, TypeError, AttributeError):  # their messages may quote the URL
        raise DeliveryError('the Teams webhook URL is not a valid URL', transient=False) from None
    if parts.scheme == 'https' and host:
        return host
    if parts.scheme == 'http' and _loopback(host):
        return host
    raise DeliveryError('the Teams webhook URL must be an https:// URL', transient=False)


def _loopback(host: str) -> bool:
    if host == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _transient(status: int) -> bool:
    return status == 429 or status >= 500


def _retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` header's wait in seconds (given as seconds or as an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None
