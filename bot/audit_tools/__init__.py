"""``jit audit ...``: the tools an auditor runs on the trail (verify, query, report, export).

Each sub-command is a module with ``add_arguments(parser)`` and ``run(args) -> int`` (the exit code);
the logic lives in ``bot.audit``, so these modules only open a source, call it and print. Every tool
reads the same sources: the Redis stream by default (``REDIS_URL``, ``JIT_REDIS_PREFIX``), ``--file
PATH`` (the file sink or an export), or ``--s3 s3://BUCKET/PREFIX`` (the archive; credentials from
boto3's usual chain, ``JIT_AUDIT_S3_ENDPOINT_URL`` for another endpoint). With ``REDIS_URL`` unset, a running
``jit sandbox``'s Redis (``JIT_DATA_DIR``, else ``.jit``, ``/redis.sock``) is read when it answers, and stderr
says so. A source that cannot be read exits 2 with one line saying why; a source that holds no trail at all (no
event, and for Redis no head either) exits 3, ``no audit trail found at WHERE``, rather than call nothing
intact. What is read is never changed.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

from bot.audit.archive import DigestKeyError, load_public_key
from bot.audit.filters import TimeError, parse_when
from bot.audit.records import shape_problem
from bot.audit.s3_source import S3Source
from bot.audit.sources import FileSource, RedisSource

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_NO_TRAIL = 0, 1, 2, 3
#: Where ``REDIS_URL`` points when it is not set and no sandbox answers.
DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379/0'
Source = RedisSource | FileSource | S3Source


class SourceError(Exception):
    """The source cannot be opened or read; the message is safe to print (no password, no key)."""


class NoTrailError(Exception):
    """The source was read and holds no audit trail at all; the message names where it looked."""


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument('--file', metavar='PATH', help='read a JSONL file (the file sink or an export), not Redis')
    where.add_argument('--s3', metavar='s3://BUCKET/PREFIX', help='read the S3 archive instead of Redis')


def add_period_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--since', metavar='WHEN', help='from this time on: 2026-11-01, 2026-11-01T09:30Z, or 7d (ago)')
    parser.add_argument('--until', metavar='WHEN', help='before this time (a bare date: through that day)')


def period(args: argparse.Namespace, now: float | None = None) -> tuple[float | None, float | None]:
    """``--since`` and ``--until`` as Unix seconds; a bad value raises SourceError with what would work."""
    now = time.time() if now is None else now
    try:
        since = parse_when(args.since, now=now) if args.since else None
        until = parse_when(args.until, now=now, end=True) if args.until else None
    except TimeError as exc:
        raise SourceError(str(exc)) from None
    if since is not None and until is not None and since >= until:
        raise SourceError(f'--since {args.since} is not before --until {args.until}')
    return since, until


def redact(url: str) -> str:
    """A URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ''
    netloc = f'{parts.username or ""}:***@{host}' + (f':{parts.port}' if parts.port else '')
    return urlunsplit(parts._replace(netloc=netloc))


def open_source(args: argparse.Namespace, environ: Mapping[str, str] = os.environ, err: TextIO | None = None) -> Source:
    """The source the arguments name: ``--file``, ``--s3``, or Redis; NoTrailError when it holds no trail."""
    source, where = _open(args, environ, sys.stderr if err is None else err)
    if source.empty():
        raise NoTrailError(f'no audit trail found at {where}')
    return source


def _open(args: argparse.Namespace, environ: Mapping[str, str], err: TextIO) -> tuple[Source, str]:
    """The source and where it is, as a message names it."""
    if getattr(args, 'file', None):
        if not os.path.isfile(args.file):
            raise SourceError(f'{args.file}: no such file')
        return FileSource(args.file), args.file
    if getattr(args, 's3', None):
        parts = urlsplit(args.s3)
        if parts.scheme != 's3' or not parts.netloc:
            raise SourceError(f'--s3 {args.s3!r} is not s3://BUCKET or s3://BUCKET/PREFIX')
        prefix = parts.path.strip('/')
        s3 = S3Source(_s3_client(environ), bucket=parts.netloc, prefix=prefix + '/' if prefix else '',
                      public_key=_public_key(args, environ))  # fmt: skip
        return s3, s3.label
    import redis

    from bot.adapters.redis_connect import redis_client
    from bot.settings import Settings, sentinel_settings

    url = environ.get('REDIS_URL') or _sandbox_redis(environ, err) or DEFAULT_REDIS_URL
    problems: list[str] = []
    sentinels = sentinel_settings(environ, url, problems)  # REDIS_SENTINELS: the primary they name
    if problems:
        raise SourceError('; '.join(problems))
    try:
        client = redis_client(Settings('', '', redis_url=url, **sentinels), decode_responses=True,
                              socket_connect_timeout=5, socket_timeout=60)  # fmt: skip
        client.ping()
    except (redis.RedisError, ValueError) as exc:
        raise SourceError(f'cannot read Redis at {redact(url)}: {exc}') from None
    source = RedisSource(client, prefix=environ.get('JIT_REDIS_PREFIX') or 'jit:')
    return source, f'{redact(url)} (stream {source.prefix}audit)'


