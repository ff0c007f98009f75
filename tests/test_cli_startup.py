"""The start-up of `callcenter report daily --format json` (issue 13: the whole command, a fresh
interpreter, under 1 s): the command imports only what the report needs. The time itself is
measured by benchmarks/bench_report.py (docs/performance.md); these tests only check, in a fresh
interpreter, which modules the command's code path has loaded when it is done.
"""
from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import MONDAY_10, ROOT, TRACES

CLI = [sys.executable, "-m", "callcenter.cli"]

# Modules a JSON daily report never needs: the service and its web server, the PBX and IVR
# machinery, the demo, migrations, the PostgreSQL driver for a SQLite URL, the other formats'
# renderers and the trend (html/xlsx only), the delivery of archived reports.
NOT_FOR_A_REPORT = [
    "aiohttp", "jinja2", "alembic", "asyncpg", "openpyxl", "apscheduler", "twilio", "panoramisk",
    "callcenter.bootstrap", "callcenter.service", "callcenter.web", "callcenter.demo", "callcenter.replay",
    "callcenter.ami", "callcenter.notify", "callcenter.probes.command",
    "callcenter.domain.ivr_flow",             # settings_ivr imports it only to build a flow
    "reports.render_html", "reports.render_xlsx", "reports.render_csv", "reports.trend", "reports.deliver",
]

# Runs the command in this interpreter, then prints (on stderr, after the report) which of the
# modules above it loaded.
PROBE = """
import json, sys
from callcenter.cli import main
code = main(sys.argv[2:])
loaded = [m for m in json.loads(sys.argv[1]) if m in sys.modules]
print(json.dumps({"code": code, "loaded": loaded}), file=sys.stderr)
"""


def test_the_json_daily_report_imports_only_what_it_needs(tmp_path):
    db = f"sqlite:///{tmp_path / 'r.db'}"
    subprocess.run(CLI + ["replay", str(TRACES / "basic.jsonl"), "--at", MONDAY_10.isoformat(), "--db", db],
                   check=True, capture_output=True, cwd=ROOT, timeout=60)
    argv = ["report", "daily", "--date", MONDAY_10.date().isoformat(), "--format", "json", "--db", db,
            "--config", str(ROOT / "config")]
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(NOT_FOR_A_REPORT), *argv],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["totals"]["offered"] > 0          # the report ran, on the replayed calls
    probe = json.loads(done.stderr.strip().splitlines()[-1])
    assert probe == {"code": 0, "loaded": []}

