"""House rules: the domain core imports no framework and reads no clock; nothing runs at import."""
from __future__ import annotations

import ast
import subprocess
import sys

from tests.conftest import ROOT

FORBIDDEN = {"aiohttp", "sqlalchemy", "panoramisk", "apscheduler", "twilio", "alembic", "asyncio",
             "socket", "yaml", "pydantic", "requests", "time"}


def _imports(path):
    """Top-level names imported by `path`; a relative import is resolved against the file's
    package, so `from ..storage import tables` inside callcenter/domain/ yields `callcenter.storage`."""
    tree = ast.parse(path.read_text())
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
            target = ".".join(base + tuple((node.module or "").split(".")) if node.module else base)
            if node.module is None:
                yield from (f"{target}.{a.name}" for a in node.names)
            else:
                yield target


def _forbidden(path) -> set[str]:
    bad = set()
    for name in _imports(path):
        if name.split(".")[0] in FORBIDDEN:
            bad.add(name)
        elif name.startswith("callcenter.") and not name.startswith("callcenter.domain"):
            bad.add(name)                           # the domain imports nothing of the adapters
    return bad


def test_domain_imports_only_the_standard_library_and_itself():
    for path in (ROOT / "callcenter" / "domain").glob("*.py"):
        bad = _forbidden(path)
        assert not bad, f"{path.name} imports {bad}"


def test_the_import_check_sees_relative_imports(tmp_path):
    probe = ROOT / "callcenter" / "domain" / "_probe_for_test.py"
    try:
        probe.write_text("from ..storage import tables\nfrom . import calls\nfrom .. import clock\n")
        assert _forbidden(probe) == {"callcenter.storage", "callcenter.clock"}
    finally:
        probe.unlink()


def test_domain_reads_no_clock():
    for path in (ROOT / "callcenter" / "domain").glob("*.py"):
        text = path.read_text()
        for call in ("datetime.now(", ".utcnow(", "date.today(", "time.time("):
            assert call not in text, f"{path.name} reads the clock ({call})"


def test_only_the_clock_module_reads_the_wall_clock():
    allowed = {"clock.py", "cli_commands.py"}  # the CLI: the default --date and --at are "today"/"now"
    for path in [p for package in ("callcenter", "agents", "ivr", "reports") for p in (ROOT / package).rglob("*.py")]:
        if path.name in allowed or "demo" in path.parts or "migrations" in path.parts:
            continue
        text = path.read_text()
        assert "datetime.now(" not in text, f"{path} reads the wall clock"


def test_every_package_says_what_it_owns():
    inits = [init for package in ("callcenter", "agents", "ivr", "reports") for init in (ROOT / package).rglob("__init__.py")]
    assert len(inits) > 10
    for init in inits:
        if "migrations" in init.parts:
            continue
        assert ast.get_docstring(ast.parse(init.read_text())), f"{init} has no docstring"


def test_importing_does_nothing():
    code = ("import callcenter.cli, callcenter.service, callcenter.replay, callcenter.storage.store, "
            "reports.daily; import asyncio, threading; assert threading.active_count() == 1")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
