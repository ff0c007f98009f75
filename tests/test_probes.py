"""Hotline probes without a PBX (issue 13): the `probes:` configuration and its errors, the schedule
(workdays of the calendar, business hours, holidays, make-up workdays, a slot placed once), a PBX
that is not connected (recorded as link_down, nothing raised), the values checked before an
Originate is written, the probe context of `asterisk-config`, the report section on SQLite and
PostgreSQL, and the `callcenter probe` command's errors. The calls against the real Asterisk are
in tests/test_probes_asterisk.py."""
from __future__ import annotations

import shutil
from datetime import datetime, time, timedelta

import pytest
from sqlalchemy import func, select

from callcenter.asterisk_config import AsteriskConfigError, generate
from callcenter.bootstrap import build
from callcenter.cli import main
from callcenter.clock import FixedClock
from callcenter.probes.plan import Target, day_slots, result_of, targets
from callcenter.probes.prober import ProbeError, originate_fields
from callcenter.settings import ConfigError, load_settings
from callcenter.storage import tables as t
from reports.probes import probes_section, table_lines
from tests.conftest import ROOT, SHANGHAI

MONDAY = datetime(2026, 11, 23, tzinfo=SHANGHAI)            # a workday
NATIONAL_DAY = datetime(2026, 10, 1, tzinfo=SHANGHAI)       # a Thursday, a statutory holiday
MAKEUP_SATURDAY = datetime(2026, 10, 10, tzinfo=SHANGHAI)   # a Saturday worked (调休)


def config(tmp_path, probes: str):
    out = tmp_path / "config"
    shutil.copytree(ROOT / "config", out)
    (out / "probes.yaml").write_text(probes, encoding="utf-8")
    return out


ENABLED = "probes:\n  enabled: true\n  caller_id: \"95000\"\n  times: [\"09:30\", \"14:30\"]\n"


def test_configuration_errors_name_file_and_key(tmp_path):
    cases = [
        ("probes:\n  enabled: true\n", "probes.caller_id: required"),
        ("probes:\n  caller_id: \"95000\\r\\nAction: Logoff\"\n", "probes.caller_id"),
        ("probes:\n  context: \"a;b\"\n", "probes.context"),
        ("probes:\n  caller_name: \"x\\ny\"\n", "probes.caller_name"),
        ("probes:\n  answer_timeout: 0\n", "probes.answer_timeout"),
        ("probes:\n  hotlines: [\"62009999\"]\n", "probes.hotlines[0]: 62009999 is not a published hotline"),
        ("probes:\n  caller_id: \"62000001\"\n", "probes.caller_id: 62000001 is a hotline number"),
        ("probes:\n  dial: \"PJSIP/trunk,,g\"\n", "probes.dial"),
        ("probes:\n  interval_minutes: 1\n", "probes.interval_minutes"),
        ("probes:\n  tick: 5\n", "probes.tick"),
    ]
    for i, (text, expected) in enumerate(cases):
        with pytest.raises(ConfigError) as err:
            load_settings(config(tmp_path / str(i), text))
        assert expected in str(err.value), (text, str(err.value))
        assert "probes.yaml" in str(err.value)
    settings = load_settings(config(tmp_path / "ok", ENABLED))
    assert settings.probes.enabled and settings.probes.times == [time(9, 30), time(14, 30)]


def test_targets_are_every_published_hotline_per_pbx(settings):
    published = sorted(str(h) for d in settings.departments for h in d.hotlines)
    assert sorted(x.hotline for x in targets(settings)) == published
    assert {x.pbx for x in targets(settings)} == {p.id for p in settings.pbxes}
    one = settings.model_copy(update={"probes": settings.probes.model_copy(update={"hotlines": [published[0]]})})
    assert [x.hotline for x in targets(one)] == [published[0]]


