"""Caller numbers in canonical form (callcenter/domain/numbers.py): the table of forms PBXes give,
E.164 for a PBX that dials only E.164, and each edge where a caller number enters (AMI translator
and resync, queue_log, CDR, FastAGI IVR, Twilio webhook, the API's caller parameters) giving the
same number for the same citizen. A recorded AMI trace whose caller ids are rewritten to
E.164 and 0086 forms gives the very records of the original trace."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from yarl import URL

from callcenter.ami.framing import Framer
from callcenter.ami.resync import _live_channel, _waiting
from callcenter.ami.server import Trace, load_trace, stamp
from callcenter.ami.translate import translate
from callcenter.domain import cdr
from callcenter.domain import events as ev
from callcenter.domain.calls import CallTracker
from callcenter.domain.numbers import canonical, e164
from callcenter.domain.queue_log import QueueLogCalls, parse_line, record_from
from callcenter.domain.records import CallRecord, Outcome
from callcenter.web import models
from callcenter.web.errors import ApiError
from ivr.agi_session import _caller as agi_caller
from ivr.twilio.web import _caller as twilio_caller
from tests.conftest import MONDAY_10, trace_path
from tests.scenario import run

AT = datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)

CANONICAL = [
    # (as a PBX gives it, canonical form)
    ("13800000001", "13800000001"),                  # Asterisk: domestic mobile
    ("+8613800000001", "13800000001"),               # Twilio: E.164 mobile
    ("008613800000001", "13800000001"),              # international prefix 00
    ("+86 138-0000-0001", "13800000001"),            # written with separators
    ("+86 (138) 0000 0001", "13800000001"),
    ("0086 138 0000 0001", "13800000001"),
    ("02112345678", "02112345678"),                  # Asterisk: landline with the trunk 0
    ("+862112345678", "02112345678"),                # Twilio: E.164 landline -> trunk 0 added
    ("+86 21 12345678", "02112345678"),
    ("00862112345678", "02112345678"),
    ("+86 (0)21 1234-5678", "02112345678"),          # a written-out trunk 0 is not doubled
    ("(021) 1234-5678", "02112345678"),
    ("+861012345678", "01012345678"),                # Beijing
    ("+865711234567", "05711234567"),                # 3-digit area code, 7-digit local number
    ("+8695566", "95566"),                           # a service number: no trunk 0
    ("+14155550100", "+14155550100"),                # another country: E.164 kept
    ("0014155550100", "+14155550100"),               # 00 -> +
    ("+44 20 7946 0958", "+442079460958"),
    ("1001", "1001"),                                # an extension
    ("12345", "12345"),                              # a short number
    ("62000001", "62000001"),                        # a local number without area code
    (" 13800000001 ", "13800000001"),
    ("8613800000001", "8613800000001"),              # no + or 00: not taken for a country code
    ("", ""),                                        # withheld: unchanged (CallRecord.withheld)
    ("<unknown>", "<unknown>"),
    ("anonymous", "anonymous"),
    ("Anonymous", "Anonymous"),
    ("Restricted", "Restricted"),
    ("client:zhang", "client:zhang"),                # a Twilio Client identity, a SIP URI: not numbers
    ("sip:1001@pbx.example", "sip:1001@pbx.example"),
    ("+", "+"),
    ("+86", "+86"),
    ("00", "00"),
]


@pytest.mark.parametrize("given, expected", CANONICAL)
def test_canonical_form(given, expected):
    assert canonical(given) == expected
    assert canonical(expected) == expected                            # idempotent


def test_withheld_values_stay_withheld():
    for value in ("", "<unknown>", "anonymous", "Anonymous"):
        record = CallRecord("pbx1", "1.1", "1.1", canonical(value), "", "62000001", "market",
                            AT, AT, Outcome.ABANDONED_IVR)
        assert record.withheld


@pytest.mark.parametrize("given, expected", [
    ("13800000001", "+8613800000001"),
    ("+8613800000001", "+8613800000001"),
    ("+86 138-0000-0001", "+8613800000001"),
    ("02112345678", "+862112345678"),                # the landline's trunk 0 dropped
    ("01012345678", "+861012345678"),
    ("057112345678", "+8657112345678"),
    ("+14155550100", "+14155550100"),
    ("0014155550100", "+14155550100"),
    ("12345", None),                                 # short numbers, extensions, withheld: not dialable
    ("1001", None),
    ("", None),
    ("anonymous", None),
    ("+0123456789", None),
])
def test_e164_for_a_pbx_that_dials_only_e164(given, expected):
    assert e164(given) == expected


# --- the edges ------------------------------------------------------------------------------

def test_ami_translator_and_resync_give_the_canonical_number():
    for given in ("+8613800000001", "008613800000001", "+86 138-0000-0001", "13800000001"):
        created = translate("pbx1", {"Event": "Newchannel", "Uniqueid": "1.1", "Linkedid": "1.1",
                                     "Channel": "PJSIP/trunk-1", "Context": "hotline", "Exten": "62000001",
                                     "CallerIDNum": given, "CallerIDName": "王"}, AT)
        changed = translate("pbx1", {"Event": "NewCallerid", "Uniqueid": "1.1", "Linkedid": "1.1",
                                     "CallerIDNum": given, "CallerIDName": ""}, AT)
        assert isinstance(created, ev.ChannelCreated) and created.caller_num == "13800000001"
        assert created.exten == "62000001"                          # the dialled hotline is not touched
        assert changed.caller_num == "13800000001"
        assert _waiting({"Queue": "q-market", "Uniqueid": "1.1", "CallerIDNum": given, "Wait": "5"}).caller_num \
            == "13800000001"
        assert _live_channel({"Uniqueid": "1.1", "CallerIDNum": given}).caller_num == "13800000001"
    unknown = translate("pbx1", {"Event": "Newchannel", "Uniqueid": "1.2", "Linkedid": "1.2",
                                 "CallerIDNum": "<unknown>"}, AT)
    assert unknown.caller_num == "<unknown>"


def test_queue_log_and_cdr_records_carry_the_canonical_number(settings):
    calls = QueueLogCalls()
    done = []
    for line in ("1795347500|1795347500.1|q-market|NONE|ENTERQUEUE||+8613800000001|1",
                 "1795347520|1795347500.1|q-market|NONE|ABANDON|1|1|20"):
        done += calls.feed(parse_line(line))
    [call] = done
    assert call.caller_num == "13800000001"
    record = record_from("pbx1", call, settings.directory(), {})
    assert record.caller_num == "13800000001" and record.outcome is Outcome.ABANDONED
    line = ('"","+862112345678","62000001","hotline","""王"" <+862112345678>","PJSIP/trunk-00000001","",'
            '"Wait","5","2026-11-23 10:00:00","2026-11-23 10:00:00","2026-11-23 10:00:05","5","5","ANSWERED",'
            '"DOCUMENTATION","1795347600.1","","","1795347600.1","1"')
    row = cdr.parse_line(line, timezone.utc)
    assert row.caller == ("02112345678", "王")
    assert cdr.record_from("pbx1", row, "market").caller_num == "02112345678"
    no_src = cdr.parse_line(line.replace('"+862112345678","62000001"', '"","62000001"', 1), timezone.utc)
    assert no_src.caller == ("02112345678", "王")                  # from clid when src is empty


