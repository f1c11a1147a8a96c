"""A real OpenSSH sshd on a free loopback port, for the ``ssh`` provider's tests and the providers' end-to-end test.

``SshdServer(folder, ca_public=..., principals={'deploy'})`` writes its own host key, a ``sshd_config``,
``TrustedUserCAKeys`` (the test CA), ``RevokedKeys`` (an empty KRL at ``.krl``) and an
``AuthorizedPrincipalsFile`` that lets the login user in with the given principals; then runs
``sshd -D -e`` as a child process, logging to ``.log``. Certificates are the only way in:
``AuthorizedKeysFile none``, no passwords, no PAM.

The login user is whoever runs the tests: root in CI, where sshd needs its privilege separation folder
``/run/sshd`` (created here if missing, as the openssh-server package would) and lets root in with a
certificate (``PermitRootLogin prohibit-password``). No system user is created or changed, so the tests
leave nothing behind but that folder. (Run as another user, sshd runs unprivileged and only that user
can log in; CI does not exercise that.)

:func:`login` runs the real ``ssh`` client with a key and a certificate and returns its result.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

SSHD = shutil.which('sshd', path='/usr/sbin:/usr/bin:/sbin:/bin')
SSH = shutil.which('ssh')
SSH_KEYGEN = shutil.which('ssh-keygen')

CONFIG = """\
ListenAddress 127.0.0.1:{port}
HostKey {folder}/host_ed25519
PidFile {folder}/sshd.pid
TrustedUserCAKeys {folder}/ca.pub
RevokedKeys {folder}/revoked.krl
AuthorizedPrincipalsFile {folder}/principals/%u
AuthorizedKeysFile none
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
HostbasedAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PermitUserEnvironment no
PrintMotd no
LogLevel VERBOSE
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return int(s.getsockname()[1])


class SshdServer:
    """One sshd in ``folder``; use as a context manager (stops it and waits for it on exit)."""

    def __init__(self, folder: Path, *, ca_public: str, principals: set[str]) -> None:
        if SSHD is None or SSH is None or SSH_KEYGEN is None:
            raise RuntimeError('needs OpenSSH: apt-get install -y openssh-server openssh-client')
        self.folder = folder
        self.user = getpass.getuser()
        self.krl = folder / 'revoked.krl'
        self.log = folder / 'sshd.log'
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)
        (folder / 'ca.pub').write_text(ca_public.strip() + '\n')
        (folder / 'principals').mkdir(exist_ok=True)
        (folder / 'principals' / self.user).write_text(''.join(f'{p}\n' for p in sorted(principals)))
        subprocess.run([SSH_KEYGEN, '-q', '-t', 'ed25519', '-N', '', '-f', str(folder / 'host_ed25519')], check=True)
        # An empty KRL: sshd refuses every key while the RevokedKeys file is missing.
        subprocess.run([SSH_KEYGEN, '-q', '-k', '-f', str(self.krl)], check=True)

    def __enter__(self) -> SshdServer:
        if os.geteuid() == 0:
            os.makedirs('/run/sshd', mode=0o755, exist_ok=True)
        for _ in range(3):  # a port picked free can be taken before sshd binds it
            self.port = _free_port()
            config = self.folder / 'sshd_config'
            config.write_text(CONFIG.format(port=self.port, folder=self.folder))
            with open(self.log, 'ab') as log:
                assert SSHD is not None
                self.process = subprocess.Popen(
                    [SSHD, '-D', '-e', '-f', str(config)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            if self._wait_listening():
                return self
            self._stop()
        raise RuntimeError(f'sshd did not start:\n{self.log.read_text()}')

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _wait_listening(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with socket.create_connection(('127.0.0.1', self.port), timeout=1):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def _stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def log_since(self, offset: int) -> str:
        """What sshd logged after byte ``offset`` of its log (see :meth:`log_size`)."""
        with open(self.log, 'rb') as f:
            f.seek(offset)
            return f.read().decode(errors='replace')

    def log_size(self) -> int:
        return self.log.stat().st_size

    def login(self, key: Path, cert: Path, command: str = 'echo jit-ok') -> subprocess.CompletedProcess[str]:
        """``ssh`` as the login user with ``key`` and ``cert`` only (no agent, no config, no known_hosts)."""
        assert SSH is not None
        args = [
            SSH, '-F', '/dev/null', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no',
            '-o', 'UserKnownHostsFile=/dev/null', '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none',
            '-o', 'ConnectTimeout=5', '-o', 'LogLevel=ERROR', '-i', str(key), '-o', f'CertificateFile={cert}',
            '-p', str(self.port), f'{self.user}@127.0.0.1', command,
        ]  # fmt: skip
        return subprocess.run(args, capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
