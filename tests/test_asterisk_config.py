"""`callcenter asterisk-config` (callcenter/asterisk_config.py): the dialplan and queues.conf written
from the example configuration, the values it refuses to write, and the command line (stdout, --out,
--force, one-line errors). Loading the written files into the real Asterisk: tests/test_ivr_asterisk.py."""
from __future__ import annotations

import re
import subprocess

import pytest

from callcenter.asterisk_config import (EXTENSIONS_FILE, QUEUES_FILE, AsteriskConfigError, Options, generate,
                                        options_from)
from callcenter.settings import PbxEndpoint, QueueRef
from tests.conftest import ROOT

CONFIG = str(ROOT / "config")


def _exten(text: str, number: str) -> list[str]:
    """The lines of one hotline's extension."""
    lines = text.splitlines()
    start = lines.index(next(line for line in lines if line.startswith(f"exten => {number},1,")))
    out = [lines[start]]
    for line in lines[start + 1:]:
        if not line.startswith(" same => "):
            break
        out.append(line)
    return out


def test_the_example_configuration(settings):
    files = generate(settings)
    assert set(files) == {EXTENSIONS_FILE, QUEUES_FILE}
    ext, queues = files[EXTENSIONS_FILE], files[QUEUES_FILE]
    # one context: the PBX's hotline context, one extension per configured hotline number
    assert re.findall(r"(?m)^\[([^\]]+)\]", ext) == ["hotline"]
    numbers = [str(h) for d in settings.departments for h in d.hotlines]
    assert sorted(re.findall(r"(?m)^exten => (\d+),1,", ext)) == sorted(numbers)
    market = _exten(ext, "62000001")
    body = "\n".join(market)
    assert " same => n,AGI(agi://127.0.0.1:4573/ivr?hotline=${EXTEN}&pbx=pbx1)" in market
    # the IVR's decision, then the owner (Dial with g: the caller stays after the agent hangs up)
    assert ' same => n,GotoIf($["${IVRROUTE}" = "owner" | "${IVRROUTE}" = "agent"]?direct)' in market
    assert " same => n,Dial(${DIALTO},20,g)" in market
    # the queue with c (continue after the agent hangs up), QueueExit when unanswered
    assert " same => n(queue),Queue(${QNAME},tc,,,600)" in market
    assert " same => n,UserEvent(QueueExit,Queue: ${QNAME},Status: ${QUEUESTATUS})" in market
    assert ' same => n,GotoIf($["${QUEUESTATUS}" = "CONTINUE"]?answered)' in market
    # the survey after an answered call, and the department's queue when the IVR is unreachable
    assert re.search(r"n\(survey\),AGI\(agi://127\.0\.0\.1:4573/survey\?hotline=\$\{EXTEN\}&pbx=pbx1&", body)
    assert " same => n(fallback),Set(QNAME=q-market)" in market
    assert " same => n,UserEvent(IvrChoice,Queue: ${QNAME},Choice: ${CHOICE})" in market
    assert market[-1] == " same => n(done),Hangup()"
    # every label used is defined in the same extension
    labels = set(re.findall(r"n\((\w+)\)", body))
    assert set(re.findall(r"\?(\w+)\)", body)) | set(re.findall(r"Goto\((\w+)\)", body)) <= labels
    assert "62000001" not in "\n".join(_exten(ext, "62000002"))

    sections = re.findall(r"(?m)^\[([^\]]+)\]", queues)
    assert sections == ["general", "callcenter-queue"] + [q.name for d in settings.departments for q in d.queues]
    for line in ("log_membername_as_agent = yes", "persistentmembers = no", "wrapuptime = 0", "ringinuse = no",
                 "joinempty = yes", "leavewhenempty = no", "setinterfacevar = yes", "strategy = linear",
                 "timeout = 15", "timeoutrestart = no"):
        assert re.search(rf"(?m)^{re.escape(line)}$", queues), line
    assert not re.search(r"(?m)^\s*member\s*=", queues)          # no static members: QueueAdd
    assert not re.search(r"(?m)^autopause", queues)


