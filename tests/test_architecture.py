"""The direction of dependence: the core is pure, the bot never imports the workers."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
IO_LIBS = {'slack_bolt', 'slack_sdk', 'redis', 'rq', 'boto3', 'botocore', 'aiohttp', 'psycopg', 'urllib', 'socket'}


def imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


@pytest.mark.parametrize('path', sorted((ROOT / 'bot' / 'core').glob('*.py')), ids=lambda p: p.name)
def test_core_imports_no_io(path):
    """bot/core is pure Python + PyYAML: no Slack, Redis, RQ, AWS, HTTP."""
    bad = [
        m
        for m in imports(path)
        if m.split('.')[0] in IO_LIBS or m.startswith(('bot.adapters', 'bot.usecases', 'bot.listeners', 'workers'))
    ]
    assert bad == []


@pytest.mark.parametrize('path', sorted((ROOT / 'bot' / 'usecases').glob('*.py')), ids=lambda p: p.name)
def test_usecases_import_only_core(path):
    """Use cases get their adapters handed in; they import none."""
    bad = [m for m in imports(path) if m.split('.')[0] in IO_LIBS or m.startswith(('bot.adapters', 'workers'))]
    assert bad == []


#: The `jit` command itself wires everything, so it may reach the worker package (for provider names).
COMMAND_LINE = ('bot/cli.py', 'bot/policy_tools/')


def test_bot_never_imports_workers():
    """The bot enqueues jobs by dotted path; only the command line imports the worker package."""
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / 'bot').rglob('*.py')
        if not str(p.relative_to(ROOT)).startswith(COMMAND_LINE) and any(m.startswith('workers') for m in imports(p))
    ]
    assert offenders == []
