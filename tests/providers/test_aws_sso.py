"""The aws_sso provider against moto's server mode (sso-admin and identitystore), and botocore's Stubber for
what moto never answers: an assignment still ``IN_PROGRESS``, ``FAILED``, throttling and conflicts.
"""

from __future__ import annotations

import time
import uuid

import boto3
import pytest

from bot.core.errors import PermanentProviderError, TransientProviderError
from bot.core.model import AccessRequest, Principal
from tests.support.aws_server import (  # noqa: F401 (fixtures, used by name)
    REGION,
    blank_aws_fixture,
    moto_fixture,
)
from tests.support.botocore_stubs import ModelStubber
from workers.providers.aws_sso import AwsSsoProvider

pytestmark = [pytest.mark.aws, pytest.mark.usefixtures('blank_aws')]

ACCOUNT = '111122223333'
INSTANCE = 'arn:aws:sso:::instance/ssoins-0123456789abcdef'
PS_ARN = f'{INSTANCE}/ps-0123456789abcdef'
STORE = 'd-0123456789'
USER_ID = '90676c9b3e-1d2c3a4b-5c6d-7e8f-9a0b-1c2d3e4f5a6b'


@pytest.fixture(name='world')
def _world(moto):
    """moto's Identity Center instance, a permission set, and a user whose email is unique to this test."""
    sso, store = moto.client('sso-admin'), moto.client('identitystore')
    instance = sso.list_instances()['Instances'][0]
    sfx = uuid.uuid4().hex[:8]
    ps = sso.create_permission_set(Name=f'jit-read-{sfx}', InstanceArn=instance['InstanceArn'])['PermissionSet']
    email = f'alex.{sfx}@example.com'
    user_id = store.create_user(
        IdentityStoreId=instance['IdentityStoreId'], UserName=f'alex-{sfx}', DisplayName='Alex',
        Name={'GivenName': 'Alex', 'FamilyName': 'Example'}, Emails=[{'Value': email, 'Type': 'work', 'Primary': True}],
    )['UserId']  # fmt: skip
    return {'sso': sso, 'store': store, 'instance': instance['InstanceArn'], 'store_id': instance['IdentityStoreId'],
            'ps': ps['PermissionSetArn'], 'email': email, 'user_id': user_id, 'sfx': sfx}  # fmt: skip


def make_request(email):
    return AccessRequest(id='r-' + uuid.uuid4().hex[:8], requester=Principal(slack_id='U0ALEX', email=email),
                         resource='aws-sso-prod', role='read', duration=3600, reason='test', rule='r',
                         policy_version='v1', created_at=time.time())  # fmt: skip


def settings(moto, world):
    return {'endpoint_url': moto.endpoint, 'region': REGION, 'instance_arn': world['instance'],
            'identity_store_id': world['store_id']}  # fmt: skip


def params(world):
    return {'permission_set_arn': world['ps'], 'account_id': ACCOUNT}


def assigned(world):
    pages = world['sso'].list_account_assignments(InstanceArn=world['instance'], AccountId=ACCOUNT,
                                                  PermissionSetArn=world['ps'])  # fmt: skip
    return [(a['PrincipalType'], a['PrincipalId']) for a in pages['AccountAssignments']]


def test_grant_creates_the_assignment_and_revoke_deletes_it(moto, world):
    """The requester's user (found by email) is assigned the permission set on the account, then no longer."""
    provider, request = AwsSsoProvider(), make_request(world['email'])
    details = provider.grant(request, settings=settings(moto, world), params=params(world))
    assert details == {'account_id': ACCOUNT, 'permission_set_arn': world['ps']}
    assert assigned(world) == [('USER', world['user_id'])]
    provider.grant(request, settings=settings(moto, world), params=params(world))  # a retry: still one
    assert assigned(world) == [('USER', world['user_id'])]

    provider.revoke(request, settings=settings(moto, world), params=params(world))
    assert assigned(world) == []
    provider.revoke(request, settings=settings(moto, world), params=params(world))  # already gone: success


def test_user_found_by_user_name_when_no_email_matches(moto, world):
    """Directories that keep the email as the user name only: ``userName`` is the second lookup."""
    email = f'sam.{world["sfx"]}@example.com'
    # (an email that is not the Slack one: moto's `emails.value` lookup fails on a user with no email at all)
    user_id = world['store'].create_user(
        IdentityStoreId=world['store_id'], UserName=email, DisplayName='Sam',
        Name={'GivenName': 'Sam', 'FamilyName': 'Example'},
        Emails=[{'Value': f'sam.{world["sfx"]}@personal.example', 'Primary': True}],
    )['UserId']  # fmt: skip
    provider, request = AwsSsoProvider(), make_request(email)
    conf = {**settings(moto, world), 'start_url': 'https://example.awsapps.com/start'}
    details = provider.grant(request, settings=conf, params=params(world))
    assert details['sign_in'] == 'https://example.awsapps.com/start'
    assert assigned(world) == [('USER', user_id)]
    provider.revoke(request, settings=conf, params=params(world))
    assert assigned(world) == []


def test_unknown_user_is_permanent_on_grant_and_nothing_on_revoke(moto, world):
    """No Identity Center user for the email: the grant fails with a clear message; a revoke has nothing to do."""
    request = make_request('nobody@example.com')
    with pytest.raises(PermanentProviderError, match=r'no IAM Identity Center user .*`nobody@example\.com`'):
        AwsSsoProvider().grant(request, settings=settings(moto, world), params=params(world))
    AwsSsoProvider().revoke(request, settings=settings(moto, world), params=params(world))
    assert assigned(world) == []


def test_missing_settings_are_named(moto, world):
    """Every missing setting and param is named at once."""
    with pytest.raises(PermanentProviderError, match=r'`settings\.identity_store_id`, `params\.account_id`'):
        AwsSsoProvider().grant(make_request(world['email']), settings={'instance_arn': world['instance']},
                               params={'permission_set_arn': world['ps']})  # fmt: skip


def test_list_live_cannot_tell():
    """Assignments carry no request ID: the reconciler is told so (None), not given an empty list."""
    assert AwsSsoProvider().list_live('aws-sso-prod', settings={}) is None


# --- what moto never answers: botocore's Stubber on injected clients -------------------------------------

CONF = {'instance_arn': INSTANCE, 'identity_store_id': STORE}
PARAMS = {'permission_set_arn': PS_ARN, 'account_id': ACCOUNT}
TARGET = {'InstanceArn': INSTANCE, 'TargetId': ACCOUNT, 'TargetType': 'AWS_ACCOUNT', 'PermissionSetArn': PS_ARN,
          'PrincipalType': 'USER', 'PrincipalId': USER_ID}  # fmt: skip
LIST = {'InstanceArn': INSTANCE, 'AccountId': ACCOUNT, 'PermissionSetArn': PS_ARN}


class Clock:
    """A clock that moves only when the provider sleeps."""

    def __init__(self):
        self.now, self.sleeps = 0.0, []

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture(name='stubbed')
def _stubbed():
    """Stubbed sso-admin and identitystore clients, the identity lookup already queued; a fake clock."""
    clients = {s: boto3.client(s, region_name=REGION, aws_access_key_id='testing', aws_secret_access_key='testing')
               for s in ('sso-admin', 'identitystore')}  # fmt: skip
    stubs = {s: ModelStubber(c) for s, c in clients.items()}
    stubs['identitystore'].add_response('get_user_id', {'UserId': USER_ID, 'IdentityStoreId': STORE})
    clock = Clock()
    provider = AwsSsoProvider(client_factory=lambda service, conf: clients[service], poll_timeout=60,
                              poll_interval=2, sleep=clock.sleep, clock=lambda: clock.now)  # fmt: skip
    for stub in stubs.values():
        stub.activate()
    yield provider, stubs['sso-admin'], clock
    for stub in stubs.values():
        stub.deactivate()


def status(state, **extra):
    return {'Status': state, 'RequestId': 'a1b2c3d4-0000-4000-8000-000000000001', **extra}


def test_in_progress_is_polled_until_it_succeeds(stubbed):
    """``IN_PROGRESS`` twice, then ``SUCCEEDED``: the grant waits and succeeds."""
    provider, sso, clock = stubbed
    sso.add_response('list_account_assignments', {'AccountAssignments': []}, LIST)
    sso.add_response('create_account_assignment', {'AccountAssignmentCreationStatus': status('IN_PROGRESS')}, TARGET)
    for state in ('IN_PROGRESS', 'SUCCEEDED'):
        sso.add_response('describe_account_assignment_creation_status',
                         {'AccountAssignmentCreationStatus': status(state)})  # fmt: skip
    provider.grant(make_request('alex@example.com'), settings=CONF, params=PARAMS)
    sso.assert_no_pending_responses()
    assert clock.sleeps == [2, 2]