def test_fastagi_and_twilio_callers_enter_canonical():
    assert agi_caller("+8613800000001") == agi_caller("13800000001") == "13800000001"
    assert agi_caller("+86 21 1234 5678") == "02112345678"
    assert agi_caller("unknown") == agi_caller("anonymous") == ""
    assert twilio_caller({"From": "+8613800000001"}) == "13800000001"
    assert twilio_caller({"From": "+862112345678"}) == "02112345678"
    assert twilio_caller({"From": "+14155550100"}) == "+14155550100"
    assert twilio_caller({"From": "anonymous"}) == twilio_caller({"From": "client:zhang"}) == ""


def _query(model, **params):
    """`params` as a URL's query string, decoded as aiohttp decodes request.query."""
    return models.query(model, URL("/api/x").with_query(params).query)


@pytest.mark.parametrize("given", ["13800000001", "+8613800000001", "008613800000001"])
def test_api_caller_parameters_find_the_canonical_number(given):
    assert _query(models.TaskList, caller=given).caller == "13800000001"
    assert _query(models.CaseList, caller=given).caller == "13800000001"
    assert _query(models.RouteQuery, caller=given, hotline="62000001").caller == "13800000001"


def test_an_unencoded_plus_in_a_query_string_is_a_plus():
    """curl or a dialplan's CURL() sending ?caller=+86... unencoded: form decoding gives a space."""
    query = URL("/api/route?caller=+8613800000001&hotline=62000001").query
    assert query["caller"] == " 8613800000001"
    assert models.query(models.RouteQuery, query).caller == "13800000001"
    assert models.query(models.CaseList, URL("/api/cases?caller=+8613800000001").query).caller == "13800000001"


