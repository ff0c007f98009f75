"""The CDR rules (callcenter/domain/cdr.py) on real Master.csv lines from the bundled Asterisk
(tests/traces/cdr/Master.csv, see tests/traces/README.md) and on the `Event: Cdr` messages of the
recorded AMI traces, checked against what the AMI call tracker concludes for the same calls."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from callcenter.domain.cdr import CdrError, classify, is_caller_leg, parse_line, record_from
from callcenter.domain.records import Outcome
from tests.conftest import MONDAY_10, TRACES, trace_path
from tests.scenario import run

HOTLINE = frozenset({"hotline"})
UTC = timezone.utc


def _rows(tz=UTC):
    return [parse_line(line, tz) for line in (TRACES / "cdr" / "Master.csv").read_text().splitlines()]


def test_master_csv_columns_as_asterisk_writes_them():
    rows = _rows()
    assert len(rows) == 13
    ivr = next(r for r in rows if r.channel == "Local/62000002@hotline-00000001;2")
    assert (ivr.src, ivr.dst, ivr.dcontext, ivr.lastapp, ivr.lastdata) == ("13800000002", "62000002", "hotline",
                                                                          "Wait", "5")
    assert (ivr.uniqueid, ivr.linkedid, ivr.sequence) == ("1796012304.3", "1796012304.1", "3")
    assert ivr.caller == ("13800000002", "Caller 13800000002")
    assert ivr.start == datetime(2026, 11, 30, 4, 18, 24, tzinfo=UTC) and ivr.end - ivr.start == timedelta(seconds=1)
    assert (ivr.duration, ivr.billsec, ivr.disposition) == (1, 1, "ANSWERED")
    answered = next(r for r in rows if r.dstchannel)
    assert answered.channel.endswith(";2") and answered.dstchannel == "Local/1001@agents-00000005;1"


def test_local_times_are_read_in_the_configured_zone():
    [utc] = _rows(UTC)[:1]
    [shanghai] = _rows(ZoneInfo("Asia/Shanghai"))[:1]
    assert utc.start - shanghai.start == timedelta(hours=8)        # the same wall time, 8 h apart
    assert shanghai.start.utcoffset() == timedelta(hours=8)


def test_only_the_caller_leg_of_a_hotline_call_counts():
    legs = [r for r in _rows() if is_caller_leg(r, HOTLINE)]
    assert all(r.channel.endswith(";2") and r.dcontext == "hotline" for r in legs)
    assert sorted(r.src for r in legs) == [f"1380000000{i}" for i in range(1, 7)]
    assert not any(is_caller_leg(r, HOTLINE) for r in _rows() if r.dcontext == "agents")


def test_outcomes_of_the_real_calls():
    outcome = {r.src: classify(r) for r in _rows() if is_caller_leg(r, HOTLINE)}
    assert outcome["13800000001"] is None                          # answered in q-market: queue_log's
    assert outcome["13800000005"] is None                          # abandoned in q-edu: queue_log's
    assert outcome["13800000002"] == (Outcome.ABANDONED_IVR, "", "")
    assert outcome["13800000003"] == (Outcome.AFTER_HOURS, "", "")  # Wait(1) ran out: Hangup
    # hung up during the after-hours branch: indistinguishable from an IVR hang-up -> the safer one
    assert outcome["13800000004"] == (Outcome.ABANDONED_IVR, "", "")
    # a queue timeout ends like an after-hours call; only queue_log (EXITWITHTIMEOUT) tells them
    # apart, which is why the reader skips every call queue_log knows
    assert outcome["13800000006"] == (Outcome.AFTER_HOURS, "", "")
    queue_log = (TRACES / "cdr" / "queue_log").read_text()
    six = next(r for r in _rows() if r.src == "13800000006" and is_caller_leg(r, HOTLINE))
    assert f"|{six.uniqueid}|q-housing|NONE|EXITWITHTIMEOUT|" in queue_log


def test_record_of_an_ivr_hang_up():
    row = next(r for r in _rows() if r.src == "13800000002" and is_caller_leg(r, HOTLINE))
    record = record_from("pbx1", row, "edu")
    assert (record.id, record.linkedid, record.hotline, record.department) == ("1796012304.3", "1796012304.1",
                                                                                 "62000002", "edu")
    assert record.outcome is Outcome.ABANDONED_IVR and record.reconciled and not record.after_hours
    assert (record.caller_num, record.caller_name, record.stints) == ("13800000002", "Caller 13800000002", [])
    assert record_from("pbx1", next(r for r in _rows() if r.src == "13800000005" and is_caller_leg(r, HOTLINE)),
                       "edu") is None


def test_user_event_as_last_application():
    base = _rows()[0]
    from dataclasses import replace
    choice = replace(base, lastapp="UserEvent", lastdata="IvrChoice,Queue: q-edu,Choice: 2")
    assert classify(choice) == (Outcome.ABANDONED_IVR, "2", "q-edu")
    assert classify(replace(base, lastapp="UserEvent", lastdata="AfterHours,Hotline: 62000003"))[0] is Outcome.AFTER_HOURS
    early = next(r for r in _rows() if r.src == "13800000004" and is_caller_leg(r, HOTLINE))
    assert early.userfield == "" and classify(early)[0] is Outcome.ABANDONED_IVR


def test_a_dialplan_that_marks_after_hours_in_the_cdr():
    """Master-userfield.csv: the lab dialplan with Set(CDR(userfield)=afterhours) first on its
    closed branch (extensions-userfield.conf); one caller stays 5 s, one hangs up after 0.6 s, during
    Wait(1): lastapp Wait/1 like an IVR hang-up, but the userfield says after hours."""
    lines = (TRACES / "cdr" / "Master-userfield.csv").read_text().splitlines()
    legs = [r for r in (parse_line(line, UTC) for line in lines) if is_caller_leg(r, HOTLINE)]
    assert [(r.lastapp, r.lastdata, r.userfield) for r in legs] == [("Hangup", "", "afterhours"),
                                                                    ("Wait", "1", "afterhours")]
    assert [classify(r)[0] for r in legs] == [Outcome.AFTER_HOURS, Outcome.AFTER_HOURS]


@pytest.mark.parametrize("line, message", [
    ('"","1","2"', "3 fields, expected at least 17"),
    ('"","1","62000001","hotline","x","Local/a;2","","Wait","1","2026-11-30 4h","","2026-11-30 04:18:24",0,0,'
     '"ANSWERED","DOCUMENTATION","1.2"', "field start"),
    ('"","1","62000001","hotline","x","Local/a;2","","Wait","1","2026-11-30 04:18:24","","2026-11-30 04:18:24",'
     'x,0,"ANSWERED","DOCUMENTATION","1.2"', "field duration"),
    ('"","1","62000001","hotline","x","Local/a;2","","Wait","1","2026-11-30 04:18:24","","2026-11-30 04:18:24",'
     '0,0,"ANSWERED","DOCUMENTATION",""', "field uniqueid"),
    ('"","1","62000001","hotline","x","Local/a;2","","Wait","1","2026-11-30 04:18:24","","2026-11-30 04:18:24",'
     '0,0,"ANSWERED","DOCUMENTATION","my user field"', "loguniqueid = yes"),
])
def test_bad_lines_name_the_field(line, message):
    with pytest.raises(CdrError, match=message):
        parse_line(line, UTC)


def _cdr_events_as_lines(name: str) -> list[str]:
    """The trace's `Event: Cdr` messages (cdr_manager: the same record cdr_csv writes) as CSV lines."""
    keys = ("AccountCode", "Source", "Destination", "DestinationContext", "CallerID", "Channel", "DestinationChannel",
            "LastApplication", "LastData", "StartTime", "AnswerTime", "EndTime", "Duration", "BillableSeconds",
            "Disposition", "AMAFlags", "UniqueID", "UserField")
    out = []
    for line in trace_path(name).read_text().splitlines()[1:]:
        raw = json.loads(line)["raw"]
        if raw.startswith("Event: Cdr\r\n"):
            msg = dict(item.split(": ", 1) for item in raw.split("\r\n") if ": " in item)
            out.append(",".join('"' + msg[k].replace('"', '""') + '"' if not k.endswith(("Duration", "Seconds"))
                                else msg[k] for k in keys))
    return out


