"""The implementations of the `callcenter` subcommands (serve, replay, demo, the calls/tasks/cases
lists, the daily report, import-queue-log) and the parsing of their --date and --at values;
callcenter/cli.py holds the parser and the entry point and dispatches here (users and tokens:
callcenter/auth/commands.py)."""
from __future__ import annotations

import asyncio
import json
import logging
import signal
from datetime import date, datetime
from zoneinfo import ZoneInfo

from .settings import ConfigError, Settings
from .storage.store import Store

log = logging.getLogger("callcenter")
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2099, 12, 31)     # dates outside are refused


class UsageError(Exception):
    """Bad command-line input: one line naming the option, exit code 2 like argparse's own."""


def _masked(items: list[dict], args) -> list[dict]:
    from reports.text import mask_personal
    return items if getattr(args, "full_numbers", False) else mask_personal(items)


def _with_pbx(items: list[dict], key: str, settings: Settings, fallback: str = "") -> list[dict]:
    """For a table with several PBXes configured: `key` (else `fallback`) shown as "value@pbx" (issue 14)."""
    if len(settings.pbxes) <= 1:
        return items
    return [{**i, key: f"{i.get(key) or i.get(fallback) or '—'}@{i.get('pbx') or '?'}"} for i in items]


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


async def cmd_calls_parked(settings: Settings, args) -> str:
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


async def cmd_calls_list(settings: Settings, args) -> str:
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
    return json.dumps(calls, ensure_ascii=False, indent=2) if args.format == "json" else render_table(
        _with_pbx(calls, "hotline", settings))


async def cmd_tasks_list(settings: Settings, args) -> str:
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
    return task_report.render_json(tasks) if args.format == "json" else task_report.render_table(
        _with_pbx(tasks, "department_name", settings, "department"), tz)


async def cmd_cases_list(settings: Settings, args) -> str:
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
    return case_report.render_json(cases) if args.format == "json" else case_report.render_table(
        _with_pbx(cases, "department_name", settings, "department"), tz)


async def cmd_report_daily(settings: Settings, args) -> str:
    """A read: the store is opened read-only (SQLite never takes its write lock) and never
    migrated; a database whose schema is not the expected one is refused (issue 13). The call
    figures are SQL aggregates (callcenter/storage/report_queries.py); reports/assemble.py adds the
    IVR, probe and (for html/xlsx) trend sections."""
    from reports.assemble import TREND_FORMATS, daily_report
    tz = ZoneInfo(settings.timezone)
    day = _day(args.date, tz)
    store = Store(args.db, read_only=True)
    try:
        await _require_schema(store, args.db)
        report = await daily_report(store, settings, day, store.clock.now(), trend=args.format in TREND_FORMATS)
    finally:
        await store.close()
    return _report_output(report, args)


async def cmd_report_period(settings: Settings, args) -> str | None:
    """`report week|month|quarter` (issue 13, reports/period.py): a read like `report daily`."""
    from reports import period
    day = _day(args.date, ZoneInfo(settings.timezone))
    store = Store(args.db, read_only=True)
    try:
        await _require_schema(store, args.db)
        report = await period.period_report(store, settings, args.action, day, store.clock.now())
    finally:
        await store.close()
    from reports.render_period import filename, period_output
    return _report_output(report, args, period_output(report, args.format), filename(report, "xlsx"))


def _report_output(report: dict, args, body: str | bytes | None = None, default_out: str | None = None) -> str | None:
    """The report in --format, printed or written to --out (xlsx: never to a terminal). `body`,
    when given, is the report already rendered (period reports: reports/render_period.py) and
    `default_out` the file an xlsx goes to without --out; else the daily report is rendered here."""
    import sys
    from pathlib import Path
    from reports import daily
    fmt, out = getattr(args, "format", "table"), getattr(args, "out", None)
    if body is not None:
        out = out or (default_out if fmt == "xlsx" else None)
    elif fmt == "xlsx":
        from reports.render_xlsx import render_xlsx
        body: str | bytes = render_xlsx(report)
        out = out or f"daily-report-{report['date']}.xlsx"
    elif fmt in ("html", "csv"):
        from reports import render_csv, render_html
        body = render_html.render_html(report) if fmt == "html" else render_csv.render_csv(report)
    else:
        body = json.dumps(report, ensure_ascii=False, indent=2) if fmt == "json" else daily.render_table(report)
    if not out:
        return body
    if out == "-":
        if isinstance(body, bytes) and sys.stdout.isatty():
            raise UsageError("--out -: refusing to write a binary XLSX to a terminal; give a file name")
        sys.stdout.buffer.write(body if isinstance(body, bytes) else body.encode("utf-8"))
        sys.stdout.flush()
        return None
    path = Path(out)
    try:
        if isinstance(body, bytes):
            path.write_bytes(body)
        else:
            path.write_text(body, encoding="utf-8", newline="")
    except OSError as exc:
        raise UsageError(f"--out: cannot write {out}: {exc.strerror or exc}") from None
    return f"wrote {path} ({path.stat().st_size} bytes, {fmt})"


