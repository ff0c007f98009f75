"""Hotline probes against the real Asterisk of ../shared/asterisk (issue 13; skipped only when it
cannot start here). The PBX runs the lab's dialplan plus the probe context `callcenter
asterisk-config` writes (one extension per published hotline, Goto the hotline context), and
test contexts that never answer, are busy or congested. Checked: a scheduled probe of every hotline
is answered and recorded with its answer time; its call (it waits in a queue and hangs up, an
abandon) is not in the calls table, makes no follow-up task and is not in the report's figures,
while a citizen's call beside it is; a number the probe context does not have is recorded as
unreachable, a hotline that never answers as no_answer, busy and congestion as such; `callcenter
probe` places one from the command line; queue_log and the CDR, read beside the stream, do not
bring the probes' calls back; a link lost mid-probe and a PBX that is down are recorded as
link_down and nothing crashes. With the dialplan `callcenter asterisk-config` writes (probe
context included) and the service's FastAGI IVR, a probe is answered by the generated hotline and
its IVR session is not stored (no IVR hang-up)."""
from __future__ import annotations

import asyncio
import json
import shutil
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from callcenter.ami.client import AmiClient, Endpoint
from callcenter.bootstrap import build
from callcenter.cli import main
from callcenter.clock import FixedClock
from callcenter.probes.dialplan import probe_context
from callcenter.probes.plan import Target, targets
from callcenter.settings import load_settings
from callcenter.storage import tables as t
from callcenter.storage.report_queries import daily_report_inputs
from reports import daily
from reports.probes import probes_section
from tests.asterisk import BUNDLE, require_bundle, start_asterisk, stop_asterisk
from tests.conftest import ROOT, SHANGHAI
from tests.test_multi_pbx import until

MONDAY_0931 = datetime(2026, 11, 23, 9, 31, tzinfo=SHANGHAI)
PROBE_ID = "95000"
CITIZEN = "13800000000"
TEST_CONTEXTS = """
[globals]
QNAME=q-market
QTIMEOUT=20

[probe-silent]
exten => _X.,1,Wait(60)

[probe-busy]
exten => _X.,1,Busy(5)

[probe-congested]
exten => _X.,1,Congestion(5)
"""


def _config(tmp_path: Path, port: int, directory: Path | None = None) -> Path:
    out = tmp_path / "config"
    shutil.copytree(ROOT / "config", out)
    files = "" if directory is None else (      # the PBX's own records: queue_log and the CDR, read too
        f"    queue_log: {directory / 'log' / 'queue_log'}\n    queue_log_poll: 0.2\n    queue_log_settle: 1\n"
        f"    cdr_csv: {directory / 'log' / 'cdr-csv' / 'Master.csv'}\n    cdr_csv_poll: 0.2\n    cdr_csv_settle: 1\n")
    text = (out / "callcenter.yaml").read_text(encoding="utf-8").replace(
        "    port: 5038\n", f"    port: {port}\n{files}", 1)
    (out / "callcenter.yaml").write_text(text, encoding="utf-8")
    (out / "probes.yaml").write_text(
        f'probes:\n  enabled: true\n  caller_id: "{PROBE_ID}"\n  times: ["09:30"]\n  answer_timeout: 3\n'
        '  hold_seconds: 1.5\n', encoding="utf-8")
    return out


@pytest.fixture
def pbx(tmp_path):
    """(AMI port, configuration directory, instance directory) of a real Asterisk with the probe context."""
    require_bundle()
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    settings = load_settings(_config(tmp_path / "pre", 5038))
    numbers = [str(h) for d in settings.departments for h in d.hotlines]
    lab = (BUNDLE / "conf" / "extensions.conf").read_text(encoding="utf-8")
    (overlay / "extensions.conf").write_text(lab + "\n" + probe_context(settings.probes, "hotline", numbers)
                                             + TEST_CONTEXTS, encoding="utf-8")
    directory = tmp_path / "ast"
    port, _ = start_asterisk(directory, conf=overlay)
    try:
        yield port, _config(tmp_path, port, directory), directory
    finally:
        stop_asterisk(directory)


async def _app(config: Path, db_url: str, at: datetime = MONDAY_0931):
    settings = load_settings(config)
    settings = settings.model_copy(update={"posts": []})      # no A/B coverage actions on the lab PBX
    app = build(settings, db_url, FixedClock(at), live=True, queue_log=True)
    for endpoint in settings.pbxes:
        app.service.add_pbx(Endpoint(endpoint.id, "127.0.0.1", endpoint.port, "callcenter", "ccsecret",
                                     connect_timeout=2, action_timeout=3, ping_interval=30, reconnect_min=0.2,
                                     reconnect_max=0.5))
    await app.start()
    await asyncio.wait_for(app.service.clients["pbx1"].connected.wait(), 10)
    return app


async def _rows(store, table, *where):
    async with store.engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(select(table).where(*where))).mappings()]


