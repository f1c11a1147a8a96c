"""The aws_iam provider against moto's server mode (real HTTP and botocore), and botocore's Stubber where
moto cannot show a behaviour (throttling, conflicts).

moto does not evaluate ``DateLessThan`` conditions, so the lock is asserted as written (the exact
timestamp on every statement); what the requester's own access key can do is asserted with moto's IAM
authorization switched on: refused before the grant, allowed during it, refused after the revoke.
"""

from __future__ import annotations

import json
import secrets
import socket
import time
import uuid

import boto3
import pytest
from botocore.stub import Stubber

from bot.core.errors import PermanentProviderError, TransientProviderError
from bot.core.model import AccessRequest, Principal
from tests.support.aws_server import (  # noqa: F401 (fixtures, used by name)
    REGION,
    blank_aws_env,
    blank_aws_fixture,
    moto_fixture,
)
from workers.providers.aws_iam import AwsIamProvider, aws_time, policy_name, time_locked
from workers.providers.base import ACTIVATION_SLACK

pytestmark = [pytest.mark.aws, pytest.mark.usefixtures('blank_aws')]

RESOURCE = 'aws-prod'
#: What the tests grant: listing buckets, which the requester's own key cannot do otherwise.
READ_S3 = {
    'Version': '2012-10-17',
    # AWS authorizes ListBuckets as s3:ListAllMyBuckets; moto 5.2.6 checks it against s3:ListBuckets, an action
    # AWS does not have. Allowing both keeps the test about jit, not about moto's version.
    'Statement': [{'Effect': 'Allow', 'Action': ['s3:ListAllMyBuckets', 's3:ListBuckets'], 'Resource': '*'}],
}
ADMIN = {'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': '*', 'Resource': '*'}]}


@pytest.fixture(name='world')
def _world(moto):
    """A bare group, a requester (IAM user with an access key) and a managed policy, all named uniquely."""
    sfx = uuid.uuid4().hex[:8]
    iam = moto.client('iam')
    group, email = f'jit-test-{sfx}', f'alex.{sfx}@example.com'
    iam.create_group(GroupName=group)
    iam.create_user(UserName=email)
    key = iam.create_access_key(UserName=email)['AccessKey']
    arn = iam.create_policy(PolicyName=f'jit-read-{sfx}', PolicyDocument=json.dumps(READ_S3))['Policy']['Arn']
    return {'iam': iam, 'group': group, 'email': email, 'key': key, 'policy_arn': arn, 'sfx': sfx}


def new_id():
    return 'r-' + ''.join(secrets.choice('abcdefghjkmnpqrstuvwxyz23456789') for _ in range(8))


def make_request(email, *, expires_at=None, duration=3600, role='read', rid=None, requester=None):
    return AccessRequest(id=rid or new_id(), requester=requester or Principal(slack_id='U0ALEX', email=email),
                         resource=RESOURCE, role=role, duration=duration, reason='test', rule='r', policy_version='v1',
                         created_at=time.time(), expires_at=expires_at)  # fmt: skip


def settings(moto):
    return {'endpoint_url': moto.endpoint, 'region': REGION}


def params(world):
    return {'group': world['group'], 'policy_arn': world['policy_arn']}


def members(world):
    return {u['UserName'] for u in world['iam'].get_group(GroupName=world['group'])['Users']}


def inline(world):
    return set(world['iam'].list_user_policies(UserName=world['email'])['PolicyNames'])


def jit_tags(world):
    tags = world['iam'].list_user_tags(UserName=world['email'])['Tags']
    return {t['Key']: t['Value'] for t in tags if t['Key'].startswith('jit:')}


def test_grant_joins_the_group_with_a_time_locked_policy_and_revoke_removes_both(moto, world):
    """During the grant: member, tagged, inline policy with the lock on every statement; after: none of it."""
    provider = AwsIamProvider()
    request = make_request(world['email'], expires_at=time.time() + 1800)
    details = provider.grant(request, settings=settings(moto), params=params(world))
    assert details == {'iam_user': world['email'], 'group': world['group'],
                       'permissions_end': aws_time(request.expires_at)}  # fmt: skip
    assert world['email'] in members(world)
    assert jit_tags(world) == {f'jit:{request.id}': f'{RESOURCE}/read'}
    doc = world['iam'].get_user_policy(UserName=world['email'], PolicyName=policy_name(request.id))['PolicyDocument']
    assert [s['Action'] for s in doc['Statement']] == [READ_S3['Statement'][0]['Action']]
    assert all(s['Condition'] == {'DateLessThan': {'aws:CurrentTime': aws_time(request.expires_at)}}
               for s in doc['Statement'])  # fmt: skip

    provider.revoke(request, settings=settings(moto), params=params(world))
    assert world['email'] not in members(world)
    assert inline(world) == set()
    assert jit_tags(world) == {}
    provider.revoke(request, settings=settings(moto), params=params(world))  # already gone: success


