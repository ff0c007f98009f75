"""The `callcenter` command: serve, replay, demo, calls/tasks/cases list, report daily, config check.

Entry points stay thin: parse arguments, load configuration, call one function, print. This module
holds the parser and the entry point (`main`: exit codes, one-line errors); the commands themselves
are in callcenter/cli_commands.py.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
import threading

# Start-up (issue 13): the imports below build many long-lived objects (SQLAlchemy, pydantic
# models, dataclasses) and free few; the garbage collector's passes over them are wasted work
# (docs/performance.md). Collection is off while they load; then they are frozen (out of every
# later pass, as `App.start` freezes the service's) and collection is back on.
_GC_WAS_ON = gc.isenabled()
gc.disable()
from .cli_commands import cmd_asterisk_config  # issue 12  # noqa: E402
from .cli_commands import cmd_probe  # issue 13: hotline probes
from .cli_commands import (UsageError, cmd_calls_list, cmd_calls_parked, cmd_cases_list, cmd_demo,
                           cmd_import_queue_log, cmd_replay, cmd_report_daily, cmd_serve, cmd_tasks_list)
from .cli_commands import cmd_report_deliver  # issue 13
from .cli_commands import cmd_report_period  # issue 13: week/month/quarter roll-ups
from .domain.numbers import canonical
from .domain.validation import mask_numbers
from .logsetup import configure as configure_logging
from .settings import ConfigError, load_settings
from .storage.store import DEFAULT_URL  # noqa: E402

gc.freeze()
if _GC_WAS_ON:
    gc.enable()

log = logging.getLogger("callcenter")
FULL_NUMBERS = "show callers' numbers in full (default: masked, 138****0001)"


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=DEFAULT_URL, help=f"database URL (default {DEFAULT_URL})")
    common.add_argument("--config", default="config", help="configuration directory (default config/)")
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    p = argparse.ArgumentParser(prog="callcenter", description="Hotline contact-center service")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("serve", parents=[common], help="run the service against the configured PBXes")

    r = sub.add_parser("replay", parents=[common], help="replay recorded AMI traces over TCP")
    r.add_argument("files", nargs="+", metavar="FILE.jsonl")
    r.add_argument("--at", help="ISO time of the first message (default: now)")
    r.add_argument("--speed", type=float, help="playback speed factor (default: as fast as possible)")
    r.add_argument("--pbx", help="PBX id to record the calls under (default: the first configured)")

    d = sub.add_parser("demo", parents=[common], help="run the service against a simulated PBX")
    d.add_argument("--seconds", type=float, help="stop after N seconds and print a summary")
    d.add_argument("--rate", type=float, default=1.0, help="new calls per second (default 1)")
    d.add_argument("--seed", type=int, help="random seed for a repeatable simulation")
    d.add_argument("--at", help="ISO time the demo clock starts at (default: now, or just before the next opening)")

    calls = sub.add_parser("calls", help="call records").add_subparsers(dest="action", required=True)
    cl = calls.add_parser("list", parents=[common], help="list the calls of one day")
    cl.add_argument("--date", help="YYYY-MM-DD in the configured time zone (default: today)")
    cl.add_argument("--format", choices=["json", "table"], default="table")
    cl.add_argument("--full-numbers", action="store_true", help=FULL_NUMBERS)
    cpk = calls.add_parser("parked", parents=[common],
                           help="calls whose case or follow-up step kept failing and was parked (poison calls)")
    cpk.add_argument("--format", choices=["json", "table"], default="table")

    tasks = sub.add_parser("tasks", help="follow-up tasks").add_subparsers(dest="action", required=True)
    tl = tasks.add_parser("list", parents=[common], help="list follow-up tasks")
    tl.add_argument("--status", choices=["open", "closed"])
    tl.add_argument("--department", help="department id, e.g. edu")
    tl.add_argument("--assignee", help="agent id, or 'pool' for unassigned tasks")
    tl.add_argument("--date", help="created on YYYY-MM-DD in the configured time zone (default: any day)")
    tl.add_argument("--format", choices=["json", "table"], default="table")
    tl.add_argument("--full-numbers", action="store_true", help=FULL_NUMBERS)

    cases = sub.add_parser("cases", help="first-ask cases").add_subparsers(dest="action", required=True)
    csl = cases.add_parser("list", parents=[common], help="list first-ask cases")
    csl.add_argument("--status", choices=["open", "resolved", "escalated", "out_of_scope"])
    csl.add_argument("--department", help="department id, e.g. market")
    csl.add_argument("--owner", help="agent id of the case's owner")
    csl.add_argument("--caller", type=canonical, help="caller number (exact; +86/0086 forms are the same caller)")
    csl.add_argument("--date", help="opened on YYYY-MM-DD in the configured time zone (default: any day)")
    csl.add_argument("--format", choices=["json", "table"], default="table")
    csl.add_argument("--full-numbers", action="store_true", help=FULL_NUMBERS)

    report = sub.add_parser("report", help="reports").add_subparsers(dest="action", required=True)
    rd = report.add_parser("daily", parents=[common], help="daily report per department and queue")
    rd.add_argument("--date", required=True, help="YYYY-MM-DD in the configured time zone")
    rd.add_argument("--format", choices=["table", "json", "html", "xlsx", "csv"], default="table",
                    help="table (terminal), json, html (A4 printable, charts), xlsx or csv (default table)")
    rd.add_argument("--out", metavar="FILE", help="write the report into FILE (xlsx default: "
                    "daily-report-DATE.xlsx; '-' writes to stdout when it is not a terminal)")
    rdl = report.add_parser("deliver", parents=[common],   # issue 13: reports/deliver.py
                            help="(re)generate a day's archived reports and deliver what is not delivered yet")
    rdl.add_argument("--date", required=True, help="YYYY-MM-DD in the configured time zone")
    rdl.add_argument("--dry-run", action="store_true", help="show what would be archived and sent; change nothing")
    for kind, zh in (("week", "weekly (Monday-Sunday)"), ("month", "monthly"), ("quarter", "quarterly")):  # issue 13
        rp = report.add_parser(kind, parents=[common], help=f"{zh} roll-up per department with a ranking")
        rp.add_argument("--date", required=True, help="YYYY-MM-DD: any day of the period, in the configured time zone")
        rp.add_argument("--format", choices=["table", "json", "html", "xlsx", "csv"], default="table",
                        help="table (terminal), json, html (A4 printable, chart), xlsx or csv (default table)")
        rp.add_argument("--out", metavar="FILE", help=f"write the report into FILE (xlsx default: {kind}-report-"
                        "START.xlsx; '-' writes to stdout when it is not a terminal)")

    q = sub.add_parser("import-queue-log", parents=[common],
                       help="store the finished calls of an Asterisk queue_log file that are not stored yet")
    q.add_argument("file", metavar="FILE", help="a queue_log file (epoch|callid|queue|agent|event|data...)")
    q.add_argument("--pbx", help="PBX id to record the calls under (default: the first configured)")

    ac = sub.add_parser("asterisk-config", parents=[common],
                        help="write the Asterisk dialplan and queues.conf for the IVR (issue 12)")
    ac.add_argument("--out", metavar="DIR", help="write extensions_callcenter.conf and queues_callcenter.conf "
                    "into DIR (default: print both)")
    ac.add_argument("--force", action="store_true", help="overwrite files that exist in --out")
    ac.add_argument("--prompts", action="store_true",
                    help="print the IVR's sound files and their texts (FILE<Tab>TEXT) for the TTS step instead")
    ac.add_argument("--pbx", help="PBX id (default: the only one configured)")
    ac.add_argument("--agi-host", help="where Asterisk reaches the FastAGI server (default: ivr.fastagi.host)")
    ac.add_argument("--agi-port", type=int, help="its port (default: ivr.fastagi.port)")
    ac.add_argument("--queue-wait", type=int, help="seconds a caller waits in a queue (default 600)")
    ac.add_argument("--direct-ring", type=int, help="seconds the case owner's phone rings (default 20)")
    ac.add_argument("--strategy", help="queues.conf strategy (default linear)")
    ac.add_argument("--ring-timeout", type=int, help="seconds one queue member rings (default 15)")
    ac.add_argument("--autopause", action="append", metavar="QUEUE",
                    help="autopause = yes for this queue (repeatable)")

    pr = sub.add_parser("probe", parents=[common], help="place a hotline probe now and print the result (issue 13)")
    pr.add_argument("--hotline", help="the hotline number to probe (default: every published one)")
    pr.add_argument("--pbx", help="PBX id (default: every PBX the hotline is dialled on)")

    cfg = sub.add_parser("config", help="configuration").add_subparsers(dest="action", required=True)
    cfg.add_parser("check", parents=[common], help="validate the configuration and exit")

    from .auth.commands import add_parsers as add_auth_parsers     # users and tokens (callcenter/auth/)
    add_auth_parsers(sub, common)
    return p


def main(argv: list[str] | None = None) -> int:
    """Never a traceback for the user: bad input is one line naming the option (exit 2); anything
    unexpected is one line `callcenter: error: ...` (exit 1), its traceback logged with -v only."""
    args = _parser().parse_args(argv)
    configure_logging(args.verbose)
    threading.excepthook = _thread_failed
    try:
        return _main(args)
    except UsageError as exc:
        print(f"callcenter: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        log.debug("unexpected error", exc_info=True)
        print(f"callcenter: error: {_describe_error(exc, args)}", file=sys.stderr)
        return 1


def _thread_failed(hook) -> None:
    """A library's worker thread failing as the process ends (aiosqlite's, when the event loop
    closed before its connection attempt returned): logged with -v, never a traceback on stderr."""
    if hook.exc_type is not SystemExit:
        log.debug("thread %s failed", getattr(hook.thread, "name", "?"),
                  exc_info=(hook.exc_type, hook.exc_value, hook.exc_traceback))


def _describe_error(exc: BaseException, args) -> str:
    """One line, numbers masked, bounded; database failures name the (password-less) --db URL."""
    from sqlalchemy.exc import SQLAlchemyError
    text = (str(exc).strip().splitlines() or [""])[0]
    text = mask_numbers(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)[:300]
    from_db = type(exc).__module__.split(".")[0] in ("asyncpg", "sqlite3", "aiosqlite")
    if (from_db or isinstance(exc, (SQLAlchemyError, OSError))) and getattr(args, "db", None):
        from sqlalchemy.engine import make_url
        try:
            where = make_url(args.db).render_as_string(hide_password=True)
        except Exception:
            where = "the --db URL"
        text = f"database {where}: {text}"
    return text


def _main(args) -> int:
    try:
        settings = load_settings(args.config)
        if args.command == "config":
            print(f"{args.config}: ok ({len(settings.departments)} departments, {len(settings.agents)} agents, "
                  f"{len(settings.posts)} posts, {len(settings.pbxes)} PBXes)")
            from .workdays import config_check_warning       # the 2027 calendar: here and at serve's start
            if (calendar_note := config_check_warning(settings)):
                print(calendar_note, file=sys.stderr)
            return 0
        runner = {"serve": cmd_serve, "replay": cmd_replay, "demo": cmd_demo,
                  "import-queue-log": cmd_import_queue_log,
                  "asterisk-config": cmd_asterisk_config, "probe": cmd_probe}.get(args.command)
        if args.command == "calls":
            runner = cmd_calls_parked if args.action == "parked" else cmd_calls_list
        elif args.command == "report":
            runner = cmd_report_deliver if args.action == "deliver" else cmd_report_daily
            if args.action in ("week", "month", "quarter"):
                runner = cmd_report_period
        elif args.command == "tasks":
            runner = cmd_tasks_list
        elif args.command == "cases":
            runner = cmd_cases_list
        elif args.command in ("users", "tokens"):
            from .auth.commands import run as runner
        from .workdays import calendar_warning_quiet
        with calendar_warning_quiet(args.command != "serve"):   # the calendar warning: serve's start-up only
            out = asyncio.run(runner(settings, args))
    except ConfigError as exc:
        print(f"callcenter: configuration error:\n{exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as exc:
        print(f"callcenter: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    if out:
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