async def cmd_report_deliver(settings: Settings, args) -> str:
    """(Re)generate the archived reports of --date and deliver what the rules owe and was not
    delivered yet (reports/deliver.py); --dry-run: show it, change nothing."""
    from reports.deliver import deliver_by_hand
    day = _day(args.date, ZoneInfo(settings.timezone))
    store = Store(args.db)
    try:
        await _require_schema(store, args.db)
        return await deliver_by_hand(settings, store, day, args.dry_run)
    finally:
        await store.close()


class SchemaMismatch(ValueError):
    """The database cannot be read by this version without a migration (reports never migrate)."""


async def _require_schema(store: Store, url: str) -> None:
    """A missing SQLite file is not created (read-only): "unable to open database file", one line."""
    current, head = await store.schema_status()
    if current != head:
        found = "has no callcenter schema" if current is None else f"has schema revision {current}"
        raise SchemaMismatch(f"--db {url}: the database {found}, this version reads revision {head}; "
                             "a report never migrates: start `callcenter serve` (or `replay`) once on it "
                             "to upgrade the schema, then run the report again")


async def cmd_serve(settings: Settings, args) -> None:
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


async def cmd_replay(settings: Settings, args) -> str:
    from .replay import replay
    tz = ZoneInfo(settings.timezone)
    summary = await replay(settings, args.db, args.files, _at(args.at, tz), args.speed, args.pbx)
    return (f"replayed {summary.files} file(s): {summary.events} events, {summary.calls} calls stored, "
            f"{summary.open_calls} still open, {summary.seconds:.2f} s")


async def cmd_demo(settings: Settings, args) -> str:
    from .demo.run import run_demo
    at = _at(args.at, ZoneInfo(settings.timezone)) if args.at else None
    return await run_demo(settings, args.db, args.seconds, args.rate, args.seed, at)


async def cmd_import_queue_log(settings: Settings, args) -> str:
    from .bootstrap import build
    from .queuelog.backfill import import_queue_log
    pbx = args.pbx or (settings.pbxes[0].id if settings.pbxes else "pbx1")
    app = build(settings, args.db)                  # not started: its store, directory and after-commit steps
    try:
        s = await import_queue_log(app, args.file, pbx)
    finally:
        await app.store.close()
    return (f"{args.file}: {s.lines} lines, {s.calls} finished calls, {s.stored} stored as new"
            f" ({s.calls - s.stored} already stored), {s.probes} hotline probes left out, {s.unfinished} unfinished left,"
            f" {s.bad_lines} bad lines")


async def cmd_asterisk_config(settings: Settings, args) -> str | None:
    """The dialplan and queues.conf for the IVR (callcenter/asterisk_config.py): printed, or written
    into --out (existing files only with --force; nothing is written unless both can be)."""
    from pathlib import Path
    from .asterisk_config import AsteriskConfigError, generate, options_from, prompt_texts
    if args.prompts:
        return "\n".join(f"{name}\t{text}" for name, text in prompt_texts(settings).items())
    options = options_from(settings, agi_host=args.agi_host, agi_port=args.agi_port, queue_wait=args.queue_wait,
                           direct_ring=args.direct_ring, strategy=args.strategy, ring_timeout=args.ring_timeout,
                           autopause=args.autopause)
    files = generate(settings, args.pbx, options)
    if not args.out:
        return "\n".join(f"; ===== {name} =====\n{text}" for name, text in files.items()).rstrip("\n")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise AsteriskConfigError(f"--out: {out} is not a directory")
    existing = [str(out / name) for name in files if (out / name).exists()]
    if existing and not args.force:
        raise AsteriskConfigError(f"--out: {', '.join(existing)} already exist(s); add --force to overwrite")
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        tmp = out / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out / name)
    return "wrote " + ", ".join(str(out / name) for name in files)


async def cmd_probe(settings: Settings, args) -> str:
    """One hotline probe now (callcenter/probes/command.py); recorded like a scheduled one."""
    from .probes.command import run_probe
    return await run_probe(settings, args.db, args.hotline, args.pbx)
