"""The ``jit`` command: ``serve``, ``worker``, ``sandbox``, ``policy validate|test|explain|diff``,
``audit verify|query|report|export``, ``ci request|release|token``.

Settings are read here, once, and everything is wired here; a bad setting or policy stops the
process at start with one message that names every problem.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot import version
from bot.core.errors import ConfigError, PolicyConfigError

if TYPE_CHECKING:  # imported when a command needs it: `jit policy ...` never loads Redis, RQ or Slack
    from bot.settings import Settings

EXIT_OK, EXIT_PROBLEMS, EXIT_CONFIG = 0, 1, 2
#: ``jit policy NAME``: the module under ``bot.policy_tools`` and the help line.
POLICY_TOOLS = {
    'validate': ('validate', 'check a policy directory: exit 0 when it loads (warnings too, unless --strict)'),
    'test': ('expect', 'run the expectation cases in DIR/tests/*.yaml: N passed, M failed'),
    'explain': ('explain', 'say which rule decides USER asking for RESOURCE ROLE, and why'),
    'diff': ('diff', 'what a policy change does to effective access: exit 3 when it widens'),
}
#: ``jit audit NAME``: the module under ``bot.audit_tools`` and the help line.
AUDIT_TOOLS = {
    'verify': ('verify', 'recompute the hash chain: exit 0 when intact, 1 naming the first event changed, removed, '
               'inserted or reordered, 3 when there is no trail at all'),
    'query': ('query', 'events by user, resource, role, event, time or request: a table, JSON lines or CSV'),
    'report': ('report', 'who had access to a resource in a period, approved by whom, why: Markdown or CSV'),
    'export': ('export', 'every event of a time or seq range, as JSON lines or CSV'),
}  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='jit', description='Just-in-time access, asked for and approved in Slack.')
    parser.add_argument('--version', action='version', version=f'jit {version()}')
    sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    sub.add_parser('serve', help='HTTP server: Slack events, health checks (PORT, default 3000)')
    sub.add_parser('worker', help='RQ worker with its scheduler and the sweeper: grants, revokes, notifications')
    sandbox = sub.add_parser('sandbox', help='all of jit on this machine, with a local Slack page in the browser')
    sandbox.add_argument('--port', type=int, default=4040, help='where the page listens (default 4040)')
    sandbox.add_argument('--data-dir', help='embedded Redis data and logs (default: JIT_DATA_DIR, else .jit)')
    policy = sub.add_parser('policy', help='check, test, explain and compare policies')
    tools = policy.add_subparsers(dest='policy_command', required=True, metavar='TOOL')
    for name, (module, summary) in POLICY_TOOLS.items():
        tool = tools.add_parser(name, help=summary, description=summary)
        importlib.import_module(f'bot.policy_tools.{module}').add_arguments(tool)
    audit = sub.add_parser('audit', help='verify, query, report on and export the audit trail (Redis, a file or S3)')
    tools = audit.add_subparsers(dest='audit_command', required=True, metavar='TOOL')
    for name, (module, summary) in AUDIT_TOOLS.items():
        tool = tools.add_parser(name, help=summary, description=summary)
        importlib.import_module(f'bot.audit_tools.{module}').add_arguments(tool)
    ci = sub.add_parser('ci', help='for pipelines: request access and wait for it, release it, make a token')
    importlib.import_module('bot.ci').add_arguments(ci)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words, program = list(sys.argv[1:] if argv is None else argv), []
    if words[:2] == ['ci', 'run'] and '--' in words:  # `jit ci run ... -- COMMAND ARGS`: the command as it is
        cut = words.index('--')
        words, program = words[:cut], words[cut + 1 :]
    args = _parser().parse_args(words)
    args.program = program
    try:
        if args.command == 'policy':
            if getattr(args, 'directory', None) is None:
                args.directory = os.environ.get('JIT_POLICY_DIR') or 'policies'
            module = POLICY_TOOLS[args.policy_command][0]
            return int(importlib.import_module(f'bot.policy_tools.{module}').run(args))
        if args.command == 'audit':
            module = AUDIT_TOOLS[args.audit_command][0]
            return int(importlib.import_module(f'bot.audit_tools.{module}').run(args))
        if args.command == 'ci':
            return int(importlib.import_module('bot.ci').run(args))
        if args.command == 'sandbox':
            from bot.sandbox.run import run_sandbox

            return run_sandbox(port=args.port, data_dir=args.data_dir or os.environ.get('JIT_DATA_DIR') or '.jit')
        from bot.settings import load_settings

        settings = load_settings(os.environ)
        if args.command == 'serve':
            return serve(settings)
        return work(settings)
    except ConfigError as exc:
        print(f'jit: {exc.user_message}', file=sys.stderr)
        return EXIT_CONFIG
    except PolicyConfigError as exc:
        print('jit: the policy does not load:\n' + '\n'.join(exc.problems), file=sys.stderr)
        return EXIT_CONFIG


def serve(settings: Settings) -> int:
    import structlog
    from aiohttp import web

    from bot.app import create_web_app
    from bot.deps import build_deps
    from bot.logging import configure_logging
    from workers.providers.registry import provider_names

    configure_logging(json=_json(settings), level=settings.log_level)
    structlog.get_logger('bot.cli').info('jit.starting', process='serve', version=version())
    deps = build_deps(settings, providers=provider_names(), record_policy=True)
    # A policy load never runs on the event loop: SIGHUP only asks, the watcher thread starts the load.
    signal.signal(signal.SIGHUP, lambda *_: deps.policy.request_reload())
    deps.policy.watch()
    web.run_app(create_web_app(deps), host=os.environ.get('JIT_HOST', '0.0.0.0'), port=deps.settings.port,
                print=None, access_log=None)  # fmt: skip
    return EXIT_OK


def work(settings: Settings) -> int:
    from bot.adapters.metrics_dir import drop_worker_dir, use_worker_dir

    metrics_dir = use_worker_dir()  # before anything imports prometheus-client: this process and its children
    try:
        return _work(settings)
    finally:
        drop_worker_dir(metrics_dir)


def _work(settings: Settings) -> int:
    import structlog

    from bot.adapters.redis_connect import redis_location
    from bot.adapters.redis_health import wait_for_redis
    from bot.adapters.rq_queue import ACCESS_QUEUE
    from bot.logging import configure_logging
    from workers.audit_pump import build_audit_pump
    from workers.runtime import build_revoker, build_sweeper, build_worker_deps, install, serve_metrics
    from workers.supervise import AccessProcess, NotifyProcess, rq_connector, work_forever

    configure_logging(json=_json(settings), level=settings.log_level)
    structlog.get_logger('bot.cli').info('jit.starting', process='worker', version=version())
    deps = build_worker_deps(settings)
    install(deps)
    if settings.metrics_port:
        serve_metrics(deps, settings.metrics_port)
    wait_for_redis(deps.base.redis, redis_location(settings))  # unreachable at start: one line, then wait
    # A policy load never holds the job loop: SIGHUP only asks, the watcher thread starts the load.
    signal.signal(signal.SIGHUP, lambda *_: deps.base.policy.request_reload())
    deps.base.policy.watch()
    # Slack messages in a process of their own, at a lower priority (workers/supervise.py): revokes first.
    notify = NotifyProcess(dict(os.environ), policy=lambda: deps.base.policy.texts)
    notify.start()
    revoker = build_revoker(deps)
    revoker.start()  # whatever fell due while no worker ran
    # More processes that grant and revoke: a burst of grants ending at once uses every core, and a slow
    # provider call holds up one grant loop, not all.
    others = [AccessProcess(dict(os.environ), policy=lambda: deps.base.policy.texts)
              for _ in range(deps.base.settings.worker_processes - 1)]  # fmt: skip
    for process in others:
        process.start()
    sweeper = build_sweeper(deps)
    sweeper.start()
    # The audit sinks (file, SIEM webhook, S3 archive) and the stream's retention, from their cursors in Redis.
    pump = build_audit_pump(deps.base.settings, store=deps.base.store, clock=deps.base.clock)
    if pump is not None:
        pump.start()
    # SimpleWorker: jobs run in this process, with the dependencies built once above (a forking
    # worker would rebuild or re-fork them per job, ~5x slower on revoke bursts). Supervised: a Redis
    # outage ends RQ's loop, and it starts again once Redis answers (workers/supervise.py).
    try:
        work_forever([ACCESS_QUEUE], connect=rq_connector(settings), where=redis_location(settings),
                     logging_level=settings.log_level)  # fmt: skip
    finally:
        notify.stop()
        for process in others:
            process.stop()
        sweeper.stop()
        revoker.stop()
        if pump is not None:
            pump.stop()
    return EXIT_OK


def _json(settings: Settings) -> bool | None:
    """JSON logs when asked for, console when asked for, else whatever suits the output (a terminal or not)."""
    return None if settings.log_format is None else settings.log_format == 'json'


if __name__ == '__main__':
    sys.exit(main())
