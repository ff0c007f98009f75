"""Shared fixtures: the real traces, the example configuration, and databases.

`db_url` runs a test on SQLite and, when CALLCENTER_TEST_POSTGRES_URL is set, on PostgreSQL too
(the schema is emptied before each test).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import os
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

ROOT = Path(__file__).resolve().parents[1]
# A copy of ../shared/ami-traces (real Asterisk streams and queue_logs), kept in the repository
# so that a clean checkout tests against them; CALLCENTER_TRACES points elsewhere if wanted.
TRACES = Path(os.environ.get("CALLCENTER_TRACES", ROOT / "tests" / "traces"))
SHANGHAI = ZoneInfo("Asia/Shanghai")
MONDAY_10 = datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)     # a workday, in business hours
PG_URL = os.environ.get("CALLCENTER_TEST_POSTGRES_URL")


def trace_path(name: str) -> Path:
    path = TRACES / f"{name}.jsonl"
    if not path.exists():
        pytest.skip(f"trace {path} not available")
    return path


@pytest.fixture
def settings():
    from callcenter.settings import load_settings
    return load_settings(ROOT / "config")


async def _reset_postgres(url: str) -> None:
    import asyncpg
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()


DB_PARAMS = ["sqlite"] + (["postgresql"] if PG_URL else [])


@pytest.fixture(params=DB_PARAMS)
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/callcenter.db"
    # in a thread of its own: asyncio.run here would unset this thread's event loop
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _reset_postgres(PG_URL)).result()
    return PG_URL


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path}/callcenter.db"
