"""The ``aws_iam`` provider: an IAM user joins a group, and gets the permissions in a time-locked inline policy.

The lock. An IAM ``Allow`` cannot be taken back by another ``Allow``, and a ``Deny`` after the end would
also deny the user's standing rights until the revoke. So the group grants nothing (jit refuses a group
with policies of its own): it is the visible, auditable marker of who holds the access. The permissions
(the role's ``policy_arn`` document, or its ``policy``) go into an inline user policy ``jit-<request id>``
whose every statement carries ``DateLessThan aws:CurrentTime <end>``: AWS itself stops honouring it at
the end, even if jit is down. Revoke deletes that policy, then the membership, unless another grant of
the same access to the same user is still inside its lock.

Every grant tags the user ``jit:<request id>`` = ``<resource>/<role>`` (first on grant, last on revoke):
the reconciler finds grants by these tags (:meth:`AwsIamProvider.list_live`).
"""

from __future__ import annotations

import json
import math
import urllib.parse
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import structlog

from bot.core.errors import PermanentProviderError
from bot.core.model import AccessRequest
from workers.providers._aws import AwsClients, ClientFactory, aws_call
from workers.providers.base import resolve_settings, target_expiry

log = structlog.get_logger(__name__)

#: Tag key prefix on the IAM user: ``jit:<request id>`` = ``<resource>/<role>``.
TAG_PREFIX = 'jit:'
#: Inline policy name prefix: ``jit-<request id>``.
POLICY_PREFIX = 'jit-'
#: How a requester's email names their IAM user (IAM user names allow ``@`` and ``.``).
USER_NAME_MODES = frozenset({'email', 'local_part'})
_TIME_FORMAT = '%Y-%m-%dT%H:%M:%SZ'


def policy_name(request_id: str) -> str:
    return POLICY_PREFIX + request_id


def aws_time(ts: float) -> str:
    """``aws:CurrentTime`` format, rounded up to the second: never earlier than jit's own end."""
    return datetime.fromtimestamp(math.ceil(ts), tz=UTC).strftime(_TIME_FORMAT)


def time_locked(document: Mapping[str, Any], until: str) -> dict[str, Any]:
    """``document`` with ``DateLessThan aws:CurrentTime until`` on every statement (the policy is void after it)."""
    statements = document.get('Statement')
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise PermanentProviderError('the policy document of this role has no `Statement`')
    out = []
    for statement in statements:
        conditions = (statement.get('Condition') or {}) if isinstance(statement, dict) else None
        if not isinstance(conditions, dict) or not all(isinstance(keys, dict) for keys in conditions.values()):
            raise PermanentProviderError('the policy document of this role has a statement that is not a mapping')
        condition = {op: dict(keys) for op, keys in conditions.items()}
        before = condition.setdefault('DateLessThan', {})
        if any(key.lower() == 'aws:currenttime' for key in before):
            raise PermanentProviderError('a statement of this role already has `DateLessThan aws:CurrentTime`')
        before['aws:CurrentTime'] = until
        out.append({**statement, 'Condition': condition})
    return {'Version': '2012-10-17', 'Statement': out}


def lock_of(document: Mapping[str, Any]) -> float | None:
    """The end of a time-locked document (the earliest ``DateLessThan aws:CurrentTime``), None if unlocked."""
    statements = document.get('Statement')
    ends = []
    for statement in statements if isinstance(statements, list) else [statements]:
        value = ((statement or {}).get('Condition') or {}).get('DateLessThan', {}).get('aws:CurrentTime')
        if not isinstance(value, str):
            return None
        ends.append(datetime.strptime(value, _TIME_FORMAT).replace(tzinfo=UTC).timestamp())
    return min(ends) if ends else None


def user_name(request: AccessRequest, conf: Mapping[str, Any], params: Mapping[str, Any]) -> str:
    """The requester's IAM user: their email (``user_name: email``, the default) or its local part."""
    mode = str(params.get('user_name') or conf.get('user_name') or 'email')
    if mode not in USER_NAME_MODES:
        raise PermanentProviderError(f'`user_name` must be `email` or `local_part`, not `{mode}`')
    email = request.requester.email
    if not email:
        raise PermanentProviderError('aws_iam needs the email of the requester to find their IAM user')
    return email if mode == 'email' else email.partition('@')[0]


