"""Use cases: one module a thing a user does (submit, approve, deny) or a worker does (grant, revoke).

They take their ports (store, queue, clock, policy source, providers) as constructor arguments and
import only ``bot.core``. Each names the parts of the store it uses (a Protocol made of those in
``bot.core.ports``); the Redis store and ``tests/support/memory_store.py`` both fit, and the tests in
``tests/usecases/`` run on both.
"""
