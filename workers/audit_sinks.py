"""Copies of the audit trail outside Redis, fed from the stream by a pump in every ``jit worker``.

Sinks, each optional (``bot.settings``):

- :class:`FileSink` (``JIT_AUDIT_FILE``): canonical JSON lines appended and ``fsync``'d. Durable.
- :class:`WebhookSink` (``JIT_AUDIT_WEBHOOK_URL`` + ``_SECRET``): batches POSTed to a SIEM as
  ``{"events": [...]}`` with ``X-JIT-Signature: sha256=HEX`` (HMAC-SHA256 of the raw body, as the
  webhook provider signs). Not durable: a SIEM may drop what it got.
- :class:`S3Sink` (``JIT_AUDIT_S3_BUCKET``): batches and signed digests (``bot.audit.archive``), under
  Object Lock (COMPLIANCE, ``JIT_AUDIT_S3_RETENTION_DAYS``) where the bucket has it. Durable.

The pump that feeds them, and the retention, are in :mod:`workers.audit_pump`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import urllib.error
import urllib.request
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bot.audit import archive
from bot.audit.records import dumps
from bot.core.ports import Clock
from workers.providers.base import sign_body

log = structlog.get_logger(__name__)


class SinkError(Exception):
    """A sink could not take the events this time; the pump retries with backoff."""


class AuditSink(Protocol):
    """Something that keeps a copy of the audit events."""

    #: Names the sink's cursor in Redis (``audit:sink:<key>``) and its lease.
    key: str
    #: True when what the sink confirmed survives a crash (a fsync'd file, an S3 object): retention may trim it.
    durable: bool
    #: How many events to hand it at once.
    page: int

    def deliver(self, events: list[dict[str, Any]], state: dict[str, str]) -> tuple[int, dict[str, str]]:
        """Take ``events`` (in seq order, maybe some it already has).

        Returns:
            The last seq the sink now holds (less than the last event's when it waits for more), and its state.
        """
        ...


class FileSink:
    """JSON lines appended to a file and ``fsync``'d; seqs the file already ends with are skipped."""

    durable = True
    page = 1000

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # Per host: two workers on two machines each keep a whole file of their own.
        self.key = f'file:{socket.gethostname()}:{os.path.realpath(self.path)}'

    def deliver(self, events: list[dict[str, Any]], state: dict[str, str]) -> tuple[int, dict[str, str]]:
        last = self.last_seq()
        fresh = [e for e in events if e['seq'] > last]
        if fresh:
            if last and fresh[0]['seq'] != last + 1:
                log.warning('audit.file_gap', path=str(self.path), after=last, next=fresh[0]['seq'])
            self._append(''.join(dumps(e) + '\n' for e in fresh).encode())
        return events[-1]['seq'], state

    def _append(self, data: bytes) -> None:
        created = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:  # the new file's directory entry must survive a crash too
            folder = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)

    def last_seq(self) -> int:
        """The seq of the file's last event (0: none); a torn last line (a crash mid-write) is cut off first."""
        try:
            handle = self.path.open('r+b')
        except FileNotFoundError:
            return 0
        with handle:
            size = handle.seek(0, os.SEEK_END)
            pos, tail = size, b''
            while pos > 0 and tail.count(b'\n') < 2:
                step = min(65536, pos)
                pos -= step
                handle.seek(pos)
                tail = handle.read(step) + tail
            if tail and not tail.endswith(b'\n'):
                cut = tail.rfind(b'\n') + 1
                log.warning('audit.file_torn_line', path=str(self.path), dropped_bytes=len(tail) - cut)
                handle.truncate(pos + cut)
                handle.flush()
                os.fsync(handle.fileno())
                tail = tail[:cut]
        lines = tail.strip().rsplit(b'\n', 1)
        if not lines[-1]:
            return 0
        try:
            seq = json.loads(lines[-1])['seq']
        except (ValueError, KeyError, TypeError) as exc:
            raise SinkError(f'the last line of {self.path} is not an audit event: not appending to it') from exc
        if not isinstance(seq, int):
            raise SinkError(f'the last line of {self.path} has no integer seq: not appending to it')
        return seq


class WebhookSink:
    """Batches POSTed to a SIEM, signed like the webhook provider's calls."""

    durable = False
    page = 100

    def __init__(self, url: str, secret: str, *, timeout: float = 10.0) -> None:
        self.url, self._secret, self.timeout = url, secret, timeout
        # The URL may carry a token: the cursor's name in Redis only hashes it.
        self.key = 'webhook:' + hashlib.sha256(url.encode()).hexdigest()[:16]

    def deliver(self, events: list[dict[str, Any]], state: dict[str, str]) -> tuple[int, dict[str, str]]:
        first, last = events[0]['seq'], events[-1]['seq']
        body = json.dumps({'events': events, 'first_seq': first, 'last_seq': last}, sort_keys=True,
                          separators=(',', ':'), ensure_ascii=False).encode()  # fmt: skip
        request = urllib.request.Request(self.url, data=body, method='POST', headers={
            'Content-Type': 'application/json', 'X-JIT-Signature': sign_body(self._secret, body),
            'X-JIT-Audit-Seq': f'{first}-{last}', 'User-Agent': 'jit-audit/1',
        })  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                answer.read(65536)
        except urllib.error.HTTPError as exc:
            raise SinkError(f'the SIEM answered HTTP {exc.code}') from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise SinkError(f'the SIEM is unreachable: {getattr(exc, "reason", exc)}') from exc
        return last, state


