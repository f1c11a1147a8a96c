"""A policy used by the core tests, built from YAML text with the real loader."""

from bot.core.model import Principal
from bot.core.policy_loader import build_policy

POLICY_YAML = """
groups:
  devops: [alex@example.com, dana@example.com]
  leads: [sam@example.com]
  security: [sec@example.com, U0SEC]
  oncall: [group:devops, group:leads]
admins: [group:security]
resources:
  prod-db:
    provider: webhook
    settings: {url: "http://127.0.0.1:1/x", secret: env:S}
    roles: {read: {grant: pg_read_all_data}, write: {grant: app_writer}}
  demo:
    provider: webhook
    roles: [read]
  deploy-hook:
    provider: webhook
    roles: [deploy]
requests:
  - name: prod-read
    resources: [prod-db]
    roles: [read]
    requesters: [group:devops]
    approvers: [group:leads, group:security]
    timeout: 2 hours
    default_duration: 30m
    require_reason: true
    ticket_pattern: '^(INC|CHG)-[0-9]+$'
  - name: prod-write
    resources: [prod-db]
    roles: [write]
    requesters: [group:oncall]
    steps:
      - {approvers: [group:leads], approvals: 1}
      - {approvers: [group:security], approvals: 2}
    timeout: 1h
  - name: demo-self
    resources: [demo]
    requesters: [sam@example.com]
    auto_approve: true
    timeout: 20m
  - name: demo-all
    resources: [demo]
    approvers: [group:leads]
    approvals: 1
    timeout: 4h
  - name: prod-break-glass
    resources: [prod-db]
    roles: [write]
    requesters: [U0SEC]
    break_glass: true
    require_reason: true
    timeout: 30m
  - name: deploy-main
    resources: [deploy-hook]
    requesters: [pipeline:deploy-main]
    trigger: {pipeline: pr_merge, branch: production}
    auto_approve: true
    timeout: 20m
"""

ALEX = Principal(slack_id='U0ALEX', email='alex@example.com')
DANA = Principal(slack_id='U0DANA', email='Dana@Example.com')
SAM = Principal(slack_id='U0SAM', email='sam@example.com')
SEC = Principal(slack_id='U0SEC', email='sec@example.com')
SEC2 = Principal(slack_id='U0SEC2', email='SEC@example.com')  # same email as SEC: the same person
EVE = Principal(slack_id='U0EVE', email='eve@example.com')
PIPE = Principal(pipeline='deploy-main')


def policy():
    return build_policy({'policies/main.yaml': POLICY_YAML})
