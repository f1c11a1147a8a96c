"""The ``aws_sso`` provider: an IAM Identity Center account assignment (user, permission set, account).

The requester is found in the identity store by email (``GetUserId`` on ``emails.value``, then on
``userName``: the two unique attributes AWS and moto both support). Assignments are asynchronous: jit
polls the creation / deletion status until it settles (``FAILED`` is permanent, still ``IN_PROGRESS``
after :data:`POLL_TIMEOUT` is transient: the retry finds the assignment and is done).

What this provider cannot do: an assignment carries no condition and no tag, so there is no time lock at
AWS (the revoke is the only end; the permission set's session duration bounds sessions already open) and
no request ID on the assignment, so :meth:`AwsSsoProvider.list_live` answers None.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from bot.core.errors import PermanentProviderError, TransientProviderError
from bot.core.model import AccessRequest
from workers.providers._aws import AwsClients, ClientFactory, aws_call
from workers.providers.base import resolve_settings

log = structlog.get_logger(__name__)

#: How long jit waits for an assignment to settle before it lets the job retry later.
POLL_TIMEOUT = 60.0
#: The pause between two status reads (Identity Center usually settles in a few seconds).
POLL_INTERVAL = 1.0


class AwsSsoProvider:
    """Grants by creating an Identity Center account assignment, revokes by deleting it."""

    name = 'aws_sso'
    #: No setting may be ``env:NAME``: credentials come from the worker's own AWS chain, never from settings.
    secret_settings: frozenset[str] = frozenset()
    shared_grants = True

    def __init__(
        self, *, session_factory: Any = None, client_factory: ClientFactory | None = None,
        poll_timeout: float = POLL_TIMEOUT, poll_interval: float = POLL_INTERVAL,
        sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.clients = AwsClients(session_factory=session_factory, client_factory=client_factory)
        self.poll_timeout, self.poll_interval, self.sleep, self.clock = poll_timeout, poll_interval, sleep, clock

    def grant(self, request: AccessRequest, *, settings: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        conf, target = self._target(settings, params)
        user_id = self._user_id(conf, request, required=True)
        assert user_id is not None
        sso = self.clients.client('sso-admin', conf)
        details = {'account_id': target['TargetId'], 'permission_set_arn': target['PermissionSetArn']}
        if conf.get('start_url'):
            details['sign_in'] = str(conf['start_url'])
        if self._assigned(sso, target, user_id):
            log.info('aws_sso.already_assigned', request_id=request.id, user_id=user_id, **_log(target))
            return details
        with aws_call('create the account assignment'):
            status = sso.create_account_assignment(**target, PrincipalType='USER', PrincipalId=user_id)
        self._settle(sso, target, status['AccountAssignmentCreationStatus'], 'creation')
        log.info('aws_sso.assigned', request_id=request.id, user_id=user_id, **_log(target))
        return details

    def revoke(self, request: AccessRequest, *, settings: dict[str, Any], params: dict[str, Any]) -> None:
        conf, target = self._target(settings, params)
        user_id = self._user_id(conf, request, required=False)
        sso = self.clients.client('sso-admin', conf)
        if user_id is None or not self._assigned(sso, target, user_id):
            log.info('aws_sso.nothing_to_revoke', request_id=request.id, user_id=user_id, **_log(target))
            return
        status = None
        with aws_call('delete the account assignment', gone_ok=True):
            status = sso.delete_account_assignment(**target, PrincipalType='USER', PrincipalId=user_id)
        if status is not None:
            try:
                self._settle(sso, target, status['AccountAssignmentDeletionStatus'], 'deletion')
            except PermanentProviderError:
                if self._assigned(sso, target, user_id):
                    raise  # FAILED, and still there; a FAILED delete of something already gone is success
        log.info('aws_sso.unassigned', request_id=request.id, user_id=user_id, **_log(target))

    def list_live(self, resource: str, *, settings: dict[str, Any]) -> list[tuple[str, str]] | None:
        """None: an account assignment carries no request ID (tags go on permission sets, not assignments)."""
        return None

    def _target(self, settings: dict[str, Any], params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        conf = resolve_settings(settings, secret=self.secret_settings)
        missing = [f'settings.{k}' for k in ('instance_arn', 'identity_store_id') if not conf.get(k)]
        missing += [f'params.{k}' for k in ('permission_set_arn', 'account_id') if not params.get(k)]
        if missing:
            raise PermanentProviderError('the aws_sso resource needs ' + ', '.join(f'`{m}`' for m in missing))
        target = {
            'InstanceArn': str(conf['instance_arn']), 'TargetId': str(params['account_id']),
            'TargetType': 'AWS_ACCOUNT', 'PermissionSetArn': str(params['permission_set_arn']),
        }  # fmt: skip
        return conf, target

    def _user_id(self, conf: Mapping[str, Any], request: AccessRequest, *, required: bool) -> str | None:
        """The Identity Center user ID of the requester: by email, then by user name equal to the email."""
        email = request.requester.email
        if not email:
            if required:
                raise PermanentProviderError('aws_sso needs the email of the requester to find their user')
            return None
        store = self.clients.client('identitystore', conf)
        for path in ('emails.value', 'userName'):
            with aws_call('look the user up in the identity store', gone_ok=True):
                answer = store.get_user_id(
                    IdentityStoreId=str(conf['identity_store_id']),
                    AlternateIdentifier={'UniqueAttribute': {'AttributePath': path, 'AttributeValue': email}},
                )
                return str(answer['UserId'])
        if required:
            raise PermanentProviderError(f'no IAM Identity Center user with the email or user name `{email}`')
        return None

    def _assigned(self, sso: Any, target: Mapping[str, str], user_id: str) -> bool:
        with aws_call('list the account assignments'):
            pages = sso.get_paginator('list_account_assignments').paginate(
                InstanceArn=target['InstanceArn'], AccountId=target['TargetId'],
                PermissionSetArn=target['PermissionSetArn'],
            )  # fmt: skip
            return any(
                a.get('PrincipalType') == 'USER' and a.get('PrincipalId') == user_id
                for page in pages
                for a in page.get('AccountAssignments') or ()
            )

    def _settle(self, sso: Any, target: Mapping[str, str], status: Mapping[str, Any], kind: str) -> None:
        """Poll the creation or deletion status until it is no longer ``IN_PROGRESS``."""
        describe = getattr(sso, f'describe_account_assignment_{kind}_status')
        id_key = 'AccountAssignmentCreationRequestId' if kind == 'creation' else 'AccountAssignmentDeletionRequestId'
        answer_key = 'AccountAssignmentCreationStatus' if kind == 'creation' else 'AccountAssignmentDeletionStatus'
        deadline = self.clock() + self.poll_timeout
        while status.get('Status') == 'IN_PROGRESS':
            if self.clock() >= deadline:
                raise TransientProviderError(f'the account assignment {kind} was still in progress after '
                                             f'{self.poll_timeout:.0f} s')  # fmt: skip
            self.sleep(self.poll_interval)
            with aws_call(f'read the account assignment {kind} status'):
                status = describe(InstanceArn=target['InstanceArn'], **{id_key: status['RequestId']})[answer_key]
        if status.get('Status') == 'FAILED':
            reason = str(status.get('FailureReason') or 'no reason given')[:300]
            raise PermanentProviderError(f'IAM Identity Center could not complete the assignment {kind}: {reason}')


def _log(target: Mapping[str, str]) -> dict[str, str]:
    return {'account_id': target['TargetId'], 'permission_set_arn': target['PermissionSetArn']}
