"""The demo workspace's cast: the team, the bot, the people and channels `jit sandbox` and the e2e tests use.

Part of `bot/sandbox/`; data only. `bot.sandbox.workspace.seed_workspace()` builds a `Workspace` of these
rows, and the sandbox page offers the users as the people one can act as. Each user row says the part the
user plays, including the edge cases jit must refuse (a deactivated account, another app's bot, a guest,
a user of another team).
"""

from __future__ import annotations

from typing import Final

#: The demo team: (team_id, domain, name). The bot belongs to it.
SEED_TEAM: Final = ("T0JIT", "jit-sandbox", "jit sandbox")
#: Other teams seen in the demo, team_id -> domain (for payloads sent on behalf of their users).
SEED_OTHER_TEAMS: Final = {"T0OTHER": "other-corp"}
#: The bot: (bot user id, bot id, app id).
SEED_BOT: Final = ("U0JITBOT", "B0JIT", "A0JIT")

#: One row a user: id, name, real name, email, team, flags, and the part the user plays in the demo.
SEED_USERS: Final = (
    ("U0ALEX", "alex", "Alex Rivera", "alex@example.com", "T0JIT", "", "requester (devops)"),
    ("U0DANA", "dana", "Dana Kim", "dana@example.com", "T0JIT", "", "requester (devops)"),
    ("U0SAM", "sam", "Sam Lead", "sam@example.com", "T0JIT", "", "approver (leads)"),
    ("U0SEC", "sec", "Sec Officer", "sec@example.com", "T0JIT", "", "approver and admin (security)"),
    ("U0EVE", "eve", "Eve Outsider", "eve@example.com", "T0JIT", "", "nobody special"),
    ("U0GONE", "gone", "Gone Person", "gone@example.com", "T0JIT", "deleted", "edge: deactivated account"),
    ("U0BOT", "somebot", "Some Bot", "", "T0JIT", "bot", "edge: another app's bot user"),
    ("U0GUEST", "guest", "Guest Contractor", "guest@example.com", "T0JIT", "restricted", "edge: guest"),
    ("U0OTHER", "other", "Other Team", "other@example.com", "T0OTHER", "", "edge: user of another team"),
    ("U0JITBOT", "jit", "jit", "", "T0JIT", "bot", "the jit app's own bot user"),
)
#: One row a channel: id, name.
SEED_CHANNELS: Final = (("C0AUDIT", "jit-audit"), ("C0ACCESS", "prod-access"))

#: How a user row's flags are spelled as `User` fields.
FLAGS: Final = {"deleted": "deleted", "bot": "is_bot", "restricted": "is_restricted", "ultra": "is_ultra_restricted"}
