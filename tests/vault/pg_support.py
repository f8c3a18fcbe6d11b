"""A throwaway PostgreSQL cluster on a Unix socket, for the catalog tests and the benchmark.

Nothing is installed here: the Debian package `postgresql` provides the server (the
Makefile's system-deps installs it). `initdb` refuses to run as root, so as root it
runs through `runuser -u postgres`, in a folder owned by postgres. The server listens
on a socket in that folder only (no TCP) and is stopped (and the folder removed) by
`stop()`.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "bodycam"


class PostgresMissing(RuntimeError):
    pass


def postgres_bin() -> Path:
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(d, "initdb").is_file() and Path(d, "pg_ctl").is_file():
            return Path(d)
    raise PostgresMissing(
        "PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin: install the "
        "Debian package postgresql (make system-deps does) to run the catalog tests on it"
    )


@dataclass
class PgCluster:
    base: Path
    bindir: Path
    as_postgres: bool

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base / "sock"

    def _run(self, *args: str) -> None:
        cmd = list(args)
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args[:2])} failed ({proc.returncode}): "
                f"{(proc.stderr or proc.stdout).strip()[-800:]}"
            )

    def start(self) -> None:
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            SUPERUSER,
            "--no-sync",
            "-E",
            "UTF8",
        )
        # fsync off: a throwaway test cluster; nothing in it must survive a crash.
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-w",
            "-o",
            f"-k {self.socket_dir} -c listen_addresses='' -c fsync=off -c full_page_writes=off",
            "-l",
            str(self.base / "server.log"),
            "start",
        )

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(
                    str(self.bindir / "pg_ctl"), "-D", str(self.data), "-w", "-m", "fast", "stop"
                )
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(
            dbname="postgres", host=str(self.socket_dir), user=SUPERUSER, autocommit=True
        ) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')

    def url(self, dbname: str) -> str:
        return f"postgresql://{SUPERUSER}@/{dbname}?host={self.socket_dir}"


def start_cluster() -> PgCluster:
    bindir = postgres_bin()
    as_postgres = os.geteuid() == 0
    base = Path(tempfile.mkdtemp(prefix="bodycam-pg-"))
    (base / "sock").mkdir()
    if as_postgres:
        pw = pwd.getpwnam("postgres")
        for p in (base, base / "sock"):
            os.chown(p, pw.pw_uid, pw.pw_gid)
    cluster = PgCluster(base, bindir, as_postgres)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster
