"""One request per real provider, from a Slack click to the grant and, at its expiry, the revoke.

Everything is real: the local Slack and the signed HTTP protocol, ``jit serve`` and ``jit worker``, Redis,
a PostgreSQL cluster with password logins, moto's AWS API server, an OpenSSH ``sshd``. alex registers an
SSH key and asks for four grants of 20 s; sam approves them; each works at its target (a PostgreSQL login
with the password from the DM, the IAM group membership, the Identity Center assignment, an ``ssh`` login
with the certificate from the DM); at the expiry jit revokes each, and each stops working.
"""

from __future__ import annotations

import json
import re
import subprocess
import textwrap

import psycopg
import pytest
import redis

from bot.adapters.redis_store import RedisStore
from bot.core.model import RequestStatus
from bot.deps import SystemClock
from bot.sandbox.local_slack import LocalSlack
from bot.sandbox.workspace import seed_workspace
from tests.support.aws_server import DUMMY, REGION, moto_server
from tests.support.postgres_server import (  # noqa: F401 (fixtures, used by name)
    DB,
    PgEnv,
    _pg_env,
    _pg_server,
)
from tests.support.processes import launch_jit, wait_until
from tests.support.redis_server import own_redis_url
from tests.support.sshd_server import SSHD, SshdServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres, pytest.mark.aws,
              pytest.mark.sshd]  # fmt: skip

SIGNING_SECRET = 'providers-e2e-secret'
REDIS_URL = own_redis_url(5)
ALEX, SAM = 'U0ALEX', 'U0SAM'
ACCOUNT = '111122223333'
S = RequestStatus
SECONDS = 20


def _policy(moto_url: str, sso: dict[str, str], krl: str) -> str:
    return textwrap.dedent(f"""\
        groups:
          devops: [alex@example.com]
          leads: [sam@example.com]
        resources:
          analytics-db:
            provider: postgres
            settings: {{dsn: env:PG_ADMIN_DSN}}
            roles: {{read: {{grant: analytics_read}}}}
          aws-prod:
            provider: aws_iam
            settings: {{endpoint_url: '{moto_url}', region: {REGION}}}
            roles:
              read:
                group: jit-e2e-read
                policy:
                  Version: '2012-10-17'
                  Statement: [{{Effect: Allow, Action: 's3:ListAllMyBuckets', Resource: '*'}}]
          aws-sso:
            provider: aws_sso
            settings: {{endpoint_url: '{moto_url}', region: {REGION}, instance_arn: '{sso['instance']}',
                        identity_store_id: '{sso['store']}'}}
            roles: {{admin: {{permission_set_arn: '{sso['ps']}', account_id: '{ACCOUNT}'}}}}
          bastion:
            provider: ssh
            settings: {{ca_key: env:JIT_SSH_CA_KEY, revoked_keys: '{krl}', host: 127.0.0.1}}
            roles: {{deploy: {{principals: [deploy]}}}}
        requests:
          - name: ops
            requesters: [group:devops]
            approvers: [group:leads]
            timeout: 1h
        """)  # fmt: skip


def _details(slack: LocalSlack, request_id: str) -> dict[str, str]:
    """The "Access details … (shown once)" DM to alex for ``request_id``, as {key: value}."""
    message = slack.workspace.wait_for_message(
        lambda m: m.channel == slack.workspace.dm_channel_id(ALEX) and 'Access details' in m.content
        and request_id in m.content, timeout=30)  # fmt: skip
    return dict(re.findall(r'• \*([a-z_]+)\*: `([^`]*)`', message.text))


