"""The S3 archive as an audit source: its batches read as entries, checked against their signed digests.

One of the sources of :mod:`bot.audit.sources` (same ``entries``/``check``, same :class:`~bot.audit.sources.Check`),
apart because it alone has a second chain to verify: the digests' signatures, each digest naming the one
before it, and the SHA-256 of every batch (the layout is :mod:`bot.audit.archive`'s). It is handed a boto3
S3 client and imports no AWS library.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bot.audit import archive
from bot.audit.chain import GENESIS, Anchor, Finding, Tamper, verify_chain
from bot.audit.records import Entry, parse_entry
from bot.audit.sources import Check, in_range
from bot.core.model import GENESIS_HASH


@dataclass
class _Digest:
    key: str
    first: int
    last: int
    raw: bytes
    data: dict[str, Any]


#: What a digest must say for the archive to be checked against it.
_DIGEST_FIELDS = ('batch_key', 'batch_sha256', 'first_seq', 'last_seq', 'first_prev_hash', 'last_hash',
                  'previous_digest_key', 'previous_digest_sha256')  # fmt: skip


class S3Source:
    """The S3 archive (``bot.audit.archive``): batches of events and their signed digests."""

    def __init__(self, client: Any, *, bucket: str, prefix: str = '', public_key: Ed25519PublicKey | None = None):
        self.s3, self.bucket, self.prefix, self.public_key = client, bucket, prefix, public_key
        self.label = f's3://{bucket}/{prefix}'

    def _keys(self, directory: str) -> list[str]:
        keys: list[str] = []
        pages = self.s3.get_paginator('list_objects_v2').paginate(Bucket=self.bucket, Prefix=self.prefix + directory)
        for page in pages:
            keys += [item['Key'] for item in page.get('Contents', [])]
        return keys

    def empty(self) -> bool:
        """Nothing under the prefix: no batch and no digest."""
        return not self.s3.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1).get('KeyCount', 0)

    def _get(self, key: str) -> bytes | None:
        try:
            return bytes(self.s3.get_object(Bucket=self.bucket, Key=key)['Body'].read())
        except Exception as exc:
            if getattr(exc, 'response', {}).get('Error', {}).get('Code') in ('NoSuchKey', '404', 'NotFound'):
                return None
            raise

    def _lines(self, key: str, body: bytes) -> Iterator[Entry]:
        for number, line in enumerate(body.splitlines(), 1):
            if line.strip():
                yield parse_entry(line, f's3://{self.bucket}/{key}:{number}')

    def entries(self, *, start: int | None = None, stop: int | None = None) -> Iterator[Entry]:
        """Every batch in seq order (found by listing, so a batch whose digest is gone is still read)."""
        found = ((archive.parse_key(key), key) for key in self._keys(archive.BATCH_DIR))
        batches = sorted((parsed[1], key) for parsed, key in found if parsed)
        for first, key in batches:
            if stop is not None and first > stop:
                return
            body = self._get(key)
            if body is not None:
                yield from (e for e in self._lines(key, body) if in_range(e, start, stop))

    def check(self) -> Check:
        """The digests' signatures and chain, every batch against its digest, then the events' own chain."""
        findings: list[Finding] = []
        notes: list[str] = []
        digests = self._digests(findings)
        self._digest_chain(digests, findings)
        named = {d.data['batch_key'] for d in digests}
        orphans = [k for k in self._keys(archive.BATCH_DIR) if k not in named and archive.parse_key(k)]
        if orphans:
            notes.append(f'{len(orphans)} batch object(s) named by no digest (e.g. {orphans[0]}): a write '
                         'interrupted before its digest, or a digest removed')  # fmt: skip
        if digests:
            first, last = digests[0], digests[-1]
            start = Anchor(first.first - 1, first.data['first_prev_hash'])
            end = Anchor(last.last, last.data['last_hash'])
        else:
            start, end = GENESIS, GENESIS
        verdict = verify_chain(self._digested_entries(digests, findings), start=start, end=end)
        if verdict.finding is not None:
            findings.append(verdict.finding)
        findings.sort(key=lambda f: f.seq)
        finding = findings[0] if findings else None
        notes += [f'also: {f}' for f in findings[1:] if finding and f.seq != finding.seq][:5]
        if self.public_key is not None:
            signer = f'signed by {archive.fingerprint(self.public_key)}'
        else:
            keys = {d.data.get('public_key') for d in digests}
            signer = 'signatures checked against the key the digests name (pin it with --public-key)'
            if len(keys) == 1:
                signer = f'signed by the key they name, {archive.fingerprint(self._named_key(digests[0]))} ' \
                         '(not pinned: pass --public-key)'  # fmt: skip
        extra = f'; {len(digests)} batches, digests intact, {signer}' if digests else '; no batches'
        if digests and start.seq > 0:
            notes.append(f'the archive starts at seq {start.seq + 1} (the digests vouch for nothing before it)')
        return Check(verdict, finding, notes, extra)

    @staticmethod
    def _named_key(digest: _Digest) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(digest.data['public_key']))

    def _digests(self, findings: list[Finding]) -> list[_Digest]:
        """Every digest, read and checked on its own (JSON, fields, signature, the range its key names)."""
        out: list[_Digest] = []
        keys_seen: set[str] = set()
        for key in self._keys(archive.DIGEST_DIR):
            parsed = archive.parse_key(key)
            raw = self._get(key) if parsed else None
            if parsed is None or raw is None:
                continue
            _, first, last = parsed
            try:
                data = json.loads(raw)
            except ValueError:
                findings.append(Finding(Tamper.CHANGED, first, f's3://{self.bucket}/{key}', 'the digest is not JSON'))
                continue
            where = f's3://{self.bucket}/{key}'
            missing = [f for f in _DIGEST_FIELDS if f not in data] if isinstance(data, dict) else ['everything']
            if missing:
                findings.append(Finding(Tamper.CHANGED, first, where, f'the digest lacks {", ".join(missing)}'))
                continue
            problem = archive.signature_problem(data, self.public_key)
            if problem is None and self.public_key is None and keys_seen and data['public_key'] not in keys_seen:
                problem = 'signed by another key than the digests before it'
            keys_seen.add(data['public_key'])
            if problem is None and (data['first_seq'], data['last_seq']) != (first, last):
                problem = f'it covers seqs {data["first_seq"]}-{data["last_seq"]}, not what its key says'
            if problem is not None:
                findings.append(Finding(Tamper.CHANGED, first, where, f'digest: {problem}'))
                continue
            out.append(_Digest(key, first, last, raw, data))
        return sorted(out, key=lambda d: (d.first, d.key))

    def _digest_chain(self, digests: list[_Digest], findings: list[Finding]) -> None:
        """Each digest names the previous one (key and SHA-256), and the ranges follow one another."""
        previous: _Digest | None = None
        for digest in digests:
            where = f's3://{self.bucket}/{digest.key}'
            named = digest.data['previous_digest_key']
            if previous is None:
                if named:
                    gap = archive.parse_key(named)
                    findings.append(Finding(Tamper.REMOVED, gap[1] if gap else 1, where,
                                            f'the digest before it, {named}, is missing'))  # fmt: skip
                elif digest.first == 1 and digest.data['first_prev_hash'] != GENESIS_HASH:
                    findings.append(Finding(Tamper.CHANGED, 1, where, 'seq 1 does not start from the genesis hash'))
            elif named != previous.key:
                gap = archive.parse_key(named or '')
                if gap and gap[1] > previous.last:
                    message = f'it names {named} as the digest before it, which is missing'
                    findings.append(Finding(Tamper.REMOVED, gap[1], where, message))
                else:
                    message = f'it names {named}, not {previous.key}'
                    findings.append(Finding(Tamper.CHANGED, digest.first, where, message))
            elif digest.data['previous_digest_sha256'] != archive.sha256(previous.raw):
                findings.append(Finding(Tamper.CHANGED, previous.first, f's3://{self.bucket}/{previous.key}',
                                        'this digest changed after the next one was written'))  # fmt: skip
            elif digest.first != previous.last + 1:
                kind = Tamper.REMOVED if digest.first > previous.last + 1 else Tamper.INSERTED
                message = f'it starts at seq {digest.first} but the one before ends at {previous.last}'
                findings.append(Finding(kind, previous.last + 1, where, message))
            previous = digest

    def _digested_entries(self, digests: list[_Digest], findings: list[Finding]) -> Iterator[Entry]:
        """The events of every digested batch, in order; a batch missing or not matching its digest is a finding."""
        for digest in digests:
            key = digest.data['batch_key']
            where = f's3://{self.bucket}/{key}'
            body = self._get(key)
            if body is None:
                findings.append(Finding(Tamper.REMOVED, digest.first, where,
                                        f'the batch of seqs {digest.first}-{digest.last} is missing'))  # fmt: skip
                continue
            if archive.sha256(body) != digest.data['batch_sha256']:
                start = Anchor(digest.first - 1, digest.data['first_prev_hash'])
                end = Anchor(digest.last, digest.data['last_hash'])
                inside = verify_chain(self._lines(key, body), start=start, end=end)
                what = "the batch was replaced (its SHA-256 is not the digest's)"
                if inside.finding is not None:
                    findings.append(Finding(inside.finding.kind, inside.finding.seq, inside.finding.where,
                                            f'{what}: {inside.finding.message}'))  # fmt: skip
                else:
                    findings.append(Finding(Tamper.CHANGED, digest.first, where, what))
            yield from self._lines(key, body)