async def citizen_call(driver) -> None:
    """A citizen's call to 62000001 (市场监管): it waits 2 s in q-market and hangs up (an abandon)."""
    await driver.action({"Action": "Originate", "Channel": "Local/62000001@hotline", "Application": "Wait",
                         "Data": "2", "CallerID": f'"Caller" <{CITIZEN}>', "Async": "true",
                         "Variable": ["__QNAME=q-market", "__QTIMEOUT=20", "__CHOICE=1", "__IVRWAIT=0"]})


async def test_probes_are_answered_recorded_and_left_out_of_every_figure(pbx, db_url):
    port, config, _ = pbx
    app = await _app(config, db_url)
    driver = AmiClient(Endpoint("driver", "127.0.0.1", port, "callcenter", "ccsecret"), lambda *_: None)
    driver.start()
    try:
        await asyncio.wait_for(driver.connected.wait(), 10)
        # a citizen's call beside the probes: it waits 2 s in q-market and hangs up (an abandon)
        await citizen_call(driver)
        # the schedule's first tick at start, 09:31 on a workday: the 09:30 slot of every hotline
        async def judged():
            rows = await _rows(app.store, t.probes, t.probes.c.result != "pending")
            return rows if len(rows) == len(targets(app.settings)) else None
        rows = await until(judged, 20)
        assert rows and await app.probe_scheduler.tick() == []      # placed once
        assert sorted(r["hotline"] for r in rows) == sorted(x.hotline for x in targets(app.settings))
        for r in rows:
            assert r["result"] == "answered", r
            assert 0 <= r["answer_seconds"] < 3 and r["uniqueid"] and r["slot"] == "2026-11-23T09:30"
        # every probe call waited in the queue and hung up: an abandon the service must not keep
        citizen = await until(lambda: _rows(app.store, t.calls, t.calls.c.caller_num == CITIZEN), 15)
        assert len(citizen) == 1
        await until(lambda: _rows(app.store, t.tasks, t.tasks.c.caller_num == CITIZEN), 10)
        await asyncio.sleep(2.5)                                    # the probes' calls ended by now
        await app.service.settled(10)
        assert app.probe_recogniser.dropped >= len(rows)                # (queue_log, CDR: again)
        assert await _rows(app.store, t.calls, t.calls.c.caller_num == PROBE_ID) == []
        assert len(await _rows(app.store, t.calls)) == 1
        assert await _rows(app.store, t.tasks, t.tasks.c.caller_num == PROBE_ID) == []
        assert await _rows(app.store, t.cases, t.cases.c.caller_num == PROBE_ID) == []
        day = citizen[0]["started_at"].astimezone(SHANGHAI).date()
        inputs = await daily_report_inputs(app.store, app.settings, day, datetime.now(SHANGHAI))
        report = daily.build(day, [], app.settings, **inputs)
        totals = report["totals"]                                   # the PBX's clock: in or after hours
        assert totals["offered"] + totals["after_hours"] + totals["ivr_abandoned"] + totals["unknown"] == 1
        assert totals["tasks_created"] == 1 and totals["abandoned"] + totals["after_hours"] == 1
        section = await probes_section(app.store, app.settings, MONDAY_0931.date(), MONDAY_0931.replace(hour=23))
        assert (section["placed"], section["answered"], section["answer_rate"]) == (len(rows), len(rows), 1.0)
        assert section["average_answer_seconds"] is not None

        # not answered, not there, busy, congested: recorded as failed with the reason
        prober = app.probes
        assert (await prober.probe(Target("pbx1", "62009999", None)))["result"] == "unreachable"
        for context, result in (("probe-silent", "no_answer"), ("probe-busy", "busy"), ("probe-congested", "congestion")):
            prober.cfg = app.settings.probes.model_copy(update={"context": context})
            row = await prober.probe(Target("pbx1", "62000001", "market"))
            assert (row["result"], row["answer_seconds"], row["trigger"]) == (result, None, "manual"), row

        # the command line places one and prints it (its own AMI connection, the same table)
        out = await asyncio.to_thread(_cli, ["probe", "--config", str(config), "--db", db_url,
                                             "--hotline", "62000001"])
        assert out[0] == 0 and "62000001（区市场监管局，pbx1）：接通，用时" in out[1], out
        manual = await _rows(app.store, t.probes, t.probes.c.trigger == "manual")
        assert [r["result"] for r in manual] == ["unreachable", "no_answer", "busy", "congestion", "answered"]
        await asyncio.sleep(2)
        await app.service.settled(10)
        assert len(await _rows(app.store, t.calls)) == 1            # still only the citizen's call
        # queue_log and the CDR hold the probes' calls too (the service saw them): never stored from there
        readers = [x for x in app.extras if hasattr(x, "submitted") and hasattr(x, "pass_once")]
        assert len(readers) == 2
        for _ in range(2):
            await asyncio.sleep(1.5)                                # past their settle time
            for reader in readers:
                await reader.pass_once()
        await app.service.settled(10)
        assert len(await _rows(app.store, t.calls)) == 1
        assert all(reader.submitted == {} for reader in readers), [r.submitted for r in readers]
        json.dumps(section)
    finally:
        await driver.stop()
        await app.stop()


