"""What the AWS providers share: boto3 clients built from the worker's own credentials, and AWS errors
mapped to jit's transient / permanent provider errors.

Credentials come from the standard boto3 chain of the worker (environment, shared files, instance or
container role), never from the policy. A resource's ``settings`` may add ``region`` (default
:data:`DEFAULT_REGION`), ``endpoint_url`` (a VPC endpoint; the tests point it at moto) and ``role_arn``
(a role to assume first, session name ``jit``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import boto3  # type: ignore[import-untyped,unused-ignore]
from botocore.config import Config  # type: ignore[import-untyped,unused-ignore]
from botocore.exceptions import (  # type: ignore[import-untyped,unused-ignore]
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from bot.core.errors import PermanentProviderError, ProviderError, TransientProviderError

#: The region when a resource names none: IAM and STS answer there for the whole account.
DEFAULT_REGION = 'us-east-1'
#: The ``RoleSessionName`` of an assumed role: CloudTrail shows jit's calls under it.
SESSION_NAME = 'jit'
#: Assumed credentials are renewed this long before they expire, so no call runs on dying credentials.
RENEW_BEFORE = 300.0
#: Short timeouts and few botocore retries: jit's own backoff retries a transient failure, and a worker
#: stuck on one call holds up every other grant and revoke.
CLIENT_CONFIG = Config(connect_timeout=5, read_timeout=20, retries={'mode': 'standard', 'max_attempts': 3})
#: Error codes worth trying again: throttling, AWS-side trouble, a concurrent change of the same object.
TRANSIENT_CODES = frozenset({
    'Throttling', 'ThrottlingException', 'RequestLimitExceeded', 'TooManyRequestsException', 'SlowDown',
    'ServiceUnavailable', 'ServiceUnavailableException', 'InternalFailure', 'InternalError',
    'InternalServerException', 'ConflictException', 'ConcurrentModification', 'ConcurrentModificationException',
    'RequestTimeout', 'RequestTimeoutException', 'PriorRequestNotComplete', 'ExpiredToken', 'ExpiredTokenException',
})  # fmt: skip
#: "No such thing": a missing user or group on grant, "already gone" on revoke.
MISSING_CODES = frozenset({'NoSuchEntity', 'NoSuchEntityException', 'ResourceNotFoundException'})

#: ``client_factory(service, settings)``: a ready client (tests hand in one with a botocore ``Stubber``).
ClientFactory = Callable[[str, Mapping[str, Any]], Any]


def error_code(exc: ClientError) -> str:
    return str(exc.response.get('Error', {}).get('Code', ''))


def classify(exc: Exception, what: str) -> ProviderError:
    """The provider error for a failed AWS call; ``what`` says what jit was doing ("add X to the group")."""
    if isinstance(exc, ClientError):
        code = error_code(exc)
        status = int(exc.response.get('ResponseMetadata', {}).get('HTTPStatusCode') or 0)
        if code in TRANSIENT_CODES or status >= 500:
            return TransientProviderError(f'AWS answered {code or status} when jit tried to {what}')
        if code in ('AccessDenied', 'AccessDeniedException', 'UnauthorizedOperation'):
            return PermanentProviderError(
                f"jit's AWS identity may not {what} ({code}): see its permissions in the docs"
            )
        message = str(exc.response.get('Error', {}).get('Message', ''))[:300]
        return PermanentProviderError(f'AWS refused to {what}: {code}: {message}'.rstrip(': '))
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError | ConnectionClosedError):
        return TransientProviderError(f'AWS could not be reached to {what} ({type(exc).__name__})')
    if isinstance(exc, NoCredentialsError):
        return PermanentProviderError('the jit worker has no AWS credentials (environment, profile or instance role)')
    return PermanentProviderError(f'AWS call failed when jit tried to {what} ({type(exc).__name__})')


@contextmanager
def aws_call(what: str, *, missing: str | None = None, gone_ok: bool = False) -> Iterator[None]:
    """Map what botocore raises inside the block to a provider error.

    Args:
        what: what jit was doing, for the message ("put the inline policy").
        missing: the message of the permanent error for "no such entity" (a missing user or group).
        gone_ok: "no such entity" is success (a revoke of something already gone): the block just ends.
    """
    try:
        yield
    except ClientError as exc:
        if error_code(exc) in MISSING_CODES:
            if gone_ok:
                return
            if missing is not None:
                raise PermanentProviderError(missing) from exc
        raise classify(exc, what) from exc
    except BotoCoreError as exc:
        raise classify(exc, what) from exc


class AwsClients:
    """boto3 clients by service and settings, built once and kept (assumed-role ones until shortly before expiry)."""

    def __init__(
        self, *, session_factory: Callable[[], Any] | None = None, client_factory: ClientFactory | None = None
    ) -> None:
        self.session_factory = session_factory or boto3.session.Session
        self.client_factory = client_factory
        self._clients: dict[tuple[str, str, str, str], tuple[Any, float]] = {}

    def client(self, service: str, conf: Mapping[str, Any]) -> Any:
        """A client for ``service`` with the resolved settings (``region``, ``endpoint_url``, ``role_arn``)."""
        if self.client_factory is not None:
            return self.client_factory(service, conf)
        region = str(conf.get('region') or DEFAULT_REGION)
        endpoint = str(conf.get('endpoint_url') or '')
        role_arn = str(conf.get('role_arn') or '')
        key = (service, region, endpoint, role_arn)
        cached = self._clients.get(key)
        if cached is not None and cached[1] > time.time():
            return cached[0]
        session, good_until = self._session(region, endpoint, role_arn)
        client = session.client(service, region_name=region, endpoint_url=endpoint or None, config=CLIENT_CONFIG)
        self._clients[key] = (client, good_until)
        return client

    def _session(self, region: str, endpoint: str, role_arn: str) -> tuple[Any, float]:
        base = self.session_factory()
        if not role_arn:
            return base, float('inf')
        sts = base.client('sts', region_name=region, endpoint_url=endpoint or None, config=CLIENT_CONFIG)
        with aws_call(f'assume the role {role_arn}', missing=f'no role `{role_arn}` to assume'):
            creds = sts.assume_role(RoleArn=role_arn, RoleSessionName=SESSION_NAME)['Credentials']
        session = boto3.session.Session(
            aws_access_key_id=creds['AccessKeyId'], aws_secret_access_key=creds['SecretAccessKey'],
            aws_session_token=creds['SessionToken'], region_name=region,
        )  # fmt: skip
        return session, creds['Expiration'].timestamp() - RENEW_BEFORE