def test_options_from_the_ivr_section_and_overrides(settings):
    settings.ivr.fastagi.host, settings.ivr.fastagi.port = "10.1.2.3", 4600
    settings.ivr.survey.enabled = False
    options = options_from(settings, agi_port=4700, queue_wait=None, autopause=["q-housing"], strategy="rrmemory")
    assert (options.agi_host, options.agi_port, options.survey, options.queue_wait) == ("10.1.2.3", 4700, False, 600)
    files = generate(settings, options=options)
    housing = files[QUEUES_FILE].split("[q-housing](callcenter-queue)")[1].split("\n[")[0]
    assert "autopause = yes" in housing and files[QUEUES_FILE].count("autopause = yes") == 1
    assert "strategy = rrmemory" in files[QUEUES_FILE]
    assert "agi://10.1.2.3:4700/ivr?" in files[EXTENSIONS_FILE]
    assert "/survey?" not in files[EXTENSIONS_FILE] and "NoOp(survey disabled)" in files[EXTENSIONS_FILE]
    v6 = generate(settings, options=Options(agi_host="::1"))[EXTENSIONS_FILE]
    assert "agi://[::1]:4573/ivr?" in v6


def test_several_pbxes_each_get_their_own(settings):
    settings.pbxes.append(PbxEndpoint(id="pbx2", username="u", secret="s", hotline_contexts=["from-pstn"]))
    edu = next(d for d in settings.departments if d.id == "edu")
    edu.hotlines[0].pbx = "pbx2"
    edu.queues[0] = QueueRef(name="q-edu", pbx="pbx2")
    with pytest.raises(AsteriskConfigError, match="several PBXes configured .*--pbx"):
        generate(settings)
    with pytest.raises(AsteriskConfigError, match="--pbx: unknown PBX 'pbx9'"):
        generate(settings, "pbx9")
    one, two = generate(settings, "pbx1"), generate(settings, "pbx2")
    numbers = {p: set(re.findall(r"(?m)^exten => (\d+),", f[EXTENSIONS_FILE])) for p, f in (("1", one), ("2", two))}
    queues = {p: re.findall(r"(?m)^\[(q-[a-z]+)\]", f[QUEUES_FILE]) for p, f in (("1", one), ("2", two))}
    assert "62000002" in numbers["2"] and "62000002" not in numbers["1"]      # edu is on pbx2 only
    assert numbers["1"] - {"62000001"} < numbers["2"] and "62000001" in numbers["1"]   # "*": on both
    assert "q-edu" in queues["2"] and "q-edu" not in queues["1"] and "q-market" in queues["1"]
    assert "[from-pstn]" in two[EXTENSIONS_FILE] and "&pbx=pbx2" in two[EXTENSIONS_FILE]
    assert "[hotline]" in one[EXTENSIONS_FILE] and "&pbx=pbx2" not in one[EXTENSIONS_FILE]


@pytest.mark.parametrize("where, value, message", [
    ("hotline", "62000001\nexten => 1,1,System(rm)", "is not a hotline number"),
    ("hotline", "_X.", "is not a hotline number"),
    ("hotline", "6200;0001", "is not a hotline number"),
    ("queue", "q-market,t", "queues\\[0\\]: 'q-market,t' cannot be written"),
    ("queue", "q-market;x", "cannot be written"),
    ("queue", "q-${EVIL}", "cannot be written"),
    ("queue", "general", "is reserved"),
    ("context", "hotline]\n[evil", "hotline_contexts\\[0\\]: .*cannot be written"),
    ("context", "globals", "is reserved by Asterisk"),
    ("department", "market;x", "departments\\[2\\].id: .*cannot be written"),
    ("agi_host", "127.0.0.1/ivr,x", "ivr.fastagi.host: .* is not a host name"),
    ("agi_host", "host\n", "is not a host name"),
])
def test_unsafe_values_are_refused_with_the_key(settings, where, value, message):
    market = next(d for d in settings.departments if d.id == "market")
    options = Options()
    if where == "hotline":
        market.hotlines[0] = type(market.hotlines[0])(value)
    elif where == "queue":
        market.queues[0].name = value
    elif where == "context":
        settings.pbxes[0].hotline_contexts = [value]
    elif where == "department":
        market.id = value
    elif where == "agi_host":
        options = Options(agi_host=value)
    with pytest.raises(AsteriskConfigError, match=message):
        generate(settings, options=options)