def test_the_lock_joins_the_conditions_a_statement_already_has():
    """A statement's own conditions stay (all must hold); one with its own time bound is refused, not merged."""
    mfa_only = {'Bool': {'aws:MultiFactorAuthPresent': 'true'}}
    mfa = {'Effect': 'Allow', 'Action': 'ec2:*', 'Resource': '*', 'Condition': mfa_only}
    locked = time_locked({'Statement': mfa}, '2030-01-01T00:00:00Z')
    lock = {'DateLessThan': {'aws:CurrentTime': '2030-01-01T00:00:00Z'}}
    assert locked['Statement'][0]['Condition'] == {**mfa_only, **lock}
    bounded = {**mfa, 'Condition': {'DateLessThan': {'AWS:CurrentTime': '2029-01-01T00:00:00Z'}}}
    with pytest.raises(PermanentProviderError, match='already has'):
        time_locked({'Statement': [bounded]}, '2030-01-01T00:00:00Z')


def test_lock_before_activation_is_the_duration_from_now_plus_the_slack(moto, world):
    """Granted before the clock starts: the lock is now + duration + slack, to the second, never earlier."""
    request = make_request(world['email'], duration=900)
    before = time.time()
    AwsIamProvider().grant(request, settings=settings(moto), params={**params(world), 'policy_arn': None,
                                                                      'policy': json.dumps(READ_S3)})  # fmt: skip
    after = time.time()
    doc = world['iam'].get_user_policy(UserName=world['email'], PolicyName=policy_name(request.id))['PolicyDocument']
    lock = doc['Statement'][0]['Condition']['DateLessThan']['aws:CurrentTime']
    assert aws_time(before + 900 + ACTIVATION_SLACK) <= lock <= aws_time(after + 900 + ACTIVATION_SLACK)
    AwsIamProvider().revoke(request, settings=settings(moto), params=params(world))


def test_extend_moves_the_lock_to_the_new_end(moto, world):
    """An extension rewrites the condition to the new ``expires_at``."""
    provider, end = AwsIamProvider(), time.time() + 600
    request = make_request(world['email'], expires_at=end)
    provider.grant(request, settings=settings(moto), params=params(world))
    extended = make_request(world['email'], expires_at=end + 3600, rid=request.id)
    assert provider.extend(extended, settings=settings(moto), params=params(world)) == {}
    doc = world['iam'].get_user_policy(UserName=world['email'], PolicyName=policy_name(request.id))['PolicyDocument']
    assert doc['Statement'][0]['Condition']['DateLessThan']['aws:CurrentTime'] == aws_time(end + 3600)
    provider.revoke(request, settings=settings(moto), params=params(world))
    assert inline(world) == set() and world['email'] not in members(world)


def test_requesters_own_key_works_during_the_grant_and_is_refused_after(moto, world, monkeypatch):
    """With moto's IAM authorization on, the requester's access key lists buckets only while granted."""
    iam, sfx = world['iam'], world['sfx']
    iam.create_user(UserName=f'jit-worker-{sfx}')
    iam.put_user_policy(UserName=f'jit-worker-{sfx}', PolicyName='all', PolicyDocument=json.dumps(ADMIN))
    worker = iam.create_access_key(UserName=f'jit-worker-{sfx}')['AccessKey']
    blank_aws_env(monkeypatch, key=worker['AccessKeyId'], secret=worker['SecretAccessKey'])
    own = moto.client('s3', key=world['key']['AccessKeyId'], secret=world['key']['SecretAccessKey'])
    provider, request = AwsIamProvider(), make_request(world['email'], expires_at=time.time() + 600)
    with moto.iam_auth():
        with pytest.raises(own.exceptions.ClientError, match='AccessDenied'):
            own.list_buckets()
        provider.grant(request, settings=settings(moto), params=params(world))
        assert own.list_buckets()['Buckets'] == []
        provider.revoke(request, settings=settings(moto), params=params(world))
        with pytest.raises(own.exceptions.ClientError, match='AccessDenied'):
            own.list_buckets()


