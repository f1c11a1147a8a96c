"""The outbox (workers/outbox.py) wired to a real Redis and a policy, with the test's own clock: the rig of
tests/integration/test_outbox.py (email, a real SMTP server) and test_outbox_teams.py (Teams, a real receiver).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.adapters.outbox import OutboxStore
from bot.core.model import Principal
from bot.deps import Deps, build_deps
from bot.links import LinkSigner
from bot.settings import load_settings
from tests.support.redis_server import own_redis_url
from workers.outbox import Outbox, OutboxFollower

KEY = 'outbox-test-link-key-0123456789abcdef'
PUBLIC = 'https://jit.example.com'
ALEX = Principal(slack_id='U0ALEX', email='alex@example.com', name='Alex Doe')


@dataclass
class Rig:
    deps: Deps
    outbox: Outbox
    now: list[float]

    def file(self, role: str = 'deploy', reason: str = 'deploying the fix') -> str:
        return self.deps.submit.execute(requester=ALEX, resource='demo-app', role=role, duration=1800,
                                        reason=reason).id  # fmt: skip

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.deps.store.audit_events(1, 10_000) if e['event'] == name]

    def follow(self) -> None:
        """One round of the follower: send what is due, plan the events after its cursor, send again."""
        OutboxFollower(store=self.deps.store, outbox=self.outbox, block=0.05).follow_once()

    def replay(self) -> None:
        """Every event planned again, as after a follower that crashed before moving its cursor."""
        self.outbox.plan(self.deps.store.audit_events(1, 10_000))
        self.outbox.send_due()


@contextmanager
def outbox_rig(tmp_path: Path, policy: str, db: int, **senders: Any) -> Iterator[Rig]:
    """A rig on database ``db`` of this process's Redis; ``senders``: the Outbox's ``mailer``, ``mail_from``,
    ``teams`` and ``environ``."""
    (tmp_path / 'policy.yaml').write_text(policy)
    settings = load_settings({'REDIS_URL': own_redis_url(db), 'JIT_POLICY_DIR': str(tmp_path)}, require_slack=False)
    deps = build_deps(settings, providers=['webhook'])
    deps.redis.flushdb()
    now = [time.time()]
    options: dict[str, Any] = {'mailer': None, 'mail_from': None, 'teams': None, **senders}
    outbox = Outbox(store=deps.store, outbox=OutboxStore(deps.redis, prefix=settings.redis_prefix),
                    policy=deps.policy, public_url=PUBLIC, signer=LinkSigner(KEY), clock=lambda: now[0],
                    **options)  # fmt: skip
    try:
        yield Rig(deps, outbox, now)
    finally:
        deps.redis.flushdb()