def _cli(argv):
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(argv)
    return code, buf.getvalue()


async def test_link_lost_mid_probe_and_pbx_down_are_recorded(pbx, sqlite_url, monkeypatch):
    _, config, directory = pbx
    monkeypatch.setattr("callcenter.probes.prober.LINK_WAIT", 0.5)    # how long a probe waits for a link
    app = await _app(config, sqlite_url, at=MONDAY_0931.replace(day=22))      # a Sunday: no scheduled probe
    client = app.service.clients["pbx1"]
    try:
        app.probes.cfg = app.settings.probes.model_copy(update={"context": "probe-silent", "answer_timeout": 20})
        probe = asyncio.ensure_future(app.probes.probe(Target("pbx1", "62000001", "market")))
        await until(lambda: app.probes.pending, 5)
        await asyncio.sleep(0.5)
        client.protocol.transport.abort()                           # the TCP link drops mid-probe
        row = await asyncio.wait_for(probe, 30)
        assert row["result"] == "link_down" and row["answer_seconds"] is None, row
        await asyncio.wait_for(client.connected.wait(), 10)         # back: probes work again
        app.probes.cfg = app.settings.probes
        assert (await app.probes.probe(Target("pbx1", "62000001", "market")))["result"] == "answered"
        await asyncio.to_thread(stop_asterisk, directory)           # the PBX goes away
        await until(lambda: not client.connected.is_set(), 10)
        row = await app.probes.probe(Target("pbx1", "62000002", "edu"))
        assert row["result"] == "link_down" and "not connected" in row["reason"]
        app.clock.at = MONDAY_0931
        rows = await app.probe_scheduler.tick()                     # every hotline recorded, nothing raised
        assert len(rows) == len(targets(app.settings)) and {r["result"] for r in rows} == {"link_down"}
    finally:
        await app.stop()


async def test_a_probe_through_the_generated_dialplan_and_the_fastagi_ivr(tmp_path, sqlite_url):
    """`asterisk-config` with probes enabled: its probe context loads on the real Asterisk, a probe
    through it is answered by the generated hotline (which asks the FastAGI IVR), hangs up in the
    menu, and neither its IVR session (no IVR hang-up) nor its call is stored."""
    import re
    from callcenter.asterisk_config import generate, options_from
    from callcenter.settings_ivr import all_prompts
    from ivr.server import IvrServer
    from tests.fakepbx import free_port
    require_bundle()
    agi_port = free_port()
    settings = load_settings(_config(tmp_path / "pre", 5038))
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    for name, text in generate(settings, options=options_from(settings, agi_port=agi_port, queue_wait=5)).items():
        (overlay / name).write_text(text, encoding="utf-8")
    lab = (BUNDLE / "conf" / "extensions.conf").read_text(encoding="utf-8")
    kept = [part for part in re.split(r"(?m)^(?=\[)", lab) if not part.startswith("[hotline]")]
    (overlay / "extensions.conf").write_text("".join(kept) + "\n#include extensions_callcenter.conf\n")
    (overlay / "queues.conf").write_text("#include queues_callcenter.conf\n")
    directory = tmp_path / "ast"
    port, _ = start_asterisk(directory, agi_port, overlay)
    app = server = None
    try:
        for name in all_prompts(settings):
            path = directory / "lib" / "sounds" / "en" / f"{name}.sln"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"\x00\x00" * 1600)
        app = await _app(_config(tmp_path, port), sqlite_url, at=MONDAY_0931.replace(hour=10))
        server = IvrServer(app, port=agi_port)
        await server.start()
        shown = await app.service.clients["pbx1"].action({"Action": "Command", "Command": "dialplan show callcenter-probe"})
        assert "'62000001' =>" in str(shown) and "Goto(hotline,${EXTEN},1)" in str(shown), shown
        row = await app.probes.probe(Target("pbx1", "62000001", "market"))
        assert row["result"] == "answered" and row["answer_seconds"] < 3, row
        assert await until(lambda: [s for s in server.ivr.finished if s.get("caller") == PROBE_ID], 15), \
            list(server.ivr.finished)                               # the IVR ran for the probe ...
        await asyncio.sleep(1.5)
        await app.service.settled(10)
        assert await _rows(app.store, t.ivr_sessions) == []        # ... and stored nothing of it
        assert await _rows(app.store, t.calls) == []
        assert await _rows(app.store, t.tasks) == []
    finally:
        if server is not None:
            await server.stop()
        if app is not None:
            await app.stop()
        stop_asterisk(directory)