class S3Sink:
    """Batches of events and their signed digests in S3, write-once where the bucket has Object Lock.

    A batch is written when ``batch_max`` events wait, or when the oldest waiting one is ``batch_age``
    seconds old. The cursor's state carries the digest chain's last link (key, SHA-256, day); before
    writing, the sink lists digests newer than that link (another worker's, or its own from before a
    crash) and continues after them, so no range is archived twice.
    """

    durable = True

    def __init__(
        self, *, client: Any, bucket: str, prefix: str, signer: Ed25519PrivateKey, clock: Clock,
        retention_days: int = 365, batch_max: int = 1000, batch_age: float = 60.0,
    ) -> None:  # fmt: skip
        self.s3, self.bucket, self.prefix, self.signer, self.clock = client, bucket, prefix, signer, clock
        self.retention_days, self.page, self.batch_age = retention_days, batch_max, batch_age
        self.key = f's3:{bucket}/{prefix}'
        self._locked: bool | None = None

    def deliver(self, events: list[dict[str, Any]], state: dict[str, str]) -> tuple[int, dict[str, str]]:
        state = dict(state)
        synced = False
        while True:
            pending = [e for e in events if e['seq'] > int(state.get('seq', 0))]
            if not pending or (len(pending) < self.page and pending[0]['time'] + self.batch_age > self.clock.now()):
                return int(state.get('seq', 0)), state
            if not synced:
                state, synced = self._sync(state), True
                continue
            state = self._write(pending[: self.page], state)

    def object_lock(self) -> bool:
        """Whether the bucket has Object Lock enabled (asked once; objects then get COMPLIANCE retention)."""
        if self._locked is None:
            try:
                conf = self.s3.get_object_lock_configuration(Bucket=self.bucket)['ObjectLockConfiguration']
                self._locked = conf.get('ObjectLockEnabled') == 'Enabled'
            except Exception as exc:
                if getattr(exc, 'response', {}).get('Error', {}).get('Code') != 'ObjectLockConfigurationNotFoundError':
                    raise
                self._locked = False
            if not self._locked:
                log.warning('audit.s3_without_object_lock', bucket=self.bucket,
                            note='archived objects can be deleted or overwritten; digests still reveal it')  # fmt: skip
        return self._locked

    def _put(self, key: str, body: bytes, content_type: str) -> None:
        extra: dict[str, Any] = {}
        if self.object_lock():
            until = datetime.fromtimestamp(self.clock.now(), tz=UTC) + timedelta(days=self.retention_days)
            # S3 wants an integrity header with Object Lock; older boto3 releases add none by themselves.
            md5 = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
            extra = {'ObjectLockMode': 'COMPLIANCE', 'ObjectLockRetainUntilDate': until, 'ContentMD5': md5}
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, **extra)

    def _write(self, records: list[dict[str, Any]], state: dict[str, str]) -> dict[str, str]:
        first, last = records[0]['seq'], records[-1]['seq']
        day = archive.day_of(records[0]['time'])
        if state.get('day'):
            day = max(day, date.fromisoformat(state['day']))  # keys keep sorting in seq order
        batch = archive.batch_key(self.prefix, day, first, last)
        body = archive.batch_body(records)
        self._put(batch, body, 'application/x-ndjson')
        digest = archive.build_digest(records=records, batch=batch, body=body, previous_key=state.get('digest_key'),
                                      previous_sha256=state.get('digest_sha256'), signer=self.signer,
                                      created_at=self.clock.now())  # fmt: skip
        key = archive.digest_key(self.prefix, day, first, last)
        self._put(key, digest, 'application/json')
        log.info('audit.s3_archived', bucket=self.bucket, batch=batch, first=first, last=last)
        return {'seq': str(last), 'digest_key': key, 'digest_sha256': archive.sha256(digest), 'day': day.isoformat()}

    def _sync(self, state: dict[str, str]) -> dict[str, str]:
        """Continue after the newest digest in the bucket, if it is newer than the one the cursor knows."""
        newest: tuple[int, str] | None = None
        paginator = self.s3.get_paginator('list_objects_v2')
        start = state.get('digest_key') or ''
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + archive.DIGEST_DIR, StartAfter=start):
            for item in page.get('Contents', []):
                parsed = archive.parse_key(item['Key'])
                if parsed and (newest is None or parsed[2] > newest[0]):
                    newest = (parsed[2], item['Key'])
        if newest is None or newest[0] <= int(state.get('seq', 0)):
            return state
        raw = self.s3.get_object(Bucket=self.bucket, Key=newest[1])['Body'].read()
        parsed = archive.parse_key(newest[1])
        assert parsed is not None
        log.info('audit.s3_resumed', bucket=self.bucket, after=newest[1], seq=newest[0])
        return {'seq': str(newest[0]), 'digest_key': newest[1], 'digest_sha256': archive.sha256(raw),
                'day': parsed[0].isoformat()}  # fmt: skip
