"""A throwaway PostgreSQL cluster for the store tests: initdb + pg_ctl in a temp folder, one empty schema per test.

Why its own user: initdb refuses to run as root, and CI runs as root; then the cluster is made and
run by the ``postgres`` system user (Debian's package creates it) in a temp folder that user owns.
It listens on 127.0.0.1 only, on a free port, with its socket in the temp folder; :meth:`stop`
stops it and deletes the folder.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from sqlalchemy import create_engine, text

USER = "beanguard"  # the cluster's superuser (trust authentication, local connections only)


def binaries() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` that has initdb and pg_ctl, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresServer:
    """Start with :meth:`start`, get empty stores with :meth:`fresh_url`, end with :meth:`stop`."""

    def __init__(self, bin_dir: Path):
        self.bin_dir, self.port = bin_dir, _free_port()
        # As root, /tmp: the postgres user must be able to reach the folder (a $TMPDIR under /root it could not).
        self.folder = Path(tempfile.mkdtemp(prefix="beanguard-pg-", dir="/tmp" if os.geteuid() == 0 else None))
        self.data, self.log = self.folder / "data", self.folder / "server.log"
        self._as = []  # the command prefix that runs a program as the cluster's owner
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")  # KeyError: no such user (the package was not installed)
            os.chown(self.folder, owner.pw_uid, owner.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._names = itertools.count(1)
        self._admin = None

    def _run(self, *command: str) -> None:
        done = subprocess.run([*self._as, *command], capture_output=True, text=True, timeout=120, cwd=self.folder)  # a folder its user may enter
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {done.stderr.strip() or done.stdout.strip()}")

    def start(self) -> "PostgresServer":
        try:
            self._run(str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", USER, "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions")
            options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c max_connections=200"
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")
        except BaseException:
            self.stop()
            raise
        self._admin = create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        return self

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://{USER}@127.0.0.1:{self.port}/{database}"

    def fresh_url(self) -> str:
        """The URL of a new, empty schema (its own namespace: the store sees an empty database).

        A schema costs milliseconds where ``CREATE DATABASE`` copies a template of several MB per test.
        Test infrastructure only: the store itself never creates schemas or databases."""
        name = f"store_{next(self._names)}"
        with self._admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {name}"))
        return f"{self.url('postgres')}?options=-csearch_path%3D{name}"

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.dispose()
        if (self.data / "postmaster.pid").exists():
            subprocess.run([*self._as, str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"], capture_output=True, timeout=60, cwd=self.folder)
        shutil.rmtree(self.folder, ignore_errors=True)

