"""A policy change, into the audit trail: ``policy.loaded`` when a new version takes effect, and
the same event with outcome ``rejected`` (and every problem) when a bad one was refused.

Every change of the policy in force is one event, a return to an earlier version too: the store keeps the
version last recorded (``policy:in_force``) and swaps it in one step, so of the processes that notice one
change exactly one records it. (A lease per version, as before, let a revert to a version loaded in the last
day go unrecorded, and the trail named the policy no longer in force.) A refused load changes nothing in
force; a lease per set of problems records each once.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from bot.core.model import AuditEvent, AuditName
from bot.core.policy import Policy
from bot.core.ports import AuditLog, Leases, PolicyInForce


class PolicyRecordStore(AuditLog, Leases, PolicyInForce, Protocol):
    """What recording a policy load touches: one audit event, written by the one process that swapped the
    version in force (a load) or took the lease (a refusal)."""


#: How long the "already recorded" mark of a refusal lives; a day covers any rolling restart.
RECORDED_FOR = 86400.0


class RecordPolicyChange:
    """The :class:`~bot.adapters.policy_source.PolicyObserver` that writes audit events."""

    def __init__(self, *, store: PolicyRecordStore) -> None:
        self.store = store

    def loaded(self, policy: Policy) -> None:
        if not self.store.swap_policy_in_force(policy.version):
            return
        detail = {'files': list(policy.files), 'rules': len(policy.rules), 'resources': len(policy.resources)}
        if policy.commit:
            detail['commit'] = policy.commit
        self._record(AuditEvent(event=AuditName.POLICY_LOADED, actor='jit', policy_version=policy.version,
                                outcome='loaded', detail=detail))  # fmt: skip

    def rejected(self, problems: list[str], kept: Policy) -> None:
        digest = hashlib.sha256('\n'.join(problems).encode()).hexdigest()[:16]
        if not self.store.lease(f'policy:rejected:{digest}', RECORDED_FOR):
            return
        error = '; '.join(problems[:20]) + (f' (and {len(problems) - 20} more)' if len(problems) > 20 else '')
        self._record(AuditEvent(event=AuditName.POLICY_LOADED, actor='jit', policy_version=kept.version,
                                outcome='rejected', error=error, detail={'kept_version': kept.version}))  # fmt: skip

    def _record(self, event: AuditEvent) -> None:
        self.store.record(event)
