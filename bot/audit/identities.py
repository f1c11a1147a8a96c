"""Who is who in a trail: one way of naming a person in every report, table and CSV (``Name <email>``).

A trail names people in three ways: a requester in full (``request.requester``: Slack ID, email, name), an
actor by Slack ID (``actor``; with ``detail.actor_email`` and ``detail.actor_name`` since those were
recorded), and an approver who decided by an email or Teams link by the address the link was sent to.
:class:`Identities` learns every link between them from the records it is shown, so that ``U0SAM`` and
``sam@example.com`` print alike: ``Sam Lead <sam@example.com>``, or the email when no name is known, or the
Slack ID when neither is. Pure: records in, names out.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from bot.audit.records import request_of


@dataclass
class _Person:
    email: str = ''
    name: str = ''


class Identities:
    """Slack ID and email -> the person, from every record :meth:`learn` was shown."""

    def __init__(self, records: Iterable[dict[str, Any]] = ()) -> None:
        self._people: dict[str, _Person] = {}  # Slack ID, and email lower-cased, -> the same _Person
        for record in records:
            self.learn(record)

    def learn(self, record: dict[str, Any]) -> None:
        """Remember the people ``record`` names with more than a Slack ID."""
        requester = request_of(record).get('requester') or {}
        self._link(requester.get('slack_id'), requester.get('email'), requester.get('name'))
        detail = record.get('detail') or {}
        if isinstance(detail, dict):
            actor = record.get('actor')
            self._link(actor if detail.get('actor_email') or detail.get('actor_name') else None,
                       detail.get('actor_email'), detail.get('actor_name'))  # fmt: skip

    def learning(self, records: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """``records`` unchanged, each learnt from as it passes (a filter after it still names people it skips)."""
        for record in records:
            self.learn(record)
            yield record

    def _link(self, slack_id: Any, email: Any, name: Any) -> None:
        keys = [str(k) for k in (slack_id, str(email).lower() if email else None) if k]
        if not keys or not (email or name):
            return
        person = next((self._people[k] for k in keys if k in self._people), None) or _Person()
        person.email = person.email or str(email or '')
        person.name = person.name or str(name or '')
        for key in keys:
            self._people[key] = person

    def label(self, who: str) -> str:
        """``Name <email>``, the email, or ``who`` as given (a Slack ID nobody linked, ``jit``, ``policy``)."""
        person = self._people.get(who) or self._people.get(who.lower())
        if person is None:
            return who
        email = person.email or (who if '@' in who else '')
        if person.name and email:
            return f'{person.name} <{email}>'
        return email or person.name or who

    def requester(self, requester: dict[str, Any]) -> str:
        """A requester as :meth:`label` names people; a pipeline as ``pipeline:NAME``."""
        if requester.get('pipeline') and not requester.get('slack_id') and not requester.get('email'):
            return f'pipeline:{requester["pipeline"]}'
        self._link(requester.get('slack_id'), requester.get('email'), requester.get('name'))
        return self.label(str(requester.get('slack_id') or requester.get('email') or ''))

    def actor(self, record: dict[str, Any]) -> str:
        """Who acted in ``record``, named as :meth:`label` names people."""
        return self.label(str(record.get('actor') or ''))
