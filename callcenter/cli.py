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
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from .settings import ConfigError, Settings, load_settings
from .storage.store import DEFAULT_URL, Store

log = logging.getLogger("callcenter")


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

    tasks = sub.add_parser("tasks", help="follow-up tasks").add_subparsers(dest="action", required=True)
    tl = tasks.add_parser("list", parents=[common], help="list follow-up tasks")
    tl.add_argument("--status", choices=["open", "closed"])
    tl.add_argument("--department", help="department id, e.g. edu")
    tl.add_argument("--assignee", help="agent id, or 'pool' for unassigned tasks")
    tl.add_argument("--date", help="created on YYYY-MM-DD in the configured time zone (default: any day)")
    tl.add_argument("--format", choices=["json", "table"], default="table")

    cases = sub.add_parser("cases", help="first-ask cases").add_subparsers(dest="action", required=True)
    csl = cases.add_parser("list", parents=[common], help="list first-ask cases")
    csl.add_argument("--status", choices=["open", "resolved", "escalated", "out_of_scope"])
    csl.add_argument("--department", help="department id, e.g. market")
    csl.add_argument("--owner", help="agent id of the case's owner")
    csl.add_argument("--caller", help="caller number (exact)")
    csl.add_argument("--date", help="opened on YYYY-MM-DD in the configured time zone (default: any day)")
    csl.add_argument("--format", choices=["json", "table"], default="table")

    report = sub.add_parser("report", help="reports").add_subparsers(dest="action", required=True)
    rd = report.add_parser("daily", parents=[common], help="daily report per department and queue")
    rd.add_argument("--date", required=True, help="YYYY-MM-DD in the configured time zone")
    rd.add_argument("--format", choices=["json", "table"], default="table")

    cfg = sub.add_parser("config", help="configuration").add_subparsers(dest="action", required=True)
    cfg.add_parser("check", parents=[common], help="validate the configuration and exit")
    return p


def _day(value: str | None, tz: ZoneInfo) -> date:
    if not value:
        return datetime.now(tz).date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise SystemExit(f"callcenter: --date: expected YYYY-MM-DD, got {value!r}") from None


def _at(value: str | None, tz: ZoneInfo) -> datetime:
    if not value:
        return datetime.now(tz)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise SystemExit(f"callcenter: --at: expected an ISO time, got {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


async def _calls_list(settings: Settings, args) -> str:
    from reports.calls import call_to_dict, render_table
    from reports.daily import day_bounds
    tz = ZoneInfo(settings.timezone)
    store = Store(args.db)
    try:
        await store.migrate()
        records = await store.calls_between(*day_bounds(_day(args.date, tz), tz))
    finally:
        await store.close()
    directory = settings.directory()
    calls = [call_to_dict(r, tz, directory) for r in records]
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
    finally:
        await app.store.close()
    return case_report.render_json(cases) if args.format == "json" else case_report.render_table(cases, tz)


async def _report_daily(settings: Settings, args) -> str:
    from reports import daily
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
        sessions = await store.sessions_between(*bounds)
    finally:
        await store.close()
    from reports import coverage
    posts = coverage.posts(day, settings, sessions, now)       # closed sessions only: this process has no live tracker
    report = daily.build(day, records, settings, tasks, now, cases, wrapups, posts=posts)
    return json.dumps(report, ensure_ascii=False, indent=2) if args.format == "json" else daily.render_table(report)


async def _serve(settings: Settings, args) -> None:
    from .bootstrap import build
    if not settings.pbxes:
        raise ConfigError(f"{args.config}: pbxes: no PBX configured; `serve` needs at least one")
    from .notify.deadlines import DeadlineWatch, Scheduler
    from .web.app import WebServer
    app = build(settings, args.db, live=True)
    app.extras.append(Scheduler(DeadlineWatch(app.store, settings, app.notifier, app.clock), app.calendar, settings,
                                app.clock))                 # serve only: replays never send SMS
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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        settings = load_settings(args.config)
        if args.command == "config":
            print(f"{args.config}: ok ({len(settings.departments)} departments, {len(settings.agents)} agents, "
                  f"{len(settings.posts)} posts, {len(settings.pbxes)} PBXes)")
            return 0
        runner = {"serve": _serve, "replay": _replay, "demo": _demo}.get(args.command)
        if args.command == "calls":
            runner = _calls_list
        elif args.command == "report":
            runner = _report_daily
        elif args.command == "tasks":
            runner = _tasks_list
        elif args.command == "cases":
            runner = _cases_list
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
