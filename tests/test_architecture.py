"""The direction of dependence, read from the import statements (``ast``, nothing is imported):

- the core is pure; use cases get their adapters handed in;
- the bot never imports the workers (it enqueues jobs by dotted path);
- the pipeline API speaks HTTP to pipelines: no Slack listeners, no Slack libraries, no workers;
- the Slack listeners turn Slack's requests into use-case calls: no Redis, RQ, adapters or workers;
- the local Slack (``bot/sandbox``) imports nothing of jit, so it stays a stand-in for Slack that cannot share
  jit's mistakes; only the ``jit sandbox`` command imports it.

An import inside a function or under ``if TYPE_CHECKING:`` counts like any other; relative imports are
resolved, and ``from a import b`` counts as an import of ``a`` and of ``a.b``.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
IO_LIBS = {'slack_bolt', 'slack_sdk', 'redis', 'rq', 'boto3', 'botocore', 'aiohttp', 'psycopg', 'urllib', 'socket'}


def imports(path):
    """Every module ``path`` imports, by its absolute name."""
    package = list(path.relative_to(ROOT).parts[:-1])
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = '.'.join([*base, *([node.module] if node.module else [])])
            if node.module:
                yield module
            yield from (f'{module}.{a.name}' for a in node.names if a.name != '*')


def reaches(module, prefixes):
    """``module`` is one of ``prefixes`` or inside one of them (``bot.adapters`` reaches ``bot.adapters``
    and ``bot.adapters.redis_store``, not ``bot.adapters_old``)."""
    return any(module == p or module.startswith(p + '.') for p in prefixes)


def modules_under(folder):
    return sorted((ROOT / folder).rglob('*.py'))


def relative(path):
    return str(path.relative_to(ROOT))


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


#: What the pipeline API must not know: it answers pipelines over HTTP and reaches the use cases through
#: ``Deps``; Slack's side (the listeners, their blocks, the Slack libraries) and the worker are another process's.
API_NEVER = ('bot.listeners', 'bot.blocks', 'slack_bolt', 'slack_sdk', 'workers')


@pytest.mark.parametrize('path', modules_under('bot/api'), ids=relative)
def test_the_api_imports_nothing_of_slack_or_the_worker(path):
    assert [m for m in imports(path) if reaches(m, API_NEVER)] == []


#: What the Slack listeners must not reach: storage and the job queue are the use cases' business, handed in
#: through ``Deps``; the worker runs in another process; the local Slack is the tests' and the sandbox's.
LISTENERS_NEVER = ('redis', 'rq', 'bot.adapters', 'workers', 'bot.sandbox')


@pytest.mark.parametrize('path', modules_under('bot/listeners'), ids=relative)
def test_listeners_import_no_storage_queue_adapters_or_workers(path):
    assert [m for m in imports(path) if reaches(m, LISTENERS_NEVER)] == []


#: Of jit, the local Slack imports only itself. ``run.py`` (``jit sandbox``) starts ``jit serve`` and
#: ``jit worker`` as subprocesses, never by import (the example policy it falls back to is its own package data).
SANDBOX_OWN = ('bot.sandbox',)
SANDBOX_ALSO: dict[str, set[str]] = {}
#: Libraries the local Slack must not lean on: Bolt (what it checks must be done here, as Slack does, not
#: borrowed from the framework jit uses) and the job queue; Redis only for ``jit sandbox`` to start and ping.
SANDBOX_NEVER = ('slack_bolt', 'rq', 'redis')
SANDBOX_REDIS = {'bot/sandbox/run.py'}


@pytest.mark.parametrize('path', modules_under('bot/sandbox'), ids=relative)
def test_the_local_slack_imports_nothing_of_jit(path):
    also = SANDBOX_ALSO.get(relative(path), set())
    of_jit = [m for m in imports(path) if reaches(m, ('bot', 'workers'))]
    assert [m for m in of_jit if not reaches(m, SANDBOX_OWN) and m not in also] == []


@pytest.mark.parametrize('path', modules_under('bot/sandbox'), ids=relative)
def test_the_local_slack_leans_on_no_bolt_and_no_queue(path):
    never = tuple(n for n in SANDBOX_NEVER if not (n == 'redis' and relative(path) in SANDBOX_REDIS))
    assert [m for m in imports(path) if reaches(m, never)] == []


#: The only importer of the local Slack outside it: the command line, for ``jit sandbox``.
SANDBOX_IMPORTERS = {'bot/cli.py'}


def test_only_the_command_line_imports_the_local_slack():
    importers = {
        relative(p)
        for folder in ('bot', 'workers')
        for p in modules_under(folder)
        if not relative(p).startswith('bot/sandbox/') and any(reaches(m, SANDBOX_OWN) for m in imports(p))
    }
    assert importers <= SANDBOX_IMPORTERS
