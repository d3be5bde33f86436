"""A throwaway PostgreSQL server on a loopback port, for tests and demos.

``LocalPostgres.start()`` runs ``initdb`` in a fresh temporary folder and starts
``postgres`` as a child process (so it is always reaped), listening on
127.0.0.1 on a free high port with durability switched off (``fsync``,
``synchronous_commit`` and ``full_page_writes`` off: the data is disposable).
``stop()`` shuts it down with ``pg_ctl -m fast -w stop`` and deletes the folder.

PostgreSQL refuses to run as root, so when the caller is root every server
command runs as the ``postgres`` OS user through ``su``, and the folders belong
to that user.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from sde.errors import BackendUnavailable

INSTALL_HINT = "to install PostgreSQL on Debian or Ubuntu: apt-get install postgresql"
_READY_TIMEOUT = 30.0


def find_bindir() -> Path:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres`` (newest version first)."""
    from sde.settings import get_settings

    configured = get_settings().pg_bindir
    candidates = [str(configured)] if configured else []
    candidates += sorted(
        (os.path.dirname(p) for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda d: [int(n) for n in re.findall(r"\d+", d)],
        reverse=True,
    )
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(os.path.dirname(on_path))
    for folder in candidates:
        if all((Path(folder) / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    raise BackendUnavailable(
        "postgresql.not-installed",
        f"the PostgreSQL server programs (initdb, pg_ctl, postgres) were not found; {INSTALL_HINT}",
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    if shutil.which("su") is None:
        raise BackendUnavailable(
            "postgresql.no-su", "running as root needs `su` to start PostgreSQL"
        )
    return ["su", "postgres", "-s", "/bin/sh", "-c", "exec " + shlex.join(argv)]


def _chown_to_server_user(path: Path) -> None:
    if os.geteuid() == 0:
        try:
            shutil.chown(path, "postgres", "postgres")
        except LookupError:
            raise BackendUnavailable(
                "postgresql.no-user",
                f"there is no `postgres` OS user to run the server as root; {INSTALL_HINT}",
            ) from None


@dataclass
class LocalPostgres:
    """A running throwaway server; ``admin_dsn`` connects as its superuser ``sde``."""

    root: Path
    port: int
    bindir: Path
    process: subprocess.Popen[bytes]
    host: str = "127.0.0.1"
    user: str = "sde"
    databases: list[str] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq connection string for ``dbname`` as the superuser."""
        return f"host={self.host} port={self.port} user={self.user} dbname={dbname}"

    @property
    def admin_dsn(self) -> str:
        return self.dsn("postgres")

    def create_database(self, name: str | None = None) -> str:
        """Create a fresh, empty database; its DSN."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError(f"not a plain database name: {name!r}")
        with psycopg.connect(self.admin_dsn, autocommit=True) as con:
            con.execute(f"CREATE DATABASE {name}")
        self.databases.append(name)
        return self.dsn(name)

    @classmethod
    def start(cls, *, attempts: int = 3) -> LocalPostgres:
        """initdb and start a server on a free port (retrying if the port is taken)."""
        bindir = find_bindir()
        root = Path(tempfile.mkdtemp(prefix="sde-pg-"))
        try:
            _chown_to_server_user(root)
            (root / "sock").mkdir()
            _chown_to_server_user(root / "sock")
            _run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(root / "data"),
                    "-U",
                    "sde",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-locale",
                    "--no-sync",
                ],
                "initdb",
            )
            last_log = ""
            for _ in range(attempts):
                port = free_port()
                process = _launch(bindir, root, port)
                if _wait_ready(process, port):
                    return cls(root=root, port=port, bindir=bindir, process=process)
                last_log = _read_log(root)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        shutil.rmtree(root, ignore_errors=True)
        raise BackendUnavailable(
            "postgresql.start-failed", f"the throwaway PostgreSQL server did not start: {last_log}"
        )

    def stop(self) -> None:
        """Fast shutdown (``pg_ctl -m fast -w stop``), then remove the folder."""
        if self.process.poll() is None:
            subprocess.run(  # noqa: S603 - fixed argv, no shell
                _as_server_user(
                    [
                        str(self.bindir / "pg_ctl"),
                        "-D",
                        str(self.data_dir),
                        "-m",
                        "fast",
                        "-w",
                        "stop",
                    ]
                ),
                capture_output=True,
                check=False,
                timeout=60,
            )
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(_as_server_user(argv), capture_output=True, check=False)  # noqa: S603
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
        raise BackendUnavailable(
            "postgresql.start-failed", f"{what} failed: {detail[-1] if detail else done.returncode}"
        )


def _launch(bindir: Path, root: Path, port: int) -> subprocess.Popen[bytes]:
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": str(root / "sock"),
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "logging_collector": "off",
    }
    argv = [str(bindir / "postgres"), "-D", str(root / "data")]
    for key, value in settings.items():
        argv += ["-c", f"{key}={value}"]
    # The log goes to a file in the folder (postgres writes it as the server user).
    argv_sh = _as_server_user(argv)
    log = open(root / "server.log", "ab")  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen(argv_sh, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    finally:
        log.close()


def _wait_ready(process: subprocess.Popen[bytes], port: int) -> bool:
    deadline = time.monotonic() + _READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with psycopg.connect(
                f"host=127.0.0.1 port={port} user=sde dbname=postgres", connect_timeout=2
            ):
                return True
        except psycopg.OperationalError:
            time.sleep(0.05)
    process.kill()
    process.wait()
    return False


def _read_log(root: Path) -> str:
    try:
        lines = (root / "server.log").read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no server log"
    return lines[-1] if lines else "no server log"
