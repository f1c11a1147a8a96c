"""The policies the suites that run real jit processes give them, as named parts, so each suite's own
additions show where it adds them.

The people are those of the seeded workspace (``bot/sandbox/workspace.py``): alex, dana and sam in devops,
sam also in leads, sec in security (the admins). The one resource is ``demo-app``, granted through the
webhook target the suites start (``DEMO_WEBHOOK_URL`` / ``DEMO_WEBHOOK_SECRET``, see ``tests/support/slack.py``).

    DEMO_POLICY     tests/chaos: one rule, demo-read (sam or security approves, a reason is required)
    E2E_POLICY      tests/e2e, tests/fuzz: DEMO_POLICY, demo-read self-extendable by 1m, and a demo-deploy
                    rule whose pending requests expire after 6 s
    PIPELINE_RULES  two rules for pipelines (``pipeline:deploy-main`` auto-approved, ``pipeline:nightly`` on a
                    merge to production), appended to E2E_POLICY by the pipeline API and ``jit ci`` tests

Suites with a policy of other people or resources (the approval copies, the providers) keep it in their module.
"""

from __future__ import annotations

__all__ = ['DEMO_POLICY', 'E2E_POLICY', 'PIPELINE_RULES']

PEOPLE = """\
groups:
  devops: [alex@example.com, dana@example.com, sam@example.com]
  leads: [sam@example.com]
  security: [sec@example.com]
admins: [group:security]
"""

DEMO_APP = """\
resources:
  demo-app:
    description: the demo app
    provider: webhook
    settings: {url: env:DEMO_WEBHOOK_URL, secret: env:DEMO_WEBHOOK_SECRET, reconcile: true}
    roles: [read, deploy]
"""

DEMO_READ = """\
  - name: demo-read
    resources: [demo-app]
    roles: [read]
    requesters: [group:devops]
    approvers: [group:leads, group:security]
    approvals: 1
    timeout: 2h
    default_duration: 30m
    require_reason: true
"""

#: One more line of demo-read: its requester may extend a grant once, by up to a minute, without approval.
DEMO_READ_SELF_EXTEND = """\
    self_extend: 1m
"""

DEMO_DEPLOY = """\
  - name: demo-deploy
    resources: [demo-app]
    roles: [deploy]
    requesters: [group:devops]
    approvers: [group:leads]
    timeout: 1h
    pending_timeout: 6s
"""

DEMO_POLICY = PEOPLE + DEMO_APP + 'requests:\n' + DEMO_READ
E2E_POLICY = PEOPLE + DEMO_APP + 'requests:\n' + DEMO_READ + DEMO_READ_SELF_EXTEND + DEMO_DEPLOY

PIPELINE_RULES = """\
  - name: deploy-from-ci
    resources: [demo-app]
    roles: [deploy]
    requesters: [pipeline:deploy-main]
    trigger: pipeline
    auto_approve: true
    timeout: 20m
  - name: nightly-read-on-merge
    resources: [demo-app]
    roles: [read]
    requesters: [pipeline:nightly]
    trigger: {pipeline: pr_merge, branch: production}
    approvers: [group:leads]
    timeout: 1h
    pending_timeout: 1h
"""
