"""Real services of our own for the fault tests: a Redis server, a PostgreSQL cluster and
the app under gunicorn, each a subprocess on a free loopback port, so that a test can stop
and restart them without touching the machine's shared PostgreSQL and Redis."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from glob import glob
from pathlib import Path

from django.conf import settings

from tests.workers import wait_for


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answers(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class RedisServer:
    """``redis-server`` in the foreground on ``port``, keeping nothing on disk."""

    port: int
    directory: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: answers(self.port), f"Redis on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        wait_for(lambda: not answers(self.port), f"Redis on port {self.port} to stop")


@contextmanager
def redis_server(directory: Path) -> Iterator[RedisServer]:
    server = RedisServer(port=free_port(), directory=directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _pg_bin(name: str) -> str:
    found = sorted(glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else name


def _as_postgres(command: list[str]) -> list[str]:
    """initdb and pg_ctl refuse to run as root: run them as the postgres user then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@dataclass
class PostgresCluster:
    """A PostgreSQL cluster of our own (initdb, trust auth) on ``port``."""

    port: int
    directory: Path

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def pg_ctl(self, *arguments: str) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            _as_postgres(
                [
                    _pg_bin("pg_ctl"),
                    "-D",
                    str(self.data),
                    "-o",
                    options,
                    "-w",
                    "-l",
                    str(self.directory / "postgres.log"),
                    *arguments,
                ]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )

    def restart(self) -> None:
        self.pg_ctl("-m", "fast", "restart")


@contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A new cluster in a folder of its own (outside pytest's private tmp, which the
    postgres user may not enter), removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="party-points-pg-"))
    directory.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    cluster = PostgresCluster(port=free_port(), directory=directory)
    subprocess.run(
        _as_postgres(
            [
                _pg_bin("initdb"),
                "-D",
                str(cluster.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale",
                "C.UTF-8",
            ]
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        cluster.pg_ctl("start")
        yield cluster
    finally:
        try:
            cluster.pg_ctl("-m", "immediate", "stop")
        finally:
            shutil.rmtree(directory, ignore_errors=True)


@dataclass
class AppServer:
    url: str
    process: subprocess.Popen
    log: Path


@contextmanager
def app_server(log_directory: Path, **environment: str) -> Iterator[AppServer]:
    """The app under gunicorn (the command of docker-compose.yml, one worker) with
    ``environment`` on top of this process's."""
    port = free_port()
    log = log_directory / "gunicorn.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
                "--timeout",
                "60",
            ],
            cwd=settings.BASE_DIR,
            env={
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "config.settings",
                "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
                **environment,
            },
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def serves() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"gunicorn exited:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(f"{url}/login/", timeout=2)  # noqa: S310 - loopback
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False
        return True

    wait_for(serves, "gunicorn to serve", timeout=60)
    try:
        yield AppServer(url=url, process=process, log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
