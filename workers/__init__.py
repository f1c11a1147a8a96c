"""The worker side of jit: RQ jobs (grant, revoke, notify), the sweeper, and the providers.

May import ``bot.core``, ``bot.usecases`` and ``bot.adapters``; the bot never imports this package
(it enqueues jobs by dotted path).
"""
