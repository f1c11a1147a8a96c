"""Expectation tests for policies: "this person asking for that gives this outcome".

Files ``policies/tests/*.yaml`` hold a list of cases::

    - as: alex@example.com          # an email, a Slack user ID, or pipeline:NAME
      request: prod-db read 30m     # RESOURCE [ROLE] [DURATION]
      reason: debugging INC-4711    # optional
      trigger: slack                # optional: slack (default) or pipeline; context: {...} for pipelines
      expect: needs_approval        # auto_approved | needs_approval | break_glass | denied
      approvers: [group:leads]      # optional: who may approve (compared as people, not as text)
      approvals: 1                  # optional: how many approvals in all
      rule: prod-db-read            # optional: the rule that decides

Pure: cases come in as text and results go out as data; ``jit policy test`` reads the files and prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.core._yaml_marks import load_marked
from bot.core.commands import parse_request_args
from bot.core.durations import DurationError
from bot.core.errors import UsageError
from bot.core.model import Principal
from bot.core.policy import DecisionKind, Policy, evaluate

CASE_KEYS = ('as', 'request', 'reason', 'ticket', 'trigger', 'context', 'expect', 'approvers', 'approvals', 'rule')
EXPECTATIONS = tuple(kind.value for kind in DecisionKind)


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One case: where it is written, and what went wrong (``None`` when it passed)."""

    where: str
    title: str
    failure: str | None


def principal_for(name: str) -> Principal:
    """``alex@example.com``, ``U024BE7LH`` or ``pipeline:deploy`` as a principal."""
    if name.startswith('pipeline:'):
        return Principal(pipeline=name[len('pipeline:') :])
    if '@' in name:
        return Principal(email=name.lower())
    return Principal(slack_id=name)


def run_cases(policy: Policy, files: Mapping[str, str]) -> tuple[list[CaseResult], list[str]]:
    """Check every case of every file. Returns (results, problems in the test files themselves)."""
    results: list[CaseResult] = []
    problems: list[str] = []
    for name, text in sorted(files.items()):
        doc = load_marked(name, text)
        problems.extend(doc.problems)
        if doc.problems or doc.data is None:
            continue
        if not isinstance(doc.data, list):
            problems.append(f'{doc.where(())}: an expectation file is a list of cases')
            continue
        for i, case in enumerate(doc.data):
            where = doc.where((i,), value=True)
            if not isinstance(case, dict):
                problems.append(f'{where}: a case is a mapping with as, request and expect')
                continue
            bad = [k for k in case if k not in CASE_KEYS]
            missing = [k for k in ('as', 'request', 'expect') if k not in case]
            if bad or missing or case.get('expect') not in EXPECTATIONS:
                what = (f'unknown key(s) {", ".join(map(str, bad))}' if bad else
                        f'missing {", ".join(missing)}' if missing else
                        f'`expect` must be one of {", ".join(EXPECTATIONS)}')  # fmt: skip
                problems.append(f'{where}: {what}')
                continue
            results.append(CaseResult(where, f'{case["as"]} requests {case["request"]}', _check(policy, case)))
    return results, problems


def _check(policy: Policy, case: dict[str, Any]) -> str | None:
    """Why the case fails, or None."""
    who = principal_for(str(case['as']))
    try:
        args = parse_request_args(str(case['request']), policy)
    except (UsageError, DurationError) as exc:
        return f'the request cannot be read: {exc}'
    decision = evaluate(policy, who, args.resource, args.role, args.duration,
                        reason=str(case.get('reason') or args.reason or ''), ticket=case.get('ticket'),
                        trigger=str(case.get('trigger') or 'slack'), context=case.get('context'))  # fmt: skip
    if decision.kind.value != case['expect']:
        return f'expected {case["expect"]}, got {decision.kind.value}: {decision.reason}'
    rule = decision.rule
    if 'rule' in case and (rule is None or rule.name != case['rule']):
        return f'expected rule `{case["rule"]}`, got `{rule.name if rule else "none"}`'
    if 'approvers' in case and rule is not None:
        wanted = policy.resolve(tuple(str(a) for a in case['approvers'] or ()))
        actual = policy.rule_approvers(rule)
        if wanted != actual:
            extra, lacking = sorted(actual - wanted), sorted(wanted - actual)
            return (f'approvers differ: also {", ".join(extra) or "nobody"}; '
                    f'missing {", ".join(lacking) or "nobody"}')  # fmt: skip
    if 'approvals' in case and rule is not None and rule.approvals_needed != case['approvals']:
        return f'expected {case["approvals"]} approval(s), the rule needs {rule.approvals_needed}'
    return None
