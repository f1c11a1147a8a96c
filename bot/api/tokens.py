"""API tokens: each one names a pipeline (``pipeline:NAME``) and is configured as its SHA-256 hash.

``jit ci token NAME`` makes a token (``jit_`` + 43 random characters, 256 bits) and prints it once with
the line to add to ``JIT_API_TOKENS``::

    JIT_API_TOKENS="deploy-main:sha256:9f86d0...,nightly:sha256:60303a..."

Only hashes are configured, so the environment, a leaked ``env`` dump or the process list gives nobody
a token. A plain (unsalted, fast) SHA-256 is enough because the tokens are random 256-bit values, not
passwords: there is no dictionary to try. Comparison is constant-time over every configured hash.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping

#: A pipeline's name, as a policy names it (``pipeline:NAME``).
NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$')
_HASH = re.compile(r'^sha256:[0-9a-f]{64}$')
_TOKEN = re.compile(r'^jit_[A-Za-z0-9_-]{43}$')


def new_token() -> str:
    """A fresh token: ``jit_`` and 32 random bytes, base64url (a prefix secret scanners can match)."""
    return 'jit_' + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """What ``JIT_API_TOKENS`` holds for a token."""
    return 'sha256:' + hashlib.sha256(token.encode()).hexdigest()


def parse_tokens(raw: str, problems: list[str]) -> dict[str, str]:
    """``NAME:sha256:HEX`` entries, separated by commas or whitespace, as ``{hash: name}``.

    Every problem is added to ``problems`` without quoting the value (it may be a token pasted by mistake).
    """
    out: dict[str, str] = {}
    names: set[str] = set()
    for n, entry in enumerate(re.split(r'[,\s]+', raw.strip()), start=1):
        if not entry:
            continue
        name, _, digest = entry.partition(':')
        if _TOKEN.match(entry) or _TOKEN.match(digest):
            problems.append(f'JIT_API_TOKENS entry {n} is a token, not its hash: configure the NAME:sha256:HEX '
                            'line `jit ci token NAME` prints, and give the token to the pipeline only')  # fmt: skip
        elif not NAME.match(name):
            problems.append(f'JIT_API_TOKENS entry {n}: the pipeline name must be 1-64 of A-Z a-z 0-9 . _ - '
                            'and start with a letter or digit')  # fmt: skip
        elif not _HASH.match(digest):
            problems.append(f'JIT_API_TOKENS entry {n} ({name}): expected NAME:sha256:<64 hex digits> '
                            '(`jit ci token NAME` prints it)')  # fmt: skip
        elif name in names:
            problems.append(f'JIT_API_TOKENS names pipeline {name!r} twice; give each pipeline one token')
        elif digest in out:
            problems.append(f'JIT_API_TOKENS gives one token to both {out[digest]!r} and {name!r}')
        else:
            out[digest] = name
            names.add(name)
    return out


def pipeline_for(token: str, tokens: Mapping[str, str]) -> str | None:
    """The pipeline a bearer token belongs to, or None.

    Every configured hash is compared, in constant time, so the answer's timing says nothing about
    which entry (or how much of one) matched.
    """
    digest = hash_token(token)
    found = None
    for known, name in tokens.items():
        if hmac.compare_digest(known, digest):
            found = name
    return found
