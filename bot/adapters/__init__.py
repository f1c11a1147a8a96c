"""Adapters: the only code that touches Redis, RQ and the Slack Web API for side effects.

They implement the Protocols of ``bot.core.ports``; the use cases never import them.
"""