def test_day_slots_by_times_and_by_interval():
    windows = [(time(9), time(11, 30)), (time(13, 30), time(16, 30))]
    assert day_slots(MONDAY.date(), windows, [time(8), time(9, 30), time(12), time(14, 30)], None) == \
        [time(9, 30), time(14, 30)]
    assert day_slots(MONDAY.date(), windows, [], 60) == [time(9), time(10), time(11), time(13, 30), time(14, 30),
                                                        time(15, 30)]
    assert [result_of(False, r) for r in ("0", "1", "3", "5", "8", "")] == \
        ["unreachable", "no_answer", "no_answer", "busy", "congestion", "failed"]
    assert result_of(True, "4") == "answered"


async def _rows(app):
    async with app.store.engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(select(t.probes).order_by(t.probes.c.id))).mappings()]


async def test_schedule_places_probes_only_in_business_hours_on_workdays(tmp_path, db_url):
    """No PBX connected: each due probe is recorded as link_down, nothing raised; a slot is placed
    once; nothing on a holiday, a weekend, before opening or at lunch; a make-up Saturday probes."""
    settings = load_settings(config(tmp_path, ENABLED))
    clock = FixedClock(MONDAY.replace(hour=9, minute=20))
    app = build(settings, db_url, clock, live=True, queue_log=False)
    await app.store.migrate()
    await app.leadership.start()                                    # PostgreSQL: the advisory lock
    scheduler = app.probe_scheduler
    hotlines = len(targets(settings))
    try:
        assert await scheduler.tick() == []                         # 09:20: before the 09:30 slot
        clock.advance(11 * 60)                                      # 09:31
        rows = await scheduler.tick()
        assert len(rows) == hotlines
        assert {r["result"] for r in rows} == {"link_down"}
        assert {r["slot"] for r in rows} == {"2026-11-23T09:30"} and {r["trigger"] for r in rows} == {"schedule"}
        assert all(r["answer_seconds"] is None for r in rows)
        clock.advance(60)
        assert await scheduler.tick() == []                         # the slot is done
        scheduler.tried.clear()                                     # another instance / a restart
        assert await scheduler.tick() == []                         # the database refuses the slot twice
        clock.advance(30 * 60)                                      # 10:02: past the 15-minute grace
        assert await scheduler.tick() == []
        for moment in (NATIONAL_DAY.replace(hour=9, minute=31), (MONDAY - timedelta(days=1)).replace(hour=9, minute=31),
                       MONDAY.replace(hour=12, minute=0)):
            clock.at = moment
            assert scheduler.due() == [], moment
        clock.at = MAKEUP_SATURDAY.replace(hour=14, minute=35)
        assert len(await scheduler.tick()) == hotlines
        async with app.store.begin() as conn:                      # a probe a stop left pending
            await conn.execute(t.probes.insert().values(
                key="probe-left", pbx="pbx1", hotline="62000001", department="market", slot=None, trigger="manual",
                placed_at=MAKEUP_SATURDAY.replace(hour=9), result="pending", reason=""))
        clock.at = MAKEUP_SATURDAY.replace(hour=16, minute=40)     # after hours: places nothing, judges it
        assert await scheduler.tick() == []
        assert [r["result"] for r in await _rows(app) if r["key"] == "probe-left"] == ["no_response"]
        app.leadership.active = False                               # standing by: never places
        clock.at = MONDAY.replace(hour=14, minute=31)
        assert await scheduler.tick() == []
        assert len(await _rows(app)) == 2 * hotlines + 1
    finally:
        await app.leadership.stop()
        await app.store.close()


def test_values_reaching_the_pbx_are_checked(settings):
    cfg = settings.probes.model_copy(update={"caller_id": "95000"})
    fields = originate_fields(cfg, Target("pbx1", "62000001", "market"))
    assert fields["Channel"] == "Local/62000001@callcenter-probe" and fields["CallerID"].endswith("<95000>")
    for target in (Target("pbx1", "62000001\r\nAction: Logoff", None), Target("pbx 1", "62000001", None),
                   Target("pbx1", "6200a", None)):
        with pytest.raises(ProbeError):
            originate_fields(cfg, target)
    with pytest.raises(ProbeError):                     # a value the settings would refuse, set behind their back
        originate_fields(cfg.model_copy(update={"caller_name": "x\r\nAction: Logoff"}), Target("pbx1", "62000001", None))
    with pytest.raises(ProbeError):
        originate_fields(settings.probes, Target("pbx1", "62000001", None))     # no caller id