def test_role_arn_is_assumed_with_the_workers_credentials(moto, world, monkeypatch):
    """The worker's key may only assume the role; the grant works through ``role_arn`` and is refused without it."""
    iam, sfx = world['iam'], world['sfx']
    iam.create_user(UserName=f'jit-worker-{sfx}')
    worker_arn = iam.get_user(UserName=f'jit-worker-{sfx}')['User']['Arn']
    trust = {'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Principal': {'AWS': worker_arn},
                                                     'Action': 'sts:AssumeRole'}]}  # fmt: skip
    role_arn = iam.create_role(RoleName=f'jit-granter-{sfx}', AssumeRolePolicyDocument=json.dumps(trust))['Role']['Arn']
    iam.put_role_policy(RoleName=f'jit-granter-{sfx}', PolicyName='all', PolicyDocument=json.dumps(ADMIN))
    only_assume = {'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': 'sts:AssumeRole',
                                                           'Resource': role_arn}]}  # fmt: skip
    iam.put_user_policy(UserName=f'jit-worker-{sfx}', PolicyName='assume', PolicyDocument=json.dumps(only_assume))
    worker = iam.create_access_key(UserName=f'jit-worker-{sfx}')['AccessKey']
    blank_aws_env(monkeypatch, key=worker['AccessKeyId'], secret=worker['SecretAccessKey'])
    request = make_request(world['email'], expires_at=time.time() + 600)
    with moto.iam_auth():
        with pytest.raises(PermanentProviderError, match="jit's AWS identity may not"):
            AwsIamProvider().grant(request, settings=settings(moto), params=params(world))
        AwsIamProvider().grant(request, settings={**settings(moto), 'role_arn': role_arn}, params=params(world))
    assert world['email'] in members(world)
    AwsIamProvider().revoke(request, settings=settings(moto), params=params(world))


def test_overlapping_grants_each_keep_their_own_policy(moto, world):
    """A and B for the same person: revoking A removes only A's policy (B still holds the membership); revoking
    the last one removes its policy and the membership."""
    provider, end = AwsIamProvider(), time.time() + 600
    a, b = make_request(world['email'], expires_at=end), make_request(world['email'], expires_at=end + 600)
    provider.grant(a, settings=settings(moto), params=params(world))
    provider.grant(b, settings=settings(moto), params=params(world))
    assert inline(world) == {policy_name(a.id), policy_name(b.id)}

    provider.revoke(a, settings=settings(moto), params=params(world))
    assert inline(world) == {policy_name(b.id)}
    assert world['email'] in members(world)
    assert set(jit_tags(world)) == {f'jit:{b.id}'}

    provider.revoke(b, settings=settings(moto), params=params(world))
    assert inline(world) == set()
    assert world['email'] not in members(world)
    assert jit_tags(world) == {}


def test_revoke_of_the_last_holder_also_removes_an_earlier_grant_past_its_lock(moto, world):
    """jit never revokes A when B overlaps it; A's policy (void since its lock) goes with B's revoke."""
    provider = AwsIamProvider()
    a = make_request(world['email'], expires_at=time.time() - 60)
    b = make_request(world['email'], expires_at=time.time() + 600)
    provider.grant(a, settings=settings(moto), params=params(world))
    provider.grant(b, settings=settings(moto), params=params(world))
    provider.revoke(b, settings=settings(moto), params=params(world))
    assert inline(world) == set()
    assert world['email'] not in members(world)
    assert jit_tags(world) == {}


def test_grant_twice_is_one_grant(moto, world):
    """A repeated grant (a retry after a timeout) leaves one policy, one tag, one membership."""
    provider, request = AwsIamProvider(), make_request(world['email'], expires_at=time.time() + 600)
    provider.grant(request, settings=settings(moto), params=params(world))
    provider.grant(request, settings=settings(moto), params=params(world))
    assert inline(world) == {policy_name(request.id)}
    assert list(members(world)) == [world['email']]
    provider.revoke(request, settings=settings(moto), params=params(world))
    assert inline(world) == set()


