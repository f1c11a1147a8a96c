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


#: What ``jit ci`` must not reach: it runs in a pipeline's job, with no Redis, RQ or Slack, and is the client
#: of the HTTP API, not a part of the server.
SERVER_SIDE = ('bot.adapters', 'bot.usecases', 'bot.listeners', 'workers')


def _module_file(name):
    """The file of module ``name`` in this repository, or None (a library, or a name inside a module)."""
    base = ROOT.joinpath(*name.split('.'))
    return next((p for p in (base.with_suffix('.py'), base / '__init__.py') if p.is_file()), None)


def _names_imported(path, name):
    """Every dotted name an import in ``path`` (module ``name``) may load: relative imports resolved, and
    ``from X import Y`` as both X and X.Y (Y may be a module: ``from bot import adapters``)."""
    package = name.split('.') if path.name == '__init__.py' else name.split('.')[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                base = '.'.join([*package[: len(package) - node.level + 1], *([base] if base else [])])
            yield base
            yield from (f'{base}.{alias.name}' for alias in node.names)


def test_the_ci_client_reaches_nothing_of_the_server_side():
    """bot/ci imports no adapter, use case, listener or worker module, nor does any jit module it imports."""
    todo = [('bot/ci', name) for name in ['bot.ci', *(f'bot.ci.{p.stem}' for p in (ROOT / 'bot' / 'ci').glob('*.py'))]]
    seen, offenders = set(), []
    while todo:
        importer, name = todo.pop()
        path = _module_file(name)
        if path is None or name in seen:
            continue
        seen.add(name)
        if any(name == side or name.startswith(f'{side}.') for side in SERVER_SIDE):
            offenders.append(f'{importer} imports {name}')
            continue
        parents = ['.'.join(name.split('.')[:n]) for n in range(1, name.count('.') + 1)]  # their __init__ runs
        todo.extend((name, imported) for imported in [*parents, *_names_imported(path, name)])
    assert offenders == []
    assert 'bot.ci.commands' in seen and 'bot.sealed_box' in seen  # the walk did follow the imports
