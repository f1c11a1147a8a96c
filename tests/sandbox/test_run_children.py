"""`jit sandbox`'s children: a child that exits is reported with the log it really wrote, and the example policy
the sandbox falls back to is the package's own."""

from __future__ import annotations

import sys

import pytest

from bot.sandbox.run import EXAMPLE_POLICY, SandboxError, _Children, _policy_dir


def test_a_child_that_exits_names_its_log_file(tmp_path):
    children = _Children(tmp_path)
    proc = children.spawn("serve", [sys.executable, "-c", "print('no policy'); raise SystemExit(2)"])
    proc.wait(30)
    with pytest.raises(SandboxError) as exited:
        children.check("jit serve", proc)
    assert str(exited.value) == f"jit serve exited with 2; see {tmp_path / 'serve.log'}"
    assert (tmp_path / "serve.log").read_text() == "no policy\n"


def test_the_policy_is_the_configured_one_else_policies_here_else_the_example(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JIT_POLICY_DIR", raising=False)
    assert _policy_dir() == str(EXAMPLE_POLICY)
    assert (EXAMPLE_POLICY / "example.yaml").is_file()
    (tmp_path / "policies").mkdir()
    assert _policy_dir() == str(tmp_path.resolve() / "policies")
    monkeypatch.setenv("JIT_POLICY_DIR", "/etc/jit/policies")
    assert _policy_dir() == "/etc/jit/policies"


def test_the_shipped_example_is_the_repository_s_example_policy():
    """`example_policy/example.yaml` links to `policies/example.yaml`: one policy, not a copy that drifts."""
    repository = EXAMPLE_POLICY.parents[2] / "policies" / "example.yaml"
    assert (EXAMPLE_POLICY / "example.yaml").read_bytes() == repository.read_bytes()