class AwsIamProvider:
    """Grants by IAM group membership plus a time-locked inline user policy."""

    name = 'aws_iam'
    #: No setting may be ``env:NAME``: credentials come from the worker's own AWS chain, never from settings.
    secret_settings: frozenset[str] = frozenset()
    # Not shared: each grant is its own inline policy, so jit must revoke every one (an early release
    # included); the membership, only a marker, is counted here - kept while another jit policy holds it.
    shared_grants = False

    def __init__(self, *, session_factory: Any = None, client_factory: ClientFactory | None = None) -> None:
        self.clients = AwsClients(session_factory=session_factory, client_factory=client_factory)

    def grant(self, request: AccessRequest, *, settings: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        user, group, until = self._put(request, settings, params)
        return {'iam_user': user, 'group': group, 'permissions_end': until}

    def extend(self, request: AccessRequest, *, settings: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        """The inline policy again, locked to the new ``expires_at`` (nothing new to tell the requester)."""
        self._put(request, settings, params)
        return {}

    def revoke(self, request: AccessRequest, *, settings: dict[str, Any], params: dict[str, Any]) -> None:
        conf = resolve_settings(settings, secret=self.secret_settings)
        iam = self.clients.client('iam', conf)
        user = user_name(request, conf, params) if request.requester.email else None
        tags = self._jit_tags(iam, user) if user else None
        if tags is None or request.id not in tags:
            # Not where the email says (a stub from the reconciler, a changed `user_name`): look it up by tag.
            found = self._find_holder(iam, request.id)
            if found is None:
                log.info('aws_iam.nothing_to_revoke', request_id=request.id, user=user)
                return
            user, tags = found, self._jit_tags(iam, found) or {}
        assert user is not None
        with aws_call(f'delete the inline policy `{policy_name(request.id)}` of `{user}`', gone_ok=True):
            iam.delete_user_policy(UserName=user, PolicyName=policy_name(request.id))
        access = tags.get(request.id) or f'{request.resource}/{request.role}'
        kept_for = self._live_siblings(iam, user, request.id, access, tags)
        group = params.get('group')
        if group and not kept_for:
            with aws_call(f'remove `{user}` from the IAM group `{group}`', gone_ok=True):
                iam.remove_user_from_group(GroupName=str(group), UserName=user)
        with aws_call(f'untag `{user}`', gone_ok=True):
            iam.untag_user(UserName=user, TagKeys=[TAG_PREFIX + request.id])
        log.info('aws_iam.revoked', request_id=request.id, user=user, group=group, kept_for=kept_for)

    def list_live(self, resource: str, *, settings: dict[str, Any]) -> list[tuple[str, str]] | None:
        """``(request_id, role)`` of every ``jit:<request id>`` tag for ``resource`` on any IAM user."""
        iam = self.clients.client('iam', resolve_settings(settings, secret=self.secret_settings))
        live = []
        for user in self._users(iam):
            for tag in user.get('Tags') or ():
                res, _, role = str(tag.get('Value', '')).partition('/')
                if str(tag.get('Key', '')).startswith(TAG_PREFIX) and res == resource:
                    live.append((str(tag['Key'])[len(TAG_PREFIX) :], role))
        return live

    def _put(self, request: AccessRequest, settings: dict[str, Any], params: dict[str, Any]) -> tuple[str, str, str]:
        conf = resolve_settings(settings, secret=self.secret_settings)
        group = params.get('group')
        if not group:
            raise PermanentProviderError('the aws_iam role needs `group` (an IAM group) in its params')
        group, user = str(group), user_name(request, conf, params)
        iam = self.clients.client('iam', conf)
        until = aws_time(target_expiry(request))
        document = time_locked(self._source(iam, params), until)
        self._check_bare(iam, group)
        no_user, name = f'no IAM user `{user}`', policy_name(request.id)
        with aws_call(f'tag the IAM user `{user}`', missing=no_user):
            tag = {'Key': TAG_PREFIX + request.id, 'Value': f'{request.resource}/{request.role}'}
            iam.tag_user(UserName=user, Tags=[tag])
        with aws_call(f'put the inline policy `{name}` on `{user}`', missing=no_user):
            iam.put_user_policy(UserName=user, PolicyName=name, PolicyDocument=json.dumps(document))
        with aws_call(f'add `{user}` to the IAM group `{group}`', missing=f'no IAM group `{group}`'):
            iam.add_user_to_group(GroupName=group, UserName=user)
        log.info('aws_iam.granted', request_id=request.id, user=user, group=group, until=until)
        return user, group, until

    def _source(self, iam: Any, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """The permissions to grant: the role's ``policy`` document, or the default version of ``policy_arn``."""
        document: Any
        if params.get('policy'):
            document = params['policy']
            if isinstance(document, str):
                try:
                    document = json.loads(document)
                except ValueError as exc:
                    raise PermanentProviderError('the `policy` of this role is not JSON') from exc
        elif params.get('policy_arn'):
            arn = str(params['policy_arn'])
            with aws_call(f'read the policy `{arn}`', missing=f'no IAM policy `{arn}`'):
                version = iam.get_policy(PolicyArn=arn)['Policy']['DefaultVersionId']
                document = iam.get_policy_version(PolicyArn=arn, VersionId=version)['PolicyVersion']['Document']
            if isinstance(document, str):  # botocore decodes it; a raw answer is URL-encoded JSON
                document = json.loads(urllib.parse.unquote(document))
        else:
            raise PermanentProviderError('the aws_iam role needs `policy_arn` or `policy` (the permissions to grant)')
        if not isinstance(document, Mapping):
            raise PermanentProviderError('the policy document of this role is not a mapping')
        return document

    def _check_bare(self, iam: Any, group: str) -> None:
        """A group with policies of its own would grant them untimed: the lock would be void."""
        with aws_call(f'read the policies of the IAM group `{group}`', missing=f'no IAM group `{group}`'):
            attached = iam.list_attached_group_policies(GroupName=group, MaxItems=1).get('AttachedPolicies')
            inline = iam.list_group_policies(GroupName=group, MaxItems=1).get('PolicyNames')
        if attached or inline:
            raise PermanentProviderError(
                f'the IAM group `{group}` has policies of its own: jit grants through a time-locked inline '
                'policy and needs a group that grants nothing (see docs/providers/aws_iam.md)'
            )

    def _jit_tags(self, iam: Any, user: str) -> dict[str, str] | None:
        """``{request_id: 'resource/role'}`` of the user's jit tags; None when there is no such user."""
        tags: dict[str, str] = {}
        with aws_call(f'read the tags of `{user}`', gone_ok=True):
            for page in iam.get_paginator('list_user_tags').paginate(UserName=user):
                for tag in page.get('Tags') or ():
                    if str(tag['Key']).startswith(TAG_PREFIX):
                        tags[str(tag['Key'])[len(TAG_PREFIX) :]] = str(tag['Value'])
            return tags
        return None

    def _live_siblings(self, iam: Any, user: str, request_id: str, access: str, tags: Mapping[str, str]) -> list[str]:
        """Other grants of the same access to ``user`` still inside their lock; those past it are cleaned up."""
        live = []
        for other in sorted(rid for rid, value in tags.items() if value == access and rid != request_id):
            document = None
            with aws_call(f'read the inline policy `{policy_name(other)}` of `{user}`', gone_ok=True):
                document = iam.get_user_policy(UserName=user, PolicyName=policy_name(other))['PolicyDocument']
            if isinstance(document, str):
                document = json.loads(urllib.parse.unquote(document))
            end = lock_of(document) if isinstance(document, Mapping) else None
            if document is None or end is None or end > datetime.now(tz=UTC).timestamp():
                live.append(other)  # no policy yet: a grant half-way; the reconciler sees its tag
                continue
            with aws_call(f'delete the inline policy `{policy_name(other)}` of `{user}`', gone_ok=True):
                iam.delete_user_policy(UserName=user, PolicyName=policy_name(other))
            with aws_call(f'untag `{user}`', gone_ok=True):
                iam.untag_user(UserName=user, TagKeys=[TAG_PREFIX + other])
            log.info('aws_iam.lapsed_cleaned', request_id=other, user=user)
        return live

    def _users(self, iam: Any) -> list[dict[str, Any]]:
        """Every IAM user with its tags and inline policy names (one paginated call)."""
        users: list[dict[str, Any]] = []
        with aws_call('list the IAM users'):
            for page in iam.get_paginator('get_account_authorization_details').paginate(Filter=['User']):
                users.extend(page.get('UserDetailList') or ())
        return users

    def _find_holder(self, iam: Any, request_id: str) -> str | None:
        """The IAM user carrying this request's tag or inline policy, if any."""
        for user in self._users(iam):
            names = {p.get('PolicyName') for p in user.get('UserPolicyList') or ()}
            keys = {t.get('Key') for t in user.get('Tags') or ()}
            if policy_name(request_id) in names or TAG_PREFIX + request_id in keys:
                return str(user['UserName'])
        return None