def test_api_caller_values_are_still_checked():
    assert _query(models.RouteQuery, caller="", hotline="62000001").caller == ""      # withheld
    assert models.body(models.CallbackRequest, {"caller": "+8613800000001", "department": "market"}).caller \
        == "13800000001"
    assert _query(models.RouteQuery, caller="+8613800000001", hotline="+862162000001").hotline \
        == "+862162000001"                                         # a hotline keeps its configured form
    for bad in ("138 0000 0001", "138-0000-0001", "+86\r\n138", "abc", "+8612", "1" * 21):
        with pytest.raises(ApiError) as exc:
            _query(models.CaseList, caller=bad)
        assert exc.value.status == 400
    with pytest.raises(ApiError):                                  # a JSON body has no form decoding
        models.body(models.CallbackRequest, {"caller": " 8613800000001", "department": "market"})


# --- a whole trace ------------------------------------------------------------------------------

def _rewritten(trace: Trace, forms: dict[bytes, bytes]) -> Trace:
    out = []
    for t, raw in trace.messages:
        for old, new in forms.items():
            raw = raw.replace(b"CallerIDNum: " + old + b"\r\n", b"CallerIDNum: " + new + b"\r\n")
        out.append((t, raw))
    return Trace(trace.banner, out)


def test_a_trace_with_e164_caller_ids_gives_the_same_records(settings):
    """The `basic` trace as a PBX that reports E.164 (and 0086, and separators) would send it:
    the same calls, the same canonical caller numbers as the original."""
    original, *_ = run("basic", settings, MONDAY_10)
    forms = {b"13800000000": b"+8613800000000", b"13800000001": b"008613800000001",
             b"13800000002": b"+86 138-0000-0002"}
    trace = _rewritten(load_trace(trace_path("basic")), forms)
    assert sum(b"CallerIDNum: +86" in raw for _, raw in trace.messages) > 0
    calls = CallTracker(settings.directory(), settings.hotline_contexts())
    framer = Framer(expect_banner=False)
    records = []
    for t, raw in trace.messages:
        for msg in framer.feed(stamp(raw, MONDAY_10 + timedelta(seconds=t))):
            event = translate("pbx1", msg, MONDAY_10)
            if event is not None:
                records += calls.feed(event)
    assert sorted(r.caller_num for r in records) == sorted(r.caller_num for r in original) == \
        ["13800000000", "13800000001", "13800000002", "13800000003"]
    assert {r.id: (r.caller_num, r.outcome, r.department) for r in records} == \
        {r.id: (r.caller_num, r.outcome, r.department) for r in original}
