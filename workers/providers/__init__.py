"""Providers: each grants and revokes one kind of access (``webhook``, later ``postgres``, ``aws_iam``, ...).

Found by name through :func:`workers.providers.registry.provider_registry`; other packages add
their own through the ``jit.providers`` entry point group.
"""