@pytest.mark.skipif(SSHD is None, reason='needs OpenSSH sshd (apt-get install openssh-server)')
def test_each_provider_from_click_to_grant_to_revoke(tmp_path, pg_env: PgEnv):
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    store = RedisStore(redis.Redis.from_url(REDIS_URL, decode_responses=True), clock=SystemClock())
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', str(tmp_path / 'ca')], check=True)
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', str(tmp_path / 'alex')], check=True)
    slack = LocalSlack(workspace=seed_workspace(), signing_secret=SIGNING_SECRET)
    slack.start_in_thread()
    with (
        moto_server() as moto,
        SshdServer(tmp_path / 'sshd', ca_public=(tmp_path / 'ca.pub').read_text(), principals={'deploy'}) as sshd,
    ):
        iam, sso_admin, identity = moto.client('iam'), moto.client('sso-admin'), moto.client('identitystore')
        iam.create_user(UserName='alex@example.com')
        iam.create_group(GroupName='jit-e2e-read')
        instance = sso_admin.list_instances()['Instances'][0]
        ps = sso_admin.create_permission_set(Name='jit-e2e-admin', InstanceArn=instance['InstanceArn'])
        identity.create_user(IdentityStoreId=instance['IdentityStoreId'], UserName='alex', DisplayName='Alex',
                             Name={'GivenName': 'Alex', 'FamilyName': 'Example'},
                             Emails=[{'Value': 'alex@example.com', 'Type': 'work', 'Primary': True}])  # fmt: skip
        sso = {'instance': instance['InstanceArn'], 'store': instance['IdentityStoreId'],
               'ps': ps['PermissionSet']['PermissionSetArn']}  # fmt: skip
        env = {
            'PG_ADMIN_DSN': pg_env.admin_dsn, 'JIT_SSH_CA_KEY': (tmp_path / 'ca').read_text(),
            'AWS_ACCESS_KEY_ID': DUMMY, 'AWS_SECRET_ACCESS_KEY': DUMMY, 'AWS_DEFAULT_REGION': REGION,
            'AWS_SHARED_CREDENTIALS_FILE': '/nonexistent', 'AWS_CONFIG_FILE': '/nonexistent',
            'AWS_EC2_METADATA_DISABLED': 'true',
        }  # fmt: skip
        jit = launch_jit(tmp_path / 'jit', slack=slack, signing_secret=SIGNING_SECRET, redis_url=REDIS_URL,
                         policy=_policy(moto.endpoint, sso, str(sshd.krl)), **env)  # fmt: skip
        try:
            assert 'Registered' in slack.driver.slash(ALEX, f'ssh-key {(tmp_path / "alex.pub").read_text()}').text
            ids = {}
            for resource, role in (('analytics-db', 'read'), ('aws-prod', 'read'), ('aws-sso', 'admin'),
                                   ('bastion', 'deploy')):  # fmt: skip
                reply = slack.driver.slash(ALEX, f'request {resource} {role} {SECONDS}s e2e of {resource}')
                assert 'Filed' in (reply.text or ''), reply.text
                ids[resource] = reply.text.split('`')[1]
            for request_id in ids.values():
                copy = slack.workspace.wait_for_message(
                    lambda m, r=request_id: m.channel == slack.workspace.dm_channel_id(SAM) and r in m.content
                    and m.action_ids, timeout=15)  # fmt: skip
                assert slack.driver.click(SAM, copy, 'jit.approve').status == 200
            for request_id in ids.values():
                wait_until(lambda r=request_id: store.get(r).status is S.ACTIVE, timeout=45,
                           what=f'{request_id} active')  # fmt: skip

            # During the grants: each works at its target.
            pg = _details(slack, ids['analytics-db'])
            with psycopg.connect(pg_env.server.dsn(DB, user=pg['user'], password=pg['password'])) as conn:
                assert conn.execute('SELECT what FROM analytics.events').fetchall() == [('signup',)]
            members = [u['UserName'] for u in iam.get_group(GroupName='jit-e2e-read')['Users']]
            assert members == ['alex@example.com']
            assigned = sso_admin.list_account_assignments(InstanceArn=sso['instance'], AccountId=ACCOUNT,
                                                          PermissionSetArn=sso['ps'])['AccountAssignments']  # fmt: skip
            assert len(assigned) == 1
            cert = tmp_path / 'alex-cert.pub'
            cert.write_text(_details(slack, ids['bastion'])['certificate'] + '\n')
            assert sshd.login(tmp_path / 'alex', cert).returncode == 0

            # At the expiry: revoked at each target, and refused there.
            for request_id in ids.values():
                wait_until(lambda r=request_id: store.get(r).status is S.REVOKED, timeout=SECONDS + 30,
                           what=f'{request_id} revoked')  # fmt: skip
            late = {r: store.get(r).ended_at - store.get(r).expires_at for r in ids.values()}
            print(f'\nproviders e2e: revoke recorded after expires_at by {json.dumps(late)}')
            assert max(late.values()) < 10, late
            with pytest.raises(psycopg.OperationalError):
                psycopg.connect(pg_env.server.dsn(DB, user=pg['user'], password=pg['password'])).close()
            assert iam.get_group(GroupName='jit-e2e-read')['Users'] == []
            assert not iam.list_user_policies(UserName='alex@example.com')['PolicyNames']
            left = sso_admin.list_account_assignments(InstanceArn=sso['instance'], AccountId=ACCOUNT,
                                                      PermissionSetArn=sso['ps'])['AccountAssignments']  # fmt: skip
            assert left == []
            # The certificate outlives the grant by the activation slack: the KRL is what refuses it now.
            assert sshd.login(tmp_path / 'alex', cert).returncode != 0
            check = subprocess.run(['ssh-keygen', '-Q', '-f', str(sshd.krl), str(cert)], capture_output=True,
                                   text=True)  # fmt: skip
            assert 'REVOKED' in check.stdout, check.stdout
        except BaseException:
            print(jit.dump_logs())
            raise
        finally:
            jit.stop()
            slack.stop_thread()
            client.flushdb()
