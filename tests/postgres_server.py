"""A private PostgreSQL server for tests: `initdb` + `pg_ctl` into a temp dir on a free port.

Never the machine's shared instance: the server listens on 127.0.0.1 only, on a port of its
own, with its socket in its own dir. initdb refuses to run as root, so as root the cluster
belongs to the `postgres` account that Debian's package creates (`runuser`). A missing
PostgreSQL skips locally and FAILS when `CI` is set (harness.unavailable)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from harness import free_port, unavailable

_BIN_GLOB = "/usr/lib/postgresql/*/bin"
USER = "fleet"
PASSWORD = "pg-hunter2-secret"
DATABASE = "fleet_results"


def postgres_bin() -> Path:
    """The newest Debian PostgreSQL bin dir, or one on PATH."""
    dirs = sorted(glob.glob(_BIN_GLOB), key=lambda d: int(Path(d).parent.name.split(".")[0]))
    if dirs:
        return Path(dirs[-1])
    initdb = shutil.which("initdb")
    if initdb is None:
        unavailable("PostgreSQL is not installed (initdb, pg_ctl: apt-get install postgresql)")
    return Path(initdb).parent


@dataclass
class PostgresServer:
    """A cluster we own: started, stopped and restarted on the same port and data dir."""

    bin_dir: Path
    root: Path
    port: int
    owner: str | None  # the account that runs the server when we are root
    # fsync off makes tests quicker; the benchmark keeps it on, as a real server has it.
    durable: bool = False
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.root / "server.log"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, driver: str = "postgresql") -> str:
        return f"{driver}://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def result_backend(self) -> str:
        return "db+" + self.url()

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if self.owner is not None:
            command = ["runuser", "-u", self.owner, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=check)

    def init(self) -> PostgresServer:
        password_file = self.root / "pw"
        password_file.write_text(PASSWORD)
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            USER,
            "--auth=scram-sha-256",
            f"--pwfile={password_file}",
            "--encoding=UTF8",
            "--no-sync",
        )
        password_file.unlink()
        conf = self.data / "postgresql.conf"
        with conf.open("a") as handle:
            handle.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.root}'\n"
                f"fsync = {'on' if self.durable else 'off'}\n"
            )
        self.start()
        self.psql("postgres", f"CREATE DATABASE {DATABASE}")
        return self

    def start(self) -> None:
        self._run(
            str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def psql(self, database: str, sql: str) -> str:
        env = dict(os.environ, PGPASSWORD=PASSWORD)
        done = subprocess.run(
            [
                str(self.bin_dir / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                USER,
                "-d",
                database,
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"psql failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def discard(self) -> None:
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data),
            "-m",
            "immediate",
            "stop",
            check=False,
        )
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres(durable: bool = False) -> PostgresServer:
    bin_dir = postgres_bin()
    if not (bin_dir / "pg_ctl").exists():
        unavailable(f"PostgreSQL's pg_ctl is missing in {bin_dir}")
    root = Path(tempfile.mkdtemp(prefix="fleet-pg-"))
    owner = None
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            unavailable("running as root and no `postgres` account to own the test cluster")
        os.chown(root, account.pw_uid, account.pw_gid)
        owner = "postgres"
    server = PostgresServer(bin_dir, root, free_port(), owner, durable)
    try:
        return server.init()
    except subprocess.CalledProcessError as exc:
        log = server.log.read_text(errors="replace") if server.log.exists() else ""
        server.discard()
        raise AssertionError(f"PostgreSQL did not start: {exc.stderr}\n{log}") from None
