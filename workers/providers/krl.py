"""OpenSSH key revocation lists (KRL, OpenSSH's ``PROTOCOL.krl``): add revoked certificate serials for one CA.

The ``ssh`` provider revokes a certificate by adding its serial to the KRL file that sshd reads with
``RevokedKeys``. This module writes that file itself instead of running ``ssh-keygen -k -u``, because:

- the worker then needs no OpenSSH tools (a slim Python image has no ``ssh-keygen``), no CA public key
  file on disk and no spec file in a temp dir: the CA key stays in the worker's memory;
- the edit is ours to make safe: a lock file next to the KRL serializes workers that revoke at the
  same moment (``ssh-keygen -k -u`` is a read-modify-write with no lock: two at once lose one serial),
  and the new file replaces the old one by ``rename``, so sshd never reads half a file;
- the format is small and stable: a header, then sections; we parse only the certificate section of
  our CA and keep every other section byte for byte.

What a rewrite changes, and only in the certificate section(s) of our CA: the serial lists are merged
into one sorted list, and ``cert-bloom-serial`` filters are dropped (they would hide the new serials
from readers that trust them; they are optional). Ranges, bitmaps, key IDs, other CAs, revoked plain
keys and fingerprints are kept as they are. A signed KRL is refused (OpenSSH >= 9.4 refuses to load one
anyway). An empty file counts as an empty KRL, as it does for sshd; a text list of keys is refused.

The tests check what this writes with ``ssh-keygen -Q`` and against a real sshd.

This module is plain Python on the standard library: it knows nothing of jit.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

MAGIC = b'SSHKRL\n\x00'
FORMAT_VERSION = 1
SECTION_CERTIFICATES = 1
SECTION_SIGNATURE = 4
CERT_SERIAL_LIST = 0x20
CERT_EXTENSION = 0x39
#: The optional Bloom filter over a section's serials; stale once we add one, so a rewrite drops it.
SERIAL_BLOOM = b'cert-bloom-serial'
#: How long a revoke waits for another worker's edit of the same file before giving up (and retrying later).
LOCK_WAIT = 10.0


class KrlError(ValueError):
    """The file is not a KRL this module can edit (a text key list, a signed KRL, a truncated file)."""


class KrlBusy(TimeoutError):
    """Another process held the KRL's lock for longer than :data:`LOCK_WAIT`."""


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise KrlError('the KRL is truncated')
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u32(self) -> int:
        return int(struct.unpack('>I', self.take(4))[0])

    def u64(self) -> int:
        return int(struct.unpack('>Q', self.take(8))[0])

    def string(self) -> bytes:
        return self.take(self.u32())

    def done(self) -> bool:
        return self.pos >= len(self.data)


def _string(data: bytes) -> bytes:
    return struct.pack('>I', len(data)) + data