def _sandbox_redis(environ: Mapping[str, str], err: TextIO) -> str | None:
    """The URL of a running ``jit sandbox``'s Redis (its socket in ``JIT_DATA_DIR``, else ``.jit``), if it answers.

    Said on ``err``, so that what was read is never a guess. Asked only when ``REDIS_URL`` is not set.
    """
    import redis

    sock = Path(environ.get('JIT_DATA_DIR') or '.jit').resolve() / 'redis.sock'
    try:
        if not stat.S_ISSOCK(sock.stat().st_mode):
            return None
    except OSError:
        return None
    url = f'unix://{sock}'
    try:
        with redis.Redis(unix_socket_path=str(sock), socket_connect_timeout=1, socket_timeout=1) as client:
            client.ping()
    except (redis.RedisError, OSError):
        return None
    print(f'jit: REDIS_URL is not set; reading the running jit sandbox\'s Redis at {url}', file=err)
    return url


def _s3_client(environ: Mapping[str, str]) -> Any:
    import boto3  # type: ignore[import-untyped,unused-ignore]

    return boto3.client('s3', endpoint_url=environ.get('JIT_AUDIT_S3_ENDPOINT_URL') or None)


def _public_key(args: argparse.Namespace, environ: Mapping[str, str]) -> Any:
    """The key digests must be signed with: ``--public-key``, else the public half of ``JIT_AUDIT_DIGEST_KEY``."""
    given = getattr(args, 'public_key', None) or environ.get('JIT_AUDIT_DIGEST_KEY')
    if not given:
        return None
    try:
        return load_public_key(given)
    except DigestKeyError as exc:
        name = '--public-key' if getattr(args, 'public_key', None) else 'JIT_AUDIT_DIGEST_KEY'
        raise SourceError(f'{name} {exc}') from None


def records(source: Source, *, start: int | None = None, stop: int | None = None,
            err: TextIO | None = None) -> Iterator[dict[str, Any]]:  # fmt: skip
    """The readable events of a source; an unreadable one, or one whose fields the readers cannot show (a file
    someone made), is named on stderr and skipped (``verify`` says more)."""
    for entry in source.entries(start=start, stop=stop):
        problem = entry.problem if entry.record is None else shape_problem(entry.record)
        if problem is not None or entry.record is None:
            print(f'jit: skipped {entry.where}: {problem} (run jit audit verify)', file=err or sys.stderr)
        else:
            yield entry.record


def guarded(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn a source that cannot be read (Redis down, no such bucket, bad arguments) into one line and exit 2."""

    def wrapper(args: argparse.Namespace) -> int:
        import redis

        try:
            return run(args)
        except BrokenPipeError:  # `| head`: the reader has seen enough
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_OK
        except SourceError as exc:
            print(f'jit: {exc}', file=sys.stderr)
        except NoTrailError as exc:
            print(f'jit: {exc}', file=sys.stderr)
            return EXIT_NO_TRAIL
        except redis.RedisError as exc:
            print(f'jit: cannot read Redis: {exc}', file=sys.stderr)
        except OSError as exc:  # a file that cannot be read, an --output that cannot be written
            print(f'jit: {exc}', file=sys.stderr)
        except Exception as exc:
            if type(exc).__module__.split('.')[0] not in ('botocore', 'boto3'):
                raise
            print(f'jit: cannot read the S3 archive: {exc}', file=sys.stderr)
        return EXIT_USAGE

    wrapper.__doc__ = run.__doc__
    return wrapper
