"""House rules: the domain core imports no framework and reads no clock; nothing runs at import."""
from __future__ import annotations

import ast
import subprocess
import sys

from tests.conftest import ROOT

FORBIDDEN = {"aiohttp", "sqlalchemy", "panoramisk", "apscheduler", "twilio", "alembic", "asyncio",
             "socket", "yaml", "pydantic", "requests", "time"}


def _imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module.split(".")[0]


def test_domain_imports_only_the_standard_library_and_itself():
    for path in (ROOT / "callcenter" / "domain").glob("*.py"):
        bad = FORBIDDEN & set(_imports(path))
        assert not bad, f"{path.name} imports {bad}"


def test_domain_reads_no_clock():
    for path in (ROOT / "callcenter" / "domain").glob("*.py"):
        text = path.read_text()
        for call in ("datetime.now(", ".utcnow(", "date.today(", "time.time("):
            assert call not in text, f"{path.name} reads the clock ({call})"


def test_only_the_clock_module_reads_the_wall_clock():
    allowed = {"clock.py", "cli.py"}          # cli: the default --date and --at are "today"/"now"
    for path in (ROOT / "callcenter").rglob("*.py"):
        if path.name in allowed or "demo" in path.parts or "migrations" in path.parts:
            continue
        text = path.read_text()
        assert "datetime.now(" not in text, f"{path} reads the wall clock"


def test_every_package_says_what_it_owns():
    for init in list((ROOT / "callcenter").rglob("__init__.py")) + [ROOT / "reports" / "__init__.py"]:
        if "migrations" in init.parts:
            continue
        assert ast.get_docstring(ast.parse(init.read_text())), f"{init} has no docstring"


def test_importing_does_nothing():
    code = ("import callcenter.cli, callcenter.service, callcenter.replay, callcenter.storage.store, "
            "reports.daily; import asyncio, threading; assert threading.active_count() == 1")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
