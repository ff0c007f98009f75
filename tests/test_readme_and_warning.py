"""Issue 13's nits: the README's commands run as written in a fresh clone (they name only files
the repository has: the sample traces are in samples/), and the missing-year calendar warning is
shown where it matters (serve's start-up, `config check`), not on every command."""
from __future__ import annotations

import asyncio
import json
import logging
import re
import shlex
import shutil
import subprocess
import sys
from datetime import date
from zoneinfo import ZoneInfo

import pytest

from callcenter.domain.calendar import WorkdayCalendar
from callcenter.settings import load_settings
from callcenter.workdays import calendar_warning_quiet, config_check_warning, warn_missing_year
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
WARNING = "workday calendar: no statutory holiday schedule"


def readme_commands() -> list[str]:
    """Every command the README shows: indented code lines and `inline` spans that run something."""
    found = re.findall(r"^    (\S.*)$", README, re.M) + re.findall(r"`([^`\n]+)`", README)
    starts = ("callcenter ", ".venv/bin/", "python3 ", "CALLCENTER_")
    return [c.strip() for c in found if c.strip().startswith(starts)]


def test_readme_commands_name_only_files_in_the_repository():
    commands = readme_commands()
    assert any("samples/transfer.jsonl" in c for c in commands)
    for command in commands:
        assert "../" not in command, command                   # nothing beside the clone
        for token in shlex.split(command.replace("&&", " ")):
            if "/" not in token or token.startswith(("-", ".venv/")) or "://" in token or "=" in token:
                continue
            assert (ROOT / token).exists(), f"README command {command!r} names {token}, not in the repository"


def _sample_commands() -> list[list[str]]:
    """The sample report's commands, as the README writes them (from the repository's root)."""
    lines = [c for c in re.findall(r"^    (\.venv/bin/callcenter .*)$", README, re.M)]
    assert [shlex.split(c)[1] for c in lines[:2]] == ["replay", "report"]
    return [shlex.split(c) for c in lines[:2]]


def _run(argv: list[str], cwd) -> subprocess.CompletedProcess:
    assert argv[0] == ".venv/bin/callcenter"
    return subprocess.run([sys.executable, "-m", "callcenter.cli", *argv[1:]], cwd=cwd, capture_output=True,
                          text=True, timeout=180)


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """What a fresh clone has that the sample needs (config/, samples/), the sample replayed."""
    root = tmp_path_factory.mktemp("clone")
    for part in ("config", "samples"):
        shutil.copytree(ROOT / part, root / part)
    replay = _run(_sample_commands()[0], root)
    assert replay.returncode == 0, replay.stderr[-2000:]
    return root, replay


def test_the_readme_sample_runs_as_written_and_shows_what_the_readme_says(clone):
    root, replay = clone
    assert "6 calls stored" in replay.stdout
    report = _sample_commands()[1]
    table = _run(report, root)
    assert table.returncode == 0, table.stderr[-2000:]
    data = json.loads(_run(report + ["--format", "json"], root).stdout)
    totals = re.search(r"^合计\*?\s+(\d+)\s+(\d+)", README, re.M)
    assert totals and (int(totals[1]), int(totals[2])) == (data["totals"]["offered"], data["totals"]["answered"])
    assert re.search(r"^合计\*?\s+%d\s+%d" % (data["totals"]["offered"], data["totals"]["answered"]), table.stdout, re.M)
    period = _run([".venv/bin/callcenter", "report", "week", "--date", "2026-11-23", "--db", "sqlite:///sample.db"],
                  root)
    assert period.returncode == 0 and "热线周报 2026年第48周" in period.stdout, period.stderr
    quarter = _run([".venv/bin/callcenter", "report", "quarter", "--date", "2026-11-23", "--db", "sqlite:///sample.db",
                    "--format", "json"], root)
    body = json.loads(quarter.stdout)
    assert (body["kind"], body["start"], body["end"]) == ("quarter", "2026-10-01", "2026-12-31")
    assert body["totals"]["offered"] == data["totals"]["offered"]          # the only day with calls


# --- the calendar warning --------------------------------------------------------------------------

def test_the_warning_is_logged_outside_the_quiet_context_only(caplog):
    nothing_known = WorkdayCalendar(set(), set(), set(), ZoneInfo("Asia/Shanghai"))
    caplog.set_level(logging.DEBUG, logger="callcenter.workdays")
    assert warn_missing_year(nothing_known, date(2030, 5, 1))
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    caplog.clear()
    with calendar_warning_quiet():
        assert warn_missing_year(nothing_known, date(2030, 5, 1))
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]
    caplog.clear()
    warn_missing_year(nothing_known, date(2030, 5, 1))              # the context is left: loud again
    assert [r.levelno for r in caplog.records] == [logging.WARNING]


def _expected() -> bool:
    """Whether today's calendar lacks a year (true from 1 Nov 2026 until a 2027 schedule exists)."""
    return config_check_warning(load_settings(ROOT / "config")) is not None


def test_config_check_shows_the_warning_and_the_other_commands_do_not(clone):
    root, replay = clone
    expected = _expected()
    check = _run([".venv/bin/callcenter", "config", "check"], root)
    assert check.returncode == 0 and check.stdout.startswith("config: ok")
    assert (WARNING in check.stderr) is expected and check.stderr.count(WARNING) == int(expected)
    assert WARNING not in replay.stderr
    report = _run([".venv/bin/callcenter", "report", "daily", "--date", "2026-11-23", "--db", "sqlite:///sample.db"],
                  root)
    assert report.returncode == 0 and WARNING not in report.stderr


async def test_serve_shows_the_warning_once_at_start_up(tmp_path):
    from tests.fakepbx import free_port, serve, write_config
    config = write_config(ROOT / "config", tmp_path / "config", free_port(), tmp_path / "queue_log", free_port())
    log = tmp_path / "serve.log"
    process = await serve(config, f"sqlite:///{tmp_path / 'serve.db'}", log)
    try:
        for _ in range(300):
            if "serving 1 PBX" in log.read_text(errors="replace") or process.returncode is not None:
                break
            await asyncio.sleep(0.1)
    finally:
        if process.returncode is None:
            process.terminate()
        await asyncio.wait_for(process.wait(), 30)
    text = log.read_text(errors="replace")
    assert "serving 1 PBX" in text, text[-2000:]
    assert text.count(WARNING) == int(_expected()), text[-2000:]