def test_list_live_reports_tagged_grants_and_the_reconciler_stub_revokes_them(moto, world):
    """``list_live`` gives (request_id, role) for this resource only; a revoke of a stub without an email
    (how the reconciler revokes an orphan) finds the user by the tag and removes everything."""
    provider, request = AwsIamProvider(), make_request(world['email'], expires_at=time.time() + 600, role='admin')
    provider.grant(request, settings=settings(moto), params=params(world))
    assert (request.id, 'admin') in provider.list_live(RESOURCE, settings=settings(moto))
    assert all(rid != request.id for rid, _ in provider.list_live('other', settings=settings(moto)))

    stub = make_request('', rid=request.id, role='admin', requester=Principal())
    provider.revoke(stub, settings=settings(moto), params=params(world))
    assert inline(world) == set() and jit_tags(world) == {}
    assert world['email'] not in members(world)
    assert all(rid != request.id for rid, _ in provider.list_live(RESOURCE, settings=settings(moto)))


def test_user_name_local_part(moto, world):
    """``user_name: local_part`` names the IAM user by the part of the email before the ``@``."""
    local = world['email'].partition('@')[0]
    world['iam'].create_user(UserName=local)
    provider, request = AwsIamProvider(), make_request(world['email'], expires_at=time.time() + 600)
    provider.grant(request, settings={**settings(moto), 'user_name': 'local_part'}, params=params(world))
    assert local in members(world)
    provider.revoke(request, settings={**settings(moto), 'user_name': 'local_part'}, params=params(world))
    assert local not in members(world)


@pytest.mark.parametrize(
    ('change', 'message'),
    [
        ({'email': 'nobody@example.com'}, 'no IAM user `nobody@example.com`'),
        ({'group': 'no-such-group'}, 'no IAM group `no-such-group`'),
        ({'policy_arn': 'arn:aws:iam::123456789012:policy/none'}, 'no IAM policy'),
        ({'policy_arn': None}, 'needs `policy_arn` or `policy`'),
        ({'user_name': 'nickname'}, '`user_name` must be `email` or `local_part`'),
    ],
)
def test_refusals_are_permanent_with_a_clear_message(moto, world, change, message):
    """A missing user, group or policy, or a bad setting: the grant fails with a message, nothing is left."""
    email = change.pop('email', world['email'])
    request = make_request(email, expires_at=time.time() + 600)
    with pytest.raises(PermanentProviderError, match=message):
        AwsIamProvider().grant(request, settings=settings(moto), params={**params(world), **change})
    assert inline(world) == set() and world['email'] not in members(world)


def test_a_group_with_policies_of_its_own_is_refused(moto, world):
    """Such a group would grant its policies untimed, and the lock would be void."""
    world['iam'].attach_group_policy(GroupName=world['group'], PolicyArn=world['policy_arn'])
    request = make_request(world['email'], expires_at=time.time() + 600)
    with pytest.raises(PermanentProviderError, match='has policies of its own'):
        AwsIamProvider().grant(request, settings=settings(moto), params=params(world))
    assert world['email'] not in members(world)


def test_unreachable_endpoint_is_transient():
    """Connection refused is retried by jit."""
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    request = make_request('alex@example.com', expires_at=time.time() + 600)
    closed = {'endpoint_url': f'http://127.0.0.1:{port}', 'region': REGION}
    with pytest.raises(TransientProviderError, match='could not be reached'):
        AwsIamProvider().grant(request, settings=closed, params={'group': 'g', 'policy': READ_S3})


@pytest.mark.parametrize('code', ['Throttling', 'ServiceUnavailable', 'ConflictException'])
def test_throttling_and_conflicts_are_transient(code):
    """What AWS answers under load or a concurrent change is retried (botocore's Stubber, as moto never says it)."""
    iam = boto3.client('iam', region_name=REGION, aws_access_key_id='testing', aws_secret_access_key='testing')
    with Stubber(iam) as stub:
        stub.add_client_error('list_attached_group_policies', service_error_code=code, http_status_code=400)
        request = make_request('alex@example.com', expires_at=time.time() + 600)
        with pytest.raises(TransientProviderError, match=code):
            AwsIamProvider(client_factory=lambda service, conf: iam).grant(
                request, settings={}, params={'group': 'g', 'policy': READ_S3}
            )
        stub.assert_no_pending_responses()
