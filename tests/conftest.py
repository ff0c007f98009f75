"""Shared fixtures: the real traces, the example configuration, and databases.

`db_url` runs a test on SQLite and, when CALLCENTER_TEST_POSTGRES_URL is set, on PostgreSQL too
(each test gets a database of its own, created from that URL and dropped afterwards; nothing
else in that server is touched).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import uuid
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import make_url

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


@pytest.fixture(autouse=True)
def _no_masking_left_on_the_root_handlers():
    """`callcenter.cli.main` run in-process (callcenter/logsetup.py `configure`) puts its number
    masking on every root handler, pytest's capture handlers included; take it off after each test
    so a later test's caplog sees what its own code logged."""
    yield
    import logging
    from callcenter.logsetup import MaskNumbers
    for handler in logging.getLogger().handlers:
        for f in [f for f in handler.filters if isinstance(f, MaskNumbers)]:
            handler.removeFilter(f)


@pytest.fixture
def settings():
    from callcenter.settings import load_settings
    return load_settings(ROOT / "config")


def _admin(url: str) -> str:
    return re.sub(r"^postgres(ql)?(\+asyncpg)?://", "postgresql://", url)


async def _create_database(url: str) -> str:
    """A database of this test's own, next to the one CALLCENTER_TEST_POSTGRES_URL names."""
    import asyncpg
    name = f"cc_test_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(_admin(url))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return str(make_url(_admin(url)).set(database=name))


async def _drop_database(url: str, created: str) -> None:
    """Drop only the database this test created (its connections first)."""
    import asyncpg
    name = make_url(created).database
    assert name and name.startswith("cc_test_")
    conn = await asyncpg.connect(_admin(url))
    try:
        await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = $1 AND pid <> pg_backend_pid()", name)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await conn.close()


def _in_thread(coro):
    # in a thread of its own: asyncio.run here would unset this thread's event loop
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


DB_PARAMS = ["sqlite"] + (["postgresql"] if PG_URL else [])


@pytest.fixture(params=DB_PARAMS)
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/callcenter.db"
        return
    created = _in_thread(_create_database(PG_URL))
    try:
        yield created
    finally:
        _in_thread(_drop_database(PG_URL, created))


@pytest.fixture
def postgres_url():
    """A fresh PostgreSQL database for one test (skipped without CALLCENTER_TEST_POSTGRES_URL)."""
    if not PG_URL:
        pytest.skip("CALLCENTER_TEST_POSTGRES_URL is not set")
    created = _in_thread(_create_database(PG_URL))
    try:
        yield created
    finally:
        _in_thread(_drop_database(PG_URL, created))


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path}/callcenter.db"