def test_asterisk_config_writes_the_probe_context(tmp_path):
    settings = load_settings(config(tmp_path, ENABLED))
    text = generate(settings)["extensions_callcenter.conf"]
    block = text[text.index("[callcenter-probe]"):]
    for number in (str(h) for d in settings.departments for h in d.hotlines):
        assert f"exten => {number},1,NoOp(Hotline probe of ${{EXTEN}})" in block
    assert " same => n,Goto(hotline,${EXTEN},1)" in block
    dial = load_settings(config(tmp_path / "dial", ENABLED + "  dial: \"PJSIP/{number}@trunk\"\n"))
    assert " same => n,Dial(PJSIP/62000001@trunk,30)" in generate(dial)["extensions_callcenter.conf"]
    off = load_settings(config(tmp_path / "off", "probes:\n  enabled: false\n"))
    assert "callcenter-probe" not in generate(off)["extensions_callcenter.conf"]
    bad = dial.model_copy(update={"probes": dial.probes.model_copy(update={"dial": "PJSIP/{number},g"})})
    with pytest.raises(AsteriskConfigError, match="probes.dial"):
        generate(bad)


async def test_report_section(db_url, settings):
    from callcenter.storage.store import Store
    store = Store(db_url)
    await store.migrate()
    at = MONDAY.replace(hour=9, minute=30)
    rows = [("62000001", "market", "answered", 0.8), ("62000001", "market", "no_answer", None),
            ("62000002", "edu", "answered", 1.6), ("62000002", "edu", "pending", None),
            ("62000002", "edu", "answered", 9.0)]
    async with store.begin() as conn:
        for i, (hotline, dept, result, seconds) in enumerate(rows):
            placed = at + timedelta(minutes=i) if i < 4 else at + timedelta(days=1)     # the last: another day
            await conn.execute(t.probes.insert().values(
                key=f"probe-{i}", pbx="pbx1", hotline=hotline, department=dept, slot=None, trigger="schedule",
                placed_at=placed, result=result, reason="", answer_seconds=seconds))
    try:
        section = await probes_section(store, settings, MONDAY.date(), MONDAY + timedelta(days=1))
        async with store.engine.connect() as conn:
            assert (await conn.execute(select(func.count()).select_from(t.probes))).scalar() == 5
    finally:
        await store.close()
    assert (section["placed"], section["answered"], section["pending"]) == (3, 2, 1)
    assert section["answer_rate"] == round(2 / 3, 4) and section["average_answer_seconds"] == 1.2
    assert [p["result"] for p in section["probes"]] == ["answered", "no_answer", "answered", "pending"]
    market = next(h for h in section["hotlines"] if h["hotline"] == "62000001")
    assert (market["placed"], market["answered"], market["failures"], market["answer_rate"]) == (2, 1, {"no_answer": 1}, 0.5)
    lines = table_lines(section)
    assert lines[0].startswith("热线拨测：拨测 3 次，接通 2 次，接通率 66.7%，平均接通用时 1.2 秒（另有 1 次拨测中）")
    assert any("62000001" in line and "无人接听1次" in line for line in lines)
    assert table_lines(None) == ["热线拨测：—"]


def test_probe_command_errors_are_one_clear_line(tmp_path, capsys):
    db = f"sqlite:///{tmp_path}/cc.db"
    no_id = config(tmp_path / "a", "probes:\n  enabled: false\n")
    assert main(["probe", "--config", str(no_id), "--db", db]) == 1
    assert "probes.caller_id" in capsys.readouterr().err
    cfg = config(tmp_path / "b", ENABLED)
    for args, expected in ((["--hotline", "62000001\nx"], "--hotline: expected a phone number"),
                           (["--hotline", "62009999"], "--hotline: 62009999 is not a published hotline"),
                           (["--pbx", "nope"], "--pbx: unknown PBX 'nope'")):
        assert main(["probe", "--config", str(cfg), "--db", db, *args]) == 1
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err, err
