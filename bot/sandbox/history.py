"""The sandbox page's history across restarts: the local Slack's messages, kept in a file under the data dir.

Part of `bot/sandbox/`. `jit sandbox` keeps its audit trail in the embedded Redis; without this file its page
would start empty after a restart while the trail and any grant still running go on. `PageHistory` reads
`<data_dir>/slack-history.json` once at start (`Workspace.restore_history`), then writes it whenever the messages
change (checked every `interval` seconds, written to a temporary file and renamed over the old one, mode 0600)
and once more at stop. A file that does not read is moved aside to `slack-history.json.unreadable` and the page
starts empty; it is never overwritten unread.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from bot.sandbox.workspace import Workspace

__all__ = ["HISTORY_FILE", "PageHistory"]

#: The file, under the sandbox's data directory.
HISTORY_FILE = "slack-history.json"


class PageHistory:
    """Keeps one workspace's messages in one file while the sandbox runs."""

    def __init__(self, workspace: Workspace, path: Path, *, interval: float = 1.0) -> None:
        """Keep `workspace`'s history in `path`, looking for changes every `interval` seconds."""
        self.workspace, self.path, self.interval = workspace, path, interval
        self._saved = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def load(self) -> str:
        """Restore the saved history, if any; return one line for people saying what happened."""
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return f"page history starts now (kept in {self.path})"
        except (OSError, UnicodeDecodeError) as exc:
            return self._set_aside(str(exc))
        try:
            count = self.workspace.restore_history(json.loads(raw))
        except (ValueError, TypeError) as exc:
            return self._set_aside(str(exc))
        self._saved = self._text()
        return f"page history: {count} messages from {self.path}"

    def start(self) -> None:
        """Write the history whenever it changes, on a daemon thread, until `stop()`."""
        self._thread = threading.Thread(target=self._run, name="page-history", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and write the history one last time."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.save()

    def save(self) -> None:
        """Write the history if it changed since it was last written or read."""
        text = self._text()
        if text == self._saved:
            return
        partial = self.path.with_name(self.path.name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(partial, self.path)
        self._saved = text

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.save()
            except OSError:
                continue  # a full disk or a removed directory: the page goes on, the next change tries again

    def _text(self) -> str:
        return json.dumps(self.workspace.history(), separators=(",", ":"))

    def _set_aside(self, why: str) -> str:
        aside = self.path.with_name(self.path.name + ".unreadable")
        try:
            os.replace(self.path, aside)
        except OSError as exc:
            raise OSError(f"{self.path} did not read ({why}) and cannot be moved aside: {exc}") from None
        return f"page history starts now: {self.path} did not read ({why}); it is kept as {aside}"