@pytest.mark.parametrize("options, message", [
    (Options(agi_port=0), "agi_port: 0 is not a whole number from 1 to 65535"),
    (Options(queue_wait=-5), "queue_wait"),
    (Options(direct_ring=True), "direct_ring"),
    (Options(strategy="ringall,x"), "strategy: 'ringall,x' is not one of"),
    (Options(autopause=frozenset({"q-nowhere"})), "autopause: q-nowhere: not a configured queue"),
    (Options(autopause=frozenset({"q;x"})), "autopause: 'q;x' cannot be written"),
])
def test_bad_options_are_refused(settings, options, message):
    with pytest.raises(AsteriskConfigError, match=message):
        generate(settings, options=options)


def test_a_pbx_without_hotlines_is_refused(settings):
    for d in settings.departments:
        d.hotlines = []
    with pytest.raises(AsteriskConfigError, match="no hotline number on PBX 'pbx1'"):
        generate(settings)


def cli(*args: str) -> subprocess.CompletedProcess:
    """The command's entry point in this process (exit code, stdout, stderr), as a user runs it."""
    import contextlib
    import io
    from callcenter.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["asterisk-config", "--config", CONFIG, *args])
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def test_the_command_prints_writes_and_refuses_to_overwrite(tmp_path, settings):
    printed = cli()
    assert printed.returncode == 0, printed.stderr
    assert f"; ===== {EXTENSIONS_FILE} =====" in printed.stdout and f"; ===== {QUEUES_FILE} =====" in printed.stdout
    assert "exten => 62000001,1," in printed.stdout and "[q-market](callcenter-queue)" in printed.stdout

    out = tmp_path / "asterisk"
    wrote = cli("--out", str(out), "--agi-port", "4600", "--autopause", "q-housing")
    assert wrote.returncode == 0, wrote.stderr
    ext = (out / EXTENSIONS_FILE).read_text()
    assert "agi://127.0.0.1:4600/ivr?" in ext
    assert ext == generate(settings, options=Options(agi_port=4600, autopause=frozenset({"q-housing"})))[EXTENSIONS_FILE]
    assert "autopause = yes" in (out / QUEUES_FILE).read_text()

    again = cli("--out", str(out))
    assert again.returncode == 1 and "already exist" in again.stderr and "--force" in again.stderr
    assert "Traceback" not in again.stderr and len(again.stderr.strip().splitlines()) == 1
    assert "agi://127.0.0.1:4600/" in (out / EXTENSIONS_FILE).read_text()       # untouched
    forced = cli("--out", str(out), "--force")
    assert forced.returncode == 0 and "agi://127.0.0.1:4573/" in (out / EXTENSIONS_FILE).read_text()
    assert sorted(p.name for p in out.iterdir()) == sorted([EXTENSIONS_FILE, QUEUES_FILE])   # no temp files


@pytest.mark.parametrize("args, message", [
    (["--pbx", "nope"], "--pbx: unknown PBX 'nope'"),
    (["--agi-host", "bad host"], "is not a host name"),
    (["--strategy", "best"], "strategy: 'best' is not one of"),
    (["--autopause", "q-nowhere"], "autopause: q-nowhere"),
])
def test_bad_command_lines_are_one_line(args, message):
    result = cli(*args)
    assert result.returncode == 1 and message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_out_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    result = cli("--out", str(target))
    assert result.returncode == 1 and "is not a directory" in result.stderr and target.read_text() == "x"


def test_the_operations_guide_shows_what_is_generated(settings):
    """docs/operations.md "Connecting a real Asterisk to the IVR" quotes the example's extension."""
    guide = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    section = guide.split("## Connecting a real Asterisk to the IVR", 1)[1].split("\n## ", 1)[0]
    assert "\n".join(_exten(generate(settings)[EXTENSIONS_FILE], "62000001")) in section


def test_the_prompts_for_the_tts_step(settings):
    result = cli("--prompts")
    assert result.returncode == 0, result.stderr
    rows = dict(line.split("\t") for line in result.stdout.splitlines())
    assert rows["callcenter/market-welcome"] == "您好，欢迎致电区市场监管局。"
    assert rows["callcenter/market-menu"].startswith("各类企业及其分支机构营业的许可请按1，食品经营许可请按2，")
    assert "工作日 9:00-11:30、13:30-16:30" in rows["callcenter/market-closed"] and "{hours}" not in result.stdout
    assert {"callcenter/survey", "callcenter/invalid", "callcenter/goodbye"} <= set(rows)
    assert all(text and "\t" not in text for text in rows.values())
