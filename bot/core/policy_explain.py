"""``jit policy explain``: which rule decides a request and why, rule by rule, in words.

Pure: it walks the rules the way :func:`~bot.core.policy.evaluate` does and says, for each one,
whether it covers the request and what stopped it, then prints the decision itself (the same
reason the Slack answer and the audit event carry) and what the person may request instead.
"""

from __future__ import annotations

from bot.core.durations import format_duration
from bot.core.model import Principal
from bot.core.policy import ASK_EMAIL, ASK_SLACK, Policy, Rule, evaluate, requestable, trigger_matches


def groups_of(policy: Policy, who: Principal) -> list[str]:
    """The groups ``who`` belongs to (directly or through nested groups)."""
    ids = who.ids()
    return sorted(name for name, members in policy.groups.items() if ids & members)


def _why_not(policy: Policy, rule: Rule, who: Principal, resource: str, role: str, trigger: str) -> str | None:
    if not trigger_matches(rule.trigger, trigger, None):
        return f'its trigger is {rule.trigger}, not {trigger}'
    if rule.resources is not None and resource not in rule.resources:
        return f'it covers {", ".join(sorted(rule.resources))}, not {resource}'
    if rule.roles is not None and role not in rule.roles:
        return f'it covers roles {", ".join(sorted(rule.roles))}, not {role}'
    if rule.requesters is not None and not who.ids() & policy.resolve(rule.requesters):
        return f'you are not among its requesters ({", ".join(rule.requesters)})'
    return None


def _asked(rule: Rule) -> str:
    """Where the approvers of ``rule`` are asked, when not just in Slack: ``ask`` in words."""
    ways = [f'in Teams channel {a.partition(":")[2]}' if a.startswith('teams:')
            else {ASK_SLACK: 'in Slack', ASK_EMAIL: 'by email'}.get(a, a) for a in rule.ask]  # fmt: skip
    said = ways[0] if len(ways) == 1 else f'{", ".join(ways[:-1])} and {ways[-1]}'
    return f'Approvers are asked {said}' + ('.' if ASK_SLACK in rule.ask else ' (a decision in Slack counts too).')


def explain(
    policy: Policy, who: Principal, resource: str, role: str | None, duration: int | None = None,
    *, trigger: str = 'slack', reason: str = 'explain',
) -> list[str]:  # fmt: skip
    """Lines that say how the policy treats ``who`` asking for ``role`` on ``resource``."""
    lines = [f'{who.email or who.slack_id or who.label} is in groups: {", ".join(groups_of(policy, who)) or "none"}']
    if policy.is_admin(who):
        lines.append('They are an admin (may revoke any grant).')
    res = policy.resources.get(resource)
    if res is not None and role is None and len(res.roles) == 1:
        role = next(iter(res.roles))
    if res is not None and role is not None and role in res.roles:
        for rule in policy.rules:
            why_not = _why_not(policy, rule, who, resource, role, trigger)
            where = f' ({rule.source})' if rule.source else ''
            if why_not:
                lines.append(f'- rule `{rule.name}`{where} does not apply: {why_not}')
            else:
                lines.append(f'- rule `{rule.name}`{where} applies and decides (the first that applies)')
                break
    decision = evaluate(policy, who, resource, role, duration, reason=reason, trigger=trigger)
    lines.append(f'Decision: {decision.kind} - {decision.reason}')
    if decision.rule is not None and not decision.denied:
        rule = decision.rule
        most = format_duration(rule.max_duration)
        lines.append(f'Duration: {format_duration(decision.duration or 0)} (at most {most})')
        for i, step in enumerate(rule.steps):
            people = sorted(policy.step_approvers(rule, i) - who.ids())
            lines.append(f'Step {i + 1}: {step.approvals} of {", ".join(step.approvers)} '
                         f'({", ".join(people) or "nobody"}; never the requester)')  # fmt: skip
        if rule.steps and rule.ask != (ASK_SLACK,):
            lines.append(_asked(rule))
        if rule.require_reason:
            lines.append('A reason is required.')
        if rule.ticket_pattern:
            lines.append(f'A ticket matching `{rule.ticket_pattern}` is required.')
    others = requestable(policy, who, trigger)
    if others:
        lines.append('May request: ' + ', '.join(f'{r.name} {ro.name} (rule {ru.name})' for r, ro, ru in others))
    else:
        lines.append('May request nothing under this policy.')
    return lines
