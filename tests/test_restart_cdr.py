"""Against the real Asterisk in ../shared/asterisk (skipped when it cannot start here): calls that
never reach a queue (an IVR hang-up, an after-hours call) placed while `callcenter serve` is
killed are stored after the restart from Asterisk's CDR (Master.csv), flagged reconciled, with
their follow-up tasks; a call seen live is stored once, as seen."""
from __future__ import annotations

import asyncio
import csv
import os
import signal
from datetime import datetime, timedelta, timezone
from pathlib import Path

from callcenter.ami.client import AmiClient, Endpoint
from callcenter.domain.records import Outcome
from tests.conftest import ROOT
from tests.fakepbx import free_port, serve, stored, until, write_config
from tests.test_restart_asterisk import asterisk  # noqa: F401  the fixture: a private Asterisk


def _local_zone() -> str:
    """The zone Asterisk writes Master.csv's local times in: this host's (cdr.conf usegmtime = no)."""
    link = os.path.realpath("/etc/localtime")
    return link.split("/zoneinfo/", 1)[1] if "/zoneinfo/" in link else "UTC"


async def _call(driver: AmiClient, hotline: str, number: str, patience: float, **variables) -> None:
    await driver.action({"Action": "Originate", "Channel": f"Local/{hotline}@hotline", "Application": "Wait",
                         "Data": str(patience), "CallerID": f'"Caller {number}" <{number}>', "Async": "true",
                         "Variable": [f"__{k}={v}" for k, v in {"QNAME": "q-edu", "QTIMEOUT": 60, "CHOICE": 2,
                                                                  **variables}.items()]})


def _caller_legs(master: Path) -> dict[str, str]:
    """caller number -> uniqueid of its `;2` Local half (the hotline leg) in Master.csv."""
    if not master.exists():
        return {}
    return {row[1]: row[16] for row in csv.reader(master.read_text().splitlines())
            if row[3] == "hotline" and row[5].endswith(";2")}


async def test_ivr_and_after_hours_calls_while_killed_are_stored_from_the_cdr(asterisk, tmp_path, sqlite_url):
    port, queue_log = asterisk
    master = queue_log.parent / "cdr-csv" / "Master.csv"
    driver = AmiClient(Endpoint("drv", "127.0.0.1", port, "callcenter", "ccsecret", reconnect_min=0.1),
                       lambda *_: None)
    driver.start()
    await asyncio.wait_for(driver.connected.wait(), 10)
    config = write_config(ROOT / "config", tmp_path / "config", port, queue_log, free_port(), cdr_csv=str(master),
                          cdr_csv_timezone=_local_zone(), cdr_csv_poll=0.1, cdr_csv_settle=1.0)
    log = tmp_path / "serve.log"
    first = await serve(config, sqlite_url, log)
    second = None
    try:
        assert await until(lambda: _logged_in(log), 20), log.read_text()[-2000:]
        await _call(driver, "62000002", "13800000011", 0.5, IVRWAIT=3)       # seen live: an IVR hang-up
        assert await until(lambda: _legs(master, {"13800000011"}), 10)
        live_id = _caller_legs(master)["13800000011"]

        async def live_stored():
            return live_id in (await stored(sqlite_url))[0]
        assert await until(live_stored, 10), log.read_text()[-3000:]
        await asyncio.sleep(1.5)                                           # its CDR row settles and is skipped
        first.send_signal(signal.SIGKILL)
        await first.wait()
        await _call(driver, "62000002", "13800000012", 0.5, IVRWAIT=5)       # while down: hangs up in the IVR
        await _call(driver, "62000001", "13800000013", 5, AFTERHOURS=1)      # while down: after hours
        assert await until(lambda: _legs(master, {"13800000012", "13800000013"}), 10), master.read_text()
        legs = _caller_legs(master)
        second = await serve(config, sqlite_url, log)

        async def all_stored():
            return {legs["13800000012"], legs["13800000013"]} <= set((await stored(sqlite_url))[0])
        assert await until(all_stored, 15), log.read_text()[-3000:]
        await asyncio.sleep(1.0)                                           # a second pass stores nothing more
        calls, tasks, _ = await stored(sqlite_url)
    finally:
        for proc in (first, second):
            if proc is not None and proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(proc.wait(), 15)
        await driver.stop()
    assert set(calls) == {live_id, legs["13800000012"], legs["13800000013"]}     # each once, nothing else
    seen, ivr, closed = calls[live_id], calls[legs["13800000012"]], calls[legs["13800000013"]]
    assert seen.outcome is Outcome.ABANDONED_IVR and not seen.reconciled
    assert (ivr.outcome, ivr.reconciled, ivr.department, ivr.hotline, ivr.caller_num) == (
        Outcome.ABANDONED_IVR, True, "edu", "62000002", "13800000012")
    assert (closed.outcome, closed.reconciled, closed.after_hours, closed.department, closed.caller_num) == (
        Outcome.AFTER_HOURS, True, True, "market", "13800000013")
    now = datetime.now(timezone.utc)
    for record in (ivr, closed):                                       # the CSV's local time read in its zone
        assert now - timedelta(seconds=60) < record.started_at <= record.ended_at < now
    text = log.read_text()
    assert f"call {ivr.id} (abandoned_ivr) was not seen over AMI; stored from the CDR" in text
    assert f"call {closed.id} (after_hours) was not seen over AMI; stored from the CDR" in text
    callers = {(department, caller) for department, caller, _ in tasks}
    assert {("edu", "13800000011"), ("edu", "13800000012"), ("market", "13800000013")} <= callers


async def _logged_in(log: Path) -> bool:
    return log.exists() and "logged in to" in log.read_text()


async def _legs(master: Path, numbers: set[str]) -> bool:
    return numbers <= set(_caller_legs(master))
