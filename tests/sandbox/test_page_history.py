"""The sandbox page's history outlives a restart: `Workspace.history` / `restore_history` and `PageHistory`'s file."""

from __future__ import annotations

import json
import os
import stat
import time

import pytest

from bot.sandbox.history import PageHistory
from bot.sandbox.workspace import seed_workspace

BUTTONS = [
    {
        "type": "actions",
        "elements": [{"type": "button", "action_id": "approve", "value": "r1", "text": {"type": "plain_text"}}],
    }
]


def _filled():
    """A workspace where alex was DMed twice (one message edited), sam got buttons, and alex saw an ephemeral."""
    workspace = seed_workspace()
    first = workspace.post(workspace.dm_channel_id("U0ALEX"), "Filed r1")
    workspace.update(first.channel, first.ts, text="Filed r1: approved")
    workspace.post(workspace.dm_channel_id("U0ALEX"), "Granted r1")
    workspace.post(workspace.dm_channel_id("U0SAM"), "alex asks", BUTTONS)
    workspace.post("C0AUDIT", "request.filed r1")
    workspace.post_ephemeral(workspace.dm_channel_id("U0ALEX"), "U0ALEX", "only for alex")
    return workspace


def test_a_restored_workspace_shows_what_everyone_saw_and_no_ephemerals():
    before = _filled()
    after = seed_workspace()
    assert after.restore_history(json.loads(json.dumps(before.history()))) == 4

    for channel in (before.dm_channel_id("U0ALEX"), before.dm_channel_id("U0SAM"), "C0AUDIT"):
        assert after.messages(channel) == before.messages(channel)
    assert [m.text for m in after.dms_to("U0ALEX")] == ["Filed r1: approved", "Granted r1"]
    assert after.dms_to("U0ALEX")[0].edits == 1
    assert after.dms_to("U0SAM")[0].action_ids == ["approve"]
    assert after.ephemerals("U0ALEX") == []


def test_messages_posted_after_a_restore_come_later_than_every_restored_one():
    """Saved by a machine whose clock was ahead: new timestamps still sort after the restored ones."""
    ahead = f"{int(time.time()) + 3600}.000001"
    workspace = seed_workspace()
    workspace.restore_history(
        {"dms": [], "messages": [{"channel": "C0AUDIT", "ts": ahead, "text": "old", "blocks": []}]}
    )
    posted = workspace.post("C0AUDIT", "later")
    assert float(posted.ts) > float(ahead)
    assert [m.text for m in workspace.messages("C0AUDIT")] == ["old", "later"]


@pytest.mark.parametrize(
    "saved",
    [[], {"messages": []}, {"dms": [], "messages": [{"channel": "C0AUDIT", "ts": "1.000001", "bogus": 1}]},
     {"dms": [], "messages": [{"channel": "C0AUDIT", "ts": "not-a-ts", "text": "", "blocks": []}]}],
)  # fmt: skip
def test_what_is_not_a_history_is_refused(saved):
    with pytest.raises((ValueError, TypeError)):
        seed_workspace().restore_history(saved)


def test_messages_of_channels_and_users_the_workspace_lacks_are_passed_over():
    saved = {
        "dms": ["U0NOBODY", "U0ALEX"],
        "messages": [
            {"channel": "C0GONE", "ts": "1.000001", "text": "gone", "blocks": []},
            {"channel": "D0ALEX", "ts": "1.000002", "text": "kept", "blocks": []},
        ],
    }
    workspace = seed_workspace()
    assert workspace.restore_history(saved) == 1
    assert [m.text for m in workspace.messages("D0ALEX")] == ["kept"]


def test_the_file_follows_the_page_and_a_restart_reads_it_back(tmp_path):
    path = tmp_path / "slack-history.json"
    workspace = seed_workspace()
    keeper = PageHistory(workspace, path, interval=0.05)
    assert keeper.load() == f"page history starts now (kept in {path})"
    keeper.start()
    try:
        workspace.post("C0AUDIT", "one")
        deadline = time.monotonic() + 5
        while not (path.exists() and "one" in path.read_text()):
            assert time.monotonic() < deadline, "the history file was not written"
            time.sleep(0.02)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        workspace.post("C0AUDIT", "two")
    finally:
        keeper.stop()  # the last change is written at stop, whatever the interval

    restarted = seed_workspace()
    assert PageHistory(restarted, path).load() == f"page history: 2 messages from {path}"
    assert [m.text for m in restarted.messages("C0AUDIT")] == ["one", "two"]
    assert not path.with_name(path.name + ".partial").exists()


def test_a_file_that_does_not_read_is_set_aside_not_overwritten(tmp_path):
    path = tmp_path / "slack-history.json"
    path.write_text('{"dms": [], "messages": [{"chan', encoding="utf-8")
    workspace = seed_workspace()
    keeper = PageHistory(workspace, path)
    note = keeper.load()
    aside = path.with_name(path.name + ".unreadable")
    assert note.startswith(f"page history starts now: {path} did not read (") and note.endswith(f"kept as {aside}")
    assert aside.read_text() == '{"dms": [], "messages": [{"chan'
    assert workspace.messages("C0AUDIT") == []
