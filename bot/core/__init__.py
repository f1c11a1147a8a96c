"""The domain of jit: policies, requests and their state machine, durations, errors, ports.

Pure Python plus PyYAML. Nothing here touches the network, Redis, RQ or Slack: the layers
around it (``bot.usecases``, ``bot.adapters``, ``workers``) do, through the Protocols in
``bot.core.ports``. ``tests/test_architecture.py`` keeps it that way.
"""
