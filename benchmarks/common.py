"""Helpers shared by the benchmarks: the machine line, and a throwaway PostgreSQL database."""
from __future__ import annotations

import asyncio
import os
import platform
import re
from importlib.metadata import version
from pathlib import Path


def machine(*packages: str) -> str:
    """Cores, CPU model, Python, OS and the versions of `packages`."""
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = ", ".join(f"{p} {version(p)}" for p in packages)
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()}, {versions}"


def pg_urls(url: str, database: str) -> tuple[str, str]:
    """(the URL as given, for CREATE/DROP DATABASE; the URL of the benchmark's database)."""
    plain = re.sub(r"^postgres(ql)?(\+asyncpg)?://", "postgresql://", url)
    base, sep, query = plain.partition("?")
    scheme, _, rest = base.partition("://")
    host = rest.split("/", 1)[0]
    return plain, f"{scheme}://{host}/{database}{sep}{query}"


def _pg(admin_url: str, *statements: str) -> None:
    async def run() -> None:
        import asyncpg
        conn = await asyncpg.connect(admin_url)
        try:
            for sql in statements:
                await conn.execute(sql)
        finally:
            await conn.close()
    asyncio.run(run())


def pg_create(admin_url: str, database: str) -> None:
    _pg(admin_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)', f'CREATE DATABASE "{database}"')


def pg_drop(admin_url: str, database: str) -> None:
    _pg(admin_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def backends(spec: str, postgres_url: str | None, name: str) -> list[str]:
    """`--db sqlite,postgresql` as a list; PostgreSQL only when a URL is known."""
    out = []
    for backend in (b.strip() for b in spec.split(",") if b.strip()):
        if backend in ("postgresql", "postgres", "pg"):
            if postgres_url:
                out.append("postgresql")
            else:
                print("PostgreSQL skipped: CALLCENTER_TEST_POSTGRES_URL is not set", flush=True)
        elif backend == "sqlite":
            out.append(backend)
        else:
            raise SystemExit(f"{name}: unknown backend {backend!r}")
    return out
