"""Against the real Asterisk in ../shared/asterisk (skipped when it cannot start here):
`callcenter serve` is killed (SIGKILL) with calls in progress, more calls are placed while it is
down, and after the restart every call Asterisk logged in its own queue_log is stored, with
queue_log's outcome and answering member. Also checks the field names the resync reads
(QueueStatus QueueEntry Wait, CoreShowChannel Duration) on the real thing."""
from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from callcenter.ami.client import AmiClient, Endpoint
from callcenter.domain.records import StintEnd
from tests.asterisk import start_asterisk, stop_asterisk
from tests.conftest import ROOT
from tests.fakepbx import free_port, serve, stored, until, write_config

@pytest.fixture
def asterisk(tmp_path):
    pbx_dir = tmp_path / "pbx"
    started = start_asterisk(pbx_dir)
    try:
        yield started
    finally:
        stop_asterisk(pbx_dir)


async def call(driver: AmiClient, hotline: str, queue: str, patience: int, number: str) -> None:
    await driver.action({"Action": "Originate", "Channel": f"Local/{hotline}@hotline", "Application": "Wait",
                         "Data": str(patience), "CallerID": f'"Caller {number}" <{number}>', "Async": "true",
                         "Variable": [f"__QNAME={queue}", "__QTIMEOUT=60", "__CHOICE=1", "__IVRWAIT=0"]})


def queue_log_calls(path: Path) -> dict[str, tuple[str, str]]:
    """call id -> (outcome, answering member) from Asterisk's own queue_log."""
    out: dict[str, tuple[str, str]] = {}
    for line in path.read_text().splitlines():
        f = line.split("|")
        if len(f) < 5 or f[1] in ("NONE", "MANAGER"):
            continue
        if f[4] == "ENTERQUEUE":
            out[f[1]] = ("unknown", "")
        elif f[4] == "CONNECT":
            out[f[1]] = ("answered", f[3])
        elif f[4] in ("ABANDON", "EXITWITHTIMEOUT"):
            out[f[1]] = ({"ABANDON": "abandoned"}.get(f[4], "timed_out"), "")
    return out


async def test_real_asterisk_calls_during_a_kill_are_stored_after_restart(asterisk, tmp_path, sqlite_url):
    port, queue_log = asterisk
    driver = AmiClient(Endpoint("drv", "127.0.0.1", port, "callcenter", "ccsecret", reconnect_min=0.1),
                       lambda *_: None)
    driver.start()
    await asyncio.wait_for(driver.connected.wait(), 10)
    for agent, queue, ring, talk, mode in (("1001", "q-market", 1, 5, ""), ("1004", "q-market", 1, 2, ""),
                                           ("1002", "q-edu", 1, 1, "noanswer")):
        for key, value in (("ring", ring), ("talk", talk), ("mode", mode)):
            if value == "":
                continue
            await driver.action({"Action": "DBPut", "Family": "agent", "Key": f"{agent}/{key}", "Val": str(value)})
        await driver.action({"Action": "QueueAdd", "Queue": queue, "Interface": f"Local/{agent}@agents/n",
                             "MemberName": f"Agent {agent}", "Penalty": "0", "StateInterface": f"Custom:{agent}"})
    config = write_config(ROOT / "config", tmp_path / "config", port, queue_log, free_port(),
                          queue_log_settle=1.0)
    log = tmp_path / "serve.log"
    first = await serve(config, sqlite_url, log)
    second = None
    try:
        assert await until(lambda: _logged_in(log, 1), 20), log.read_text()[-2000:]
        await call(driver, "62000001", "q-market", 30, "13800000001")      # answered, talking at the kill
        await call(driver, "62000002", "q-edu", 6, "13800000002")          # waiting at the kill, abandons
        await asyncio.sleep(2.5)
        # the resync reads these fields; check them on the real PBX
        entries = [m for m in await driver.action({"Action": "QueueStatus"}) if m.get("Event") == "QueueEntry"]
        assert entries and all({"Queue", "Uniqueid", "Wait", "Position", "CallerIDNum"} <= set(m) for m in entries)
        channels = [m for m in await driver.action({"Action": "CoreShowChannels"}) if m.get("Event") == "CoreShowChannel"]
        assert channels and all("Duration" in m for m in channels)
        first.send_signal(signal.SIGKILL)
        await first.wait()
        await call(driver, "62000001", "q-market", 30, "13800000003")      # placed while it is down
        await call(driver, "62000002", "q-edu", 2, "13800000004")
        await until(lambda: _all_over(queue_log, 4), 20)
        second = await serve(config, sqlite_url, log)
        truth = queue_log_calls(queue_log)
        assert len(truth) == 4 and all(outcome != "unknown" for outcome, _ in truth.values()), truth

        async def all_stored():
            return set(truth) <= set((await stored(sqlite_url))[0])
        assert await until(all_stored, 20), log.read_text()[-3000:]
    finally:
        for proc in (first, second):
            if proc is not None and proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(proc.wait(), 15)
        await driver.stop()
    calls = (await stored(sqlite_url))[0]
    for call_id, (outcome, member) in truth.items():
        record = calls[call_id]
        assert record.reconciled and record.outcome.value == outcome, (call_id, record)
        answered = [s for s in record.stints if s.end is StintEnd.ANSWERED]
        assert [s.member_name for s in answered] == ([member] if member else [])
        assert all(s.wait_seconds is not None for s in record.stints)


async def _logged_in(log: Path, times: int) -> bool:
    return log.exists() and log.read_text().count("logged in to") >= times


async def _all_over(queue_log: Path, calls: int) -> bool:
    done = [line for line in queue_log.read_text().splitlines()
            if line.split("|")[4:5] and line.split("|")[4] in ("ABANDON", "EXITWITHTIMEOUT", "COMPLETEAGENT",
                                                               "COMPLETECALLER")]
    return len(done) >= calls