@pytest.mark.parametrize("trace", ["ivr-hangup", "afterhours"])
def test_the_cdr_names_the_call_as_the_tracker_does(trace, settings):
    """Recorded traces: the CDR's caller-leg row gives the same call id, hotline, caller, department
    and outcome as the AMI call tracker's record of the same call."""
    tracked = {r.id: r for r in run(trace, settings, MONDAY_10)[0]}
    directory = settings.directory()
    from_cdr = {}
    for line in _cdr_events_as_lines(trace):
        row = parse_line(line, ZoneInfo("Asia/Shanghai"))
        if is_caller_leg(row, HOTLINE):
            record = record_from("pbx1", row, directory.department_of_hotline(row.dst))
            if record is not None:
                from_cdr[record.id] = record
    assert from_cdr and set(from_cdr) <= set(tracked)
    for call_id, record in from_cdr.items():
        seen = tracked[call_id]
        assert (record.outcome, record.hotline, record.caller_num, record.caller_name, record.department) == (
            seen.outcome, seen.hotline, seen.caller_num, seen.caller_name, seen.department)
    expected = {"ivr-hangup": ("1795347491.165", Outcome.ABANDONED_IVR), "afterhours": ("1795347544.199",
                                                                                         Outcome.AFTER_HOURS)}[trace]
    assert [(r.id, r.outcome) for r in from_cdr.values()] == [expected]


@pytest.mark.parametrize("pbx, message", [
    ({"cdr_csv": "/var/log/asterisk/cdr-csv/Master.csv", "queue_log": None}, "cdr_csv needs queue_log"),
    ({"cdr_csv": "/x/Master.csv", "cdr_csv_timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
])
def test_cdr_settings_are_checked(tmp_path, pbx, message):
    from callcenter.settings import ConfigError, load_settings
    from tests.conftest import ROOT
    from tests.fakepbx import write_config
    config = write_config(ROOT / "config", tmp_path / "config", 5038, tmp_path / "queue_log", 8080)
    main = config / "callcenter.yaml"
    data = json.loads(main.read_text(encoding="utf-8"))
    data["pbxes"][0].update(pbx)
    main.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(ConfigError, match="pbxes") as error:
        load_settings(config)
    assert message in str(error.value)