@dataclass
class Krl:
    """A parsed KRL: the header fields that a rewrite keeps, and the sections as ``(type, raw data)``."""

    version: int = 0
    reserved: bytes = b''
    comment: bytes = b''
    sections: list[tuple[int, bytes]] = field(default_factory=list)

    @classmethod
    def parse(cls, blob: bytes) -> Krl:
        """Parse ``blob``; an empty one is an empty KRL. Raises :class:`KrlError`."""
        if not blob:
            return cls()
        if not blob.startswith(MAGIC):
            raise KrlError('the file is not a binary KRL (a text list of keys?)')
        r = _Reader(blob)
        r.take(len(MAGIC))
        if (fmt := r.u32()) != FORMAT_VERSION:
            raise KrlError(f'the KRL has format version {fmt}, not {FORMAT_VERSION}')
        version, _generated, _flags = r.u64(), r.u64(), r.u64()
        krl = cls(version=version, reserved=r.string(), comment=r.string())
        while not r.done():
            kind = r.u8()
            if kind == SECTION_SIGNATURE:
                raise KrlError('the KRL is signed; jit does not edit signed KRLs')
            krl.sections.append((kind, r.string()))
        return krl

    def to_bytes(self, *, generated: int) -> bytes:
        head = MAGIC + struct.pack('>IQQQ', FORMAT_VERSION, self.version, generated, 0)
        body = b''.join(bytes([kind]) + _string(data) for kind, data in self.sections)
        return head + _string(self.reserved) + _string(self.comment) + body

    def serials(self, ca_key: bytes) -> set[int]:
        """The serials of ``ca_key``'s certificates listed one by one (ranges and bitmaps are not read)."""
        found: set[int] = set()
        for kind, data in self.sections:
            if kind == SECTION_CERTIFICATES and _ca_of(data) == ca_key:
                found |= _split_ca_section(data)[2]
        return found

    def with_serials(self, ca_key: bytes, serials: Iterable[int]) -> Krl:
        """A copy that also revokes ``serials`` of certificates signed by ``ca_key`` (its SSH wire blob)."""
        wanted = set(serials)
        if any(not 0 < s < 2**64 for s in wanted):
            raise KrlError('a certificate serial must be between 1 and 2**64 - 1')
        sections: list[tuple[int, bytes]] = []
        first: int | None = None
        for kind, data in self.sections:
            if kind != SECTION_CERTIFICATES or _ca_of(data) != ca_key:
                sections.append((kind, data))
                continue
            header, rest, listed = _split_ca_section(data)
            wanted |= listed
            if first is None:
                first = len(sections)
                sections.append((kind, header + rest))
            elif rest:  # a later section of our CA that held only serial lists is merged away
                sections.append((kind, header + rest))
        listing = bytes([CERT_SERIAL_LIST]) + _string(b''.join(struct.pack('>Q', s) for s in sorted(wanted)))
        if first is None:
            sections.append((SECTION_CERTIFICATES, _string(ca_key) + _string(b'') + listing))
        else:
            sections[first] = (SECTION_CERTIFICATES, sections[first][1] + listing)
        return Krl(version=self.version + 1, reserved=self.reserved, comment=self.comment, sections=sections)


def _ca_of(section: bytes) -> bytes:
    return _Reader(section).string()


def _split_ca_section(section: bytes) -> tuple[bytes, bytes, set[int]]:
    """A CA's section as its header (CA key, reserved), its subsections less serial lists and serial Bloom
    filters, and the serials those lists held."""
    r = _Reader(section)
    ca_key, reserved = r.string(), r.string()
    header, kept = _string(ca_key) + _string(reserved), b''
    serials: set[int] = set()
    while not r.done():
        kind, data = r.u8(), r.string()
        if kind == CERT_SERIAL_LIST:
            if len(data) % 8:
                raise KrlError('a serial list in the KRL is truncated')
            serials.update(struct.unpack(f'>{len(data) // 8}Q', data))
        elif kind == CERT_EXTENSION and _Reader(data).string() == SERIAL_BLOOM:
            continue
        else:
            kept += bytes([kind]) + _string(data)
    return header, kept, serials


def read_serials(path: str, ca_key: bytes) -> set[int]:
    """The serials that the KRL at ``path`` lists for ``ca_key``; a missing file lists none."""
    try:
        with open(path, 'rb') as f:
            return Krl.parse(f.read()).serials(ca_key)
    except FileNotFoundError:
        return set()


@contextlib.contextmanager
def _locked(path: str, wait: float) -> Iterator[None]:
    # The KRL itself is replaced by rename, so the lock lives on a file of its own next to it.
    fd = os.open(path + '.lock', os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise KrlBusy(f'{path} is being edited by another process') from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def add_serials(path: str, ca_key: bytes, serials: Iterable[int], *, wait: float = LOCK_WAIT) -> bool:
    """Revoke ``serials`` of ``ca_key``'s certificates in the KRL at ``path`` (created if missing).

    Returns False when every serial was already listed (nothing written), True after a rewrite.
    Raises :class:`KrlError` for a file that is not an editable KRL, :class:`KrlBusy` when the lock
    stays taken, and ``OSError`` when the file or its folder cannot be read or written.
    """
    wanted = set(serials)
    with _locked(path, wait):
        try:
            with open(path, 'rb') as f:
                blob = f.read()
            mode = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            blob, mode = b'', 0o644  # sshd reads it, possibly as another user; it holds no secret
        krl = Krl.parse(blob)
        if wanted <= krl.serials(ca_key):
            return False
        data = krl.with_serials(ca_key, wanted).to_bytes(generated=int(time.time()))
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix='.krl-', dir=folder)
        try:
            with os.fdopen(fd, 'wb') as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a crash
        finally:
            os.close(dir_fd)
        return True
