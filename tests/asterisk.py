"""The real Asterisk of ../shared/asterisk for tests: `start_asterisk` starts an instance in a
directory (the test is skipped when the bundle is absent or cannot run here), `stop_asterisk`
stops it. Its README explains the options."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Callable

import pytest

from tests.conftest import ROOT
from tests.fakepbx import free_port

BUNDLE = Path(os.environ.get("CALLCENTER_ASTERISK", ROOT.parent / "shared" / "asterisk"))


def require_bundle() -> None:
    if not (BUNDLE / "start").exists():
        pytest.skip(f"no Asterisk bundle at {BUNDLE}")


def start_asterisk(directory: Path, agi_port: int | None = None, conf: Path | None = None,
                   refused: Callable[[str], bool] | None = None) -> tuple[int, Path]:
    """(AMI port, queue_log) of an Asterisk started in `directory` on a free AMI port. A start
    that fails is a skip, unless ``refused(output)`` says it refused the configuration under test
    (then the test fails)."""
    require_bundle()
    args = [str(BUNDLE / "start"), str(directory), "--ami-port", "auto", "--agi-port", str(agi_port or free_port())]
    if conf is not None:
        args += ["--conf", str(conf)]
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=40)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"Asterisk cannot start here: {exc}")
    if out.returncode != 0:
        output = out.stdout + out.stderr
        if refused is not None and refused(output):
            pytest.fail(f"Asterisk refused the configuration: {output[-1500:]}")
        pytest.skip(f"Asterisk cannot start here (exit {out.returncode}): {output[-400:]}")
    fields = dict(item.split("=", 1) for item in out.stdout.split() if "=" in item)
    return int(fields["ami"].rsplit(":", 1)[1]), Path(fields["queue_log"])


def stop_asterisk(directory: Path) -> None:
    subprocess.run([str(BUNDLE / "stop"), str(directory)], capture_output=True, timeout=30)
