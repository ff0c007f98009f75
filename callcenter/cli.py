"""The `callcenter` command: serve, replay, demo, calls/tasks/cases list, report daily, config check.

Entry points stay thin: parse arguments, load configuration, call one function, print.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import threading
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from .domain.validation import mask_numbers
from .logsetup import configure as configure_logging
from .settings import ConfigError, Settings, load_settings
from .storage.store import DEFAULT_URL, Store

log = logging.getLogger("callcenter")
FULL_NUMBERS = "show callers' numbers in full (default: masked, 138****0001)"
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2099, 12, 31)     # dates outside are refused


class UsageError(Exception):
    """Bad command-line input: one line naming the option, exit code 2 like argparse's own."""


def _masked(items: list[dict], args) -> list[dict]:
    from reports.text import mask_personal
    return items if getattr(args, "full_numbers", False) else mask_personal(items)


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
    csl.add_argument("--caller", help="caller number (exact)")
    csl.add_argument("--date", help="opened on YYYY-MM-DD in the configured time zone (default: any day)")
    csl.add_argument("--format", choices=["json", "table"], default="table")
    csl.add_argument("--full-numbers", action="store_true", help=FULL_NUMBERS)

    report = sub.add_parser("report", help="reports").add_subparsers(dest="action", required=True)
    rd = report.add_parser("daily", parents=[common], help="daily report per department and queue")
    rd.add_argument("--date", required=True, help="YYYY-MM-DD in the configured time zone")
    rd.add_argument("--format", choices=["json", "table"], default="table")

    q = sub.add_parser("import-queue-log", parents=[common],
                       help="store the finished calls of an Asterisk queue_log file that are not stored yet")
    q.add_argument("file", metavar="FILE", help="a queue_log file (epoch|callid|queue|agent|event|data...)")
    q.add_argument("--pbx", help="PBX id to record the calls under (default: the first configured)")

    cfg = sub.add_parser("config", help="configuration").add_subparsers(dest="action", required=True)
    cfg.add_parser("check", parents=[common], help="validate the configuration and exit")

    from .auth.commands import add_parsers as add_auth_parsers     # users and tokens (callcenter/auth/)
    add_auth_parsers(sub, common)
    return p


def _day(value: str | None, tz: ZoneInfo) -> date:
    if not value:
        return datetime.now(tz).date()
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--date: expected YYYY-MM-DD, got {value[:40]!r}") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise UsageError(f"--date: {day} is outside {FIRST_DAY}..{LAST_DAY}")
    return day


def _at(value: str | None, tz: ZoneInfo) -> datetime:
    if not value:
        return datetime.now(tz)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--at: expected an ISO time, got {value[:40]!r}") from None
    if not FIRST_DAY <= moment.date() <= LAST_DAY:
        raise UsageError(f"--at: {moment.date()} is outside {FIRST_DAY}..{LAST_DAY}")
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


async def _calls_parked(settings: Settings, args) -> str:
    """Poison calls (callcenter/aftercommit.py): which step, how often it failed, the last error."""
    from .aftercommit import parked_calls
    store = Store(args.db)
    try:
        await store.migrate()
        rows = await parked_calls(store)
    finally:
        await store.close()
    if args.format == "json":
        return json.dumps([{**r, "first_failed_at": r["first_failed_at"].isoformat(),
                            "last_failed_at": r["last_failed_at"].isoformat()} for r in rows], ensure_ascii=False, indent=2)
    if not rows:
        return "没有搁置的来电。"
    tz = ZoneInfo(settings.timezone)
    lines = [f"搁置的来电：{len(rows)} 通（处理步骤多次失败；其余来电照常处理）",
             f"{'PBX':<8} {'来电 ID':<24} {'步骤':<9} {'失败次数':>8}  {'最后失败时间':<19}  错误"]
    for r in rows:
        lines.append(f"{r['pbx']:<8} {r['call_id']:<24} {r['step']:<9} {r['attempts']:>8}  "
                     f"{r['last_failed_at'].astimezone(tz):%Y-%m-%d %H:%M:%S}  {r['error']}")
    return "\n".join(lines)


async def _calls_list(settings: Settings, args) -> str:
    from reports.calls import call_to_dict, render_table
    from reports.daily import day_bounds
    tz = ZoneInfo(settings.timezone)
    bounds = day_bounds(_day(args.date, tz), tz)          # bad input refused before the database opens
    store = Store(args.db)
    try:
        await store.migrate()
        records = await store.calls_between(*bounds)
    finally:
        await store.close()
    directory = settings.directory()
    calls = _masked([call_to_dict(r, tz, directory) for r in records], args)
    return json.dumps(calls, ensure_ascii=False, indent=2) if args.format == "json" else render_table(calls)


async def _tasks_list(settings: Settings, args) -> str:
    from reports import tasks as task_report
    from reports.daily import day_bounds
    from .bootstrap import build
    tz = ZoneInfo(settings.timezone)
    since, until = day_bounds(_day(args.date, tz), tz) if args.date else (None, None)
    app = build(settings, args.db)                  # not started: only its store and follow-up are used
    try:
        await app.store.migrate()
        tasks = await app.followup.list(status=args.status, department=args.department, assignee=args.assignee,
                                        since=since, until=until)
        tasks = _masked(tasks, args)
    finally:
        await app.store.close()
    return task_report.render_json(tasks) if args.format == "json" else task_report.render_table(tasks, tz)


