"""Use cases: one module a thing a user does (submit, approve, deny) or a worker does (grant, revoke).

They take their ports (store, queue, clock, policy source, providers) as constructor arguments and
import only ``bot.core``; ``tests/fakes.py`` and the real adapters both fit.
"""
