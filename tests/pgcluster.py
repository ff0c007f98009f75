"""A private PostgreSQL cluster for database-fault tests: stopped, started, frozen at will.

Never the shared server: `initdb` into a fresh temporary directory, `pg_ctl start` on a free
port, listening on 127.0.0.1 only. PostgreSQL refuses to run as root, so as root the binaries
run as the `postgres` user (runuser). `PrivateCluster.create()` skips the test cleanly when
none of that is possible.
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

BIN = Path(os.environ.get("CALLCENTER_TEST_PG_BIN", "/usr/local/bin"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateCluster:
    def __init__(self, root: Path, user: str | None):
        self.root = root
        self.data = root / "data"
        self.user = user
        self.port = _free_port()
        self.frozen: list[int] = []

    @classmethod
    def create(cls) -> "PrivateCluster":
        initdb = BIN / "initdb"
        if not initdb.exists():
            found = shutil.which("initdb")
            if not found:
                pytest.skip("initdb not found: no private PostgreSQL cluster")
            globals()["BIN"] = Path(found).parent
        user = None
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root without a postgres user: no private PostgreSQL cluster")
            if not shutil.which("runuser"):
                pytest.skip("runuser not found: cannot run PostgreSQL as the postgres user")
            user = "postgres"
        root = Path(tempfile.mkdtemp(prefix="cc-pg-"))
        if user:
            os.chown(root, pw.pw_uid, pw.pw_gid)
        os.chmod(root, 0o700)
        cluster = cls(root, user)
        try:
            cluster._run("initdb", "-D", str(cluster.data), "-U", "postgres", "--auth=trust", "--no-sync",
                         "-E", "UTF8")
            cluster.start()
        except (subprocess.CalledProcessError, OSError) as exc:
            cluster.destroy()
            pytest.skip(f"cannot run a private PostgreSQL cluster: {exc}")
        return cluster

    def _run(self, tool: str, *args: str) -> None:
        command = [str(BIN / tool), *args]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w", "-t", "30", "-o",
                  f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off "
                  f"-c synchronous_commit=off -c full_page_writes=off", "start")

    def ensure_running(self) -> None:
        """After a test that failed mid-outage: thawed and started again."""
        self.thaw()
        if not (self.data / "postmaster.pid").exists():
            self.start()

    def stop(self) -> None:
        """A fast shutdown: every connection is cut, the port refuses."""
        self.thaw()
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")

    def processes(self) -> list[int]:
        """The postmaster and its children (backends, background workers)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        pids = [postmaster]
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
                pids.append(int(entry))
        return pids

    def freeze(self) -> None:
        """SIGSTOP the postmaster and every backend: connections stay open, nothing answers."""
        self.frozen = self.processes()
        for pid in self.frozen:
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self.frozen:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.frozen = []

    async def create_database(self, name: str) -> str:
        import asyncpg
        conn = await asyncpg.connect(self.url())
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.url(name)

    def destroy(self) -> None:
        self.thaw()
        if (self.data / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", "stop")
            except (subprocess.CalledProcessError, OSError):
                pass
        deadline = time.monotonic() + 5
        while (self.data / "postmaster.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        shutil.rmtree(self.root, ignore_errors=True)

