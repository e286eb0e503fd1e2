"""A throw-away PostgreSQL server for tests, benchmarks and the local stack.

Uses the Debian `postgresql` binaries (found via `pg_config --bindir`, the
`/usr/lib/postgresql/<major>/bin` directories, or PATH). The server runs in
the foreground as a child process so it can be stopped by PID. PostgreSQL
refuses to run as root, so as root the data directory is handed to the
`postgres` system user (or `nobody`) and the server runs as that user.
Authentication is `trust` on 127.0.0.1 only: for local testing, never production.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from brokkr_dev.base.errors import AutomationError
from brokkr_dev.base.localnet import free_port

SUPERUSER = "postgres"


class PostgresError(AutomationError):
    """PostgreSQL could not be found, initialised or started; the message says why."""


def find_bindir() -> Path:
    """The directory holding initdb and postgres (newest major version first)."""
    explicit = os.environ.get("BROKKR_PG_BINDIR")
    candidates = [Path(explicit)] if explicit else []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates += [Path(p) for p in versions]
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    for candidate in candidates:
        if (candidate / "initdb").exists() and (candidate / "postgres").exists():
            return candidate
    raise PostgresError(
        "PostgreSQL server binaries not found; install them with "
        "`apt-get install postgresql` (or `invoke system.install --features postgres`), "
        "or set BROKKR_PG_BINDIR"
    )


# Fast and throw-away: no durable commits (a test database is never recovered).
TEST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "128MB",
}


def _run_as() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise PostgresError("running as root but neither a `postgres` nor a `nobody` user exists")


@dataclass
class PostgresServer:
    """One PostgreSQL instance in its own directory, on its own port."""

    root: Path
    port: int = field(default_factory=free_port)
    bindir: Path = field(default_factory=find_bindir)
    process: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq URL for a database on this server."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def _user_kwargs(self) -> dict[str, int]:
        user = _run_as()
        return {"user": user.pw_uid, "group": user.pw_gid} if user else {}

    def init(self) -> None:
        """Create the cluster (initdb) unless it exists."""
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        user = _run_as()
        if user:
            for path in (self.root,):
                os.chown(path, user.pw_uid, user.pw_gid)
        result = subprocess.run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
                "--locale=C.UTF-8",
            ],
            capture_output=True,
            text=True,
            check=False,
            **self._user_kwargs(),  # type: ignore[call-overload]
        )
        if result.returncode != 0:
            raise PostgresError(f"initdb failed:\n{result.stdout}\n{result.stderr}")

    def start(self, timeout: float = 30.0, settings: dict[str, str] | None = None) -> None:
        """Start the server in the foreground (child process) and wait until it accepts.

        `settings` override the test defaults (TEST_SETTINGS), e.g. `{"fsync": "on"}`
        for a benchmark that should pay for durable commits as production does.
        """
        self.init()
        options = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.root),
            **TEST_SETTINGS,
            **(settings or {}),
        }
        log = open(self.log_file, "ab")  # noqa: SIM115 - handed to the child process
        self.process = subprocess.Popen(
            [
                str(self.bindir / "postgres"),
                "-D",
                str(self.data_dir),
                "-p",
                str(self.port),
                *(arg for name, value in options.items() for arg in ("-c", f"{name}={value}")),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **self._user_kwargs(),  # type: ignore[call-overload]
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PostgresError(
                    f"postgres exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            if self._accepts():
                return
            time.sleep(0.05)
        self.stop()
        raise PostgresError(
            f"postgres did not accept connections in {timeout}s:\n{self.log_tail()}"
        )

    def _accepts(self) -> bool:
        result = subprocess.run(
            [str(self.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
            check=False,
        )
        return result.returncode == 0

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown by PID (SIGINT), then SIGKILL if it hangs."""
        if self.process is None or self.process.poll() is not None:
            self.process = None
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run SQL with psql; raise PostgresError on failure."""
        result = subprocess.run(
            [
                str(self.bindir / "psql"),
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                self.dsn(dbname),
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise PostgresError(f"psql failed: {result.stderr.strip()}")
        return result.stdout


def temporary_server() -> PostgresServer:
    """A server in a fresh directory under /tmp (readable by the `postgres` user)."""
    root = Path(tempfile.mkdtemp(prefix="brokkr-pg-"))
    os.chmod(root, 0o755)  # noqa: S103 - the postgres user must reach its data dir
    return PostgresServer(root=root / "pg")


def remove(server: PostgresServer) -> None:
    """Stop the server and delete its directory (made by `temporary_server`)."""
    server.stop()
    shutil.rmtree(server.root.parent, ignore_errors=True)


def main() -> int:
    """`python -m brokkr_dev.local.postgres`: run a throw-away server until Ctrl-C."""
    server = temporary_server()
    server.start()
    server.psql("CREATE DATABASE brokkr")
    pid = server.process.pid if server.process else "?"
    print(f"PostgreSQL {server.bindir.parent.name} running as pid {pid}; Ctrl-C stops it")
    print(f"export BROKKR__DATABASE__URL={server.dsn('brokkr')}", flush=True)
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        remove(server)
    return 0


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    raise SystemExit(main())