def test_failed_is_permanent_with_the_reason(stubbed):
    """``FAILED`` ends the grant with AWS's reason."""
    provider, sso, _ = stubbed
    sso.add_response('list_account_assignments', {'AccountAssignments': []}, LIST)
    sso.add_response('create_account_assignment', {'AccountAssignmentCreationStatus': status('IN_PROGRESS')}, TARGET)
    sso.add_response('describe_account_assignment_creation_status', {'AccountAssignmentCreationStatus': status(
        'FAILED', FailureReason='Received a 404 status error: Not supported policy')})  # fmt: skip
    with pytest.raises(PermanentProviderError, match='could not complete the assignment creation: Received a 404'):
        provider.grant(make_request('alex@example.com'), settings=CONF, params=PARAMS)


def test_still_in_progress_after_the_timeout_is_transient(stubbed):
    """Still ``IN_PROGRESS`` after 60 s: retried later (the retry finds the assignment and is done)."""
    provider, sso, clock = stubbed
    sso.add_response('list_account_assignments', {'AccountAssignments': []}, LIST)
    sso.add_response('create_account_assignment', {'AccountAssignmentCreationStatus': status('IN_PROGRESS')}, TARGET)
    for _ in range(30):
        sso.add_response('describe_account_assignment_creation_status',
                         {'AccountAssignmentCreationStatus': status('IN_PROGRESS')})  # fmt: skip
    with pytest.raises(TransientProviderError, match='still in progress after 60 s'):
        provider.grant(make_request('alex@example.com'), settings=CONF, params=PARAMS)
    assert clock.now == 60


@pytest.mark.parametrize('code', ['ThrottlingException', 'ConflictException', 'InternalServerException'])
def test_throttling_and_conflicts_are_transient(stubbed, code):
    """What Identity Center answers under load or during a concurrent change of the same assignment is retried."""
    provider, sso, _ = stubbed
    sso.add_response('list_account_assignments', {'AccountAssignments': []}, LIST)
    sso.add_client_error('create_account_assignment', service_error_code=code, http_status_code=400)
    with pytest.raises(TransientProviderError, match=code):
        provider.grant(make_request('alex@example.com'), settings=CONF, params=PARAMS)


def test_revoke_whose_deletion_fails_but_is_gone_is_success(stubbed):
    """A ``FAILED`` deletion of an assignment that is no longer there counts as revoked."""
    provider, sso, _ = stubbed
    present = {'AccountAssignments': [{'AccountId': ACCOUNT, 'PermissionSetArn': PS_ARN, 'PrincipalType': 'USER',
                                       'PrincipalId': USER_ID}]}  # fmt: skip
    sso.add_response('list_account_assignments', present, LIST)
    sso.add_response('delete_account_assignment', {'AccountAssignmentDeletionStatus': status('IN_PROGRESS')}, TARGET)
    sso.add_response('describe_account_assignment_deletion_status', {'AccountAssignmentDeletionStatus': status(
        'FAILED', FailureReason='assignment does not exist')})  # fmt: skip
    sso.add_response('list_account_assignments', {'AccountAssignments': []}, LIST)
    provider.revoke(make_request('alex@example.com'), settings=CONF, params=PARAMS)
    sso.assert_no_pending_responses()


def test_revoke_whose_deletion_fails_and_is_still_there_is_an_error(stubbed):
    """A ``FAILED`` deletion of an assignment still in place is not a revoke."""
    provider, sso, _ = stubbed
    present = {'AccountAssignments': [{'AccountId': ACCOUNT, 'PermissionSetArn': PS_ARN, 'PrincipalType': 'USER',
                                       'PrincipalId': USER_ID}]}  # fmt: skip
    sso.add_response('list_account_assignments', present, LIST)
    sso.add_response('delete_account_assignment', {'AccountAssignmentDeletionStatus': status(
        'FAILED', FailureReason='internal')})  # fmt: skip
    sso.add_response('list_account_assignments', present, LIST)
    with pytest.raises(PermanentProviderError, match='assignment deletion: internal'):
        provider.revoke(make_request('alex@example.com'), settings=CONF, params=PARAMS)