async def _cases_list(settings: Settings, args) -> str:
    from reports import cases as case_report
    from reports.daily import day_bounds
    from .bootstrap import build
    tz = ZoneInfo(settings.timezone)
    since, until = day_bounds(_day(args.date, tz), tz) if args.date else (None, None)
    app = build(settings, args.db)                  # not started: only its store and cases are used
    try:
        await app.store.migrate()
        cases = await app.cases.list(status=args.status, department=args.department, owner=args.owner,
                                     caller=args.caller, since=since, until=until)
        cases = _masked(cases, args)
    finally:
        await app.store.close()
    return case_report.render_json(cases) if args.format == "json" else case_report.render_table(cases, tz)


async def _report_daily(settings: Settings, args) -> str:
    from reports import daily
    from .checkpointer import stale_after
    from .storage.checkpoints import coverage_facts
    tz = ZoneInfo(settings.timezone)
    day = _day(args.date, tz)
    store = Store(args.db)
    try:
        await store.migrate()
        bounds = daily.day_bounds(day, tz)
        records = await store.calls_between(*bounds)
        tasks = await store.task_facts(*bounds)
        cases = await store.case_facts(*bounds)
        now = store.clock.now()
        wrapups = await store.pending_wrapups(min(now, bounds[1]) - timedelta(minutes=settings.cases.wrapup_minutes))
        # closed sessions, the ones the service's last checkpoint holds open, and what it observed
        sessions, observed = await coverage_facts(store, *bounds, now, stale_after(settings.instance.checkpoint_seconds))
    finally:
        await store.close()
    from reports import coverage
    posts = coverage.posts(day, settings, sessions, now, observed=observed)
    report = daily.build(day, records, settings, tasks, now, cases, wrapups, posts=posts)
    return json.dumps(report, ensure_ascii=False, indent=2) if args.format == "json" else daily.render_table(report)


async def _serve(settings: Settings, args) -> None:
    from .bootstrap import build
    if not settings.pbxes:
        raise ConfigError(f"{args.config}: pbxes: no PBX configured; `serve` needs at least one")
    from .notify.deadlines import DeadlineWatch, Scheduler
    from .web.app import WebServer
    app = build(settings, args.db, live=True)
    scheduler = Scheduler(DeadlineWatch(app.store, settings, app.notifier, app.clock), app.calendar, settings,
                          app.clock)                        # serve only: replays never send SMS
    scheduler.active = app.leadership                       # only the active instance runs it
    app.leadership.on_change(scheduler.on_leadership)
    app.extras.append(scheduler)
    app.extras.append(WebServer(app))
    for endpoint in settings.pbxes:
        if not endpoint.secret.get_secret_value():
            raise ConfigError(f"{args.config}: pbxes[{endpoint.id}].secret: empty")
        app.service.add_pbx(endpoint)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    log.info("serving %d PBX(es); Ctrl-C to stop", len(settings.pbxes))
    try:
        await stop.wait()
    finally:
        await app.stop()


async def _replay(settings: Settings, args) -> str:
    from .replay import replay
    tz = ZoneInfo(settings.timezone)
    summary = await replay(settings, args.db, args.files, _at(args.at, tz), args.speed, args.pbx)
    return (f"replayed {summary.files} file(s): {summary.events} events, {summary.calls} calls stored, "
            f"{summary.open_calls} still open, {summary.seconds:.2f} s")


async def _demo(settings: Settings, args) -> str:
    from .demo.run import run_demo
    at = _at(args.at, ZoneInfo(settings.timezone)) if args.at else None
    return await run_demo(settings, args.db, args.seconds, args.rate, args.seed, at)


async def _import_queue_log(settings: Settings, args) -> str:
    from .bootstrap import build
    from .queuelog.backfill import import_queue_log
    pbx = args.pbx or (settings.pbxes[0].id if settings.pbxes else "pbx1")
    app = build(settings, args.db)                  # not started: its store, directory and after-commit steps
    try:
        s = await import_queue_log(app, args.file, pbx)
    finally:
        await app.store.close()
    return (f"{args.file}: {s.lines} lines, {s.calls} finished calls, {s.stored} stored as new"
            f" ({s.calls - s.stored} already stored), {s.unfinished} unfinished left, {s.bad_lines} bad lines")


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
            return 0
        runner = {"serve": _serve, "replay": _replay, "demo": _demo,
                  "import-queue-log": _import_queue_log}.get(args.command)
        if args.command == "calls":
            runner = _calls_parked if args.action == "parked" else _calls_list
        elif args.command == "report":
            runner = _report_daily
        elif args.command == "tasks":
            runner = _tasks_list
        elif args.command == "cases":
            runner = _cases_list
        elif args.command in ("users", "tokens"):
            from .auth.commands import run as runner
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
